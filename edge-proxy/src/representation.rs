//! Which stored representation of a precompressed document a request gets: the encoding
//! from `Accept-Encoding`, and whether its `If-None-Match` already names it (a 304).
//! Snapshots and the web app both keep brotli, gzip and identity forms made ahead of time.

use http::header;
use http::HeaderMap;

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

pub(crate) fn if_none_match(request: &HeaderMap, etag: &[u8]) -> bool {
    request
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
    use proptest::prelude::*;

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

    /// An `Accept-Encoding` listing: codings, some in odd letter case, each with its q-value
    /// in thousandths if it has one, and the header text that lists them.
    fn listing() -> impl Strategy<Value = (Vec<(String, Option<u16>)>, String)> {
        let coding = prop_oneof![
            prop::sample::select(
                &["br", "BR", "Br", "gzip", "GZIP", "x-gzip", "X-Gzip", "identity", "*"][..]
            )
            .prop_map(str::to_owned),
            "[a-z-]{1,8}",
        ];
        let q = prop::option::of((0..=1000u16, "[qQ]", " ?", " ?"));
        prop::collection::vec((coding, q), 0..6).prop_map(|items| {
            let header = items
                .iter()
                .map(|(coding, q)| match q {
                    None => coding.clone(),
                    Some((q, name, before, after)) => {
                        format!("{coding}{before};{after}{name}={}", f32::from(*q) / 1000.0)
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let items = items
                .into_iter()
                .map(|(coding, q)| (coding, q.map(|(q, ..)| q)))
                .collect();
            (items, header)
        })
    }

    /// Whether `listing` names one of `codings` (or `*`) with a non-zero q-value.
    fn offers(listing: &[(String, Option<u16>)], codings: &[&str]) -> bool {
        listing.iter().any(|(coding, q)| {
            let named = coding == "*" || codings.iter().any(|c| coding.eq_ignore_ascii_case(c));
            named && q.is_none_or(|q| q > 0)
        })
    }

    proptest! {
        #[test]
        fn negotiation_never_panics(accept in any::<String>()) {
            negotiate(Some(&accept));
        }

        #[test]
        fn negotiation_picks_only_a_coding_listed_as_acceptable(
            (listing, header) in listing()
        ) {
            match negotiate(Some(&header)) {
                Encoding::Brotli => prop_assert!(offers(&listing, &["br"]), "{}", header),
                Encoding::Gzip => prop_assert!(offers(&listing, &["gzip", "x-gzip"]), "{}", header),
                Encoding::Identity => {}
            }
        }

        #[test]
        fn brotli_alone_at_q_1_is_picked(
            br in "[bB][rR]",
            q in prop::sample::select(&["q=1", "Q=1", "q=1.0", "q=1.000"][..]),
            space in "[ \t]{0,2}",
        ) {
            let header = format!("{space}{br}{space};{space}{q}{space}");
            prop_assert_eq!(negotiate(Some(&header)), Encoding::Brotli, "{}", header);
        }
    }
}
