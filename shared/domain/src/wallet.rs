//! Wallets: a balance in one currency, split into what is available and what is reserved
//! for payments in flight. Money only moves through [`WalletChange`]s, each checked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::FailureReason;
use super::ids::WalletId;
use super::money::{Currency, Money, MoneyError};
use super::owner::Owner;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wallet {
    id: WalletId,
    currency: Currency,
    available: Money,
    reserved: Money,
    created_at: DateTime<Utc>,
    /// Who may read it and move its money through the API; `None` for a wallet opened
    /// without a caller (tests, tools). Not part of the wallet's serialised state.
    #[serde(skip)]
    owner: Option<Owner>,
    /// Over how many items of its own a store spreads the money this wallet receives: 0 for
    /// a quiet wallet (its one item takes every change), [`HOT_WALLET_CREDIT_SHARDS`] once its
    /// credits have contended. Storage layout, not state: the balances are the same either way.
    #[serde(skip)]
    credit_shards: u16,
}

/// How many credit shards a wallet gets once the money arriving in it keeps contending (a
/// merchant receiving many payments at once): each shard is an item of its own, so credits to
/// the wallet no longer queue on one item. Sized for 1,000 payments a second into one wallet
/// at DynamoDB's item limits (docs/capacity.md): each shard then takes about 30 a second, a
/// third of what one item takes one transaction at a time.
pub const HOT_WALLET_CREDIT_SHARDS: u16 = 32;

/// The most credit shards a wallet may have: a balance read gets every shard in one
/// `BatchGetItem` (at most 100 keys), and the wallet's own item keeps one counter per shard
/// (at 64, still one write unit's item).
pub const MAX_CREDIT_SHARDS: u16 = 64;

/// A change a payment step (or a deposit) makes to one wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum WalletChange {
    /// Earmark funds for a payment: available → reserved. Needs enough available funds.
    Reserve(Money),
    /// Pay out reserved funds: reserved → gone from this wallet (credited elsewhere).
    DebitReserved(Money),
    /// Undo a reservation: reserved → available.
    ReleaseReserved(Money),
    /// Add funds: a deposit, or the receiving side of a transfer.
    Credit(Money),
    /// Change nothing, but require that the wallet exists and holds this currency.
    AcceptsCurrency(Currency),
}

/// A [`WalletChange`] aimed at one wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletEffect {
    pub wallet_id: WalletId,
    pub change: WalletChange,
}

/// Why a wallet refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletRejection {
    /// The caller asked for something the wallet cannot do; the payment fails with this reason.
    #[error("{0}")]
    Business(FailureReason),
    /// The books disagree with themselves (e.g. releasing more than is reserved): never the
    /// caller's fault, and never silently ignored.
    #[error("wallet {wallet_id} is inconsistent: {detail}")]
    Inconsistent { wallet_id: WalletId, detail: String },
}

impl Wallet {
    /// A new, empty wallet.
    pub fn open(id: WalletId, currency: Currency, now: DateTime<Utc>) -> Self {
        let zero = Money::zero(currency);
        Self {
            id,
            currency,
            available: zero,
            reserved: zero,
            created_at: now,
            owner: None,
            credit_shards: 0,
        }
    }

    /// The wallet, belonging to `owner`.
    pub fn owned_by(self, owner: Owner) -> Self {
        Self {
            owner: Some(owner),
            ..self
        }
    }

    /// A wallet as a store holds it; refuses amounts that are out of range.
    pub fn restore(
        id: WalletId,
        currency: Currency,
        available_minor_units: u64,
        reserved_minor_units: u64,
        created_at: DateTime<Utc>,
    ) -> Result<Self, MoneyError> {
        Ok(Self {
            available: Money::new(available_minor_units, currency)?,
            reserved: Money::new(reserved_minor_units, currency)?,
            id,
            currency,
            created_at,
            owner: None,
            credit_shards: 0,
        })
    }

