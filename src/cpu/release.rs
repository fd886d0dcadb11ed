//! Handing memory back to the OS after a burst: the pool threads keep freed pages in their
//! mimalloc heaps, so do the async runtime threads (`heaps.rs`), and the codecs
//! (libjpeg-turbo, libwebp, libaom) leave theirs in glibc's arenas, so without this the process
//! would stay near its peak size long after the load is gone. It runs only once the pool has
//! been idle for a while, never between jobs, so a steady load never pays for it. Also the
//! process-wide allocator policy (`set_memory_release`).

use super::decodes::SharedDecodes;
use crate::metrics;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Weak;
use std::time::Duration;

/// What the release thread watches.
#[derive(Default)]
pub(super) struct Activity {
    /// Jobs running on the pool now.
    pub(super) running: AtomicUsize,
    /// Jobs started so far: a change between two checks means the pool was not idle.
    pub(super) started: AtomicU64,
    /// Memory releases done for this pool.
    pub(super) releases: AtomicU64,
}

/// How often the release thread looks at the pool. Memory is released once no job has
/// started or finished for a whole period.
pub(super) const RELEASE_CHECK: Duration = Duration::from_millis(500);

/// The release thread: once jobs have run and the pool has then been idle for a whole check
/// period, return freed memory to the OS. Ends with the processor.
pub(super) fn release_loop(
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
