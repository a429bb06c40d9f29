//! Which stored representation of a precompressed document a request gets: the encoding
//! from `Accept-Encoding`, and whether its `If-None-Match` already names it (a 304).
//! Snapshots and the web app both keep brotli, gzip and identity forms made ahead of time.

use http::header;
use pingora::http::RequestHeader;

/// `Accept-Encoding` negotiation: the acceptable coding with the highest q-value, brotli
/// before gzip before identity on ties. Unlisted codings are unacceptable unless `*` says
/// otherwise; identity stays acceptable unless refused outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

pub(crate) fn negotiate(accept_encoding: Option<&str>) -> Encoding {
    let Some(accept) = accept_encoding else {
        return Encoding::Identity;
    };
    // q-values of the codings the edge serves, and of `*`; the last listing wins.
    let (mut br, mut gzip, mut x_gzip, mut identity, mut star) = (None, None, None, None, None);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .and_then(|w| w.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let target = match coding {
            c if c.eq_ignore_ascii_case("br") => &mut br,
            c if c.eq_ignore_ascii_case("gzip") => &mut gzip,
            c if c.eq_ignore_ascii_case("x-gzip") => &mut x_gzip,
            c if c.eq_ignore_ascii_case("identity") => &mut identity,
            "*" => &mut star,
            _ => continue,
        };
        *target = Some(weight);
    }
    let weight = |q: Option<f32>, default: f32| q.or(star).unwrap_or(default);
    let candidates = [
        (Encoding::Brotli, weight(br, 0.0)),
        (Encoding::Gzip, weight(gzip, 0.0).max(weight(x_gzip, 0.0))),
        (Encoding::Identity, weight(identity, 0.001)),
    ];
    candidates
        .into_iter()
        .filter(|(_, w)| *w > 0.0)
        .fold(None, |best: Option<(Encoding, f32)>, (e, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((e, w)),
        })
        .map_or(Encoding::Identity, |(e, _)| e)
}

pub(crate) fn if_none_match(request: &RequestHeader, etag: &[u8]) -> bool {
    request
        .headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        use Encoding::*;
        assert_eq!(negotiate(None), Identity);
        assert_eq!(negotiate(Some("gzip, deflate, br")), Brotli);
        assert_eq!(negotiate(Some("gzip")), Gzip);
        assert_eq!(negotiate(Some("br;q=0.5, gzip;q=0.9")), Gzip);
        assert_eq!(negotiate(Some("br;q=0, gzip;q=0")), Identity);
        assert_eq!(negotiate(Some("*")), Brotli);
        assert_eq!(negotiate(Some("*;q=0.2, gzip")), Gzip);
        assert_eq!(negotiate(Some("identity")), Identity);
        assert_eq!(negotiate(Some("deflate")), Identity);
        assert_eq!(negotiate(Some("GZIP;Q=1")), Gzip);
    }
}
