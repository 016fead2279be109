//! Opening wallets, and an operator's deposit into one.

use chrono::Utc;

use super::ServiceError;
use paysaga_domain::ports::{Deposit, DepositOutcome, EventPublisher, OpenWallet, WalletStore};
use paysaga_domain::{Currency, DomainEvent, FailureReason, Owner, Wallet, WalletId};

/// Opens a wallet for `owner`. Opening an existing id again is answered with that wallet (so
/// a retried request is harmless); the caller decides what an existing wallet of another
/// currency or owner means.
pub async fn open_wallet(
    store: &dyn WalletStore,
    id: Option<WalletId>,
    currency: Currency,
    owner: Owner,
) -> Result<OpenWallet, ServiceError> {
    let wallet =
        Wallet::open(id.unwrap_or_else(WalletId::generate), currency, Utc::now()).owned_by(owner);
    Ok(store.open_wallet(&wallet).await?)
}

/// How a deposit ended, with the wallet as it stands afterwards.
#[derive(Debug)]
pub enum DepositResult {
    Deposited { deposit: Deposit, wallet: Wallet },
    Replayed { deposit: Deposit, wallet: Wallet },
    KeyReused,
    Refused(FailureReason),
}

/// Credits an operator's deposit once (from the outside world's adjustments account), and
/// announces it on the bus with who issued it and why (again on a replay, in case the first
/// attempt stopped before announcing: the same event, its id and time the first attempt's, so
/// consumers de-duplicate it).
pub async fn deposit(
    store: &dyn WalletStore,
    events: &dyn EventPublisher,
    deposit: Deposit,
) -> Result<DepositResult, ServiceError> {
    let now = Utc::now();
    let (deposit, deposited_at, replayed) = match store.deposit(&deposit, now).await? {
        DepositOutcome::Deposited => (deposit, now, false),
        DepositOutcome::Replayed {
            deposit_id,
            deposited_at,
        } => (
            Deposit {
                deposit_id,
                ..deposit
            },
            deposited_at,
            true,
        ),
        DepositOutcome::KeyReused => return Ok(DepositResult::KeyReused),
        DepositOutcome::Refused(reason) => return Ok(DepositResult::Refused(reason)),
    };
    events
        .publish(&[DomainEvent::funds_deposited(
            deposit.announcement(),
            deposited_at,
        )])
        .await?;
    let wallet = store.wallet(&deposit.wallet_id).await?.ok_or_else(|| {
        ServiceError::Inconsistent(format!(
            "wallet {} vanished after a deposit",
            deposit.wallet_id
        ))
    })?;
    Ok(if replayed {
        DepositResult::Replayed { deposit, wallet }
    } else {
        DepositResult::Deposited { deposit, wallet }
    })
}
