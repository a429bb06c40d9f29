//! Account input: emails, display names and passwords. A refusal is 422 `invalid_field`
//! with the field named in `field`, before anything is stored or hashed.

use crate::error::{ApiError, Code};
use onsale_contract::problem::Problem;
use serde::Deserialize;

/// Shortest password accepted at sign-up, change and reset.
pub(crate) const MIN_PASSWORD_CHARS: usize = 10;
/// Longest password accepted anywhere: longer than any passphrase, short enough that no
/// one makes the hash work on megabytes.
pub(crate) const MAX_PASSWORD_CHARS: usize = 128;
/// Longest display name.
pub(crate) const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// RFC 5321's limits: a path of 254 characters, a local part of 64.
const MAX_EMAIL_CHARS: usize = 254;
const MAX_LOCAL_CHARS: usize = 64;

/// 422 `invalid_field` naming `field`.
pub(crate) fn invalid(field: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::problem(
        Problem::new(Code::InvalidField, "Invalid field")
            .with_detail(detail.into())
            .with("field", field),
    )
}

/// An email address as typed (trimmed) and its normalised key, the account's unique name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Email {
    /// As typed, without surrounding spaces: what mail is sent to.
    pub address: String,
    /// Lower case: `Ana@Example.com` and `ana@example.com` are one account.
    pub key: String,
}

impl Email {
    /// A plausible address: one `@`, a local part of visible characters, a domain of at
    /// least two dot-separated labels of letters, digits and inner hyphens (IDNs in their
    /// ASCII form). Whether mail arrives is for the reset code to find out.
    pub(crate) fn parse(field: &'static str, raw: &str) -> Result<Self, ApiError> {
        let address = raw.trim();
        let refuse = |why: &str| invalid(field, format!("`{field}` {why}"));
        if address.is_empty() || address.chars().count() > MAX_EMAIL_CHARS {
            return Err(refuse(&format!(
                "must be an email address of at most {MAX_EMAIL_CHARS} characters"
            )));
        }
        let Some((local, domain)) = address.split_once('@') else {
            return Err(refuse("must be an email address (name@domain)"));
        };
        let local_ok = !local.is_empty()
            && local.chars().count() <= MAX_LOCAL_CHARS
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '@');
        if !local_ok {
            return Err(refuse("must have a name before the @ without spaces"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(refuse("must have a domain such as example.com after the @"));
        }
        Ok(Email {
            address: address.to_owned(),
            key: address.to_lowercase(),
        })
    }
}

/// A password within the limits, kept as given (spaces count).
#[derive(Clone)]
pub(crate) struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// A new password: [`MIN_PASSWORD_CHARS`] to [`MAX_PASSWORD_CHARS`] characters.
    pub(crate) fn new(field: &'static str, raw: String) -> Result<Self, ApiError> {
        let chars = raw.chars().count();
        if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
            return Err(invalid(
                field,
                format!(
                    "`{field}` must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
                ),
            ));
        }
        Ok(Password(raw))
    }

    /// A password presented to be checked: anything up to [`MAX_PASSWORD_CHARS`]; a wrong
    /// one is the credential check's to refuse, not a format error.
    pub(crate) fn presented(field: &'static str, raw: String) -> Result<Self, ApiError> {
        if raw.is_empty() || raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(invalid(
                field,
                format!("`{field}` must be 1 to {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(Password(raw))
    }
}

/// A display name: trimmed, 1 to [`MAX_DISPLAY_NAME_CHARS`] characters, no control
/// characters.
pub(crate) fn display_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(invalid(
            "display_name",
            format!("`display_name` must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "display_name",
            "`display_name` must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// The schema of an email field: what [`Email::parse`] accepts, without the surrounding
/// spaces it trims.
fn email_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    // No `format: email`: that is RFC 5321's ASCII mailbox, and addresses with non-ASCII
    // names (RFC 6531) are accepted. The pattern is the check.
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_EMAIL_CHARS))
        .pattern(Some(
            r"^[^\s@\x00-\x1f\x7f-\x9f]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
        ))
        .description(Some(
            "An email address: a name of at most 64 visible characters, `@`, and a domain of \
             two or more dot-separated labels of letters, digits and inner hyphens (IDNs in \
             their ASCII form). Letter case does not tell accounts apart.",
        ))
        .build()
}

/// `POST /v1/accounts`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUpBody {
    /// The account's email, its name for signing in; unique in any letter case.
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// The password: 10 to 128 characters, kept as given (spaces count).
    #[schema(min_length = 10, max_length = 128)]
    pub password: String,
    /// The name shown to the fan: 1 to 64 characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: String,
}

/// `POST /v1/sessions`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignInBody {
    /// The account's email, in any letter case.
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// The account's password: 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub password: String,
}

/// `POST /v1/me/password`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChangeBody {
    /// The account's password now: 1 to 128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub current_password: String,
    /// The password from now on: 10 to 128 characters, kept as given (spaces count).
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

/// `POST /v1/password-resets`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetRequestBody {
    /// The email of the account whose password is forgotten.
    #[schema(schema_with = email_schema)]
    pub email: String,
}

/// `POST /v1/password-resets/confirm`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetConfirmBody {
    /// The email the code was sent to.
    #[schema(schema_with = email_schema)]
    pub email: String,
    /// The code that was sent: 10 letters and digits, in any letter case; spaces and
    /// hyphens are ignored.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9 -]*[A-Za-z0-9][A-Za-z0-9 -]*$"
    )]
    pub code: String,
    /// The password from now on: 10 to 128 characters, kept as given (spaces count).
    #[schema(min_length = 10, max_length = 128)]
    pub new_password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: ApiError) -> String {
        let problem = error.to_problem();
        assert_eq!(problem.status, 422);
        assert_eq!(problem.code, "invalid_field");
        problem.extensions["field"].as_str().unwrap().to_owned()
    }

    #[test]
    fn emails_are_trimmed_and_keyed_in_lower_case() {
        let email = Email::parse("email", "  Ana.Lima+tickets@Example.COM ").unwrap();
        assert_eq!(email.address, "Ana.Lima+tickets@Example.COM");
        assert_eq!(email.key, "ana.lima+tickets@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana@@example.com",
            "a na@example.com",
            "ana@-example.com",
            "ana@exa_mple.com",
            "ana@example..com",
        ] {
            assert_eq!(field_of(Email::parse("email", bad).unwrap_err()), "email");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse("email", &long).is_err());
    }

    #[test]
    fn passwords_and_names_keep_their_limits() {
        assert!(Password::new("password", "123456789".into()).is_err());
        assert!(Password::new("password", "1234567890".into()).is_ok());
        assert!(Password::new("password", "x".repeat(129)).is_err());
        assert_eq!(
            field_of(Password::new("new_password", "short".into()).unwrap_err()),
            "new_password"
        );
        assert!(Password::presented("password", "short".into()).is_ok());
        assert!(Password::presented("password", String::new()).is_err());
        assert_eq!(display_name("  Ana  ").unwrap(), "Ana");
        assert_eq!(field_of(display_name(" ").unwrap_err()), "display_name");
        assert!(display_name("A\u{7}na").is_err());
        assert!(display_name(&"n".repeat(65)).is_err());
        assert_eq!(
            format!("{:?}", Password("secret".into())),
            "Password(<redacted>)"
        );
    }
}
