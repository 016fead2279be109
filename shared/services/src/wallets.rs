//! Opening wallets, and an operator's deposit into one.

use chrono::Utc;

use super::ServiceError;
use paysaga_domain::ports::{Deposit, DepositOutcome, OpenWallet, WalletDeposits, WalletStore};
use paysaga_domain::{Currency, FailureReason, Owner, Wallet, WalletId};

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

/// Credits an operator's deposit once (from the outside world's adjustments account). The
/// store writes its announcement (`FundsDeposited`, with who issued it and why) in the same
/// transaction, and the event relay publishes it; a replay writes nothing, and answers the
/// first deposit.
pub async fn deposit(
    store: &dyn WalletDeposits,
    deposit: Deposit,
) -> Result<DepositResult, ServiceError> {
    let (deposit, replayed) = match store.deposit(&deposit, Utc::now()).await? {
        DepositOutcome::Deposited => (deposit, false),
        DepositOutcome::Replayed { deposit_id, .. } => (
            Deposit {
                deposit_id,
                ..deposit
            },
            true,
        ),
        DepositOutcome::KeyReused => return Ok(DepositResult::KeyReused),
        DepositOutcome::Refused(reason) => return Ok(DepositResult::Refused(reason)),
    };
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
