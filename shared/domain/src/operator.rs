//! What an operator's action carries besides its effect: who acted (the [`Owner`] of the token
//! with the admin scope) and why ([`OperatorReason`], required). Money an operator puts into a
//! wallet is recorded with both, in its `FundsDeposited` event and so in the audit trail.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::owner::Owner;

/// Why an operator reason was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error(
        "a reason is 1 to {max} characters without control characters",
        max = OperatorReason::MAX_CHARS
    )]
    Malformed,
    /// Reasons are kept in the audit trail for good: none may hold a secret or personal data.
    #[error("a reason must not hold {0}")]
    Sensitive(redact::Sensitive),
}

/// Why an operator acted, in their words: required, kept with the action for good.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct OperatorReason(String);

impl OperatorReason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(text: &str) -> Result<Self, ReasonError> {
        let text = text.trim();
        let length = text.chars().count();
        if length == 0 || length > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(ReasonError::Malformed);
        }
        if let Some(finding) = redact::findings(text).first() {
            return Err(ReasonError::Sensitive(finding.kind));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OperatorReason {
    type Error = ReasonError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OperatorReason> for String {
    fn from(reason: OperatorReason) -> String {
        reason.0
    }
}

impl fmt::Display for OperatorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Not in logs: a reason is free text, kept in the audit trail, not in log lines.
impl fmt::Debug for OperatorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OperatorReason(<{} chars>)", self.0.chars().count())
    }
}

/// Who did an operator's action, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRecord {
    /// The subject of the operator's token.
    pub issued_by: Owner,
    pub reason: OperatorReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_bounded_and_free_of_personal_data() {
        assert_eq!(
            OperatorReason::parse("  chargeback won, ticket OPS-42 ").map(String::from),
            Ok("chargeback won, ticket OPS-42".to_owned())
        );
        for malformed in ["", "   ", "line\nbreak", &"x".repeat(501)] {
            assert_eq!(
                OperatorReason::parse(malformed),
                Err(ReasonError::Malformed)
            );
        }
        assert_eq!(
            OperatorReason::parse("refund for bob@example.com"),
            Err(ReasonError::Sensitive(redact::Sensitive::Email))
        );
        assert_eq!(
            OperatorReason::parse("card 4111 1111 1111 1111 charged twice"),
            Err(ReasonError::Sensitive(redact::Sensitive::CardNumber))
        );
        let reason = OperatorReason::parse("goodwill credit").unwrap();
        assert_eq!(format!("{reason:?}"), "OperatorReason(<15 chars>)");
        assert!(serde_json::from_str::<OperatorReason>("\"\"").is_err());
    }
}
