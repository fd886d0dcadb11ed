//! A panic costs one request, never the process. Two layers make that hold:
//!
//! - Every edge phase that returns a `Result` runs inside [`guard`] (async) or [`guard_sync`], which
//!   catch a panic where it happens and turn it into an internal error, so Pingora answers
//!   `500` and releases the cache lock as for any failed request. The panic never unwinds
//!   through Pingora's session.
//! - A panic that does unwind through Pingora (a bug in Pingora itself, or in a phase that
//!   cannot report an error) drops the session's cache `WritePermit` during unwinding. Its
//!   `Drop` holds `debug_assert!(false, "Dangling cache lock started!")`: with debug
//!   assertions on, that is a second panic during unwinding, which Rust turns into an abort of
//!   the whole process. Cargo.toml compiles Pingora without debug assertions in every profile
//!   (release already did), so that drop only marks the lock dangling and readers retry.
//!
//! The tests below pin both: the second one aborts the test binary if the profile setting is
//! lost.

use crate::metrics;
use futures::FutureExt;
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

/// Run one async phase; a panic inside it becomes an internal error (500 to the client).
///
/// `AssertUnwindSafe` is sound here because a phase that panicked is never resumed: its
/// request ends with the error, and the shared state a phase touches (mutexes) is locked with
/// `unwrap_or_else(into_inner)` throughout, so a poisoned lock cannot cascade.
pub async fn guard<T>(phase: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => caught(phase, payload),
    }
}

/// [`guard`] for a synchronous phase.
pub fn guard_sync<T>(phase: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => caught(phase, payload),
    }
}

fn caught<T>(phase: &'static str, payload: Box<dyn Any + Send>) -> Result<T> {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    log::error!("panic in edge phase {phase}: {message}");
    metrics::PANICS.with_label_values(&[phase]).inc();
    Error::e_explain(ErrorType::InternalError, format!("panic in {phase}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_cache::lock::{LockStatus, WritePermit};
    use std::time::Duration;

    #[tokio::test]
    async fn a_panicking_phase_becomes_an_internal_error() {
        let before = metrics::PANICS.with_label_values(&["test_phase"]).get();
        let r: Result<()> = guard("test_phase", async { panic!("injected") }).await;
        let e = r.expect_err("the panic is an error");
        assert_eq!(e.etype(), &ErrorType::InternalError);
        assert_eq!(
            metrics::PANICS.with_label_values(&["test_phase"]).get(),
            before + 1
        );
        let r: Result<u8> = guard_sync("test_phase", || panic!("{}", String::from("owned")));
        assert!(r.is_err());
        assert_eq!(guard_sync("test_phase", || Ok(3)).unwrap(), 3);
        assert_eq!(guard("test_phase", async { Ok(4) }).await.unwrap(), 4);
    }

    /// Regression: a panic unwinding while a cache write lock is held aborted the process,
    /// because the permit's `Drop` panicked again (a debug assertion). If debug assertions are
    /// ever turned back on for pingora-cache, this test aborts the whole test binary.
    #[test]
    fn a_panic_unwinding_through_a_held_cache_lock_is_caught_and_the_lock_released() {
        let (permit, stub) = WritePermit::new(Duration::from_secs(5), false, Default::default());
        let unwound = std::panic::catch_unwind(AssertUnwindSafe(move || {
            let _held = permit;
            panic!("injected while holding the cache lock");
        }));
        assert!(unwound.is_err(), "the panic reached catch_unwind");
        // Readers waiting on the lock are told the writer is gone and compete again.
        assert_eq!(stub.read_lock().lock_status(), LockStatus::Dangling);
    }
}
