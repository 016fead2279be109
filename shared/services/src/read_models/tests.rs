use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use paysaga_domain::events::{EventDetail, FundsDeposited, PaymentEventData};
use paysaga_domain::ports::ReadModelReader;
use paysaga_domain::{
    DepositId, FailureReason, Money, PaymentId, PaymentRequest, PaymentStatus, WalletId,
};

fn wallet(id: &str) -> WalletId {
    WalletId::parse(id).unwrap()
}

fn eur(minor_units: u64) -> Money {
    Money::new(minor_units, "EUR".parse().unwrap()).unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

fn request(id: &str, amount: u64) -> PaymentRequest {
    PaymentRequest::new(
        PaymentId::parse(id).unwrap(),
        wallet("wal_alice"),
        wallet("wal_bob"),
        eur(amount),
    )
    .unwrap()
}

fn requested(id: &str, amount: u64, at: DateTime<Utc>) -> DomainEvent {
    DomainEvent::payment_requested(&request(id, amount), at)
}

fn outcome(
    id: &str,
    amount: u64,
    requested_at: DateTime<Utc>,
    failure: Option<FailureReason>,
) -> DomainEvent {
    let request = request(id, amount);
    let data = PaymentEventData {
        payment_id: request.payment_id().clone(),
        flow: request.flow().clone(),
        amount: request.amount(),
        status: if failure.is_some() {
            PaymentStatus::Failed
        } else {
            PaymentStatus::Completed
        },
        failure: failure.clone(),
        requested_at: Some(requested_at),
    };
    let detail = EventDetail::new(format!("{id}/4"), requested_at + Duration::seconds(1), data);
    match failure {
        None => DomainEvent::PaymentCompleted(detail),
        Some(_) => DomainEvent::PaymentFailed(detail),
    }
}

fn deposited(id: &str, amount: u64, at: DateTime<Utc>) -> DomainEvent {
    DomainEvent::funds_deposited(
        FundsDeposited {
            deposit_id: DepositId::parse(id).unwrap(),
            wallet_id: wallet("wal_alice"),
            amount: eur(amount),
            issued_by: None,
            reason: None,
        },
        at,
    )
}

async fn all_transactions(models: &InMemoryReadModels, id: &str) -> Vec<Revised<TransactionEntry>> {
    models
        .transactions(&wallet(id), &PageRequest::new(Some(100), None).unwrap())
        .await
        .unwrap()
        .items
}

async fn all_payments(models: &InMemoryReadModels, id: &str) -> Vec<Revised<WalletPayment>> {
    models
        .payments(&wallet(id), &PageRequest::new(Some(100), None).unwrap())
        .await
        .unwrap()
        .items
}

#[test]
fn a_top_up_and_a_payout_project_their_one_wallet_as_money_in_and_out() {
    use paysaga_domain::ids::{FundingInstrumentId, PayoutDestinationId};
    use paysaga_domain::payment::Flow;
    let flows = [
        Flow::TopUp {
            funding_instrument: FundingInstrumentId::parse("fi_card").unwrap(),
            to_wallet: wallet("wal_alice"),
        },
        Flow::Payout {
            from_wallet: wallet("wal_alice"),
            destination: PayoutDestinationId::parse("dst_bank").unwrap(),
        },
    ];
    let expected = [
        (TransactionKind::TopUp, 700, PaymentRole::Payee),
        (TransactionKind::Payout, -700, PaymentRole::Payer),
    ];
    for (flow, (kind, signed, role)) in flows.into_iter().zip(expected) {
        let request =
            PaymentRequest::of_flow(PaymentId::parse("pay_f").unwrap(), flow, eur(700)).unwrap();
        let changes = project(&DomainEvent::payment_requested(&request, t0()));
        let [change] = &changes[..] else {
            panic!("one wallet's item: {changes:?}")
        };
        let transaction = &change.transaction;
        assert_eq!(
            (
                &transaction.wallet_id,
                transaction.kind,
                transaction.amount.minor_units
            ),
            (&wallet("wal_alice"), kind, signed)
        );
        assert_eq!(transaction.counterparty, None);
        let payment = change.payment.as_ref().expect("a payment entry");
        assert_eq!((payment.role, &payment.flow), (role, request.flow()));
        assert_eq!(payment.order(), transaction.order(), "one item, one key");
    }
}

#[test]
fn a_payment_event_projects_both_wallets_into_both_read_models() {
    let changes = project(&outcome("pay_1", 2_500, t0(), None));
    // One item per wallet, holding what both read models show: two writes for a transfer.
    assert_eq!(changes.len(), 2);
    let sent = &changes[0].transaction;
    assert_eq!(sent.kind, TransactionKind::PaymentSent);
    assert_eq!(sent.amount.minor_units, -2_500);
    assert_eq!(sent.counterparty, Some(wallet("wal_bob")));
    assert_eq!(sent.at, t0());
    let received = &changes[1].transaction;
    assert_eq!(
        (received.kind, received.amount.minor_units),
        (TransactionKind::PaymentReceived, 2_500)
    );
    let roles: Vec<Option<PaymentRole>> = changes
        .iter()
        .map(|change| change.payment.as_ref().map(|payment| payment.role))
        .collect();
    assert_eq!(roles, [Some(PaymentRole::Payer), Some(PaymentRole::Payee)]);
    let positions: Vec<Position> = changes.iter().map(ReadModelChange::position).collect();
    assert_eq!(positions[0].list, "wallet#wal_alice#activity");
    assert_eq!(positions[1].list, "wallet#wal_bob#activity");
    assert_eq!(positions[0].order, "2026-11-26T12:00:00.000000000Z#pay_1");
}

#[test]
fn every_event_of_a_payment_lands_on_the_same_items() {
    let request_positions: Vec<Position> = project(&requested("pay_1", 10, t0()))
        .iter()
        .map(ReadModelChange::position)
        .collect();
    let outcome_positions: Vec<Position> = project(&outcome("pay_1", 10, t0(), None))
        .iter()
        .map(ReadModelChange::position)
        .collect();
    assert_eq!(request_positions, outcome_positions);
}

#[tokio::test]
async fn a_duplicate_event_changes_nothing() {
    let models = InMemoryReadModels::default();
    let event = outcome("pay_1", 10, t0(), None);
    let first = apply_event(&event, &models).await.unwrap();
    let again = apply_event(&event, &models).await.unwrap();
    assert_eq!((first.changed, first.unchanged), (2, 0));
    assert_eq!((again.changed, again.unchanged), (0, 2));
    let history = all_transactions(&models, "wal_alice").await;
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].revision, 1);
}