    /// The wallet, its credits spread over `shards` items (see [`Self::credit_shards`]).
    pub fn with_credit_shards(self, shards: u16) -> Self {
        Self {
            credit_shards: shards,
            ..self
        }
    }

    pub fn id(&self) -> &WalletId {
        &self.id
    }
    pub fn currency(&self) -> Currency {
        self.currency
    }
    /// Funds that can be spent now.
    pub fn available(&self) -> Money {
        self.available
    }
    /// Funds held for payments in flight.
    pub fn reserved(&self) -> Money {
        self.reserved
    }
    /// Everything the wallet holds, available plus reserved, in minor units. (Each part is
    /// at most [`MAX_MINOR_UNITS`](super::money::MAX_MINOR_UNITS), so the sum fits.)
    pub fn balance_minor_units(&self) -> u64 {
        self.available.minor_units() + self.reserved.minor_units()
    }
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    pub fn owner(&self) -> Option<&Owner> {
        self.owner.as_ref()
    }
    /// Over how many items a store spreads the money it receives (0: none, the wallet's own
    /// item takes it). Only ever grows.
    pub fn credit_shards(&self) -> u16 {
        self.credit_shards
    }
    /// Whether `caller` owns it. A wallet without an owner belongs to no caller.
    pub fn is_owned_by(&self, caller: &Owner) -> bool {
        self.owner.as_ref() == Some(caller)
    }

    /// The wallet after `change`, or why it refuses it.
    pub fn apply(&self, change: WalletChange) -> Result<Wallet, WalletRejection> {
        let mut next = self.clone();
        match change {
            WalletChange::Reserve(amount) => {
                self.require_currency(amount.currency())?;
                next.available = self.available.checked_sub(amount).map_err(|_| {
                    WalletRejection::Business(FailureReason::InsufficientFunds {
                        wallet_id: self.id.clone(),
                    })
                })?;
                next.reserved = self
                    .reserved
                    .checked_add(amount)
                    .map_err(|_| self.limit_exceeded())?;
            }
            WalletChange::DebitReserved(amount) => {
                self.require_currency(amount.currency())?;
                next.reserved = self.checked(self.reserved.checked_sub(amount))?;
            }
            WalletChange::ReleaseReserved(amount) => {
                self.require_currency(amount.currency())?;
                next.reserved = self.checked(self.reserved.checked_sub(amount))?;
                next.available = self.checked(self.available.checked_add(amount))?;
            }
            WalletChange::Credit(amount) => {
                self.require_currency(amount.currency())?;
                next.available = self
                    .available
                    .checked_add(amount)
                    .map_err(|_| self.limit_exceeded())?;
            }
            WalletChange::AcceptsCurrency(currency) => self.require_currency(currency)?,
        }
        Ok(next)
    }

    fn require_currency(&self, currency: Currency) -> Result<(), WalletRejection> {
        if currency == self.currency {
            Ok(())
        } else {
            Err(WalletRejection::Business(FailureReason::CurrencyMismatch {
                wallet_id: self.id.clone(),
                wallet_currency: self.currency,
            }))
        }
    }

    /// Available and reserved funds are each capped at `MAX_MINOR_UNITS`.
    fn limit_exceeded(&self) -> WalletRejection {
        WalletRejection::Business(FailureReason::BalanceLimitExceeded {
            wallet_id: self.id.clone(),
        })
    }

    fn checked(&self, result: Result<Money, MoneyError>) -> Result<Money, WalletRejection> {
        result.map_err(|error| WalletRejection::Inconsistent {
            wallet_id: self.id.clone(),
            detail: error.to_string(),
        })
    }
}

