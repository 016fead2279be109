//! A step whose only wallet change is one hold ([`StepPlan::hold_alone`]: reserving a
//! payment's funds, or releasing them) is two plain writes rather than one transaction: the
//! wallet's item, then the log entry. That is 2 write units instead of 4, on every payment.
//!
//! What makes the first write safe alone is that the wallet's item carries the hold itself: an
//! attribute named after the payment (`hold#<payment_id>`, the amount held), so the write says
//! whether it happened already:
//!
//! - a reservation moves the amount from `available` to `reserved` and sets the hold, on the
//!   condition that the hold is not there yet (and the funds are): a redelivery finds the hold
//!   and goes on to the log entry;
//! - a release moves the amount back and removes the hold, on the condition that the hold is
//!   there with that amount: a redelivery finds it gone and writes the log entry alone;
//! - settling pays the hold out in its transaction (see `wallet_write`), on the same condition.
//!
//! So a wallet's `reserved` is always the sum of its holds, and a step interrupted between its
//! two writes is finished by the request's next delivery, the hold taken or given back once.
//!
//! A hold can land when its payment no longer wants it: two deliveries of one request run at
//! once, and one of them writes its hold after the other's was paid out (settled) or given
//! back, or after the payment failed for want of funds that arrived a moment later. The late
//! one finds its version taken when it writes its log entry, reads the log, and gives back
//! what it held ([`DynamoDbLedger::record_hold`]). If it stops in between (its invocation
//! crashed), the payment's deadline check does ([`lift_stray_hold`](paysaga_domain::ports::PaymentLog::lift_stray_hold): a read of
//! the hold for every terminal payment, a write only for one still held).

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::AttributeValue;

use super::{DynamoDbLedger, MAX_FOLDS, is_conditional_check_failure, n, s, sdk_error, wallet_key};
use paysaga_domain::money::MAX_MINOR_UNITS;
use paysaga_domain::ports::PaymentHistory;
use paysaga_domain::ports::{Contention, RecordStep, StoreError};
use paysaga_domain::saga::{Hold, WalletHold};
use paysaga_domain::{
    Money, Payment, PaymentId, StepPlan, WalletChange, WalletEffect, WalletId, WalletRejection,
};
use paysaga_services::contention::ContentionRetry;

/// The attribute of a wallet's item that holds `payment`'s hold on it.
pub(super) fn hold_attribute(payment: &PaymentId) -> String {
    format!("hold#{payment}")
}

/// What became of a conditional write of a hold.
enum HoldWrite {
    Written,
    /// Its condition failed: nothing was written.
    ConditionFailed,
}

impl DynamoDbLedger {
    /// Records `plan`, whose only wallet change is `held`: the hold, then the log entry.
    pub(super) async fn record_hold(
        &self,
        plan: &StepPlan,
        held: &WalletHold,
    ) -> Result<RecordStep, StoreError> {
        let payment = &plan.entry.payment_id;
        match held.hold {
            Hold::Reserve(amount) => {
                if let Some(refusal) = self.take_hold(&held.wallet_id, payment, amount).await? {
                    return Ok(RecordStep::Refused(refusal));
                }
            }
            Hold::Release(amount) => {
                // Not held: an earlier delivery released it and stopped before its log entry.
                self.lift_hold(&held.wallet_id, payment, amount).await?;
            }
            Hold::AcceptsCurrency(_) => {
                return Err(StoreError::Permanent(format!(
                    "payment {payment}: a currency check is no hold to write"
                )));
            }
        }
        if self.put_log_entry(&plan.entry).await? {
            return Ok(RecordStep::Recorded);
        }
        if let Hold::Reserve(amount) = held.hold {
            // Another delivery wrote this version. If the payment holds no funds any more (it
            // failed for want of them a moment before this hold landed, or it was settled or
            // released before), whatever this one held is nobody's: give it back.
            let history = self.history(payment).await?;
            let payment_now = Payment::from_log(&history)
                .map_err(|error| StoreError::Permanent(error.to_string()))?;
            if !payment_now.holds_funds()
                && self.lift_hold(&held.wallet_id, payment, amount).await?
            {
                tracing::warn!(
                    payment_id = %payment,
                    status = ?payment_now.status,
                    "a reservation landed after its payment was done with funds: given back"
                );
            }
        }
        Ok(RecordStep::VersionTaken)
    }

