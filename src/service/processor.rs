//! Runs CPU work (decode, resize, encode) on a named rayon pool, never on a tokio worker.
//! A semaphore bounds jobs in flight and a counter bounds jobs waiting; when the wait queue is
//! full the job is refused at once (503 + Retry-After) instead of piling up memory.
//!
//! After a burst it gives the memory the jobs freed back to the OS: the pool threads keep
//! freed pages in their mimalloc heaps and the codecs (libjpeg-turbo, libwebp) leave theirs in
//! glibc's arenas, so without this the process would stay near its peak size long after the
//! load is gone. That runs only once the pool has been idle for a while, never between jobs,
//! so a steady load never pays for it.

use crate::error::ImgateError;
use crate::metrics::{self, ActiveGuard};
use crate::pipeline::PipelineError;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// How often the release thread looks at the pool. Memory is released once no job has
/// started or finished for a whole period.
const RELEASE_CHECK: Duration = Duration::from_millis(500);

pub struct Processor {
    pool: Arc<rayon::ThreadPool>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    activity: Arc<Activity>,
}

/// What the release thread watches.
#[derive(Default)]
struct Activity {
    /// Jobs running on the pool now.
    running: AtomicUsize,
    /// Jobs started so far: a change between two checks means the pool was not idle.
    started: AtomicU64,
    /// Memory releases done for this pool.
    releases: AtomicU64,
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
        let pool = Arc::new(pool);
        let activity = Arc::new(Activity::default());
        let (weak_pool, weak_activity) = (Arc::downgrade(&pool), Arc::downgrade(&activity));
        std::thread::Builder::new()
            .name("imgate-release".into())
            .spawn(move || release_loop(weak_pool, weak_activity))
            .expect("release thread starts");
        Processor {
            pool,
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            activity,
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

/// The release thread: once jobs have run and the pool has then been idle for a whole check
/// period, return freed memory to the OS. Ends with the processor.
fn release_loop(pool: Weak<rayon::ThreadPool>, activity: Weak<Activity>) {
    let (mut seen, mut released) = (0u64, 0u64);
    loop {
        std::thread::sleep(RELEASE_CHECK);
        let (Some(pool), Some(activity)) = (pool.upgrade(), activity.upgrade()) else {
            return;
        };
        let started = activity.started.load(Ordering::Acquire);
        let idle = started == seen && activity.running.load(Ordering::Acquire) == 0;
        if idle && started != released {
            release_memory(&pool);
            activity.releases.fetch_add(1, Ordering::AcqRel);
            released = started;
        }
        seen = started;
    }
}

/// Hand free memory back to the OS: every pool thread's mimalloc heap, then glibc's arenas.
fn release_memory(pool: &rayon::ThreadPool) {
    // SAFETY: `mi_collect` only frees memory no live allocation uses; it is meant to be called
    // from any thread, about that thread's own heap.
    pool.broadcast(|_| unsafe { libmimalloc_sys::mi_collect(true) });
    // SAFETY: `malloc_trim` is thread-safe and only returns unused memory.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    metrics::MEMORY_RELEASES.inc();
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

    #[tokio::test]
    async fn memory_is_released_once_after_a_burst_not_during_it() {
        let p = Processor::new(2, 2, 16);
        let releases = || p.activity.releases.load(Ordering::Acquire);
        // A steady stream of jobs, each well inside one check period of the next: no release.
        for _ in 0..12 {
            p.run(|| Ok(vec![1u8; 1 << 20].len())).await.unwrap();
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
