//! Wallets read in batches: every wallet a request resolves by id (`wallet(id:)`, the router's
//! `_entities`) is asked of one [`DataLoader`], which gathers the ids asked for while the
//! request's fields resolve and reads them with one [`SelfService::wallets`] call (one batched
//! read of the store), instead of a read per wallet. One loader per request: what a wallet
//! resolves to (the wallet, or forbidden) depends on who asks, so nothing is shared between
//! callers.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use paysaga_domain::{Owner, Wallet, WalletId};
use paysaga_services::self_service::SelfService;

use crate::errors::GraphqlError;

/// One caller's wallets, loaded in batches and kept for the rest of its request.
pub type Wallets = DataLoader<WalletLoader, HashMapCache>;

/// Reads the wallets a batch asks for, as their owner may see them: each the wallet, or why
/// not ([`GraphqlError`] `FORBIDDEN` or `NOT_FOUND`).
pub struct WalletLoader {
    service: Arc<SelfService>,
    owner: Owner,
}

impl WalletLoader {
    /// The loader of `owner`'s request.
    pub fn for_caller(service: Arc<SelfService>, owner: Owner) -> Wallets {
        DataLoader::with_cache(
            Self { service, owner },
            tokio::spawn,
            HashMapCache::default(),
        )
    }
}

impl Loader<WalletId> for WalletLoader {
    type Value = Result<Wallet, GraphqlError>;
    type Error = GraphqlError;

    async fn load(&self, ids: &[WalletId]) -> Result<HashMap<WalletId, Self::Value>, Self::Error> {
        let answers = self.service.wallets(&self.owner, ids).await?;
        Ok(answers
            .into_iter()
            .map(|(id, answer)| (id, answer.map_err(GraphqlError::from)))
            .collect())
    }
}
