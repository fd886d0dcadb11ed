//! Runs CPU work (decode, resize, encode) on a named rayon pool, never on a tokio worker.
//! A semaphore bounds jobs in flight and a counter bounds jobs waiting; when the wait queue is
//! full the job is refused at once (503 + Retry-After) instead of piling up memory.

use crate::error::ImgateError;
use crate::metrics::{self, ActiveGuard};
use crate::pipeline::PipelineError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{oneshot, Semaphore};

pub struct Processor {
    pool: rayon::ThreadPool,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Processor {
    /// `threads` rayon threads named `imgate-cpu-N`; `concurrency` jobs at once; `max_waiting`
    /// jobs queued behind them.
    pub fn new(threads: usize, concurrency: usize, max_waiting: usize) -> Processor {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("imgate-cpu-{i}"))
            .build()
            .expect("rayon pool starts");
        Processor {
            pool,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// Run `job` on the pool. A panic inside it (a decoder bug on a hostile image) costs this
    /// request only: it is caught and answered 422.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ImgateError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, PipelineError> + Send + 'static,
    {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    metrics::REJECTED_OVERLOAD.inc();
                    return Err(ImgateError::overloaded(1));
                }
                metrics::QUEUE_LENGTH.inc();
                let p = self.slots.clone().acquire_owned().await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                metrics::QUEUE_LENGTH.dec();
                p.map_err(|_| ImgateError::overloaded(1))?
            }
        };
        let (tx, rx) = oneshot::channel();
        self.pool.spawn(move || {
            let _active = ActiveGuard::new(&metrics::ACTIVE_PROCESSING);
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
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
    use super::*;

    #[tokio::test]
    async fn panics_become_422_and_pool_survives() {
        let p = Processor::new(1, 1, 4);
        let err = p.run::<(), _>(|| panic!("boom")).await.unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(p.run(|| Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn full_queue_is_refused_with_503() {
        let p = Arc::new(Processor::new(1, 1, 0));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let p = p.clone();
            tokio::spawn(async move {
                p.run(move || {
                    release_rx.recv().ok();
                    Ok(())
                })
                .await
            })
        };
        // Wait until the first job holds the only slot.
        while p.slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let err = p.run(|| Ok(())).await.unwrap_err();
        assert_eq!(err.status, 503);
        assert_eq!(err.retry_after, Some(1));
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
    }
}
