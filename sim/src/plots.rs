//! Line charts of a night, each written as PNG and SVG. PNG text is drawn with DejaVu Sans
//! (Debian's `fonts-dejavu-core`, which `scripts/up` and `scripts/test` install); SVG text
//! is left to the viewer.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

/// The typeface PNG plots are labelled with.
pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a plot was not written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The typeface is not installed.
    #[error("cannot read the plots' typeface {FONT} (Debian: fonts-dejavu-core): {0}")]
    Font(String),
    /// Drawing or writing failed.
    #[error("cannot draw {0}: {1}")]
    Draw(String, String),
}

/// One line of a chart: its legend and its points (x, y).
pub struct Line {
    /// The legend.
    pub label: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// A chart: a title, what its axes measure, and its lines.
pub struct Chart<'a> {
    /// The title.
    pub title: &'a str,
    /// The x axis.
    pub x: &'a str,
    /// The y axis.
    pub y: &'a str,
    /// The lines, each in its own colour.
    pub lines: Vec<Line>,
}

fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| e.to_string())?;
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .map_err(|_| "not a font plotters can read".to_owned())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// Decimals for the labels of an axis from 0 to `max` (about ten labels).
fn decimals(max: f64) -> usize {
    match max {
        m if m >= 20.0 => 0,
        m if m >= 2.0 => 1,
        _ => 2,
    }
}

impl Chart<'_> {
    /// Writes the chart as `<stem>.png` and `<stem>.svg`.
    pub fn write(&self, stem: &Path) -> Result<(), PlotError> {
        register_font()?;
        let failed = |e: String| PlotError::Draw(stem.display().to_string(), e);
        let png = stem.with_extension("png");
        let svg = stem.with_extension("svg");
        self.draw(BitMapBackend::new(&png, (960, 540)).into_drawing_area())
            .map_err(failed)?;
        self.draw(SVGBackend::new(&svg, (960, 540)).into_drawing_area())
            .map_err(failed)
    }

    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        let error = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(error)?;
        let points = self.lines.iter().flat_map(|l| &l.points);
        let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
        let y_max = points.map(|p| p.1).fold(1.0, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(error)?;
        // Whole numbers, or as many decimals as a short axis needs to tell its labels apart.
        let scale = |max: f64| move |v: &f64| format!("{v:.*}", decimals(max));
        chart
            .configure_mesh()
            .x_desc(self.x)
            .y_desc(self.y)
            .x_label_formatter(&scale(x_max))
            .y_label_formatter(&scale(y_max))
            .draw()
            .map_err(error)?;
        for (i, line) in self.lines.iter().enumerate() {
            let colour = Palette99::pick(i).stroke_width(2);
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), colour))
                .map_err(error)?
                .label(&line.label)
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], Palette99::pick(i).stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(error)?;
        root.present().map_err(error)
    }
}
