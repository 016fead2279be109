//! The double-entry ledger: money moves only by [`Transfer`]s, each taking an amount out of one
//! account and putting it into another of the same currency. Wallets are accounts; so are the
//! accounts that stand for the world outside paysaga ([`WorldAccount`], one of each kind per
//! currency): a top-up moves money from `world:funding:<currency>` into a wallet, a payout from
//! a wallet into `world:payouts:<currency>`. Nothing is ever credited without the same amount
//! being debited elsewhere, so in each currency the balances of all accounts sum to zero.
//!
//! A wallet's balance is what it holds, available and reserved together: reserving funds for a
//! payment in flight moves nothing between accounts (it is a hold on the wallet, see
//! [`WalletChange`](crate::WalletChange)); the transfer happens when the payment settles.
//!
//! [`Balances`] adds transfers up: every account's balance as the sum of its entries, and the
//! sum over all accounts in each currency, which is zero whatever happened.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::WalletId;
use crate::money::{Currency, Money};
use crate::wallet::{WalletChange, WalletEffect};

/// An account that stands for the world outside paysaga, one per currency. Its balance is
/// usually negative or positive for good: `world:funding:EUR` at -1,000.00 means a thousand
/// euros came in from funding instruments and are now in wallets (or paid out again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldAccount {
    /// Funding instruments (cards, bank debits) the processor charged: top-ups debit it.
    Funding,
    /// External destinations the processor paid out to: payouts credit it.
    Payouts,
    /// Money an operator put into (or took out of) a wallet by hand, each time with who and why.
    Adjustments,
}

impl WorldAccount {
    pub const ALL: [WorldAccount; 3] = [Self::Funding, Self::Payouts, Self::Adjustments];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Funding => "funding",
            Self::Payouts => "payouts",
            Self::Adjustments => "adjustments",
        }
    }
}

/// An account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Account {
    Wallet {
        wallet_id: WalletId,
    },
    World {
        world: WorldAccount,
        #[serde(with = "currency_code")]
        currency: CurrencyCode,
    },
}

/// A currency as an account names it: ordered by its code, so accounts sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrencyCode(pub Currency);

impl PartialOrd for CurrencyCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CurrencyCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.code().cmp(other.0.code())
    }
}

mod currency_code {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::CurrencyCode;
    use crate::money::Currency;

    pub fn serialize<S: Serializer>(code: &CurrencyCode, serializer: S) -> Result<S::Ok, S::Error> {
        code.0.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<CurrencyCode, D::Error> {
        Currency::deserialize(deserializer).map(CurrencyCode)
    }
}

impl Account {
    pub fn wallet(wallet_id: WalletId) -> Self {
        Self::Wallet { wallet_id }
    }

    pub fn world(world: WorldAccount, currency: Currency) -> Self {
        Self::World {
            world,
            currency: CurrencyCode(currency),
        }
    }

    /// The wallet this account is, if it is one.
    pub fn wallet_id(&self) -> Option<&WalletId> {
        match self {
            Self::Wallet { wallet_id } => Some(wallet_id),
            Self::World { .. } => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wallet { wallet_id } => write!(f, "wallet:{wallet_id}"),
            Self::World { world, currency } => {
                write!(f, "world:{}:{}", world.as_str(), currency.0.code())
            }
        }
    }
}

/// Why a transfer cannot be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("a transfer moves money between two accounts, not from {0} to itself")]
    SameAccount(Account),
    #[error("{account} holds {account_currency}, not the transfer's {amount_currency}")]
    CurrencyMismatch {
        account: Account,
        account_currency: Currency,
        amount_currency: Currency,
    },
    #[error("a transfer moves a positive amount")]
    Zero,
}

/// `amount` leaves `debit` and enters `credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawTransfer", into = "RawTransfer")]
pub struct Transfer {
    debit: Account,
    credit: Account,
    amount: Money,
}

#[derive(Serialize, Deserialize)]
struct RawTransfer {
    debit: Account,
    credit: Account,
    amount: Money,
}

impl TryFrom<RawTransfer> for Transfer {
    type Error = TransferError;

    fn try_from(raw: RawTransfer) -> Result<Self, TransferError> {
        Transfer::new(raw.debit, raw.credit, raw.amount)
    }
}