#[tokio::test]
async fn an_outcome_before_its_request_is_not_undone_by_the_request() {
    let failure = FailureReason::InsufficientFunds {
        wallet_id: wallet("wal_alice"),
    };
    let in_order = InMemoryReadModels::default();
    replay(
        &[
            requested("pay_1", 10, t0()),
            outcome("pay_1", 10, t0(), Some(failure.clone())),
        ],
        &in_order,
    )
    .await
    .unwrap();
    let reversed = InMemoryReadModels::default();
    let counts = replay(
        &[
            outcome("pay_1", 10, t0(), Some(failure.clone())),
            requested("pay_1", 10, t0()),
        ],
        &reversed,
    )
    .await
    .unwrap();
    assert_eq!((counts.changed, counts.unchanged), (2, 2));

    for wallet_id in ["wal_alice", "wal_bob"] {
        let reversed_payments = all_payments(&reversed, wallet_id).await;
        assert_eq!(reversed_payments.len(), 1);
        assert_eq!(reversed_payments[0].entry.status, PaymentStatus::Failed);
        assert_eq!(reversed_payments[0].entry.failure, Some(failure.clone()));
        assert_eq!(reversed_payments[0].revision, 1);
        let in_order_payments = all_payments(&in_order, wallet_id).await;
        assert_eq!(in_order_payments[0].revision, 2, "PENDING, then FAILED");
        assert_eq!(in_order_payments[0].entry, reversed_payments[0].entry);
    }
}

