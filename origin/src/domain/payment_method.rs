//! The body of `POST /v1/payments/{id}/confirm`, parsed. Which methods exist is the
//! provider's business (`PaymentProvider::check_method`); this type only knows the shape of
//! a method id, so nothing malformed reaches a provider.

use crate::error::{ApiError, Code};
use serde::{Deserialize, Serialize};

/// How the fan pays; nothing else is taken.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmBody {
    /// A payment method id: `pm_` and 1 to 100 ASCII letters, digits or underscores; one
    /// the provider does not take is `unknown_payment_method`. The sandbox takes
    /// `pm_card_ok`, `pm_card_declined`, `pm_card_3ds`, `pm_card_slow` and
    /// `pm_card_refund_fails`.
    #[schema(pattern = "^pm_[A-Za-z0-9_]{1,100}$", example = "pm_card_ok")]
    payment_method: String,
}

/// A payment method id: `pm_` and up to 100 ASCII letters, digits and underscores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct PaymentMethod(String);

impl PaymentMethod {
    pub(crate) fn parse(body: ConfirmBody) -> Result<Self, ApiError> {
        let method = body.payment_method;
        let well_formed = method.len() <= 103
            && method.strip_prefix("pm_").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if well_formed {
            Ok(PaymentMethod(method))
        } else {
            Err(ApiError::Unprocessable(
                Code::UnknownPaymentMethod,
                "payment_method is `pm_` and up to 100 letters, digits or underscores".to_owned(),
            ))
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str) -> Result<PaymentMethod, ApiError> {
        PaymentMethod::parse(ConfirmBody {
            payment_method: method.to_owned(),
        })
    }

    #[test]
    fn only_well_formed_method_ids_parse() {
        assert_eq!(parse("pm_card_ok").unwrap().as_str(), "pm_card_ok");
        assert!(parse(&format!("pm_{}", "a".repeat(100))).is_ok());
        for bad in [
            "",
            "pm_",
            "card_ok",
            "pm_card ok",
            "pm_é",
            &format!("pm_{}", "a".repeat(101)),
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
