//! Whose session a join carries. The origin owns accounts and sessions; the edge asks an
//! origin of its pool (`GET /v1/me` with the session as bearer) and remembers the answer by
//! SHA-256 of the token, on the edge's clock: an account for `accounts.session_cache_s`
//! (never past the session's own expiry), a refusal for a few seconds. So a session revoked
//! at the origin joins at the edge for at most `session_cache_s` more, and a storm of bad
//! tokens costs the origin one call per token every few seconds. An origin that cannot
//! answer is never taken for a yes.

use crate::config::AccountsConfig;
use onsale_contract::tokens::SESSION_PREFIX;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// How long a session the origin refused is remembered as refused (at most
/// `session_cache_s`).
const REFUSED_MS: i64 = 5_000;
/// Longest session token looked up; the origin's are `ses_` and 43 characters.
const MAX_TOKEN_LEN: usize = 128;

/// A signed-in fan's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    /// The account id as the origin spells it (a UUID): the tokens' `sub`.
    pub(crate) id: String,
    /// The id's 16 bytes: the waiting room's key for the account.
    pub(crate) key: [u8; 16],
}

impl Account {
    /// The account whose id is the UUID `id`, in any of its hex spellings.
    pub(crate) fn parse(id: &str) -> Option<Account> {
        let digits: String = id.chars().filter(|c| *c != '-').collect();
        let mut key = [0u8; 16];
        hex::decode_to_slice(&digits, &mut key).ok()?;
        Some(Account {
            id: id.to_owned(),
            key,
        })
    }
}

/// Why a join has no account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// No session, or one the origin does not vouch for (unknown, expired, revoked).
    SignInRequired(&'static str),
    /// No origin could answer.
    Unavailable,
}

/// `GET /v1/me`: the fields the edge reads.
#[derive(Deserialize)]
struct Me {
    account_id: String,
    session_expires_at_ms: i64,
    server_time_ms: i64,
}

/// What one origin said about a session.
enum Said {
    /// The session's account and expiry.
    Account(Me),
    /// No such session, or an ended one (401).
    Refused,
    /// Nothing: unreachable, an error, an unreadable answer.
    Nothing,
}

/// A remembered answer: the account, or `None` for a refused session, until `until_ms`.
struct Remembered {
    account: Option<Arc<Account>>,
    until_ms: i64,
}

/// Sessions the origin has vouched for (or refused), remembered briefly.
pub(crate) struct Sessions {
    http: reqwest::Client,
    remembered: Mutex<HashMap<[u8; 32], Remembered>>,
    /// `session_lookups_total{outcome}`: `cached`, `account`, `refused`, `unavailable`.
    lookups: prometheus::IntCounterVec,
}

impl Sessions {
    /// An empty cache with its counter in `registry`.
    pub(crate) fn new(registry: &prometheus::Registry) -> Self {
        Sessions {
            http: reqwest::Client::new(),
            remembered: Mutex::new(HashMap::new()),
            lookups: onsale_contract::metrics::counter_vec(
                registry,
                "session_lookups_total",
                "Sessions resolved for joins, by outcome",
                &["outcome"],
            ),
        }
    }

    fn counted<T>(&self, outcome: &str, result: T) -> T {
        self.lookups.with_label_values(&[outcome]).inc();
        result
    }

