//! The waiting room's cookies: a browser keeps its queue and admission tokens without
//! script access, sent back on every same-site request.

/// A `Set-Cookie` value for `name`, living `max_age_s`; `Secure` when the edge is reached
/// over HTTPS.
pub(super) fn cookie(name: &str, value: &str, max_age_s: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_secure_when_asked() {
        assert_eq!(
            cookie("onsale_queue", "t", 60, true),
            "onsale_queue=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie("onsale_admit", "t", 5, false),
            "onsale_admit=t; Path=/; Max-Age=5; HttpOnly; SameSite=Lax"
        );
    }
}
