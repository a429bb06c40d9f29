//! Why the waiting room refuses a request: one [`Refusal`] per reason, each mapped to one
//! problem+json `code`.

use super::pow::PowError;
use crate::problem::{self, Code};
use onsale_contract::problem::Problem;
use onsale_contract::tokens::WAITING_ROOM_PATH;

/// Why the waiting room's state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StateError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the waiting room is not connected to Redis yet")]
    NotConnected,
    #[error("settings do not serialize: {0}")]
    Settings(#[from] serde_json::Error),
}

/// Why a waiting-room request is refused; the message is the problem's `detail`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("there is no waiting room for this show")]
    NoRoom,
    #[error("this show's waiting room is starting on this node; retry shortly")]
    Starting,
    #[error("the waiting room cannot reach its state right now; retry shortly")]
    Unavailable(#[from] StateError),
    #[error("{0}")]
    QueueTokenRequired(&'static str),
    #[error("this queue token is for another show; join this show's queue")]
    WrongShow,
    #[error("your turn came while you were away, or your admission ended; join again")]
    TurnMissed,
    #[error("get a challenge, solve it, and join with `pow`")]
    PowRequired { show: String, difficulty: u8 },
    #[error("{0}")]
    PowInvalid(#[from] PowError),
    #[error("each challenge admits one join; get a new one")]
    PowReused,
    #[error("this show's waiting room does not ask for proof of work")]
    NoChallenge,
    #[error("show_id is required")]
    ShowIdRequired,
    #[error("the edge could not build its answer")]
    Internal,
}

impl From<redis::RedisError> for Refusal {
    fn from(error: redis::RedisError) -> Self {
        // Debug only: in an outage every join would log; the step logs the outage once.
        tracing::debug!(%error, "waiting-room state unavailable");
        Refusal::Unavailable(error.into())
    }
}

impl From<&Refusal> for Problem {
    fn from(refusal: &Refusal) -> Problem {
        let join = |p: Problem| p.with("join", WAITING_ROOM_PATH);
        let detail = refusal.to_string();
        let problem = match refusal {
            Refusal::NoRoom => return problem::show_not_found(detail),
            Refusal::ShowIdRequired => return problem::invalid_query(detail),
            Refusal::Internal => return problem::internal(),
            Refusal::Unavailable(_) | Refusal::Starting => {
                Problem::new(Code::QueueUnavailable, "Waiting room unavailable")
                    .with("retry_after_s", 2)
            }
            Refusal::QueueTokenRequired(_) => join(Problem::new(
                Code::QueueTokenRequired,
                "Queue token required",
            )),
            Refusal::WrongShow => join(Problem::new(
                Code::WrongShow,
                "Queue token is for another show",
            )),
            Refusal::TurnMissed => join(Problem::new(Code::TurnMissed, "Your turn has passed")),
            Refusal::PowRequired { show, difficulty } => {
                Problem::new(Code::PowRequired, "Proof of work required")
                    .with(
                        "challenge",
                        format!("/v1/waiting-room/challenge?show_id={show}"),
                    )
                    .with("difficulty", *difficulty)
            }
            Refusal::PowInvalid(_) => Problem::new(Code::PowInvalid, "Proof of work not accepted"),
            Refusal::PowReused => Problem::new(Code::PowReused, "Challenge already used"),
            Refusal::NoChallenge => Problem::new(Code::NoChallenge, "No proof of work here"),
        };
        problem.with_detail(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_codes_and_links() {
        let problem = Problem::from(&Refusal::TurnMissed);
        assert_eq!(
            (problem.status, problem.code.as_str()),
            (410, "turn_missed")
        );
        assert_eq!(problem.extensions["join"], WAITING_ROOM_PATH);
        let problem = Problem::from(&Refusal::NoRoom);
        assert_eq!(
            (problem.status, problem.code.as_str()),
            (404, "show_not_found")
        );
        assert_eq!(
            problem.detail.as_deref(),
            Some("there is no waiting room for this show")
        );
        // A room of this node's that has not stepped yet is a wait, not a missing show.
        for refusal in [
            Refusal::Unavailable(StateError::NotConnected),
            Refusal::Starting,
        ] {
            let problem = Problem::from(&refusal);
            assert_eq!(
                (problem.status, problem.code.as_str()),
                (503, "queue_unavailable")
            );
            assert_eq!(problem.extensions["retry_after_s"], 2);
        }
        let problem = Problem::from(&Refusal::PowRequired {
            show: "s1".into(),
            difficulty: 8,
        });
        assert_eq!(
            problem.extensions["challenge"],
            "/v1/waiting-room/challenge?show_id=s1"
        );
    }
}
