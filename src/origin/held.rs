//! The originals held in memory at once, in bytes (`performance.source_budget`). A download
//! takes its share once its size is known (the most it may be, `max_source_bytes`, when the
//! origin does not announce it), before any of the body is read, and gives it back when the
//! last handle on the body is dropped: after the last job using the original has ended, since
//! jobs hold the `Bytes` they decode. So a burst of misses over many large originals waits at
//! the origin, a few originals at a time, instead of holding every one of them while their jobs
//! wait for the CPU pool; and a shared download counts once however many jobs use it.
//!
//! It never deadlocks with the processing budget: what frees source bytes (jobs ending) never
//! waits for source bytes.

use super::error::OriginError;
use crate::budget::{Budget, Grant, Refusal};
use crate::metrics;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub struct SourceBudget {
    budget: Arc<Budget>,
    /// The longest a download waits for room before it is refused (503, try again).
    wait_limit: Duration,
}

impl SourceBudget {
    /// `total` bytes; `max_waiting` downloads may wait for room, each at most `wait_limit`.
    pub fn new(total: u64, max_waiting: usize, wait_limit: Duration) -> SourceBudget {
        SourceBudget {
            // No cap on how many originals are held, only on their bytes.
            budget: Arc::new(
                Budget::new(total, usize::MAX / 2, 0, max_waiting)
                    .with_gauge(metrics::SOURCE_BYTES_HELD.clone()),
            ),
            wait_limit,
        }
    }

    /// Room for a body of at most `bytes` (never more than the whole budget: the config
    /// keeps `max_source_bytes` within it), waiting for it if others hold it. Refused with
    /// [`OriginError::Busy`] when too many downloads wait already or the wait is too long.
    pub async fn hold(&self, bytes: u64) -> Result<Held, OriginError> {
        let bytes = bytes.min(self.budget.total());
        match tokio::time::timeout(self.wait_limit, self.budget.acquire(bytes)).await {
            Ok(Ok(grant)) => Ok(Held(grant)),
            Ok(Err(Refusal::OverBudget)) | Ok(Err(Refusal::QueueFull)) | Err(_) => {
                metrics::SOURCE_BUDGET_REFUSED.inc();
                Err(OriginError::Busy)
            }
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn in_use(&self) -> u64 {
        self.budget.in_use()
    }
}

/// Source bytes set aside for one body; counted in `imgate_source_bytes_held` while alive.
pub struct Held(Grant);

impl Held {
    /// Keep only `body`'s length (a reservation for the most a body could be is cut to what
    /// it was) and tie the hold to `body`: every clone of the returned `Bytes` shares it, and
    /// the bytes go back to the budget with the last one.
    pub fn attach(mut self, body: Bytes) -> Bytes {
        self.0.shrink(body.len() as u64);
        Bytes::from_owner(HeldBody { body, _held: self })
    }
}

/// A body and its hold, dropped together.
struct HeldBody {
    body: Bytes,
    _held: Held,
}

impl AsRef<[u8]> for HeldBody {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_holds_its_bytes_until_its_last_handle_goes() {
        let budget = SourceBudget::new(100, 4, Duration::from_secs(5));
        let held = budget.hold(100).await.unwrap();
        assert_eq!(budget.in_use(), 100);
        // A reservation for the most it could be, cut to what it was.
        let body = held.attach(Bytes::from(vec![7u8; 30]));
        assert_eq!(budget.in_use(), 30);
        let clone = body.slice(10..20);
        drop(body);
        assert_eq!(budget.in_use(), 30, "given back while a clone lives");
        assert_eq!(&clone[..], &[7u8; 10]);
        drop(clone);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_wait_too_long_or_too_many_waiting_is_busy() {
        let budget = Arc::new(SourceBudget::new(100, 1, Duration::from_millis(50)));
        let _all = budget.hold(100).await.unwrap();
        assert!(matches!(budget.hold(10).await, Err(OriginError::Busy)));
        let b2 = budget.clone();
        let waiting = tokio::spawn(async move { b2.hold(10).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            matches!(budget.hold(10).await, Err(OriginError::Busy)),
            "queue of one"
        );
        assert!(matches!(waiting.await.unwrap(), Err(OriginError::Busy)));
    }
}
