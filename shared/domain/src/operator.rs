//! What an operator's action carries besides its effect: who acted (the [`Owner`] of the token
//! with the admin scope) and why ([`OperatorReason`], required). Every action is in the audit
//! trail, in its operator's stream ([`OperatorKey`]): money an operator puts into a wallet in
//! its `FundsDeposited` event (which also moves the wallet's stream); a replay of a parked
//! message and a page of a read-model rebuild in an [`OperatorAction`]
//! (`OperatorActionStarted`), published before the action takes effect, so that no action
//! happens unrecorded.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ids::OperatorActionId;
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

/// An operator's action that moves no money, as the audit trail keeps it: who, why, and what
/// (the `action` and what it acted on); when is its event's `occurred_at`.
///
/// It is published as the action starts: after the action's own checks (the parked message
/// exists and is not replayed yet, the destination queue exists), before its effect. An action
/// whose effect then fails is recorded all the same, and its retry is recorded again: the
/// trail may hold an action that did nothing (the target's own state says, a parked message
/// still `parked`), never miss one that did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OperatorAction {
    pub action_id: OperatorActionId,
    /// The subject of the operator's token.
    #[schemars(with = "String")]
    pub issued_by: Owner,
    pub reason: OperatorReason,
    #[serde(flatten)]
    pub action: OperatorActionKind,
}

/// What an operator did, and to what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OperatorActionKind {
    /// A parked dead letter sent to a queue again (`POST /admin/parked/{parked_id}/replay`).
    ReplayParkedMessage {
        parked_id: String,
        /// The queue it was sent to (ARN).
        destination: String,
        /// SHA-256 of the body sent, in lowercase hex ([`body_sha256`]): what was sent, without
        /// keeping a copy of it (the parking table keeps the parked body).
        body_sha256: String,
        /// The operator sent a body of their own instead of the parked one.
        body_edited: bool,
        /// Sent although it breaks the event contracts (`force`).
        forced: bool,
    },
    /// A page of the audit trail applied to the live read models
    /// (`POST /admin/read-models/rebuild`).
    RebuildReadModels {
        /// Where the page starts (the `next` of the call before); `None`: from the first event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
    },
}

/// SHA-256 of `body`, in lowercase hex.
pub fn body_sha256(body: &str) -> String {
    hex(&Sha256::digest(body.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The key of an operator's stream in the audit trail: the SHA-256 of their subject, in hex.
/// A subject may be an e-mail address, and stream keys are logged; the key finds an
/// operator's stream (hash their subject) without showing who it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OperatorKey(String);

/// Why a string is not an [`OperatorKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an operator key is 64 lowercase hex digits (the SHA-256 of a subject)")]
pub struct MalformedOperatorKey;

impl OperatorKey {
    pub fn of(operator: &Owner) -> Self {
        Self(hex(&Sha256::digest(operator.as_str().as_bytes())))
    }

    pub fn parse(key: &str) -> Result<Self, MalformedOperatorKey> {
        let hex_digits = key
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if key.len() == 64 && hex_digits {
            Ok(Self(key.to_owned()))
        } else {
            Err(MalformedOperatorKey)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OperatorKey {
    type Error = MalformedOperatorKey;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OperatorKey> for String {
    fn from(key: OperatorKey) -> String {
        key.0
    }
}

impl fmt::Display for OperatorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_key_is_the_subjects_hash_and_parses_back() {
        let operator = Owner::parse("ops@example.com").unwrap();
        let key = OperatorKey::of(&operator);
        assert_eq!(key.as_str().len(), 64);
        assert!(!key.as_str().contains("ops"));
        assert_eq!(OperatorKey::parse(key.as_str()), Ok(key.clone()));
        assert_ne!(
            key,
            OperatorKey::of(&Owner::parse("ops2@example.com").unwrap())
        );
        for malformed in ["", "ops@example.com", &"A".repeat(64), &"0".repeat(63)] {
            assert_eq!(OperatorKey::parse(malformed), Err(MalformedOperatorKey));
        }
        assert_eq!(
            body_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn an_action_reads_back_from_its_json() {
        let action = OperatorAction {
            action_id: OperatorActionId::parse("opa_1").unwrap(),
            issued_by: Owner::parse("ops-1").unwrap(),
            reason: OperatorReason::parse("fixed the version, OPS-7").unwrap(),
            action: OperatorActionKind::ReplayParkedMessage {
                parked_id: "payments-dlq/m-1".to_owned(),
                destination: "arn:aws:sqs:eu-west-1:000000000000:payments".to_owned(),
                body_sha256: body_sha256("{}"),
                body_edited: true,
                forced: false,
            },
        };
        let json = serde_json::to_value(&action).unwrap();
        assert_eq!(json["action"], "replay_parked_message");
        assert_eq!(json["issued_by"], "ops-1");
        assert_eq!(json["forced"], false);
        assert_eq!(
            serde_json::from_value::<OperatorAction>(json).unwrap(),
            action
        );
        let rebuild = OperatorActionKind::RebuildReadModels { after: None };
        assert_eq!(
            serde_json::to_value(&rebuild).unwrap(),
            serde_json::json!({"action": "rebuild_read_models"})
        );
    }

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
