//! The payment provider boundary. The origin speaks to a provider only through
//! [`PaymentProvider`], modelled on Stripe's PaymentIntents, so a real provider replaces the
//! built-in [`sandbox`] by implementing this trait.
//!
//! Every call is made outside any database transaction (no lock is held across a payment
//! call); its answer is applied afterwards by `payments::apply`, which orders answers and
//! webhooks by the intent's [`Intent::version`].

pub mod sandbox;

use axum::http::HeaderMap;

/// Where a payment intent stands at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntentStatus {
    RequiresConfirmation,
    /// The fan must authenticate (3-D Secure), then confirm again.
    RequiresAction,
    /// Accepted; the outcome arrives later, by webhook.
    Processing,
    Succeeded,
    Failed,
}

impl IntentStatus {
    /// The name the `payments.status` column stores.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Processing => "processing",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Failed => "failed",
        }
    }

    pub(crate) fn parse(status: &str) -> Option<Self> {
        Some(match status {
            "requires_confirmation" => IntentStatus::RequiresConfirmation,
            "requires_action" => IntentStatus::RequiresAction,
            "processing" => IntentStatus::Processing,
            "succeeded" => IntentStatus::Succeeded,
            "failed" => IntentStatus::Failed,
            _ => return None,
        })
    }
}

impl From<IntentStatus> for crate::status::PaymentStatus {
    fn from(status: IntentStatus) -> Self {
        use crate::status::PaymentStatus;
        match status {
            IntentStatus::RequiresConfirmation => PaymentStatus::RequiresConfirmation,
            IntentStatus::RequiresAction => PaymentStatus::RequiresAction,
            IntentStatus::Processing => PaymentStatus::Processing,
            IntentStatus::Succeeded => PaymentStatus::Succeeded,
            IntentStatus::Failed => PaymentStatus::Failed,
        }
    }
}

/// An intent as the provider last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Intent {
    /// The provider's id for it (`payments.provider_ref`).
    pub reference: String,
    pub status: IntentStatus,
    /// Grows with every change at the provider; an answer or webhook carrying an older
    /// version than the one applied is stale and changes nothing.
    pub version: i64,
}

/// A webhook whose signature checked out.
#[derive(Debug, Clone)]
pub(crate) struct WebhookEvent {
    /// The provider's event id: webhooks are deduplicated by it.
    pub id: String,
    pub kind: String,
    /// When the provider made the event, Unix ms.
    pub created_ms: i64,
    pub intent: Intent,
    pub payload: serde_json::Value,
}

/// A provider call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the request; retrying it unchanged will not help.
    #[error("the provider refused: {0}")]
    Rejected(String),
    /// No answer, or a failure on the provider's side: the outcome is unknown, and the same
    /// call (same idempotency key) may be retried.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    #[error("missing or malformed signature header")]
    MissingSignature,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("the event is malformed: {0}")]
    Malformed(String),
}

#[async_trait::async_trait]
pub(crate) trait PaymentProvider: Send + Sync {
    /// The name stored in `payments.provider`.
    fn name(&self) -> &'static str;

    /// `Err(reason)` for a payment method this provider does not take.
    fn check_method(&self, method: &str) -> Result<(), String>;

    /// Creates (or, for a key seen before, returns) an intent for the amount.
    async fn create_intent(
        &self,
        amount_cents: i64,
        currency: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;

    /// Confirms the intent with a payment method; a retry with the same key is answered
    /// from the first call.
    async fn confirm(
        &self,
        intent: &str,
        method: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError>;

    /// The intent now, if the confirmation sent with `idempotency_key` reached the provider
    /// (its answer may have been lost to a crash); `None` if no such confirmation did.
    /// Nothing moves.
    async fn confirmed_with(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> Result<Option<Intent>, ProviderError>;

    /// The intent as the provider sees it now.
    async fn retrieve(&self, intent: &str) -> Result<Intent, ProviderError>;

    /// Refunds part or all of a succeeded intent; returns the provider's refund id. A retry
    /// with the same key refunds once.
    async fn refund(
        &self,
        intent: &str,
        amount_cents: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError>;

    /// Checks a webhook's signature against its exact bytes and parses it.
    fn parse_webhook(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_s: i64,
    ) -> Result<WebhookEvent, WebhookError>;
}
