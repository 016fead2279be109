//! Development tokens for the local stack: RS256 JWTs signed by the development key that
//! `infra/local/provision.py` creates under `.local/dev-jwt/` (and prints at start), with the
//! issuer and audience the local API checks. What an identity provider (Cognito, Auth0, …)
//! issues in AWS, for trying the API and for the tests; never for a deployed stack.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The OAuth scope the API's admin routes need (the api function's `ADMIN_SCOPE`).
pub const ADMIN_SCOPE: &str = "paysaga/admin";

#[derive(Debug, thiserror::Error)]
pub enum DevTokenError {
    #[error("cannot read {path} (is the local stack up? make run creates the key): {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not the local stack's JWT settings: {source}")]
    Settings {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not an RSA private key in PEM: {source}")]
    Key {
        path: PathBuf,
        source: jsonwebtoken::errors::Error,
    },
    #[error("cannot sign the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// `.local/dev-jwt/settings.json`, as provision.py writes it.
#[derive(Deserialize)]
struct Settings {
    issuer: String,
    audience: String,
    private_key: PathBuf,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// Signs development tokens with the local stack's key.
pub struct DevTokenIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl DevTokenIssuer {
    /// The issuer of the local stack whose files are in `local_dir` (the checkout's `.local`).
    pub fn from_local_dir(local_dir: &Path) -> Result<Self, DevTokenError> {
        let path = local_dir.join("dev-jwt/settings.json");
        let text = std::fs::read_to_string(&path).map_err(|source| DevTokenError::Read {
            path: path.clone(),
            source,
        })?;
        let settings: Settings = serde_json::from_str(&text)
            .map_err(|source| DevTokenError::Settings { path, source })?;
        let pem = std::fs::read(&settings.private_key).map_err(|source| DevTokenError::Read {
            path: settings.private_key.clone(),
            source,
        })?;
        let key = EncodingKey::from_rsa_pem(&pem).map_err(|source| DevTokenError::Key {
            path: settings.private_key.clone(),
            source,
        })?;
        Ok(Self {
            key,
            issuer: settings.issuer,
            audience: settings.audience,
        })
    }

    /// A token for `subject`, valid for `lifetime`; with the admin scope when `admin`.
    pub fn token(
        &self,
        subject: &str,
        admin: bool,
        lifetime: Duration,
    ) -> Result<String, DevTokenError> {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims {
            sub: subject,
            iss: &self.issuer,
            aud: &self.audience,
            iat: now,
            exp: now.saturating_add(lifetime),
            scope: admin.then_some(ADMIN_SCOPE),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(DevTokenError::Sign)
    }
}
