//! The read models as the integration tests read them: the local stack's live table, and a
//! wallet's whole lists, page by page.

use paysaga_aws::DynamoDbReadModels;
use paysaga_domain::WalletId;
use paysaga_domain::ports::ReadModelReader;
use paysaga_services::read_models::{PageRequest, Revised, TransactionEntry, WalletPayment};

use crate::Stack;

/// The local stack's read models (`ReadModelsTable`), as the read-models function writes them.
pub fn live_read_models(stack: &Stack) -> anyhow::Result<DynamoDbReadModels> {
    Ok(DynamoDbReadModels::new(
        stack.dynamodb.clone(),
        stack.wiring.table("ReadModelsTable")?,
    ))
}

/// Every transaction of a wallet, newest first, read page by page.
pub async fn all_transactions(
    models: &dyn ReadModelReader,
    wallet: &WalletId,
) -> anyhow::Result<Vec<Revised<TransactionEntry>>> {
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let page = models
            .transactions(wallet, &PageRequest::new(Some(100), after)?)
            .await?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

/// Every payment of a wallet, newest first, read page by page.
pub async fn all_payments(
    models: &dyn ReadModelReader,
    wallet: &WalletId,
) -> anyhow::Result<Vec<Revised<WalletPayment>>> {
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let page = models
            .payments(wallet, &PageRequest::new(Some(100), after)?)
            .await?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}
