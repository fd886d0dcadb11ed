//! The CPU pool: runs CPU work (decode, resize, encode) on a named rayon pool, never on an
//! async worker, admitted by each job's estimated memory cost (`cost.rs`) against the
//! processing budget (`crate::budget`). Beside the jobs it keeps the decodes of a burst
//! (`decodes.rs`) and, once the pool goes idle after a burst, hands the memory the jobs freed
//! back to the OS (`release.rs`, `heaps.rs`). The transform service and the edge both use it;
//! it knows pipeline jobs and bytes, not HTTP or caches.

pub(crate) mod cost;
mod decodes;
mod heaps;
mod pool;
mod release;

pub use decodes::{JobDecodes, SharedDecodes};
pub use heaps::register_current_thread;
pub use pool::CpuPool;
pub use release::set_memory_release;
