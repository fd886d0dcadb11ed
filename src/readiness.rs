//! Whether this node takes new work: true once the server runs, false from the moment a
//! graceful shutdown begins. Shared by the admin listener (`/readyz`) and the cluster
//! listener's health answer, so load balancers and peers stop sending work together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared ready flag; clones see the same value.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