impl WalletEffect {
    /// Why this effect cannot apply to `wallet` (`None` when the wallet does not exist),
    /// or `None` when it can. Stores that check conditions themselves (DynamoDB) call this
    /// after a refusal to learn the reason.
    pub fn refusal(&self, wallet: Option<&Wallet>) -> Option<WalletRejection> {
        match wallet {
            None => Some(WalletRejection::Business(FailureReason::UnknownWallet {
                wallet_id: self.wallet_id.clone(),
            })),
            Some(wallet) => wallet.apply(self.change).err(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor_units: u64) -> Money {
        Money::new(minor_units, "EUR".parse().unwrap()).unwrap()
    }

    fn wallet_with(available: u64, reserved: u64) -> Wallet {
        let id = WalletId::parse("wal_test").unwrap();
        Wallet::restore(id, "EUR".parse().unwrap(), available, reserved, Utc::now()).unwrap()
    }

    #[test]
    fn reserve_moves_available_to_reserved_and_keeps_the_balance() {
        let wallet = wallet_with(1_000, 0)
            .apply(WalletChange::Reserve(eur(300)))
            .unwrap();
        assert_eq!(
            (wallet.available(), wallet.reserved()),
            (eur(700), eur(300))
        );
        assert_eq!(wallet.balance_minor_units(), 1_000);
    }

    #[test]
    fn reserve_refuses_more_than_is_available() {
        let refusal = wallet_with(100, 500)
            .apply(WalletChange::Reserve(eur(101)))
            .unwrap_err();
        assert!(matches!(
            refusal,
            WalletRejection::Business(FailureReason::InsufficientFunds { .. })
        ));
    }

    #[test]
    fn debit_and_release_take_from_the_reservation() {
        let wallet = wallet_with(0, 500);
        let debited = wallet.apply(WalletChange::DebitReserved(eur(200))).unwrap();
        assert_eq!(
            (debited.available(), debited.reserved()),
            (eur(0), eur(300))
        );
        let released = wallet
            .apply(WalletChange::ReleaseReserved(eur(200)))
            .unwrap();
        assert_eq!(
            (released.available(), released.reserved()),
            (eur(200), eur(300))
        );
    }

    #[test]
    fn taking_more_than_is_reserved_is_an_inconsistency_not_a_business_failure() {
        let wallet = wallet_with(1_000, 100);
        for change in [
            WalletChange::DebitReserved(eur(101)),
            WalletChange::ReleaseReserved(eur(101)),
        ] {
            assert!(matches!(
                wallet.apply(change),
                Err(WalletRejection::Inconsistent { .. })
            ));
        }
    }

    #[test]
    fn every_change_refuses_another_currency() {
        let usd = Money::new(1, "USD".parse().unwrap()).unwrap();
        let wallet = wallet_with(1_000, 1_000);
        for change in [
            WalletChange::Reserve(usd),
            WalletChange::DebitReserved(usd),
            WalletChange::ReleaseReserved(usd),
            WalletChange::Credit(usd),
            WalletChange::AcceptsCurrency(usd.currency()),
        ] {
            assert!(matches!(
                wallet.apply(change),
                Err(WalletRejection::Business(
                    FailureReason::CurrencyMismatch { .. }
                ))
            ));
        }
    }

    #[test]
    fn credit_adds_to_available_up_to_the_limit() {
        let credited = wallet_with(5, 0)
            .apply(WalletChange::Credit(eur(10)))
            .unwrap();
        assert_eq!(credited.available(), eur(15));
        let full = wallet_with(crate::money::MAX_MINOR_UNITS, 0);
        assert!(matches!(
            full.apply(WalletChange::Credit(eur(1))),
            Err(WalletRejection::Business(
                FailureReason::BalanceLimitExceeded { .. }
            ))
        ));
    }

    #[test]
    fn an_effect_on_a_missing_wallet_is_refused_as_unknown() {
        let effect = WalletEffect {
            wallet_id: WalletId::parse("wal_missing").unwrap(),
            change: WalletChange::Credit(eur(1)),
        };
        assert!(matches!(
            effect.refusal(None),
            Some(WalletRejection::Business(
                FailureReason::UnknownWallet { .. }
            ))
        ));
        assert_eq!(effect.refusal(Some(&wallet_with(0, 0))), None);
    }
}
