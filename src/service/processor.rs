//! Runs CPU work (decode, resize, encode) on a named rayon pool, never on a tokio worker.
//! Jobs are admitted by their estimated memory cost against a byte budget (`budget.rs`): a
//! burst of expensive jobs queues instead of multiplying, a job over the whole budget is
//! refused (413), and when the wait queue is full the job is refused at once (503 +
//! Retry-After) instead of piling up memory. The pool has one thread per processing slot plus
//! one for the place kept for light jobs, so a thumbnail never waits for a thread behind
//! expensive jobs.
//!
//! It also keeps the decodes of a burst (`SharedDecodes`): variants of one original being made
//! at the same time decode it once per shrink-on-load factor instead of once each, which is
//! what a burst of widths of one large photo costs otherwise. They are dropped as soon as the
//! pool goes idle.
//!
//! After a burst it gives the memory the jobs freed back to the OS: the pool threads keep
//! freed pages in their mimalloc heaps, so do the async runtime threads (`heaps.rs`), and the
//! codecs (libjpeg-turbo, libwebp, libaom) leave theirs in glibc's arenas, so without this the process would stay near its peak size long after the
//! load is gone. That runs only once the pool has been idle for a while, never between jobs,
//! so a steady load never pays for it.

use crate::error::ImgateError;
use crate::metrics::{self, ActiveGuard};
use crate::pipeline::{DecodeKey, DecodeShare, Decoded, PipelineError};
use bytes::Bytes;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

use crate::budget::{Budget, Refusal};

/// How often the release thread looks at the pool. Memory is released once no job has
/// started or finished for a whole period.
const RELEASE_CHECK: Duration = Duration::from_millis(500);

pub struct Processor {
    pool: Arc<rayon::ThreadPool>,
    budget: Arc<Budget>,
    activity: Arc<Activity>,
    decodes: Arc<SharedDecodes>,
}

/// Decodes kept for the jobs of the current burst, bounded in bytes, dropped when the pool
/// goes idle (and after `SHARED_DECODE_TTL` at the latest).
pub struct SharedDecodes {
    entries: moka::sync::Cache<DecodeKey, Kept>,
}

/// A kept decode, holding its input buffer so the buffer's address (part of the key) cannot
/// be reused for other bytes while the entry exists. Both count against the budget: the
/// input is often the larger (a 3 MB JPEG kept for a 0.3 MB shrink-on-load decode), and
/// under a steady stream of misses each download is a new buffer.
#[derive(Clone)]
struct Kept {
    input: Bytes,
    decoded: Arc<Decoded>,
}

impl Kept {
    fn weight(&self) -> u32 {
        u32::try_from(self.decoded.weight().saturating_add(self.input.len())).unwrap_or(u32::MAX)
    }
}

const SHARED_DECODE_TTL: Duration = Duration::from_secs(10);

impl SharedDecodes {
    fn new(budget_bytes: u64) -> SharedDecodes {
        SharedDecodes {
            entries: moka::sync::Cache::builder()
                .max_capacity(budget_bytes)
                .weigher(|_k: &DecodeKey, v: &Kept| v.weight())
                .time_to_live(SHARED_DECODE_TTL)
                .build(),
        }
    }

    /// The view one job uses: decodes of `input` (the buffer the job will process).
    pub fn for_input(&self, input: Bytes) -> JobDecodes<'_> {
        JobDecodes {
            shared: self,
            input,
        }
    }

    fn clear(&self) {
        self.entries.invalidate_all();
        self.entries.run_pending_tasks();
    }

    /// Decodes kept now.
    #[cfg(test)]
    pub fn kept(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// One job's access to the shared decodes.
pub struct JobDecodes<'a> {
    shared: &'a SharedDecodes,
    input: Bytes,
}

impl DecodeShare for JobDecodes<'_> {
    fn get_or_decode(
        &self,
        key: DecodeKey,
        decode: &mut dyn FnMut() -> Result<Decoded, PipelineError>,
    ) -> Result<Arc<Decoded>, PipelineError> {
        // Only a key naming this job's own buffer may be kept: it is what keeps the address
        // from being reused.
        if key.input_addr != self.input.as_ptr() as usize || key.input_len != self.input.len() {
            return decode().map(Arc::new);
        }
        // Concurrent askers for one key wait for the first one's decode (a pool thread waits
        // only on a job that is already running); errors are handed to them, never kept.
        let mut decoded_here = false;
        let result = self
            .shared
            .entries
            .try_get_with(key, || {
                decoded_here = true;
                decode().map(|d| Kept {
                    input: self.input.clone(),
                    decoded: Arc::new(d),
                })
            })
            .map(|kept| kept.decoded)
            .map_err(|e| (*e).clone());
        metrics::SHARED_DECODES
            .with_label_values(&[if decoded_here { "miss" } else { "hit" }])
            .inc();
        result
    }
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

