//! Identifiers: prefixed, validated newtypes, so a wallet id can never be passed as a payment id.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must start with '{prefix}' followed by 1 to 64 letters, digits, '_' or '-'")]
    Malformed {
        kind: &'static str,
        prefix: &'static str,
    },
    /// Ids are logged: one that holds a card number is refused.
    #[error("{kind} must not hold a card number")]
    CardNumber { kind: &'static str },
    #[error("an idempotency key must be 1 to 255 visible ASCII characters")]
    MalformedIdempotencyKey,
    /// Keys are stored beside the request: one that is a secret or personal data is refused.
    #[error("an idempotency key must not hold {0}")]
    SensitiveIdempotencyKey(redact::Sensitive),
    #[error("a charge id must be 1 to 128 visible ASCII characters")]
    MalformedChargeId,
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered identifier (UUIDv7).
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn parse(value: &str) -> Result<Self, IdError> {
                let malformed = IdError::Malformed { kind: $kind, prefix: $prefix };
                let rest = value.strip_prefix($prefix).ok_or(malformed.clone())?;
                let valid_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
                if rest.is_empty() || rest.len() > 64 || !rest.chars().all(valid_char) {
                    return Err(malformed);
                }
                if !redact::findings(rest).is_empty() {
                    return Err(IdError::CardNumber { kind: $kind });
                }
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        /// What [`Self::parse`] accepts, as a JSON Schema.
        impl schemars::JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "description": concat!("The text of ", $kind, ": '", $prefix, "' then 1 to 64 letters, digits, '_' or '-'."),
                    "type": "string",
                    "pattern": concat!("^", $prefix, "[A-Za-z0-9_-]{1,64}$"),
                })
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A wallet: `wal_…`.
    WalletId,
    "wal_",
    "a wallet id"
);
prefixed_id!(
    /// A payment: `pay_…`.
    PaymentId,
    "pay_",
    "a payment id"
);

/// The namespace of payment ids derived from idempotency keys (a fixed, random UUID). Changing
/// it would give a retried request another id than its first attempt's: never change it.
const PAYMENT_KEY_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0xfd5a7048_38e0_4c99_8fa2_ab32a81af4f2);

impl PaymentId {
    /// The id of the payment that `payer` asks for with `key`: a name-based UUID (v5) of
    /// `<payer>/<key>` in paysaga's namespace. The same payer and key always give the same id,
    /// so a retried request names the payment its first attempt made; keys are scoped to the
    /// paying wallet, so another payer's equal key is another payment. (Wallet ids hold no
    /// `/`, so each name has one reading.)
    pub fn for_idempotency_key(payer: &WalletId, key: &IdempotencyKey) -> Self {
        let name = format!("{payer}/{}", key.as_str());
        let id = uuid::Uuid::new_v5(&PAYMENT_KEY_NAMESPACE, name.as_bytes());
        Self(format!("{}{}", Self::PREFIX, id.simple()))
    }
}

prefixed_id!(
    /// A funding instrument the payment processor holds for a wallet's holder (a card, a bank
    /// account), which a top-up charges: `fi_…`. paysaga keeps only this reference.
    FundingInstrumentId,
    "fi_",
    "a funding instrument id"
);
prefixed_id!(
    /// A destination outside paysaga that the payment processor holds for a wallet's holder
    /// (a bank account), which a payout pays: `dst_…`. paysaga keeps only this reference.
    PayoutDestinationId,
    "dst_",
    "a payout destination id"
);

prefixed_id!(
    /// A deposit into a wallet: `dep_…`.
    DepositId,
    "dep_",
    "a deposit id"
);

prefixed_id!(
    /// An operator's action recorded in the audit trail (a replay, a page of a read-model
    /// rebuild): `opa_…`.
    OperatorActionId,
    "opa_",
    "an operator action id"
);