impl From<Transfer> for RawTransfer {
    fn from(transfer: Transfer) -> Self {
        Self {
            debit: transfer.debit,
            credit: transfer.credit,
            amount: transfer.amount,
        }
    }
}

impl Transfer {
    /// A transfer of a positive amount between two different accounts; a world account must
    /// be of the amount's currency (a wallet's currency is the wallet's to check).
    pub fn new(debit: Account, credit: Account, amount: Money) -> Result<Self, TransferError> {
        if debit == credit {
            return Err(TransferError::SameAccount(debit));
        }
        if amount.is_zero() {
            return Err(TransferError::Zero);
        }
        for account in [&debit, &credit] {
            if let Account::World { currency, .. } = account
                && currency.0 != amount.currency()
            {
                return Err(TransferError::CurrencyMismatch {
                    account: account.clone(),
                    account_currency: currency.0,
                    amount_currency: amount.currency(),
                });
            }
        }
        Ok(Self {
            debit,
            credit,
            amount,
        })
    }

    pub fn debit(&self) -> &Account {
        &self.debit
    }

    pub fn credit(&self) -> &Account {
        &self.credit
    }

    pub fn amount(&self) -> Money {
        self.amount
    }

    /// What the transfer does to wallets, debit first: a wallet it debits gives the amount from
    /// its reserved funds (every flow reserves what it will debit, so a debit never races the
    /// wallet's other spending), a wallet it credits receives it as available funds. An
    /// account of the outside world is no wallet: its side changes none.
    pub fn wallet_effects(&self) -> impl Iterator<Item = WalletEffect> + '_ {
        let debit = self.debit.wallet_id().map(|wallet_id| WalletEffect {
            wallet_id: wallet_id.clone(),
            change: WalletChange::DebitReserved(self.amount),
        });
        let credit = self.credit.wallet_id().map(|wallet_id| WalletEffect {
            wallet_id: wallet_id.clone(),
            change: WalletChange::Credit(self.amount),
        });
        debit.into_iter().chain(credit)
    }
}

/// Balances added up from transfers: each account's balance is the sum of its entries (credits
/// less debits, in minor units).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances {
    by_account: BTreeMap<Account, BTreeMap<CurrencyCode, i128>>,
}

impl Balances {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn apply(&mut self, transfer: &Transfer) {
        let currency = CurrencyCode(transfer.amount.currency());
        let amount = i128::from(transfer.amount.minor_units());
        *self
            .by_account
            .entry(transfer.debit.clone())
            .or_default()
            .entry(currency)
            .or_default() -= amount;
        *self
            .by_account
            .entry(transfer.credit.clone())
            .or_default()
            .entry(currency)
            .or_default() += amount;
    }

    /// The account's balance in `currency`: zero for an account no transfer touched.
    pub fn of(&self, account: &Account, currency: Currency) -> i128 {
        self.by_account
            .get(account)
            .and_then(|currencies| currencies.get(&CurrencyCode(currency)))
            .copied()
            .unwrap_or(0)
    }

    /// Every account a transfer touched, with its balance in each currency.
    pub fn accounts(&self) -> impl Iterator<Item = (&Account, Currency, i128)> {
        self.by_account.iter().flat_map(|(account, currencies)| {
            currencies
                .iter()
                .map(move |(currency, balance)| (account, currency.0, *balance))
        })
    }

    /// The sum over all accounts, per currency: zero in every currency, by construction. A
    /// check that adds up balances read elsewhere (wallet items, a journal) uses
    /// [`Balances::of`] and this to compare.
    pub fn sum_by_currency(&self) -> BTreeMap<&'static str, i128> {
        let mut sums = BTreeMap::new();
        for (_, currency, balance) in self.accounts() {
            *sums.entry(currency.code()).or_default() += balance;
        }
        sums
    }
}

impl<'a> FromIterator<&'a Transfer> for Balances {
    fn from_iter<I: IntoIterator<Item = &'a Transfer>>(transfers: I) -> Self {
        let mut balances = Self::new();
        transfers
            .into_iter()
            .for_each(|transfer| balances.apply(transfer));
        balances
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn eur(minor_units: u64) -> Money {
        Money::new(minor_units, "EUR".parse().unwrap()).unwrap()
    }

