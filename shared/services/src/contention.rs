//! Writes that lose to contention: DynamoDB cancels a transaction that touches an item another
//! transaction holds (`TransactionConflict`), and refuses a write past an item's capacity
//! (throttling). Neither says anything about the write itself: the same write a moment later
//! succeeds. One policy for how a store tries again before it tells its caller, shared by the
//! DynamoDB adapters and their in-memory model ([`crate::fakes::capacity`]), so that the model
//! is run with the retries the adapters make.

use std::time::Duration;

/// How often, and how far apart, a write cancelled for contention is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentionRetry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait after the first attempt, doubling after each one after it ...
    pub first_backoff: Duration,
    /// ... up to this.
    pub longest_backoff: Duration,
}

impl ContentionRetry {
    /// The ledger's and the event store's: eight attempts, 20, 40, 80, then 160 ms apart, each
    /// wait plus up to as much again at random (so 0.8-1.6 s in all). A write that lost to
    /// contention is worth waiting for where it runs: retried later instead, its message waits
    /// a second or more ([`CONTENTION_WAIT`]) and its whole run starts again. Each attempt
    /// meets an item held about as often as the one before (a busy item is busy a share of the
    /// time, not all of it), so the attempts are many rather than far apart: at a third of the
    /// time held, eight attempts all lose once in 7,000 writes.
    pub const STORE: Self = Self {
        attempts: 8,
        first_backoff: Duration::from_millis(20),
        longest_backoff: Duration::from_millis(160),
    };

    /// The wait after attempt `attempt` (1 for the first), with its jitter; `None` once the
    /// attempts are spent.
    pub fn backoff_after(&self, attempt: u32) -> Option<Duration> {
        if attempt >= self.attempts {
            return None;
        }
        let base = self
            .first_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.longest_backoff);
        let jitter = base.mul_f64(fastrand::f64());
        Some(base + jitter)
    }
}

/// How many times one write loses on a wallet's item or stream before the store spreads it: a
/// credit on the wallet's own item, over credit shards
/// ([`paysaga_domain::wallet::HOT_WALLET_CREDIT_SHARDS`]); an append on the wallet's stream,
/// over parts of it ([`paysaga_domain::history::HOT_WALLET_STREAM_PARTS`]). A quiet wallet's
/// item and stream are free nearly all the time (a wallet paid once a second loses four times
/// in a row once in 10^8 credits): four losses mean it takes more than one item or one stream
/// can.
pub const SPREAD_AFTER: u32 = 4;

/// How long work that lost to contention past the store's retries waits before it is tried
/// again (a message's next delivery): a moment, chosen at random in these bounds so the
/// writers that collided do not collide again. Such work is never given up: past its queue's
/// last delivery, it is sent again as a fresh message.
pub const CONTENTION_WAIT: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5));

/// A wait within [`CONTENTION_WAIT`], at random.
pub fn redelivery_wait() -> Duration {
    let (shortest, longest) = CONTENTION_WAIT;
    shortest + (longest - shortest).mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waits_double_with_jitter_until_the_attempts_are_spent() {
        let retry = ContentionRetry::STORE;
        for (attempt, base_ms) in [(1, 20), (2, 40), (3, 80), (4, 160), (5, 160), (7, 160)] {
            let wait = retry.backoff_after(attempt).expect("attempts left");
            let base = Duration::from_millis(base_ms);
            assert!(wait >= base && wait <= base * 2, "{attempt}: {wait:?}");
        }
        assert_eq!(retry.backoff_after(8), None, "eight attempts in all");
    }
}
