//! The async runtimes' part of handing memory back after a burst (the CPU pool's part is in
//! `release.rs`). Tokio worker threads allocate buffers (downloads, responses) that other
//! threads free; mimalloc returns such pages to the OS only when the owning thread next
//! collects its heap, and a worker idle after a burst never does. So each runtime thread
//! registers itself the first time it serves a request (a thread-local flag: no lock per
//! request), and after a burst the release thread has every registered thread run
//! `mi_collect`, by spawning tasks on their runtimes until each thread has run one, within a
//! bounded time.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

thread_local! {
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Every runtime thread that has served a request, with a handle to its runtime.
static THREADS: Mutex<Vec<(ThreadId, Handle)>> = Mutex::new(Vec::new());

/// A collection gives up on threads it has not reached after this long (a runtime busy with
/// long tasks, or one shut down); new tasks go out every `ROUND_WAIT` until then.
const DEADLINE: Duration = Duration::from_millis(50);
const ROUND_WAIT: Duration = Duration::from_millis(2);
/// How often a task that holds its worker checks whether the collection is over.
const POLL: Duration = Duration::from_micros(200);

/// Remember the calling thread (once) if it runs inside a tokio runtime. Cheap to call on
/// every request: after the first call on a thread it reads one thread-local flag.
pub fn register_current_thread() {
    if REGISTERED.with(|r| r.replace(true)) {
        return;
    }
    if let Ok(handle) = Handle::try_current() {
        let mut threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        threads.push((thread::current().id(), handle));
    }
}

/// Have every registered runtime thread collect its mimalloc heap; returns the threads that
/// did. Blocks the calling thread (never call it on a runtime thread) for at most `DEADLINE`.
///
/// Tokio cannot run a task on a chosen worker, so each task, once run, holds its worker (after
/// collecting if that thread was still to go) until every thread is done: the runtime's other
/// workers then have to run the remaining tasks. The runtimes' workers pause for the length of
/// one collection, once per burst, only after the CPU pool has gone idle.
pub fn collect_runtime_heaps() -> HashSet<ThreadId> {
    let threads = THREADS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let pending: Arc<Mutex<HashSet<ThreadId>>> =
        Arc::new(Mutex::new(threads.iter().map(|(id, _)| *id).collect()));
    let snapshot = |p: &Mutex<HashSet<ThreadId>>| {
        p.lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect::<HashSet<_>>()
    };
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let left = snapshot(&pending);
        if left.is_empty() {
            break;
        }
        // One more task for each thread still to go, on that thread's runtime.
        for (_, handle) in threads.iter().filter(|(id, _)| left.contains(id)) {
            let pending = Arc::clone(&pending);
            handle.spawn(async move {
                let me = thread::current().id();
                let mine = pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&me);
                if mine {
                    // SAFETY: `mi_collect` only frees memory no live allocation uses, for the
                    // calling thread's own heap.
                    unsafe { libmimalloc_sys::mi_collect(true) };
                }
                while Instant::now() < deadline
                    && !pending.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                {
                    thread::sleep(POLL);
                }
            });
        }
        thread::sleep(ROUND_WAIT);
    }
    let left = snapshot(&pending);
    threads
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !left.contains(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn every_registered_worker_collects_once_per_call() {
        let workers = 3;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        // Hold `workers` tasks at a barrier at once: each is on its own worker thread.
        let barrier = Arc::new(Barrier::new(workers + 1));
        let ids: Vec<_> = (0..workers)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                rt.spawn(async move {
                    register_current_thread();
                    register_current_thread(); // the second call is a no-op
                    barrier.wait();
                    thread::current().id()
                })
            })
            .collect();
        barrier.wait();
        let ids: HashSet<ThreadId> = ids.into_iter().map(|h| rt.block_on(h).unwrap()).collect();
        assert_eq!(ids.len(), workers);
        let registered = THREADS.lock().unwrap();
        for id in &ids {
            assert_eq!(registered.iter().filter(|(t, _)| t == id).count(), 1);
        }
        drop(registered);
        // Idle workers: the collection must still reach every one of them, and again later.
        for _ in 0..2 {
            let done = collect_runtime_heaps();
            assert!(ids.is_subset(&done), "{ids:?} not all in {done:?}");
        }
        // A thread outside any runtime is not registered (only this test registers threads).
        let before = THREADS.lock().unwrap().len();
        std::thread::spawn(register_current_thread).join().unwrap();
        assert_eq!(THREADS.lock().unwrap().len(), before);
    }
}
