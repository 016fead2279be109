//! The one "stop now" signal every task of local-lambda watches.

use std::time::Duration;

use tokio::sync::watch;

/// Returned by waits that ended because shutdown was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutdown requested")]
pub struct ShutdownRequested;

/// Requests shutdown; held by whoever handles signals.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Tells tasks that shutdown was requested. Cheap to clone. Dropping the trigger without
/// calling it counts as a request, so tasks never outlive the one who could stop them.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger(sender), Shutdown(receiver))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub fn is_requested(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Resolves once shutdown is requested.
    pub async fn requested(&self) {
        let mut receiver = self.0.clone();
        // An error means the trigger is gone: that is a request too.
        let _ = receiver.wait_for(|requested| *requested).await;
    }

    /// Waits `duration`, or less if shutdown is requested meanwhile.
    pub async fn delay(&self, duration: Duration) -> Result<(), ShutdownRequested> {
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(()),
            () = self.requested() => Err(ShutdownRequested),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_interrupts_delays() {
        let (trigger, shutdown) = shutdown_channel();
        assert!(!shutdown.is_requested());
        assert_eq!(shutdown.delay(Duration::from_millis(1)).await, Ok(()));
        trigger.trigger();
        assert!(shutdown.is_requested());
        assert_eq!(
            shutdown.delay(Duration::from_secs(3600)).await,
            Err(ShutdownRequested)
        );
    }

    #[tokio::test]
    async fn dropping_the_trigger_requests_shutdown() {
        let (trigger, shutdown) = shutdown_channel();
        drop(trigger);
        assert!(shutdown.is_requested());
        shutdown.requested().await;
    }
}
