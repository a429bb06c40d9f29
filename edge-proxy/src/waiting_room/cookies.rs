//! The waiting room's cookies: a browser keeps its queue and admission tokens without
//! script access, sent back on every same-site request.

/// A cookie to set; whether it is `Secure` is decided where the answer is written, by how
/// the fan reached the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) max_age_s: i64,
}

impl Cookie {
    /// The `Set-Cookie` value; `secure` when the fan's connection is HTTPS (to this edge or
    /// to a TLS terminator in front of it), so a plain-HTTP development stack still gets
    /// its cookies back.
    pub(crate) fn header(&self, secure: bool) -> String {
        let Cookie {
            name,
            value,
            max_age_s,
        } = self;
        let secure = if secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_http_only_and_secure_when_asked() {
        let cookie = |name, max_age_s| Cookie {
            name,
            value: "t".into(),
            max_age_s,
        };
        assert_eq!(
            cookie("onsale_queue", 60).header(true),
            "onsale_queue=t; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert_eq!(
            cookie("onsale_admit", 5).header(false),
            "onsale_admit=t; Path=/; Max-Age=5; HttpOnly; SameSite=Lax"
        );
    }
}
