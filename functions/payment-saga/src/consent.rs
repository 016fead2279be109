//! Checks the payer's consent on a payment requested straight on the bus
//! ([`paysaga_domain::consent`]): a JWT of the identity provider the API trusts (RS256; the
//! issuer and audience of the template's `JwtIssuer` and `JwtAudience`), checked against that
//! provider's public keys, given as a JWKS document in `CONSENT_JWKS` (the template's
//! `ConsentJwks`; the local stack passes its development key). Without keys, no payment
//! requested on the bus from outside paysaga is accepted.
//!
//! `jsonwebtoken` reads and validates the tokens; their RS256 signatures are verified with
//! `ring` ([`RING_RS256`], which `main` installs), already linked for rustls: the crate's own
//! backends would grow the function's zip by a fifth.

use std::collections::HashMap;

use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Validation};
use paysaga_domain::Owner;
use paysaga_domain::consent::{ConsentProof, ConsentRefusal};
use paysaga_domain::ports::ConsentVerifier;

/// `jsonwebtoken`'s cryptography for what a consent is checked with: RS256 signatures verified
/// with `ring`, from an RSA key's modulus and exponent (a JWKS key). Signing, and every other
/// algorithm or key form, is refused.
pub static RING_RS256: CryptoProvider = CryptoProvider {
    signer_factory: |_, _| Err(ErrorKind::UnsupportedAlgorithm.into()),
    verifier_factory: rs256_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

fn rs256_verifier(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    match (algorithm, key.kind()) {
        (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => Ok(Box::new(Rs256 {
            n: n.clone(),
            e: e.clone(),
        })),
        (Algorithm::RS256, _) => Err(ErrorKind::InvalidKeyFormat.into()),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// An RSA public key, as its modulus and exponent (big-endian bytes).
struct Rs256 {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl jsonwebtoken::signature::Verifier<Vec<u8>> for Rs256 {
    fn verify(
        &self,
        message: &[u8],
        signature: &Vec<u8>,
    ) -> Result<(), jsonwebtoken::signature::Error> {
        let key = ring::signature::RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        };
        key.verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            message,
            signature,
        )
        .map_err(|_| jsonwebtoken::signature::Error::new())
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

/// `CONSENT_JWKS` is not a JWKS document whose keys can verify RS256 tokens.
#[derive(Debug, thiserror::Error)]
#[error("CONSENT_JWKS must be a JWKS document of RSA keys: {0}")]
pub struct BadJwks(String);

/// The identity provider's keys, and the claims a consent must carry.
pub struct JwtConsent {
    /// By `kid`; a key without one is the provider's only key.
    keys: HashMap<Option<String>, DecodingKey>,
    validation: Validation,
}

impl JwtConsent {
    /// Verifies with the keys of `jwks` (an empty text: no keys) tokens of `issuer` for one of
    /// the `audiences` (a comma list, as the template's `JwtAudience`).
    pub fn from_jwks(jwks: &str, issuer: &str, audiences: &str) -> Result<Self, BadJwks> {
        let mut keys = HashMap::new();
        if !jwks.trim().is_empty() {
            let set: JwkSet =
                serde_json::from_str(jwks).map_err(|error| BadJwks(error.to_string()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|error| BadJwks(error.to_string()))?;
                keys.insert(jwk.common.key_id.clone(), key);
            }
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        let audiences: Vec<&str> = audiences.split(',').map(str::trim).collect();
        validation.set_audience(&audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self { keys, validation })
    }

    /// How many keys it verifies with (0: bus payments from outside are refused).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn key_for(&self, token: &str) -> Result<&DecodingKey, ConsentRefusal> {
        if self.keys.is_empty() {
            return Err(ConsentRefusal::NotAccepted);
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ConsentRefusal::Invalid("not a JWT".to_owned()))?;
        match (&header.kid, self.keys.len()) {
            (Some(kid), _) if self.keys.contains_key(&Some(kid.clone())) => {
                Ok(&self.keys[&Some(kid.clone())])
            }
            // One key, and a token naming none or another: try the one key (it decides).
            (_, 1) => Ok(self.keys.values().next().expect("one key")),
            _ => Err(ConsentRefusal::Invalid(
                "signed with a key the provider does not publish".to_owned(),
            )),
        }
    }
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
}

impl ConsentVerifier for JwtConsent {
    fn verify(&self, proof: &ConsentProof) -> Result<Owner, ConsentRefusal> {
        let token = proof.bearer_token().trim();
        let token = token.strip_prefix("Bearer ").unwrap_or(token);
        let key = self.key_for(token)?;
        let data =
            jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|error| {
                // What is wrong, by kind: the error never quotes the token.
                ConsentRefusal::Invalid(format!("{:?}", error.kind()))
            })?;
        Owner::parse(&data.claims.sub)
            .map_err(|_| ConsentRefusal::Invalid("the token's subject is no owner".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-bit RSA key made for these tests only.
    const PRIVATE_PEM: &str = include_str!("../tests/keys/consent-test-private.pem");
    const JWKS: &str = include_str!("../tests/keys/consent-test-jwks.json");
    const ISSUER: &str = "https://issuer.test";
    const AUDIENCE: &str = "paysaga-api";

    fn token(sub: &str, issuer: &str, expires_in: i64) -> String {
        let claims = serde_json::json!({
            "sub": sub, "iss": issuer, "aud": AUDIENCE,
            "exp": chrono::Utc::now().timestamp() + expires_in,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key).unwrap()
    }

    #[test]
    fn a_token_of_the_provider_speaks_for_its_subject_and_nothing_else_does() {
        let consent = JwtConsent::from_jwks(JWKS, ISSUER, AUDIENCE).unwrap();
        assert_eq!(consent.key_count(), 1);
        let valid = ConsentProof::bearer(token("alice", ISSUER, 300));
        assert_eq!(consent.verify(&valid).unwrap().as_str(), "alice");

        let refused = |proof: ConsentProof| consent.verify(&proof).unwrap_err();
        let expired = refused(ConsentProof::bearer(token("alice", ISSUER, -600)));
        assert_eq!(expired.code(), "consent_invalid");
        let other_issuer = refused(ConsentProof::bearer(token(
            "alice",
            "https://evil.test",
            300,
        )));
        assert_eq!(other_issuer.code(), "consent_invalid");
        let mut tampered = token("alice", ISSUER, 300);
        let mallory = token("mallory", ISSUER, 300);
        let payload = |t: &str| t.split('.').nth(1).unwrap().to_owned();
        tampered = tampered.replace(&payload(&tampered), &payload(&mallory));
        let tampered_refusal = refused(ConsentProof::bearer(tampered.clone()));
        assert_eq!(tampered_refusal.code(), "consent_invalid");
        assert!(!tampered_refusal.to_string().contains(&payload(&tampered)));
        assert_eq!(
            refused(ConsentProof::bearer("not-a-jwt")).code(),
            "consent_invalid"
        );
    }

    #[test]
    fn ring_verifies_an_rs256_signature_of_the_providers_key_and_nothing_else() {
        use base64::Engine as _;
        let set: JwkSet = serde_json::from_str(JWKS).unwrap();
        let key = DecodingKey::from_jwk(&set.keys[0]).unwrap();
        let verifier = (RING_RS256.verifier_factory)(&Algorithm::RS256, &key).unwrap();
        let signed = token("alice", ISSUER, 300);
        let (message, signature) = signed.rsplit_once('.').unwrap();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(signature)
            .unwrap();
        assert!(verifier.verify(message.as_bytes(), &signature).is_ok());
        let other = token("mallory", ISSUER, 300);
        let other_message = other.rsplit_once('.').unwrap().0;
        assert!(
            verifier
                .verify(other_message.as_bytes(), &signature)
                .is_err()
        );
        let mut flipped = signature.clone();
        flipped[0] ^= 1;
        assert!(verifier.verify(message.as_bytes(), &flipped).is_err());

        // Only RS256 with an RSA key; no signing.
        assert!((RING_RS256.verifier_factory)(&Algorithm::RS512, &key).is_err());
        let secret = DecodingKey::from_secret(b"a shared secret");
        assert!((RING_RS256.verifier_factory)(&Algorithm::RS256, &secret).is_err());
        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_PEM.as_bytes()).unwrap();
        assert!((RING_RS256.signer_factory)(&Algorithm::RS256, &encoding).is_err());
    }

    #[test]
    fn without_keys_no_payment_from_outside_is_accepted() {
        let consent = JwtConsent::from_jwks("", ISSUER, AUDIENCE).unwrap();
        let proof = ConsentProof::bearer(token("alice", ISSUER, 300));
        assert_eq!(consent.verify(&proof), Err(ConsentRefusal::NotAccepted));
        assert!(JwtConsent::from_jwks("{\"keys\": [{}]}", ISSUER, AUDIENCE).is_err());
    }
}
