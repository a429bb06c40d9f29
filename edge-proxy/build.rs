//! Builds the fan web app into the edge: every file under `web/` is read, compressed with
//! brotli and gzip once here (at their highest settings, which would be too slow per
//! request), and listed in `$OUT_DIR/web_files.rs` with its bytes included. Assets are
//! served under `/assets/<build>/`, `<build>` a hash of all of them, so their URLs can be
//! cached for ever; `%ASSETS%` in the HTML becomes that prefix.

use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

const ASSET_PLACEHOLDER: &str = "%ASSETS%";

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files_under(&path, found)?;
        } else {
            found.push(path);
        }
    }
    Ok(())
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("txt") | Some("md") => "text/plain; charset=utf-8",
        _ => panic!("web/{path}: no content type known for this extension"),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).expect("brotli into memory");
    out
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = root.join("web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web");
    println!("cargo:rerun-if-changed=web");
    let mut paths = Vec::new();
    files_under(&web, &mut paths).expect("read web/");
    paths.sort();
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|path| {
            println!("cargo:rerun-if-changed={}", path.display());
            let relative = path
                .strip_prefix(&web)
                .expect("under web/")
                .to_str()
                .expect("web/ file names are UTF-8")
                .replace('\\', "/");
            (relative, std::fs::read(path).expect("read a web/ file"))
        })
        .collect();
    // The build: a hash over every asset's name and bytes.
    let mut build = Sha256::new();
    for (relative, bytes) in files.iter().filter(|(r, _)| r.starts_with("assets/")) {
        build.update((relative.len() as u64).to_le_bytes());
        build.update(relative.as_bytes());
        build.update((bytes.len() as u64).to_le_bytes());
        build.update(bytes);
    }
    let build = hex(&build.finalize()[..6]);
    let prefix = format!("/assets/{build}");

    let mut listing = String::from("&[\n");
    for (index, (relative, bytes)) in files.iter().enumerate() {
        if relative.ends_with("README.md") {
            continue;
        }
        let (url, bytes) = match relative.strip_prefix("assets/") {
            Some(rest) => (format!("{prefix}/{rest}"), bytes.clone()),
            None => {
                let text = std::str::from_utf8(bytes).expect("pages are UTF-8");
                (
                    format!("/{relative}"),
                    text.replace(ASSET_PLACEHOLDER, &prefix).into_bytes(),
                )
            }
        };
        let kind = content_type(relative);
        let compressible =
            kind.starts_with("text/") || kind.contains("svg") || kind.contains("json");
        let stored = out.join(index.to_string());
        std::fs::create_dir_all(&stored).expect("create OUT_DIR/web");
        std::fs::write(stored.join("identity"), &bytes).expect("write");
        let etag = hex(&Sha256::digest(&bytes)[..8]);
        let mut encodings = String::new();
        if compressible {
            // A compressed form only when it is smaller.
            for (name, compressed) in [("brotli", brotli(&bytes)), ("gzip", gzip(&bytes))] {
                if compressed.len() < bytes.len() {
                    std::fs::write(stored.join(name), &compressed).expect("write");
                    write!(
                        encodings,
                        "{name}: Some(include_bytes!({:?})), ",
                        stored.join(name)
                    )
                    .expect("to a string");
                } else {
                    write!(encodings, "{name}: None, ").expect("to a string");
                }
            }
        } else {
            encodings.push_str("brotli: None, gzip: None, ");
        }
        writeln!(
            listing,
            "    WebFile {{ path: {url:?}, content_type: {kind:?}, etag: {etag:?}, \
             identity: include_bytes!({:?}), {encodings}}},",
            stored.join("identity")
        )
        .expect("to a string");
    }
    listing.push(']');
    let generated = format!(
        "/// The asset prefix of this build: `/assets/<hash of every asset>`.\n\
         pub const ASSET_PREFIX: &str = {prefix:?};\n\
         /// Every file of the web app, compressed at build time.\n\
         pub static FILES: &[WebFile] = {listing};\n"
    );
    std::fs::write(
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("web_files.rs"),
        generated,
    )
    .expect("write web_files.rs");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
