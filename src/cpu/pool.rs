//! The pool itself: jobs admitted by their estimated memory cost against a byte budget
//! (`budget.rs`): a burst of expensive jobs queues instead of multiplying, a job over the whole
//! budget is refused (413), and when the wait queue is full the job is refused at once (503 +
//! Retry-After) instead of piling up memory. The pool has one thread per processing slot plus
//! one for the place kept for light jobs, so a thumbnail never waits for a thread behind
//! expensive jobs. A panic in a job costs its request only (422).

use super::decodes::SharedDecodes;
use super::release::{release_loop, Activity};
use crate::error::ImgateError;
use crate::metrics::{self, ActiveGuard};
use crate::pipeline::PipelineError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;

use crate::budget::{Budget, Refusal};

pub struct CpuPool {
    pool: Arc<rayon::ThreadPool>,
    budget: Arc<Budget>,
    activity: Arc<Activity>,
    decodes: Arc<SharedDecodes>,
}

/// A job costing at most this share of the budget is light: it may take the place kept
/// beside the `concurrency` slots (a thumbnail of a 2 MP JPEG costs about 2 MiB).
const LIGHT_SHARE_OF_BUDGET: u64 = 32;

impl CpuPool {
    /// A pool of `concurrency` + 1 rayon threads named `imgate-cpu-N`; `concurrency` jobs at
    /// once (one more if light) within `budget_bytes` of estimated cost; `max_waiting` jobs
    /// queued behind them. `shared_decode_bytes` bounds the decodes kept for a burst.
    pub fn new(
        concurrency: usize,
        max_waiting: usize,
        shared_decode_bytes: u64,
        budget_bytes: u64,
    ) -> CpuPool {
        let concurrency = concurrency.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(concurrency + 1)
            .thread_name(|i| format!("imgate-cpu-{i}"))
            .build()
            .expect("rayon pool starts");
        let pool = Arc::new(pool);
        let activity = Arc::new(Activity::default());
        let decodes = Arc::new(SharedDecodes::new(shared_decode_bytes));
        let (weak_pool, weak_activity, weak_decodes) = (
            Arc::downgrade(&pool),
            Arc::downgrade(&activity),
            Arc::downgrade(&decodes),
        );
        std::thread::Builder::new()
            .name("imgate-release".into())
            .spawn(move || release_loop(weak_pool, weak_activity, weak_decodes))
            .expect("release thread starts");
        CpuPool {
            pool,
            budget: Arc::new(
                Budget::new(
                    budget_bytes,
                    concurrency,
                    budget_bytes / LIGHT_SHARE_OF_BUDGET,
                    max_waiting,
                )
                .with_gauge(metrics::PROCESSING_BUDGET_IN_USE.clone()),
            ),
            activity,
            decodes,
        }
    }

    /// The decodes shared by the jobs of the current burst.
    pub fn decodes(&self) -> Arc<SharedDecodes> {
        self.decodes.clone()
    }

    /// The processing budget in bytes.
    pub fn budget_bytes(&self) -> u64 {
        self.budget.total()
    }

    /// Run `job`, estimated to hold `cost` bytes at its peak, on the pool once the budget has
    /// room for it. A panic inside it (a decoder bug on a hostile image) costs this request
    /// only: it is caught and answered 422.
    pub async fn run<T, F>(&self, cost: u64, job: F) -> Result<T, ImgateError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PipelineError> + Send + 'static,
    {
        // A guard, not inc/dec around the await: a client that goes away drops this future.
        let queued = ActiveGuard::new(&metrics::QUEUE_LENGTH);
        let admitted = self.budget.acquire(cost).await;
        drop(queued);
        let permit = match admitted {
            Ok(grant) => grant,
            Err(Refusal::OverBudget) => {
                metrics::REJECTED_OVER_BUDGET.inc();
                return Err(super::cost::over_budget(cost, self.budget.total()));
            }
            Err(Refusal::QueueFull) => {
                metrics::REJECTED_OVERLOAD.inc();
                return Err(ImgateError::overloaded(1));
            }
        };
        let (tx, rx) = oneshot::channel();
        let activity = self.activity.clone();
        activity.started.fetch_add(1, Ordering::AcqRel);
        activity.running.fetch_add(1, Ordering::AcqRel);
        self.pool.spawn(move || {
            let _active = ActiveGuard::new(&metrics::ACTIVE_PROCESSING);
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            activity.running.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
            // The receiver is gone only if the client went away; nothing to do then.
            let _ = tx.send(result);
        });
        match rx.await {
            Ok(Ok(result)) => result.map_err(ImgateError::from),
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ImgateError::new(
                    422,
                    "image could not be decoded",
                    format!("pipeline panicked: {what}"),
                    crate::error::Blame::Downstream,
                ))
            }
            Err(_) => Err(ImgateError::new(
                500,
                "internal error",
                "processing job dropped",
                crate::error::Blame::Internal,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::release::RELEASE_CHECK;
    use super::*;

    #[tokio::test]
    async fn panics_become_422_and_pool_survives() {
        let p = CpuPool::new(1, 4, 1 << 20, 1 << 20);
        let err = p.run::<(), _>(1, || panic!("boom")).await.unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(p.run(1, || Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn full_queue_is_refused_with_503() {
        let p = Arc::new(CpuPool::new(1, 0, 1 << 20, 1 << 20));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let p = p.clone();
            tokio::spawn(async move {
                p.run(1 << 20, move || {
                    release_rx.recv().ok();
                    Ok(())
                })
                .await
            })
        };
        // Wait until the first job holds the whole budget.
        while p.budget.in_use() == 0 {
            tokio::task::yield_now().await;
        }
        let err = p.run(1 << 20, || Ok(())).await.unwrap_err();
        assert_eq!(err.status, 503);
        assert_eq!(err.retry_after, Some(1));
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn memory_is_released_once_after_a_burst_not_during_it() {
        let p = CpuPool::new(2, 16, 1 << 20, 64 << 20);
        let releases = || p.activity.releases.load(Ordering::Acquire);
        // A steady stream of jobs, each well inside one check period of the next: no release.
        for _ in 0..12 {
            p.run(1 << 20, || Ok(vec![1u8; 1 << 20].len()))
                .await
                .unwrap();
            tokio::time::sleep(RELEASE_CHECK / 10).await;
        }
        assert_eq!(releases(), 0, "released during a steady load");
        // Then quiet: released within two or three periods, and only once.
        tokio::time::sleep(RELEASE_CHECK * 4).await;
        assert_eq!(releases(), 1, "one release after the burst");
        tokio::time::sleep(RELEASE_CHECK * 3).await;
        assert_eq!(releases(), 1, "released again while idle");
    }
}
