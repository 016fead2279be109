//! Who is calling, and what they may touch.
//!
//! API Gateway's JWT authorizer (`PaysagaJwt` in `infra/template.yaml`) checks the caller's
//! token before the function runs (signature, issuer, audience, expiry) and hands its claims
//! over in the request context; a request without a valid token never reaches the function.
//! Locally, [`crate::local_authorizer`] plays that part. The function takes the caller from
//! those claims: the subject (`sub`) owns wallets, and the `paysaga/admin` scope opens the
//! admin routes. A caller reads and moves only its own wallets: anything else is a 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::aws_lambda_events::apigw::ApiGatewayRequestAuthorizerJwtDescription;
use lambda_http::request::RequestContext;
use paysaga_domain::{Owner, Wallet};

use crate::ApiError;

/// The OAuth scope of operators: replaying parked messages, rebuilding read models.
pub const ADMIN_SCOPE: &str = "paysaga/admin";

/// The caller of a request, as the authorizer vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    owner: Owner,
    admin: bool,
}

impl Caller {
    /// The caller the claims name: `sub` is the owner; [`ADMIN_SCOPE`] in the `scope` claim
    /// (space-separated, as OAuth access tokens carry it) or in the authorizer's `scopes`
    /// makes an admin.
    pub fn from_claims(jwt: &ApiGatewayRequestAuthorizerJwtDescription) -> Result<Self, ApiError> {
        let subject = jwt.claims.get("sub").ok_or(ApiError::Unauthenticated(
            "the token names no subject (sub)",
        ))?;
        let owner = Owner::parse(subject)
            .map_err(|_| ApiError::Unauthenticated("the token's subject (sub) is malformed"))?;
        let in_scope_claim = jwt
            .claims
            .get("scope")
            .is_some_and(|scopes| scopes.split_whitespace().any(|scope| scope == ADMIN_SCOPE));
        let in_scopes = jwt
            .scopes
            .iter()
            .flatten()
            .any(|scope| scope == ADMIN_SCOPE);
        Ok(Self {
            owner,
            admin: in_scope_claim || in_scopes,
        })
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Ok when the caller owns `wallet`; a 403 otherwise.
    pub fn may_use(&self, wallet: &Wallet) -> Result<(), ApiError> {
        if wallet.is_owned_by(&self.owner) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "wallet {} belongs to another caller",
                wallet.id()
            )))
        }
    }
}

/// A caller with the [`ADMIN_SCOPE`]: a handler that takes one runs for no one else (the
/// extractor answers a 403 first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin(Caller);

impl Admin {
    pub fn caller(&self) -> &Caller {
        &self.0
    }
}

impl TryFrom<Caller> for Admin {
    type Error = ApiError;

    fn try_from(caller: Caller) -> Result<Self, ApiError> {
        if caller.admin {
            Ok(Self(caller))
        } else {
            Err(ApiError::Forbidden(format!(
                "this operation needs the {ADMIN_SCOPE} scope"
            )))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state).await?.try_into()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let jwt = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(context)) => context
                .authorizer
                .as_ref()
                .and_then(|authorizer| authorizer.jwt.as_ref()),
            _ => None,
        };
        let jwt = jwt.ok_or(ApiError::Unauthenticated(
            "no verified identity: send Authorization: Bearer <token>",
        ))?;
        Self::from_claims(jwt)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;
    use paysaga_domain::WalletId;

    use super::*;

    fn jwt(
        claims: &[(&str, &str)],
        scopes: Option<Vec<&str>>,
    ) -> ApiGatewayRequestAuthorizerJwtDescription {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<HashMap<_, _>>();
        jwt.scopes = scopes.map(|scopes| scopes.into_iter().map(str::to_owned).collect());
        jwt
    }

    #[test]
    fn the_subject_is_the_owner_and_the_admin_scope_makes_an_admin() {
        let caller = Caller::from_claims(&jwt(&[("sub", "alice")], None)).unwrap();
        assert_eq!(caller.owner().as_str(), "alice");
        assert!(!caller.is_admin());
        let scoped = jwt(&[("sub", "ops"), ("scope", "openid paysaga/admin")], None);
        assert!(Caller::from_claims(&scoped).unwrap().is_admin());
        let listed = jwt(&[("sub", "ops")], Some(vec!["paysaga/admin"]));
        assert!(Caller::from_claims(&listed).unwrap().is_admin());
        let lookalike = jwt(&[("sub", "ops"), ("scope", "paysaga/admins")], None);
        assert!(!Caller::from_claims(&lookalike).unwrap().is_admin());
    }

    #[test]
    fn claims_without_a_usable_subject_are_refused() {
        assert!(matches!(
            Caller::from_claims(&jwt(&[("scope", ADMIN_SCOPE)], None)),
            Err(ApiError::Unauthenticated(_))
        ));
        assert!(matches!(
            Caller::from_claims(&jwt(&[("sub", "")], None)),
            Err(ApiError::Unauthenticated(_))
        ));
    }

    #[test]
    fn a_caller_may_use_its_own_wallets_only() {
        let alice = Caller::from_claims(&jwt(&[("sub", "alice")], None)).unwrap();
        let bob = Caller::from_claims(&jwt(&[("sub", "bob")], None)).unwrap();
        let eur = "EUR".parse().unwrap();
        let wallet = Wallet::open(WalletId::parse("wal_a").unwrap(), eur, Utc::now())
            .owned_by(Owner::parse("alice").unwrap());
        assert!(alice.may_use(&wallet).is_ok());
        assert!(matches!(bob.may_use(&wallet), Err(ApiError::Forbidden(_))));
        let unowned = Wallet::open(WalletId::parse("wal_b").unwrap(), eur, Utc::now());
        assert!(matches!(
            alice.may_use(&unowned),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[test]
    fn only_a_caller_with_the_admin_scope_is_an_admin() {
        let alice = Caller::from_claims(&jwt(&[("sub", "alice")], None)).unwrap();
        assert!(matches!(
            Admin::try_from(alice),
            Err(ApiError::Forbidden(_))
        ));
        let ops = jwt(&[("sub", "ops"), ("scope", ADMIN_SCOPE)], None);
        let admin = Admin::try_from(Caller::from_claims(&ops).unwrap()).unwrap();
        assert_eq!(admin.caller().owner().as_str(), "ops");
    }
}
