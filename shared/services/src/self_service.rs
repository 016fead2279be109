//! What a wallet's owner does with its own wallets, whichever door the request came through:
//! the REST API (`api`), the GraphQL subgraph (`graphql`) and the Connect/gRPC-Web
//! `WalletService` (`wallet-rpc`) each parse their input into these calls and turn a
//! [`Refusal`] into their own error (a 403, a GraphQL error with `extensions.code`
//! `FORBIDDEN`, a Connect `permission_denied`). One rule, three doors: who may read or move
//! which wallet, the edge's limits, the idempotency key a payment needs, are written here
//! once.
//!
//! A caller reads and moves only the wallets it owns. A wallet that does not exist is a
//! [`Refusal::NotFound`], someone else's a [`Refusal::Forbidden`]; a payment is readable by
//! the owner of any wallet it touches.

use std::collections::HashMap;
use std::sync::Arc;

use paysaga_domain::payment::Flow;
use paysaga_domain::ports::{
    OpenWallet, Ownership, PaymentRequests, ReadModelReader, WalletDirectory, WalletStore,
};
use paysaga_domain::read_models::{Page, PageRequest, Revised, TransactionEntry, WalletPayment};
use paysaga_domain::{
    Currency, IdempotencyKey, LimitRefusal, Limits, Money, Owner, Payment, PaymentId,
    PaymentRequest, Priority, Wallet, WalletId,
};

use crate::ServiceError;
use crate::payments::{self, Submission};
use crate::wallets;

/// Why a caller's request was not carried out, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No such wallet or payment.
    #[error("{0}")]
    NotFound(String),
    /// It exists, and belongs to another caller.
    #[error("{0}")]
    Forbidden(String),
    /// Well-formed, but not something paysaga does: a currency wallets may not hold, an
    /// amount over the limit or not positive. `code` is stable and machine-readable.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// It conflicts with what exists: a wallet of another currency under that id, an
    /// idempotency key used for other terms.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Not the caller's doing: a dependency failed ([`ServiceError::is_transient`] says
    /// whether the same request, with the same key, may succeed later).
    #[error(transparent)]
    Failed(#[from] ServiceError),
}

impl Refusal {
    fn limit(refusal: LimitRefusal) -> Self {
        Self::Unprocessable {
            code: refusal.code(),
            message: refusal.to_string(),
        }
    }

    /// The stable, machine-readable code of a refusal, as every door shows it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::Unprocessable { code, .. } | Self::Conflict { code, .. } => code,
            Self::Failed(error) if error.is_transient() => "temporarily_unavailable",
            Self::Failed(_) => "internal_error",
        }
    }
}

impl From<paysaga_domain::ports::StoreError> for Refusal {
    fn from(error: paysaga_domain::ports::StoreError) -> Self {
        Self::Failed(error.into())
    }
}

/// A payment as its payer asks for it: what moves where, and how soon.
#[derive(Debug, Clone)]
pub struct PaymentOrder {
    pub flow: Flow,
    pub amount: Money,
    pub priority: Priority,
}

/// A wallet opened, or found open under the same id, currency and owner (a retry).
#[derive(Debug, Clone)]
pub struct OpenedWallet {
    pub wallet: Wallet,
    /// `false` when it was open already.
    pub created: bool,
}

/// The owner's operations, over the ports they need.
pub struct SelfService {
    pub wallets: Arc<dyn WalletStore>,
    /// Where a payment's request is written: it is announced from there (the event relay).
    pub payments: Arc<dyn PaymentRequests>,
    pub read_models: Arc<dyn ReadModelReader>,
    /// Which wallets an owner holds, and many wallets read at once.
    pub directory: Arc<dyn WalletDirectory>,
    /// The currencies wallets may hold and the largest payment.
    pub limits: Limits,
}

impl SelfService {
    /// Opens a wallet for `owner`, in a currency wallets may hold. Opening it again (the same
    /// id, currency and owner) answers the wallet as it is.
    pub async fn open_wallet(
        &self,
        owner: &Owner,
        id: Option<WalletId>,
        currency: Currency,
    ) -> Result<OpenedWallet, Refusal> {
        self.limits
            .check_currency(currency)
            .map_err(Refusal::limit)?;
        match wallets::open_wallet(self.wallets.as_ref(), id, currency, owner.clone()).await? {
            OpenWallet::Opened(wallet) => Ok(OpenedWallet {
                wallet,
                created: true,
            }),
            OpenWallet::AlreadyOpen(wallet) => {
                may_use(owner, &wallet)?;
                if wallet.currency() != currency {
                    return Err(Refusal::Conflict {
                        code: "wallet_exists",
                        message: format!(
                            "wallet {} exists with currency {}",
                            wallet.id(),
                            wallet.currency()
                        ),
                    });
                }
                Ok(OpenedWallet {
                    wallet,
                    created: false,
                })
            }
        }
    }

