//! The lifecycle states of holds, orders, payments, tickets, refunds and shows, and
//! an account's role, as Rust enums mapped to the `text` columns (and their `CHECK` lists)
//! that store them.
//! Rust code compares these, never strings; SQL text may still name a state in a literal.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

/// Declares a state enum stored as text: its wire and column names, serde, and sqlx
/// encoding and decoding (an unknown name in the database is a decode error, never a guess).
macro_rules! text_states {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:tt,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        $vis enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// The name stored in the database and shown in responses.
            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The state stored as `text`, if it is one.
            pub(crate) fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                $name::parse(text).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), text).into()
                })
            }
        }
    };
}

text_states! {
    /// A hold's state (`holds.status`).
    pub(crate) enum HoldStatus {
        /// Holds its seats until `expires_at`.
        Active = "active",
        /// Given up by its fan or by a failed payment.
        Released = "released",
        /// Ran out of time.
        Expired = "expired",
        /// Became a paid order.
        Converted = "converted",
    }
}

text_states! {
    /// An order's state (`orders.status`).
    pub(crate) enum OrderStatus {
        /// Waiting for its payment within the payment window.
        PendingPayment = "pending_payment",
        /// Paid, with one ticket per seat.
        Confirmed = "confirmed",
        /// Its payment was declined; the seats went back on sale.
        PaymentFailed = "payment_failed",
        /// Cancelled: by its fan, by an organizer, or because its hold expired.
        Cancelled = "cancelled",
    }
}

text_states! {
    /// A payment's state (`payments.status`), following the provider's intent.
    pub(crate) enum PaymentStatus {
        /// Created; the fan has not confirmed yet.
        RequiresConfirmation = "requires_confirmation",
        /// Confirmed; the outcome arrives later.
        Processing = "processing",
        /// The fan must authenticate (3-D Secure) and confirm again.
        RequiresAction = "requires_action",
        /// The money was taken.
        Succeeded = "succeeded",
        /// Declined.
        Failed = "failed",
        /// Given back in full.
        Refunded = "refunded",
    }
}

impl PaymentStatus {
    /// Whether a confirmation may start from this state.
    pub(crate) fn confirmable(self) -> bool {
        matches!(
            self,
            PaymentStatus::RequiresConfirmation | PaymentStatus::RequiresAction
        )
    }

    /// Whether the payment is settled for good: no provider answer moves it again.
    pub(crate) fn settled(self) -> bool {
        matches!(
            self,
            PaymentStatus::Succeeded | PaymentStatus::Failed | PaymentStatus::Refunded
        )
    }
}

text_states! {
    /// A ticket's state (`tickets.status`).
    pub(crate) enum TicketStatus {
        /// Lets its holder in.
        Valid = "valid",
        /// Void: its order was cancelled.
        Revoked = "revoked",
    }
}

text_states! {
    /// A refund's state (`refunds.status`).
    pub(crate) enum RefundStatus {
        /// Owed; the refund worker is asking the provider.
        Pending = "pending",
        /// The provider gave the money back.
        Succeeded = "succeeded",
    }
}

text_states! {
    /// A show's state as fans see it (`shows.status`, with `on_sale` derived from
    /// `on_sale_at`).
    pub(crate) enum ShowStatus {
        /// Announced; not on sale yet.
        Scheduled = "scheduled",
        /// Selling.
        OnSale = "on_sale",
        /// No seat left.
        SoldOut = "sold_out",
        /// Called off.
        Cancelled = "cancelled",
        /// Over.
        Completed = "completed",
    }
}

text_states! {
    /// What an account is for (`accounts.role`). Sign-up makes fans; organizer accounts
    /// are made by operators (`origin seed`), never by asking.
    pub enum AccountRole {
        /// Buys tickets.
        Fan = "fan",
        /// Runs events.
        Organizer = "organizer",
        /// Scans tickets at one show's door.
        Scanner = "scanner",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for status in [
            PaymentStatus::RequiresConfirmation,
            PaymentStatus::Processing,
            PaymentStatus::RequiresAction,
            PaymentStatus::Succeeded,
            PaymentStatus::Failed,
            PaymentStatus::Refunded,
        ] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(HoldStatus::parse("held"), None);
    }
}
