//! The body of `POST /v1/payments/{id}/confirm`, parsed.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    payment_method: String,
}

/// The sandbox provider's test payment methods that settle at confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// `pm_card_ok`: the charge succeeds.
    CardOk,
    /// `pm_card_declined`: the charge is declined.
    CardDeclined,
}

const SUPPORTED: &str = "pm_card_ok, pm_card_declined";

impl PaymentMethod {
    pub fn parse(body: ConfirmBody) -> Result<Self, ApiError> {
        match body.payment_method.as_str() {
            "pm_card_ok" => Ok(PaymentMethod::CardOk),
            "pm_card_declined" => Ok(PaymentMethod::CardDeclined),
            _ => Err(ApiError::Unprocessable(
                "unknown_payment_method",
                format!("payment_method must be one of: {SUPPORTED}"),
            )),
        }
    }
}
