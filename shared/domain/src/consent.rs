//! Whose money: a payment requested straight on the event bus, not through the API, moves
//! money only with proof that its payer's owner asked for it.
//!
//! IAM says who may put a `PaymentRequested` on the bus; it cannot say whose wallet the request
//! may debit. The API checks that with the caller's token before it records the request; a
//! request that reaches the saga with no record (published on the bus by another system, an
//! operator with the AWS CLI) must carry the same proof in its event, beside the envelope's
//! `version` and `event_id`: `"consent": {"bearer_token": "<JWT>"}`, a token of the payer
//! wallet's owner from the identity provider the API trusts. The saga checks it
//! ([`ConsentVerifier`](crate::ports::ConsentVerifier)) and that its subject owns the payer's
//! wallet before anything is recorded; a request without it moves no money. The token is never
//! recorded, re-published or logged.

use std::fmt;

use serde::Deserialize;

/// The proof a requested payment carries: the bearer token of the payer wallet's owner.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct ConsentProof {
    bearer_token: String,
}

impl ConsentProof {
    pub fn bearer(token: impl Into<String>) -> Self {
        Self {
            bearer_token: token.into(),
        }
    }

    pub fn bearer_token(&self) -> &str {
        &self.bearer_token
    }

    /// The proof in an EventBridge event's JSON text (`detail.consent`), if it carries one.
    pub fn of_event(event: &str) -> Result<Option<Self>, serde_json::Error> {
        #[derive(Deserialize)]
        struct Event {
            detail: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            #[serde(default)]
            consent: Option<ConsentProof>,
        }
        Ok(serde_json::from_str::<Event>(event)?.detail.consent)
    }

    /// `event` (an EventBridge event's JSON text) without its `detail.consent`; `None` when it
    /// carries none (or is not a JSON event), and is kept as it is. For what is kept at rest
    /// (a parked dead letter): the token is a secret, and its claims may be personal data.
    pub fn removed_from_event(event: &str) -> Option<String> {
        let mut event: serde_json::Value = serde_json::from_str(event).ok()?;
        event
            .get_mut("detail")?
            .as_object_mut()?
            .remove("consent")?;
        Some(event.to_string())
    }
}

/// A token is a secret: never shown.
impl fmt::Debug for ConsentProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsentProof(<bearer token>)")
    }
}

/// Why a requested payment's proof of consent does not hold. Permanent: the same event will
/// never move money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentRefusal {
    #[error(
        "a payment requested on the bus needs the payer's consent (detail.consent.bearer_token)"
    )]
    Missing,
    /// Badly signed, expired, another issuer's or audience's; the reason names which, never
    /// the token.
    #[error("the payer's consent does not hold: {0}")]
    Invalid(String),
    #[error("the consent is not from the owner of the payer's wallet")]
    NotTheOwner,
    /// No keys to check a proof with: this deployment accepts payments on the bus from
    /// paysaga's own functions only.
    #[error(
        "payments requested on the bus from outside paysaga are not accepted here (no consent keys)"
    )]
    NotAccepted,
}

impl ConsentRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "consent_missing",
            Self::Invalid(_) => "consent_invalid",
            Self::NotTheOwner => "consent_not_the_owner",
            Self::NotAccepted => "consent_not_accepted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_is_read_from_the_detail_and_never_shown() {
        let event = r#"{"source":"paysaga.payments","detail-type":"PaymentRequested",
            "detail":{"version":1,"consent":{"bearer_token":"eyJ.secret.sig"},"data":{}}}"#;
        let proof = ConsentProof::of_event(event).unwrap().unwrap();
        assert_eq!(proof.bearer_token(), "eyJ.secret.sig");
        assert!(!format!("{proof:?}").contains("secret"));
        let without = r#"{"detail":{"version":1,"data":{}}}"#;
        assert_eq!(ConsentProof::of_event(without).unwrap(), None);
        assert!(ConsentProof::of_event(r#"{"detail":{"consent":{"token":1}}}"#).is_err());
    }

    #[test]
    fn an_event_is_kept_without_its_proof_and_nothing_else_changes() {
        let event = r#"{"source":"paysaga.payments","detail-type":"PaymentRequested",
            "detail":{"version":1,"consent":{"bearer_token":"eyJ.secret.sig"},"data":{"a":1}}}"#;
        let kept = ConsentProof::removed_from_event(event).unwrap();
        assert!(
            !kept.contains("secret") && !kept.contains("consent"),
            "{kept}"
        );
        let (kept, event): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&kept).unwrap(),
            serde_json::from_str(event).unwrap(),
        );
        assert_eq!(kept["detail"]["data"], event["detail"]["data"]);
        assert_eq!(kept["detail-type"], "PaymentRequested");
        for untouched in [
            r#"{"detail":{"version":1}}"#,
            "{not json",
            r#"{"detail":1}"#,
        ] {
            assert_eq!(
                ConsentProof::removed_from_event(untouched),
                None,
                "{untouched}"
            );
        }
    }
}
