//! Cluster mode: several nodes acting as one cache. Each original has one owner on a
//! consistent-hash ring of the live peers (`ring.rs`, Pingora's Ketama hashing, discovery and
//! health checks); a node asks the owner for a variant it misses over the owner's cluster
//! listener, proving it is a peer with the shared token and a hop marker (`protocol.rs`).
//! The edge (`proxy`) does the asking and the answering; this module knows nothing of proxy
//! phases.

mod bus;
mod protocol;
mod ring;

pub use bus::{Bus, BusService, EntryId, Published, POSITIONS, POSITION_FILE, STREAM};
pub use protocol::{
    check, PeerCheck, HEALTH_PATH, HOP_HEADER, PURGE_POSITION_HEADER, TOKEN_HEADER,
};
pub use ring::{ring_key, Owner, Ring};