    fn wallet(name: &str) -> Account {
        Account::wallet(WalletId::parse(&format!("wal_{name}")).unwrap())
    }

    fn funding() -> Account {
        Account::world(WorldAccount::Funding, "EUR".parse().unwrap())
    }

    #[test]
    fn a_transfer_is_between_two_accounts_of_its_currency() {
        assert!(Transfer::new(funding(), wallet("a"), eur(100)).is_ok());
        assert_eq!(
            Transfer::new(wallet("a"), wallet("a"), eur(100)),
            Err(TransferError::SameAccount(wallet("a")))
        );
        assert_eq!(
            Transfer::new(funding(), wallet("a"), eur(0)),
            Err(TransferError::Zero)
        );
        let usd_funding = Account::world(WorldAccount::Funding, "USD".parse().unwrap());
        assert!(matches!(
            Transfer::new(usd_funding, wallet("a"), eur(100)),
            Err(TransferError::CurrencyMismatch { .. })
        ));
    }

    #[test]
    fn accounts_read_as_their_names_and_round_trip_as_json() {
        assert_eq!(wallet("a").to_string(), "wallet:wal_a");
        assert_eq!(funding().to_string(), "world:funding:EUR");
        let transfer = Transfer::new(funding(), wallet("a"), eur(1_250)).unwrap();
        let json = serde_json::to_value(&transfer).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "debit": {"kind": "world", "world": "funding", "currency": "EUR"},
                "credit": {"kind": "wallet", "wallet_id": "wal_a"},
                "amount": {"minor_units": 1250, "currency": "EUR"}
            })
        );
        assert_eq!(serde_json::from_value::<Transfer>(json).unwrap(), transfer);
        let to_itself = serde_json::json!({
            "debit": {"kind": "wallet", "wallet_id": "wal_a"},
            "credit": {"kind": "wallet", "wallet_id": "wal_a"},
            "amount": {"minor_units": 1, "currency": "EUR"}
        });
        assert!(serde_json::from_value::<Transfer>(to_itself).is_err());
    }

    #[test]
    fn a_top_up_a_payment_and_a_payout_leave_every_currency_at_zero() {
        let payouts = Account::world(WorldAccount::Payouts, "EUR".parse().unwrap());
        let transfers = [
            Transfer::new(funding(), wallet("a"), eur(10_000)).unwrap(),
            Transfer::new(wallet("a"), wallet("b"), eur(2_500)).unwrap(),
            Transfer::new(wallet("b"), payouts.clone(), eur(1_000)).unwrap(),
        ];
        let balances: Balances = transfers.iter().collect();
        let eur_currency = "EUR".parse().unwrap();
        assert_eq!(balances.of(&wallet("a"), eur_currency), 7_500);
        assert_eq!(balances.of(&wallet("b"), eur_currency), 1_500);
        assert_eq!(balances.of(&funding(), eur_currency), -10_000);
        assert_eq!(balances.of(&payouts, eur_currency), 1_000);
        assert_eq!(balances.of(&wallet("never"), eur_currency), 0);
        assert_eq!(balances.sum_by_currency(), BTreeMap::from([("EUR", 0)]));
    }

    proptest! {
        #[test]
        fn any_transfers_sum_to_zero_in_each_currency(
            moves in proptest::collection::vec((0..4usize, 0..4usize, 1..1_000_000u64, 0..2usize), 0..64)
        ) {
            let currencies: [Currency; 2] = ["EUR".parse().unwrap(), "JPY".parse().unwrap()];
            let account = |index: usize, currency: Currency| match index {
                0 => Account::world(WorldAccount::Funding, currency),
                1 => Account::world(WorldAccount::Payouts, currency),
                n => Account::wallet(WalletId::parse(&format!("wal_{n}")).unwrap()),
            };
            let mut balances = Balances::new();
            for (from, to, minor_units, currency) in moves {
                let currency = currencies[currency];
                let amount = Money::new(minor_units, currency).unwrap();
                if let Ok(transfer) = Transfer::new(account(from, currency), account(to, currency), amount) {
                    balances.apply(&transfer);
                }
            }
            prop_assert!(balances.sum_by_currency().values().all(|sum| *sum == 0));
        }
    }
}
