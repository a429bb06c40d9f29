//! Strict configuration files.
//!
//! Every binary reads one TOML file whose structs use `#[serde(deny_unknown_fields)]`; a typo
//! is an error naming the key, never a silently ignored setting. Addresses and secrets can be
//! overridden from the environment so the files can be committed without them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded; every variant names the file or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{path}: invalid TOML: {message}")]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// The parser's description of the error.
        message: String,
    },
    /// One key is unknown, has the wrong type or an unacceptable value.
    #[error("{path}: key `{key}`: {message}")]
    Key {
        /// The configuration file.
        path: PathBuf,
        /// The dotted path of the key, e.g. `http.listen`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// An environment override is set but does not parse.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable's name.
        var: String,
        /// Why its value was refused.
        message: String,
    },
}

impl ConfigError {
    /// A semantic error on an already parsed key (a bad range, an address that does not parse).
    pub fn key(path: &Path, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Key {
            path: path.to_owned(),
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// Parses `path` as `T`, naming the dotted key of the first error.
pub fn load<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// Parses `text` as `T` like [`load`]; `path` only names the source in errors.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let key = error.path().to_string();
        let inner = error.into_inner();
        if key == "." {
            ConfigError::Syntax {
                path: path.to_owned(),
                message: inner.to_string().trim().to_owned(),
            }
        } else {
            ConfigError::key(path, &key, inner.message().trim())
        }
    })
}

/// Replaces `value` with the environment variable `var` when it is set and not empty.
pub fn override_from_env<T>(value: &mut T, var: &str) -> Result<(), ConfigError>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    match std::env::var(var) {
        Ok(raw) if !raw.is_empty() => {
            *value = raw.parse().map_err(|e: T::Err| ConfigError::Env {
                var: var.to_owned(),
                message: e.to_string(),
            })?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Comma-separated paths, for env overrides of path lists (`ONSALE_VERIFY_KEYS`).
pub struct PathList(pub Vec<std::path::PathBuf>);

impl std::str::FromStr for PathList {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(PathList(
            s.split(',')
                .map(|p| std::path::PathBuf::from(p.trim()))
                .collect(),
        ))
    }
}

/// A secret (token, password-bearing URL) that prints as `<redacted>` in `--check` output,
/// `Debug` and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The plain value, for the one place that must use it (a connection, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals the secret, compared in constant time so the time of a
    /// refusal says nothing about how much of a guess was right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(presented))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The effective configuration as TOML, for `--check`.
pub fn render<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).expect("configuration structs always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        http: Http,
        token: Secret,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Http {
        listen: String,
        limit: u32,
    }

    fn err(text: &str) -> String {
        parse::<Outer>(Path::new("x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn names_unknown_nested_key() {
        let e = err("token = 't'\n[http]\nlisten = 'a'\nlimit = 1\nlisen = 'b'\n");
        assert!(e.starts_with("x.toml: key `http.lisen`:"), "{e}");
    }

    #[test]
    fn names_unknown_top_level_key() {
        let e = err("token = 't'\nextra = 1\n[http]\nlisten = 'a'\nlimit = 1\n");
        assert!(e.starts_with("x.toml: key `extra`:"), "{e}");
    }

    #[test]
    fn names_key_with_wrong_type() {
        let e = err("token = 't'\n[http]\nlisten = 'a'\nlimit = 'many'\n");
        assert!(e.starts_with("x.toml: key `http.limit`:"), "{e}");
    }

    proptest! {
        #[test]
        fn any_text_parses_or_is_refused_naming_the_file(text in "(?s).{0,200}") {
            if let Err(error) = parse::<Outer>(Path::new("x.toml"), &text) {
                prop_assert!(error.to_string().starts_with("x.toml: "), "{}", error);
            }
        }
    }

    #[test]
    fn secrets_never_print() {
        let outer: Outer = parse(
            Path::new("x.toml"),
            "token = 'hunter2'\n[http]\nlisten = 'a'\nlimit = 1\n",
        )
        .unwrap();
        assert_eq!(outer.token.expose(), "hunter2");
        assert!(!format!("{outer:?}").contains("hunter2"));
        assert_eq!(
            serde_json::to_string(&outer.token).unwrap(),
            "\"<redacted>\""
        );
    }
}