    /// What `origin` says about `token`.
    async fn ask(&self, origin: SocketAddr, token: &str, config: &AccountsConfig) -> Said {
        let answer = self
            .http
            .get(format!("http://{origin}/v1/me"))
            .bearer_auth(token)
            .timeout(Duration::from_millis(config.lookup_timeout_ms))
            .send()
            .await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%error, %origin, "session lookup failed");
                return Said::Nothing;
            }
        };
        match response.status().as_u16() {
            200 => match response.json::<Me>().await {
                Ok(me) => Said::Account(me),
                Err(error) => {
                    tracing::warn!(%error, %origin, "unreadable GET /v1/me answer");
                    Said::Nothing
                }
            },
            401 => Said::Refused,
            status => {
                tracing::debug!(status, %origin, "session lookup answered with an error");
                Said::Nothing
            }
        }
    }

    /// The account behind `token`: remembered, or asked of `origins()` (healthy origins of
    /// the pool, chosen only when the cache cannot answer, each tried in turn until one can
    /// say; none: no origin to ask).
    pub(crate) async fn resolve(
        &self,
        token: &str,
        origins: impl FnOnce() -> Vec<SocketAddr>,
        config: &AccountsConfig,
        now_ms: i64,
    ) -> Result<Arc<Account>, SessionError> {
        let well_formed = token.starts_with(SESSION_PREFIX)
            && token.len() <= MAX_TOKEN_LEN
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(SessionError::SignInRequired("the session is not valid"));
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(remembered) = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
            .filter(|r| r.until_ms > now_ms)
        {
            return self.counted(
                "cached",
                remembered
                    .account
                    .clone()
                    .ok_or(SessionError::SignInRequired("the session is not valid")),
            );
        }
        let mut said = Said::Nothing;
        for origin in origins() {
            said = self.ask(origin, token, config).await;
            if !matches!(said, Said::Nothing) {
                break;
            }
        }
        let cache_ms = config.session_cache_s as i64 * 1000;
        let me = match said {
            Said::Account(me) => me,
            Said::Refused => {
                let until_ms = now_ms + REFUSED_MS.min(cache_ms);
                self.remember(hash, None, until_ms, config, now_ms);
                return self.counted(
                    "refused",
                    Err(SessionError::SignInRequired(
                        "the session has ended or is not valid; sign in again",
                    )),
                );
            }
            Said::Nothing => return self.counted("unavailable", Err(SessionError::Unavailable)),
        };
        let Some(account) = Account::parse(&me.account_id) else {
            tracing::warn!(account_id = %me.account_id, "GET /v1/me named an account id that is not a UUID");
            return self.counted("unavailable", Err(SessionError::Unavailable));
        };
        let account = Arc::new(account);
        // The session's remaining life by the origin's clock, counted on the edge's.
        let remaining_ms = me.session_expires_at_ms - me.server_time_ms;
        if remaining_ms <= 0 {
            return self.counted(
                "refused",
                Err(SessionError::SignInRequired("the session has expired")),
            );
        }
        let until_ms = now_ms + remaining_ms.min(cache_ms);
        self.remember(hash, Some(account.clone()), until_ms, config, now_ms);
        self.counted("account", Ok(account))
    }

    /// Remembers an answer until `until_ms`; when full, forgets the lapsed ones first, then
    /// everything.
    fn remember(
        &self,
        hash: [u8; 32],
        account: Option<Arc<Account>>,
        until_ms: i64,
        config: &AccountsConfig,
        now_ms: i64,
    ) {
        if until_ms <= now_ms {
            return;
        }
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if remembered.len() >= config.session_cache_entries {
            remembered.retain(|_, r| r.until_ms > now_ms);
            if remembered.len() >= config.session_cache_entries {
                remembered.clear();
            }
        }
        remembered.insert(hash, Remembered { account, until_ms });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_parse_as_uuids() {
        let account = Account::parse("0193a6f0-0000-7000-8000-00000000beef").unwrap();
        assert_eq!(account.id, "0193a6f0-0000-7000-8000-00000000beef");
        assert_eq!(account.key[..2], [0x01, 0x93]);
        assert_eq!(account.key[14..], [0xbe, 0xef]);
        assert_eq!(
            Account::parse("0193a6f000007000800000000000beef").map(|a| a.key),
            Some(account.key)
        );
        for bad in [
            "",
            "fan-1",
            "0193a6f0-0000-7000-8000-00000000bee",
            "zz93a6f0-0000-7000-8000-00000000beef",
        ] {
            assert_eq!(Account::parse(bad), None, "{bad}");
        }
    }

    fn config(session_cache_s: u64) -> AccountsConfig {
        AccountsConfig {
            session_cache_s,
            session_cache_entries: 2,
            lookup_timeout_ms: 500,
        }
    }

    /// An origin that answers `GET /v1/me` with `status` and `body` and counts the calls.
    async fn origin(
        status: u16,
        body: String,
    ) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (body, calls) = (body.clone(), counted.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        (addr, calls)
    }

    const TOKEN: &str = "ses_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    #[tokio::test]
    async fn an_account_is_believed_for_the_cache_window_on_the_edge_clock() {
        let me = r#"{"account_id":"0193a6f0-0000-7000-8000-000000000001","email":"a@b.c",
            "display_name":"A","role":"fan","session_expires_at_ms":1000000,"server_time_ms":1000}"#;
        let (addr, calls) = origin(200, me.to_owned()).await;
        let sessions = Sessions::new(&prometheus::Registry::new());
        let now = 1_900_000_000_000;
        let account = sessions
            .resolve(TOKEN, || vec![addr], &config(30), now)
            .await
            .unwrap();
        assert_eq!(account.id, "0193a6f0-0000-7000-8000-000000000001");
        // Remembered, even with the origin gone, until the window passes.
        let again = sessions
            .resolve(TOKEN, Vec::new, &config(30), now + 29_999)
            .await;
        assert_eq!(again, Ok(account));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(
            sessions
                .resolve(TOKEN, Vec::new, &config(30), now + 30_000)
                .await,
            Err(SessionError::Unavailable)
        );
    }

    #[tokio::test]
    async fn never_past_the_sessions_own_expiry() {
        // 10 s of the session left by the origin's clock, whatever the edge's says.
        let me = r#"{"account_id":"0193a6f0-0000-7000-8000-000000000001",
            "session_expires_at_ms":11000,"server_time_ms":1000}"#;
        let (addr, _) = origin(200, me.to_owned()).await;
        let sessions = Sessions::new(&prometheus::Registry::new());
        let now = 1_900_000_000_000;
        assert!(sessions
            .resolve(TOKEN, || vec![addr], &config(60), now)
            .await
            .is_ok());
        assert!(sessions
            .resolve(TOKEN, Vec::new, &config(60), now + 9_999)
            .await
            .is_ok());
        assert_eq!(
            sessions
                .resolve(TOKEN, Vec::new, &config(60), now + 10_000)
                .await,
            Err(SessionError::Unavailable)
        );
    }

    #[tokio::test]
    async fn refusals_are_remembered_briefly_and_bad_tokens_never_asked() {
        let (addr, calls) = origin(401, r#"{"code":"sign_in_required"}"#.to_owned()).await;
        let sessions = Sessions::new(&prometheus::Registry::new());
        let now = 1_900_000_000_000;
        for at in [now, now + REFUSED_MS - 1] {
            assert!(matches!(
                sessions
                    .resolve(TOKEN, || vec![addr], &config(30), at)
                    .await,
                Err(SessionError::SignInRequired(_))
            ));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        sessions
            .resolve(TOKEN, || vec![addr], &config(30), now + REFUSED_MS)
            .await
            .unwrap_err();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        for bad in [
            "",
            "jwt.looking.thing",
            "ses_with space",
            "ses_a\r\nx-onsale: 1",
        ] {
            assert!(matches!(
                sessions.resolve(bad, || vec![addr], &config(30), now).await,
                Err(SessionError::SignInRequired(_))
            ));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_origin_that_cannot_answer_is_not_a_yes() {
        let (addr, _) = origin(503, r#"{"code":"unavailable"}"#.to_owned()).await;
        let sessions = Sessions::new(&prometheus::Registry::new());
        let now = 1_900_000_000_000;
        assert_eq!(
            sessions
                .resolve(TOKEN, || vec![addr], &config(30), now)
                .await,
            Err(SessionError::Unavailable)
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody = closed.local_addr().unwrap();
        drop(closed);
        assert_eq!(
            sessions
                .resolve(TOKEN, || vec![nobody], &config(30), now)
                .await,
            Err(SessionError::Unavailable)
        );
        assert_eq!(
            sessions.resolve(TOKEN, Vec::new, &config(30), now).await,
            Err(SessionError::Unavailable)
        );
    }

    #[tokio::test]
    async fn a_second_origin_answers_when_the_first_cannot() {
        let me = r#"{"account_id":"0193a6f0-0000-7000-8000-000000000002",
            "session_expires_at_ms":2000000,"server_time_ms":1000000}"#;
        let (live, calls) = origin(200, me.to_owned()).await;
        let (failing, _) = origin(503, r#"{"code":"unavailable"}"#.to_owned()).await;
        let sessions = Sessions::new(&prometheus::Registry::new());
        let account = sessions
            .resolve(TOKEN, || vec![failing, live], &config(30), 1_000)
            .await
            .unwrap();
        assert_eq!(account.id, "0193a6f0-0000-7000-8000-000000000002");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
