//! Signals that ask a background task to do something instead of ending the process (SIGHUP:
//! reload certificates; SIGUSR1: reopen the access log): [`watch`] installs a handler that only
//! raises a flag, and the task polls it with [`take`].

use std::sync::atomic::{AtomicBool, Ordering};

/// One flag per signal number (Linux has 64).
static RAISED: [AtomicBool; 65] = [const { AtomicBool::new(false) }; 65];

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: anything more is not async-signal-safe.
    if let Some(flag) = usize::try_from(signal).ok().and_then(|s| RAISED.get(s)) {
        flag.store(true, Ordering::Relaxed);
    }
}

/// From now on `signal` raises its flag (its default action, often ending the process, no
/// longer happens).
pub fn watch(signal: libc::c_int) -> std::io::Result<()> {
    // SAFETY: a plain sigaction with a handler that only stores an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether `signal` came since the last call (and lower its flag).
pub fn take(signal: libc::c_int) -> bool {
    usize::try_from(signal)
        .ok()
        .and_then(|s| RAISED.get(s))
        .is_some_and(|flag| flag.swap(false, Ordering::Relaxed))
}
