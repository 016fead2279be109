//! Who a wallet belongs to: the subject (`sub`) of the caller's identity token, as the API's
//! JWT authorizer vouched for it. Opaque to paysaga: compared, stored, never shown in logs
//! (an identity provider may use an e-mail address as the subject).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an owner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an owner (a token's subject) must be 1 to 255 characters without control characters")]
pub struct MalformedOwner;

/// The subject of an identity token: a wallet's owner, a request's caller.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Owner(String);

impl Owner {
    pub const MAX_LEN: usize = 255;

    pub fn parse(subject: &str) -> Result<Self, MalformedOwner> {
        let length = subject.chars().count();
        if length == 0 || length > Self::MAX_LEN || subject.chars().any(char::is_control) {
            return Err(MalformedOwner);
        }
        Ok(Self(subject.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Owner {
    type Error = MalformedOwner;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Owner> for String {
    fn from(owner: Owner) -> String {
        owner.0
    }
}

/// Redacted: a subject can be personal data.
impl fmt::Debug for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Owner(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_an_owner() {
        let owner = Owner::parse("auth0|5f7c8ec7c33c6c004bbafe82").unwrap();
        assert_eq!(owner.as_str(), "auth0|5f7c8ec7c33c6c004bbafe82");
    }

    #[test]
    fn empty_long_and_control_characters_are_refused() {
        assert_eq!(Owner::parse(""), Err(MalformedOwner));
        assert_eq!(Owner::parse(&"x".repeat(256)), Err(MalformedOwner));
        assert!(Owner::parse(&"é".repeat(255)).is_ok());
        assert_eq!(Owner::parse("alice\nbob"), Err(MalformedOwner));
    }

    #[test]
    fn debug_output_hides_the_subject() {
        let owner = Owner::parse("alice@example.com").unwrap();
        assert_eq!(format!("{owner:?}"), "Owner(..)");
    }
}