    /// One of the owner's wallets, with its balances as they are at the read.
    pub async fn wallet(&self, owner: &Owner, id: &WalletId) -> Result<Wallet, Refusal> {
        let wallet = self
            .wallets
            .wallet(id)
            .await?
            .ok_or_else(|| no_such_wallet(id))?;
        may_use(owner, &wallet)?;
        Ok(wallet)
    }

    /// Every wallet the owner holds, by id.
    pub async fn wallets_of(&self, owner: &Owner) -> Result<Vec<Wallet>, Refusal> {
        let ids = self.directory.wallets_owned_by(owner).await?;
        let mut wallets = self.directory.wallets(&ids).await?;
        // The directory's index trails the wallets by a moment; ownership never changes, but
        // the check costs nothing and keeps this the one rule.
        wallets.retain(|wallet| wallet.is_owned_by(owner));
        wallets.sort_by(|a, b| a.id().as_str().cmp(b.id().as_str()));
        Ok(wallets)
    }

    /// Many wallets at once (one batched read), each the owner's, someone else's
    /// ([`Refusal::Forbidden`]) or missing ([`Refusal::NotFound`]). For the doors that resolve
    /// many wallets in one request (GraphQL's entities and lists) without a read per wallet.
    pub async fn wallets(
        &self,
        owner: &Owner,
        ids: &[WalletId],
    ) -> Result<HashMap<WalletId, Result<Wallet, Refusal>>, Refusal> {
        let mut found: HashMap<WalletId, Wallet> = self
            .directory
            .wallets(ids)
            .await?
            .into_iter()
            .map(|wallet| (wallet.id().clone(), wallet))
            .collect();
        Ok(ids
            .iter()
            .map(|id| {
                let answer = match found.remove(id) {
                    Some(wallet) => may_use(owner, &wallet).map(|()| wallet),
                    None => Err(no_such_wallet(id)),
                };
                (id.clone(), answer)
            })
            .collect())
    }

    /// Submits a payment from one of the owner's wallets, once per idempotency key (a retry
    /// with the same key and terms answers the same payment).
    pub async fn submit(
        &self,
        owner: &Owner,
        order: PaymentOrder,
        key: &IdempotencyKey,
    ) -> Result<Payment, Refusal> {
        let amount = Money::positive(order.amount.minor_units(), order.amount.currency()).map_err(
            |error| Refusal::Unprocessable {
                code: "invalid_amount",
                message: error.to_string(),
            },
        )?;
        let request = PaymentRequest::submitted(order.flow, amount, Some(key))
            .map(|request| request.with_priority(order.priority))
            .map_err(|error| Refusal::Unprocessable {
                code: "invalid_payment",
                message: error.to_string(),
            })?;
        self.limits
            .check_payment(request.amount())
            .map_err(Refusal::limit)?;
        self.must_own(owner, request.payer_wallet()).await?;
        match payments::submit_payment(self.payments.as_ref(), request, Some(key)).await? {
            Submission::Accepted(payment) => Ok(payment),
            Submission::KeyReused => Err(Refusal::Conflict {
                code: "idempotency_key_reused",
                message: "this idempotency key was used for a different request".to_owned(),
            }),
        }
    }

    /// A payment, for the owner of any wallet it touches (a transfer's payer and payee).
    pub async fn payment(&self, owner: &Owner, id: &PaymentId) -> Result<Payment, Refusal> {
        let payment = payments::payment(self.payments.as_ref(), id)
            .await?
            .ok_or_else(|| Refusal::NotFound(format!("payment {id} does not exist")))?;
        for wallet_id in payment.request.flow().wallet_ids() {
            if self.wallets.ownership(&wallet_id).await?.is(owner) {
                return Ok(payment);
            }
        }
        Err(Refusal::Forbidden(format!(
            "payment {id} is between wallets of other callers"
        )))
    }