/// A job costing at most this share of the budget is light: it may take the place kept
/// beside the `concurrency` slots (a thumbnail of a 2 MP JPEG costs about 2 MiB).
const LIGHT_SHARE_OF_BUDGET: u64 = 32;

impl Processor {
    /// A pool of `concurrency` + 1 rayon threads named `imgate-cpu-N`; `concurrency` jobs at
    /// once (one more if light) within `budget_bytes` of estimated cost; `max_waiting` jobs
    /// queued behind them. `shared_decode_bytes` bounds the decodes kept for a burst.
    pub fn new(
        concurrency: usize,
        max_waiting: usize,
        shared_decode_bytes: u64,
        budget_bytes: u64,
    ) -> Processor {
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
        Processor {
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

/// The release thread: once jobs have run and the pool has then been idle for a whole check
/// period, return freed memory to the OS. Ends with the processor.
fn release_loop(
    pool: Weak<rayon::ThreadPool>,
    activity: Weak<Activity>,
    decodes: Weak<SharedDecodes>,
) {
    let (mut seen, mut released) = (0u64, 0u64);
    loop {
        std::thread::sleep(RELEASE_CHECK);
        let (Some(pool), Some(activity), Some(decodes)) =
            (pool.upgrade(), activity.upgrade(), decodes.upgrade())
        else {
            return;
        };
        let started = activity.started.load(Ordering::Acquire);
        let idle = started == seen && activity.running.load(Ordering::Acquire) == 0;
        if idle && started != released {
            // The burst is over: its decodes go first, then their memory goes back.
            decodes.clear();
            release_memory(&pool);
            activity.releases.fetch_add(1, Ordering::AcqRel);
            released = started;
        }
        seen = started;
    }
}

/// Hand free memory back to the OS: what each pool thread keeps for the pipeline, every pool
/// thread's mimalloc heap, every async runtime thread's (`heaps`), then glibc's arenas.
fn release_memory(pool: &rayon::ThreadPool) {
    pool.broadcast(|_| {
        crate::pipeline::release_thread_memory();
        // SAFETY: `mi_collect` only frees memory no live allocation uses; it is meant to be
        // called from any thread, about that thread's own heap.
        unsafe { libmimalloc_sys::mi_collect(true) }
    });
    super::heaps::collect_runtime_heaps();
    // SAFETY: `malloc_trim` is thread-safe and only returns unused memory.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
    metrics::MEMORY_RELEASES.inc();
}

/// `mi_option_purge_delay`: its index in `mi_option_t` of the mimalloc 3 sources that
/// libmimalloc-sys 0.1 builds (`c_src/mimalloc/v3/include/mimalloc.h`); the crate has no
/// constant for it. `purge_delay_option_index_is_right` checks it reads the default, 1000 ms
/// (arena purges multiply it by `arena_purge_mult`, 1 in this version).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with mimalloc for reuse before it goes back to the OS, unless
/// `eager_memory_release`. mimalloc's own 1 s is shorter than the gaps between large buffers
/// of one size in a stream of misses of mixed sizes, so they were returned and faulted in
/// again: `scripts/profile.sh miss` counted 67 page faults per request with 1 s and 17 with
/// 5 s. Memory still goes back once the pool idles after a burst (`release_memory` forces
/// the purge whatever the delay).
const PURGE_DELAY_MS: std::os::raw::c_long = 5000;

/// Process-wide allocator policy; call before the server starts. Transparent huge pages are
/// always off: a huge page stays resident until all of its 2 MiB is free, and after a burst
/// they were most of what the process kept (BENCHMARKS.md, memory), for about 2% of CPU per
/// miss. `eager`: freed memory also goes back to the OS at once, for a few percent more;
/// otherwise it is kept `PURGE_DELAY_MS` for reuse.
pub fn set_memory_release(eager: bool) {
    let delay = if eager { 0 } else { PURGE_DELAY_MS };
    // SAFETY: setting an allocator option is thread-safe and affects only future purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's flag.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_become_422_and_pool_survives() {
        let p = Processor::new(1, 4, 1 << 20, 1 << 20);
        let err = p.run::<(), _>(1, || panic!("boom")).await.unwrap_err();
        assert_eq!(err.status, 422);
        assert_eq!(p.run(1, || Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn full_queue_is_refused_with_503() {
        let p = Arc::new(Processor::new(1, 0, 1 << 20, 1 << 20));
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
        let p = Processor::new(2, 16, 1 << 20, 64 << 20);
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

    #[test]
    fn shared_decodes_decode_once_per_key_and_keep_no_errors() {
        use crate::pipeline::{process_shared, DecodeShare};
        use crate::spec::{Accepts, TransformSpec};
        let decodes = SharedDecodes::new(64 << 20);
        let input = Bytes::from(
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/photos/GreenMeadow.jpg"
            ))
            .unwrap(),
        );
        let spec = |w| TransformSpec {
            width: Some(w),
            ..TransformSpec::default()
        };
        let limits = crate::pipeline::Limits::default();
        // Four jobs at once, two shrink factors: two decodes, however the threads interleave.
        let before = metrics::SHARED_DECODES.with_label_values(&["miss"]).get();
        std::thread::scope(|s| {
            for w in [100, 150, 300, 310] {
                let (decodes, input, limits) = (&decodes, input.clone(), &limits);
                s.spawn(move || {
                    let share = decodes.for_input(input.clone());
                    let out =
                        process_shared(&input, &spec(w), Accepts::default(), limits, Some(&share))
                            .unwrap();
                    assert_eq!(out.width, w);
                });
            }
        });
        decodes.entries.run_pending_tasks();
        assert_eq!(decodes.entries.entry_count(), 2);
        // Counted globally, so other tests may add to it; this test alone adds exactly two.
        assert!(metrics::SHARED_DECODES.with_label_values(&["miss"]).get() >= before + 2);
        // A key naming another buffer is decoded but never kept.
        let share = decodes.for_input(input.clone());
        let other = DecodeKey {
            input_addr: 1,
            input_len: 1,
            plan: 1,
        };
        let mut calls = 0;
        let mut failing = || {
            calls += 1;
            Err(PipelineError::Undecodable("boom".into()))
        };
        assert!(share.get_or_decode(other, &mut failing).is_err());
        // Errors are handed back, and the next asker tries again.
        let key = DecodeKey {
            input_addr: input.as_ptr() as usize,
            input_len: input.len(),
            plan: 99,
        };
        assert!(matches!(
            share.get_or_decode(key, &mut failing),
            Err(PipelineError::Undecodable(_))
        ));
        assert!(share.get_or_decode(key, &mut failing).is_err());
        assert_eq!(calls, 3);
        decodes.entries.run_pending_tasks();
        assert_eq!(decodes.entries.entry_count(), 2);
        // The end of a burst drops them all.
        decodes.clear();
        assert_eq!(decodes.entries.entry_count(), 0);
    }

    #[test]
    fn shared_decodes_count_their_input_buffers_against_the_budget() {
        use crate::pipeline::process_shared;
        use crate::spec::{Accepts, TransformSpec};
        let photo = |name: &str| {
            let path = format!(
                "{}/tests/fixtures/photos/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            Bytes::from(std::fs::read(path).unwrap())
        };
        let limits = crate::pipeline::Limits::default();
        let spec = TransformSpec {
            width: Some(100),
            ..TransformSpec::default()
        };
        let run = |decodes: &SharedDecodes, input: &Bytes| {
            let share = decodes.for_input(input.clone());
            process_shared(input, &spec, Accepts::default(), &limits, Some(&share)).unwrap();
            decodes.entries.run_pending_tasks();
        };
        // A budget above the decode's size but below the input's: nothing may be kept.
        let meadow = photo("GreenMeadow.jpg");
        let tight = SharedDecodes::new(meadow.len() as u64 / 2);
        run(&tight, &meadow);
        assert_eq!(tight.entries.entry_count(), 0);
        assert_eq!(tight.entries.weighted_size(), 0);
        // With room, the entry weighs its input plus its pixels, and a stream of fresh
        // downloads of the same photo (new buffers, new keys) stays within the budget.
        let budget = 3 * meadow.len() as u64;
        let roomy = SharedDecodes::new(budget);
        run(&roomy, &meadow);
        assert_eq!(roomy.entries.entry_count(), 1);
        assert!(roomy.entries.weighted_size() > meadow.len() as u64);
        for _ in 0..8 {
            run(&roomy, &Bytes::from(meadow.to_vec()));
            assert!(roomy.entries.weighted_size() <= budget);
        }
    }

    #[test]
    fn purge_delay_option_index_is_right() {
        // mimalloc 3 defaults the purge delay to 1000 ms (src/options.c); another option here would
        // read differently (and nothing in the tests calls `set_memory_release`).
        // SAFETY: reading an option has no side effects.
        assert_eq!(
            unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
            1000
        );
    }
}