    /// Gives back what `payment`, terminal, still holds on its payer's wallet (see the module's
    /// introduction): `false` when it holds nothing there, which an eventually consistent read
    /// of the hold alone tells (half a read unit; the check comes long after any write of the
    /// payment). A payment that is not terminal may hold funds rightly: nothing is done.
    pub(super) async fn lift_stray(&self, payment: &Payment) -> Result<bool, StoreError> {
        let Some(payer) = payment.request.from_wallet() else {
            return Ok(false);
        };
        if !payment.status.is_terminal() {
            return Ok(false);
        }
        let id = payment.request.payment_id();
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.wallets)
            .set_key(Some(wallet_key(payer)))
            .projection_expression("#hold")
            .expression_attribute_names("#hold", hold_attribute(id))
            .consistent_read(false)
            .send()
            .await
            .map_err(|error| sdk_error("GetItem", error))?;
        let held = output.item.is_some_and(|item| !item.is_empty());
        if !held {
            return Ok(false);
        }
        self.lift_hold(payer, id, payment.request.amount()).await
    }

    /// Holds `amount` of `wallet`'s available funds for `payment`, unless it holds them
    /// already; the refusal when it cannot (an unknown wallet, another currency, too little
    /// available). A wallet with credit shards that covers the amount only with them has them
    /// folded in first.
    async fn take_hold(
        &self,
        wallet: &WalletId,
        payment: &PaymentId,
        amount: Money,
    ) -> Result<Option<WalletRejection>, StoreError> {
        let attribute = hold_attribute(payment);
        let mut folds = 0;
        loop {
            let update = self
                .hold_update(wallet, &attribute, amount)
                .update_expression(
                    "SET available = available - :amount, reserved = reserved + :amount, \
                     #hold = :amount",
                )
                .condition_expression(
                    "attribute_exists(wallet_id) AND currency = :currency \
                     AND attribute_not_exists(#hold) \
                     AND available >= :amount AND reserved <= :headroom",
                )
                .expression_attribute_values(
                    ":headroom",
                    n(MAX_MINOR_UNITS - amount.minor_units()),
                );
            if let HoldWrite::Written = self.write_hold(update).await? {
                return Ok(None);
            }
            // Held already (a redelivery), or refused: the wallet as it is now says which.
            let effect = WalletEffect {
                wallet_id: wallet.clone(),
                change: WalletChange::Reserve(amount),
            };
            let Some(item) = self.get(&self.tables.wallets, wallet_key(wallet)).await? else {
                return Ok(effect.refusal(None));
            };
            if let Some(held) = item.get(&attribute) {
                return match held_amount(held) {
                    Some(units) if units == amount.minor_units() => Ok(None),
                    _ => Err(StoreError::Permanent(format!(
                        "wallet {wallet} holds {held:?} for payment {payment}, not {amount}"
                    ))),
                };
            }
            let current = self.wallet_of_item(wallet, item).await?;
            if let Some(refusal) = effect.refusal(Some(&current)) {
                return Ok(Some(refusal));
            }
            // It covers the amount with its shards' credits: fold them in and try again.
            if current.credit_shards() == 0 || folds == MAX_FOLDS {
                return Err(StoreError::Transient(format!(
                    "wallet {wallet} refused a hold it now accepts"
                )));
            }
            self.fold_credits(wallet).await?;
            folds += 1;
        }
    }

    /// Gives the funds `payment` holds on `wallet` back to its available funds, if it holds
    /// `amount` there: `false` when it holds nothing (released already, or never held).
    async fn lift_hold(
        &self,
        wallet: &WalletId,
        payment: &PaymentId,
        amount: Money,
    ) -> Result<bool, StoreError> {
        let attribute = hold_attribute(payment);
        let update = self
            .hold_update(wallet, &attribute, amount)
            .update_expression(
                "REMOVE #hold SET reserved = reserved - :amount, available = available + :amount",
            )
            .condition_expression(
                "attribute_exists(wallet_id) AND currency = :currency AND #hold = :amount \
                 AND reserved >= :amount AND available <= :headroom",
            )
            .expression_attribute_values(":headroom", n(MAX_MINOR_UNITS - amount.minor_units()));
        match self.write_hold(update).await? {
            HoldWrite::Written => Ok(true),
            HoldWrite::ConditionFailed => {
                // Nothing held, or the books disagree with the hold: tell which.
                let item = self.get(&self.tables.wallets, wallet_key(wallet)).await?;
                match item.as_ref().and_then(|item| item.get(&attribute)) {
                    None => Ok(false),
                    Some(held) => Err(StoreError::Permanent(format!(
                        "wallet {wallet} cannot give back {held:?} held for payment {payment} \
                         as {amount}"
                    ))),
                }
            }
        }
    }

    /// An `UpdateItem` of `wallet`'s item naming the hold `#hold`, `:amount` and `:currency`.
    fn hold_update(
        &self,
        wallet: &WalletId,
        attribute: &str,
        amount: Money,
    ) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.tables.wallets)
            .set_key(Some(wallet_key(wallet)))
            .expression_attribute_names("#hold", attribute)
            .expression_attribute_values(":amount", n(amount.minor_units()))
            .expression_attribute_values(":currency", s(amount.currency().code()))
    }

    /// Sends a hold's write, again while a transaction on the wallet's item (another payment
    /// settling) cancels it, as [`ContentionRetry::STORE`] says.
    async fn write_hold(&self, update: UpdateItemFluentBuilder) -> Result<HoldWrite, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<UpdateItemOutput, SdkError<UpdateItemError>> =
                update.clone().send().await;
            match result {
                Ok(_) => return Ok(HoldWrite::Written),
                Err(error) if is_conditional_check_failure(&error) => {
                    return Ok(HoldWrite::ConditionFailed);
                }
                Err(error) if is_transaction_conflict(&error) => {
                    match ContentionRetry::STORE.backoff_after(attempt) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => {
                            return Err(StoreError::Contended(
                                Contention::Conflict,
                                format!("UpdateItem of a hold: in a transaction {attempt} times"),
                            ));
                        }
                    }
                }
                Err(error) => return Err(sdk_error("UpdateItem", error)),
            }
        }
    }
}

fn is_transaction_conflict(error: &SdkError<UpdateItemError>) -> bool {
    matches!(
        error.as_service_error(),
        Some(UpdateItemError::TransactionConflictException(_))
    )
}

fn held_amount(held: &AttributeValue) -> Option<u64> {
    held.as_n().ok().and_then(|units| units.parse().ok())
}