    /// A page of one of the owner's wallets' transactions, newest first (the read model).
    pub async fn transactions(
        &self,
        owner: &Owner,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<TransactionEntry>>, Refusal> {
        self.must_own(owner, wallet).await?;
        Ok(self.read_models.transactions(wallet, page).await?)
    }

    /// A page of one of the owner's wallets' payments, newest first (the read model).
    pub async fn payments_of(
        &self,
        owner: &Owner,
        wallet: &WalletId,
        page: &PageRequest,
    ) -> Result<Page<Revised<WalletPayment>>, Refusal> {
        self.must_own(owner, wallet).await?;
        Ok(self.read_models.payments(wallet, page).await?)
    }

    /// [`Self::transactions`] of a wallet the door has read already (through [`Self::wallet`],
    /// [`Self::wallets`] or [`Self::wallets_of`]): its owner is checked on it, with no read of
    /// its own (a GraphQL query of a caller's wallets and their lists would otherwise read each
    /// wallet's owner again).
    pub async fn transactions_of(
        &self,
        owner: &Owner,
        wallet: &Wallet,
        page: &PageRequest,
    ) -> Result<Page<Revised<TransactionEntry>>, Refusal> {
        may_use(owner, wallet)?;
        Ok(self.read_models.transactions(wallet.id(), page).await?)
    }

    /// [`Self::payments_of`] of a wallet the door has read already, as
    /// [`Self::transactions_of`].
    pub async fn payments_of_wallet(
        &self,
        owner: &Owner,
        wallet: &Wallet,
        page: &PageRequest,
    ) -> Result<Page<Revised<WalletPayment>>, Refusal> {
        may_use(owner, wallet)?;
        Ok(self.read_models.payments(wallet.id(), page).await?)
    }

    /// Ok when `owner` owns the wallet; [`Refusal::NotFound`] when there is no such wallet,
    /// [`Refusal::Forbidden`] when it is someone else's. One read of the owner alone.
    pub async fn must_own(&self, owner: &Owner, wallet: &WalletId) -> Result<(), Refusal> {
        match self.wallets.ownership(wallet).await? {
            Ownership::NoSuchWallet => Err(no_such_wallet(wallet)),
            ownership if ownership.is(owner) => Ok(()),
            _ => Err(someone_elses(wallet)),
        }
    }
}

fn may_use(owner: &Owner, wallet: &Wallet) -> Result<(), Refusal> {
    if wallet.is_owned_by(owner) {
        Ok(())
    } else {
        Err(someone_elses(wallet.id()))
    }
}

fn no_such_wallet(id: &WalletId) -> Refusal {
    Refusal::NotFound(format!("wallet {id} does not exist"))
}

fn someone_elses(id: &WalletId) -> Refusal {
    Refusal::Forbidden(format!("wallet {id} belongs to another caller"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{InMemoryLedger, InMemoryReadModels, self_service};
    use chrono::Utc;
    use paysaga_domain::PaymentStatus;

    fn owner(name: &str) -> Owner {
        Owner::parse(name).expect("an owner")
    }

    fn id(text: &str) -> WalletId {
        WalletId::parse(text).expect("a wallet id")
    }

    fn eur(minor_units: u64) -> Money {
        Money::new(minor_units, "EUR".parse().expect("EUR")).expect("an amount")
    }

    /// Alice holds two wallets, Bob one.
    async fn world() -> (SelfService, Arc<InMemoryLedger>) {
        let ledger = Arc::new(InMemoryLedger::default());
        let service = self_service(
            ledger.clone(),
            Arc::new(InMemoryReadModels::default()),
            Limits::default(),
        );
        for (wallet, holder) in [
            ("wal_alice_1", "alice"),
            ("wal_alice_2", "alice"),
            ("wal_bob", "bob"),
        ] {
            let wallet = Wallet::open(id(wallet), "EUR".parse().expect("EUR"), Utc::now())
                .owned_by(owner(holder));
            ledger.open_wallet(&wallet).await.expect("opened");
        }
        ledger.fund("wal_alice_1", 10_000).await;
        (service, ledger)
    }

    fn transfer(from: &str, to: &str, minor_units: u64) -> PaymentOrder {
        PaymentOrder {
            flow: Flow::Transfer {
                from_wallet: id(from),
                to_wallet: id(to),
            },
            amount: eur(minor_units),
            priority: Priority::default(),
        }
    }

    #[tokio::test]
    async fn a_caller_reads_and_moves_only_its_own_wallets() {
        let (service, _) = world().await;
        let (alice, bob) = (owner("alice"), owner("bob"));
        assert_eq!(
            service
                .wallet(&alice, &id("wal_alice_1"))
                .await
                .expect("hers")
                .available(),
            eur(10_000)
        );
        let someone_elses = service.wallet(&bob, &id("wal_alice_1")).await;
        assert!(matches!(someone_elses, Err(Refusal::Forbidden(_))));
        let missing = service.wallet(&bob, &id("wal_nobody")).await;
        assert!(matches!(missing, Err(Refusal::NotFound(_))));
        let key = IdempotencyKey::parse("k1").expect("a key");
        let stolen = service
            .submit(&bob, transfer("wal_alice_1", "wal_bob", 100), &key)
            .await;
        assert!(matches!(stolen, Err(Refusal::Forbidden(_))), "{stolen:?}");
        let page = PageRequest::new(None, None).expect("a page");
        let history = service.transactions(&bob, &id("wal_alice_1"), &page).await;
        assert!(matches!(history, Err(Refusal::Forbidden(_))));
        assert_eq!(Refusal::Forbidden(String::new()).code(), "forbidden");
    }

    #[tokio::test]
    async fn a_key_names_one_payment_and_refuses_other_terms() {
        let (service, _) = world().await;
        let alice = owner("alice");
        let key = IdempotencyKey::parse("order-7").expect("a key");
        let first = service
            .submit(&alice, transfer("wal_alice_1", "wal_bob", 250), &key)
            .await
            .expect("accepted");
        let again = service
            .submit(&alice, transfer("wal_alice_1", "wal_bob", 250), &key)
            .await
            .expect("replayed");
        assert_eq!(again.request.payment_id(), first.request.payment_id());
        assert_eq!(again.status, PaymentStatus::Pending);
        let other_terms = service
            .submit(&alice, transfer("wal_alice_1", "wal_bob", 251), &key)
            .await;
        assert!(
            matches!(
                other_terms,
                Err(Refusal::Conflict {
                    code: "idempotency_key_reused",
                    ..
                })
            ),
            "{other_terms:?}"
        );
        let zero = service
            .submit(
                &alice,
                transfer("wal_alice_1", "wal_bob", 0),
                &IdempotencyKey::parse("order-8").expect("a key"),
            )
            .await;
        assert!(matches!(
            zero,
            Err(Refusal::Unprocessable {
                code: "invalid_amount",
                ..
            })
        ));
        // The payee's owner reads the payment; a third caller does not.
        let payment_id = first.request.payment_id();
        assert!(service.payment(&owner("bob"), payment_id).await.is_ok());
        let third = service.payment(&owner("carol"), payment_id).await;
        assert!(matches!(third, Err(Refusal::Forbidden(_))));
    }

    #[tokio::test]
    async fn an_owners_wallets_are_listed_and_many_are_read_in_one_batch() {
        let (service, ledger) = world().await;
        let alice = owner("alice");
        let listed: Vec<String> = service
            .wallets_of(&alice)
            .await
            .expect("listed")
            .iter()
            .map(|wallet| wallet.id().to_string())
            .collect();
        assert_eq!(listed, ["wal_alice_1", "wal_alice_2"]);

        let before = ledger.wallet_reads();
        let ids = [
            id("wal_alice_1"),
            id("wal_bob"),
            id("wal_nobody"),
            id("wal_alice_2"),
        ];
        let answers = service.wallets(&alice, &ids).await.expect("read");
        let after = ledger.wallet_reads();
        assert_eq!(after.batched - before.batched, 1, "one batched read");
        assert_eq!(after.single, before.single, "no read per wallet");
        assert!(answers[&id("wal_alice_1")].is_ok());
        assert!(answers[&id("wal_alice_2")].is_ok());
        assert!(matches!(
            answers[&id("wal_bob")],
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            answers[&id("wal_nobody")],
            Err(Refusal::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn the_lists_of_a_wallet_read_already_check_its_owner_on_it() {
        let (service, _) = world().await;
        let alice = owner("alice");
        let page = PageRequest::new(None, None).expect("a page");
        let hers = service
            .wallet(&alice, &id("wal_alice_1"))
            .await
            .expect("hers");
        assert!(service.transactions_of(&alice, &hers, &page).await.is_ok());
        assert!(
            service
                .payments_of_wallet(&alice, &hers, &page)
                .await
                .is_ok()
        );
        let bob = owner("bob");
        let refused = service.transactions_of(&bob, &hers, &page).await;
        assert!(matches!(refused, Err(Refusal::Forbidden(_))));
        let refused = service.payments_of_wallet(&bob, &hers, &page).await;
        assert!(matches!(refused, Err(Refusal::Forbidden(_))));
    }

    #[tokio::test]
    async fn a_wallet_opened_again_is_the_same_one_and_another_currency_conflicts() {
        let (service, _) = world().await;
        let alice = owner("alice");
        let eur = "EUR".parse().expect("EUR");
        let opened = service
            .open_wallet(&alice, Some(id("wal_alice_3")), eur)
            .await
            .expect("opened");
        assert!(opened.created);
        let again = service
            .open_wallet(&alice, Some(id("wal_alice_3")), eur)
            .await
            .expect("the same");
        assert!(!again.created);
        let usd = service
            .open_wallet(&alice, Some(id("wal_alice_3")), "USD".parse().expect("USD"))
            .await;
        assert!(matches!(
            usd,
            Err(Refusal::Conflict {
                code: "wallet_exists",
                ..
            })
        ));
        let bobs = service
            .open_wallet(&owner("bob"), Some(id("wal_alice_3")), eur)
            .await;
        assert!(matches!(bobs, Err(Refusal::Forbidden(_))));
        let yen = service
            .open_wallet(&alice, None, "JPY".parse().expect("JPY"))
            .await;
        assert!(matches!(
            yen,
            Err(Refusal::Unprocessable {
                code: "currency_not_allowed",
                ..
            })
        ));
    }
}