#[tokio::test]
async fn lists_are_newest_first_and_paged_with_a_cursor() {
    let models = InMemoryReadModels::default();
    let mut events = Vec::new();
    for i in 0..5 {
        events.push(deposited(
            &format!("dep_{i}"),
            100,
            t0() + Duration::minutes(i),
        ));
    }
    replay(&events, &models).await.unwrap();

    let first = models
        .transactions(
            &wallet("wal_alice"),
            &PageRequest::new(Some(2), None).unwrap(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = first
        .items
        .iter()
        .map(|item| item.entry.transaction_id.as_str())
        .collect();
    assert_eq!(ids, ["dep_4", "dep_3"]);
    let cursor = Cursor::decode(&first.next.clone().unwrap().encode()).unwrap();
    let second = models
        .transactions(
            &wallet("wal_alice"),
            &PageRequest::new(Some(3), Some(cursor)).unwrap(),
        )
        .await
        .unwrap();
    let ids: Vec<&str> = second
        .items
        .iter()
        .map(|item| item.entry.transaction_id.as_str())
        .collect();
    assert_eq!(ids, ["dep_2", "dep_1", "dep_0"]);
    assert_eq!(second.next, None, "the last page");
}

#[tokio::test]
async fn payments_are_the_items_with_a_payment_entry_paged_past_the_deposits_between_them() {
    let models = InMemoryReadModels::default();
    let mut events = Vec::new();
    for i in 0..4 {
        let at = t0() + Duration::minutes(2 * i);
        events.push(outcome(&format!("pay_{i}"), 10, at, None));
        events.push(deposited(
            &format!("dep_{i}"),
            100,
            at + Duration::minutes(1),
        ));
    }
    replay(&events, &models).await.unwrap();
    assert_eq!(all_transactions(&models, "wal_alice").await.len(), 8);

    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = models
            .payments(
                &wallet("wal_alice"),
                &PageRequest::new(Some(3), after).unwrap(),
            )
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        ids.extend(
            page.items
                .iter()
                .map(|item| item.entry.payment_id.to_string()),
        );
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        ids,
        ["pay_3", "pay_2", "pay_1", "pay_0"],
        "no deposit, none twice"
    );
}

#[test]
fn page_requests_refuse_bad_limits_and_foreign_cursors() {
    assert_eq!(PageRequest::new(None, None).unwrap().limit, 20);
    assert_eq!(PageRequest::new(Some(0), None), Err(PageError::Limit(0)));
    assert_eq!(
        PageRequest::new(Some(101), None),
        Err(PageError::Limit(101))
    );
    for bad in ["", "zz", "abc", "6869", "ff"] {
        assert_eq!(Cursor::decode(bad), Err(PageError::Cursor), "{bad:?}");
    }
    let cursor = Cursor::after(&order_key(t0(), "pay_1"));
    assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
}

#[tokio::test]
async fn read_models_rebuilt_from_the_audit_trail_equal_the_live_ones_whatever_the_order() {
    use crate::fakes::InMemoryEventStore;
    let failure = FailureReason::InsufficientFunds {
        wallet_id: wallet("wal_alice"),
    };
    let mut events = vec![deposited("dep_1", 500, t0())];
    for i in 0..12 {
        let id = format!("pay_{i}");
        let at = t0() + Duration::seconds(i);
        events.push(requested(&id, 10, at));
        let failed = (i % 3 == 0).then(|| failure.clone());
        events.push(outcome(&id, 10, at, failed));
    }
    // Live: every event, outcomes before requests for half of them, and duplicates.
    let live = InMemoryReadModels::default();
    let mut delivered = events.clone();
    delivered.swap(1, 2);
    delivered.swap(5, 6);
    delivered.extend(events.iter().take(7).cloned());
    replay(&delivered, &live).await.unwrap();

    let store = InMemoryEventStore::new(5);
    for event in &events {
        store.append(event, Utc::now()).await.unwrap();
    }
    let rebuilt = InMemoryReadModels::default();
    let counts = rebuild(&store, &rebuilt).await.unwrap();
    assert_eq!(counts.events, events.len() as u64);

    for wallet_id in ["wal_alice", "wal_bob"] {
        let content = |items: Vec<Revised<TransactionEntry>>| {
            items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
        };
        let live_history = content(all_transactions(&live, wallet_id).await);
        assert_eq!(
            live_history,
            content(all_transactions(&rebuilt, wallet_id).await)
        );
        assert!(live_history.len() >= 12, "{wallet_id}");
        let payments = |items: Vec<Revised<WalletPayment>>| {
            items.into_iter().map(|item| item.entry).collect::<Vec<_>>()
        };
        assert_eq!(
            payments(all_payments(&live, wallet_id).await),
            payments(all_payments(&rebuilt, wallet_id).await)
        );
    }
}

/// Steps of a bounded rebuild, each from the last one's `next`, until the audit trail is done:
/// how many steps it took and what they applied together.
async fn rebuild_in_steps(
    store: &dyn EventStore,
    into: &dyn ReadModelWriter,
    budget: PageBudget,
) -> (usize, ReplayCounts) {
    let (mut steps, mut counts, mut after) = (0, ReplayCounts::default(), None);
    loop {
        let page = rebuild_page(store, into, after.as_ref(), budget)
            .await
            .unwrap();
        steps += 1;
        counts.add(page.counts);
        match page.next {
            Some(next) => after = Some(next),
            None => return (steps, counts),
        }
    }
}

async fn audit_trail_of(events: &[DomainEvent]) -> crate::fakes::InMemoryEventStore {
    let store = crate::fakes::InMemoryEventStore::new(5);
    for event in events {
        store.append(event, Utc::now()).await.unwrap();
    }
    store
}

fn deposits(n: usize) -> Vec<DomainEvent> {
    (0..n)
        .map(|i| {
            deposited(
                &format!("dep_{i:02}"),
                100,
                t0() + Duration::seconds(i as i64),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rebuild_step_reads_no_more_items_than_its_budget() {
    let store = audit_trail_of(&deposits(7)).await;
    let into = InMemoryReadModels::default();
    let budget = PageBudget {
        items: 3,
        time: std::time::Duration::from_secs(60),
    };
    let first = rebuild_page(&store, &into, None, budget).await.unwrap();
    assert_eq!(first.counts.events, 3);
    assert!(first.next.is_some());
    // The rest, three at a time: 3 + 3 + 1.
    let (steps, counts) = rebuild_in_steps(&store, &into, budget).await;
    assert_eq!((steps, counts.events), (3, 7));
    assert_eq!(all_transactions(&into, "wal_alice").await.len(), 7);
}

#[tokio::test]
async fn a_rebuild_step_out_of_time_stops_after_an_event_and_the_next_resumes_there() {
    let events = deposits(5);
    let store = audit_trail_of(&events).await;
    let into = InMemoryReadModels::default();
    // No time at all: each step still applies one event, so every step gains ground.
    let budget = PageBudget {
        items: 100,
        time: std::time::Duration::ZERO,
    };
    let (steps, counts) = rebuild_in_steps(&store, &into, budget).await;
    assert_eq!((steps, counts.events, counts.unchanged), (5, 5, 0));

    // Each event applied once, as a rebuild in one go applies them.
    let whole = InMemoryReadModels::default();
    rebuild(&store, &whole).await.unwrap();
    assert_eq!(
        all_transactions(&into, "wal_alice").await,
        all_transactions(&whole, "wal_alice").await
    );
}