/// The payment processor's id of what it did for a payment: a captured charge (a transfer, a
/// top-up) or a payout. Its format is the processor's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChargeId(String);

impl ChargeId {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let visible = |c: char| c.is_ascii_graphic();
        if value.is_empty() || value.len() > 128 || !value.chars().all(visible) {
            return Err(IdError::MalformedChargeId);
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChargeId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ChargeId> for String {
    fn from(id: ChargeId) -> Self {
        id.0
    }
}

impl fmt::Display for ChargeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's `Idempotency-Key`: a retried request with the same key has the effect of one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let visible = |c: char| c.is_ascii_graphic();
        if value.is_empty() || value.len() > 255 || !value.chars().all(visible) {
            return Err(IdError::MalformedIdempotencyKey);
        }
        if let Some(finding) = redact::findings(value).first() {
            return Err(IdError::SensitiveIdempotencyKey(finding.kind));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    // Keys are chosen by clients and may carry anything; they are not logged verbatim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey(<{} chars>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back_and_keep_their_prefix() {
        let id = WalletId::generate();
        assert!(id.as_str().starts_with("wal_"));
        assert_eq!(WalletId::parse(id.as_str()), Ok(id));
        assert!(PaymentId::generate().as_str().starts_with("pay_"));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "wal_",
            "pay_123",
            "wal_a b",
            "wal_é",
            &format!("wal_{}", "a".repeat(65)),
        ] {
            assert!(WalletId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(PaymentId::parse("wal_123").is_err());
        assert!(WalletId::parse("wal_demo_alice").is_ok());
    }

    #[test]
    fn ids_are_json_strings_checked_on_the_way_in() {
        let id: WalletId = serde_json::from_str("\"wal_abc\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"wal_abc\"");
        assert!(serde_json::from_str::<WalletId>("\"abc\"").is_err());
    }

    #[test]
    fn payment_ids_from_idempotency_keys_are_deterministic_and_scoped_to_the_payer() {
        let alice = WalletId::parse("wal_demo_alice").unwrap();
        let bob = WalletId::parse("wal_demo_bob").unwrap();
        let key = IdempotencyKey::parse("payment-demo-0001").unwrap();
        let id = PaymentId::for_idempotency_key(&alice, &key);
        assert_eq!(id, PaymentId::for_idempotency_key(&alice, &key));
        // Pinned (computed apart, with Python's uuid.uuid5): a changed derivation would give
        // the retries of stored payments new ids.
        assert_eq!(id.as_str(), "pay_c1e817f1549d5574bb82ff9570e61207");
        assert_eq!(PaymentId::parse(id.as_str()), Ok(id.clone()));

        assert_ne!(id, PaymentId::for_idempotency_key(&bob, &key));
        let other_key = IdempotencyKey::parse("payment-demo-0002").unwrap();
        assert_ne!(id, PaymentId::for_idempotency_key(&alice, &other_key));
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42/attempt").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(!format!("{:?}", IdempotencyKey::parse("secret").unwrap()).contains("secret"));
    }

    #[test]
    fn ids_and_keys_never_hold_card_numbers_tokens_or_emails() {
        use redact::Sensitive;
        assert_eq!(
            WalletId::parse("wal_4111111111111111"),
            Err(IdError::CardNumber {
                kind: "a wallet id"
            })
        );
        assert!(PaymentId::parse("pay_4111-1111-1111-1111").is_err());
        assert!(
            WalletId::parse("wal_41111111111111112").is_ok(),
            "not a card number"
        );
        assert!(WalletId::generate().as_str().len() > 4);
        for (key, kind) in [
            ("4111111111111111", Sensitive::CardNumber),
            ("bob@example.com", Sensitive::Email),
            ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", Sensitive::Jwt),
        ] {
            assert_eq!(
                IdempotencyKey::parse(key).map(|_| ()),
                Err(IdError::SensitiveIdempotencyKey(kind))
            );
        }
    }
}
