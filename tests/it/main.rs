//! The integration tests, in one binary: each module is one suite against the real `imgate`
//! binary (`cargo test --test it edge::` runs the edge suite), and `support` is the harness
//! they share (real origins, the binary on ephemeral ports, an HTTP client, image comparison).
//!
//! Suites run in one process on the default test threads: a test starts its own servers on
//! ports it was given free (`support::free_port`), never on fixed ones, and shares no state.

mod support;

mod acme;
mod bombs;
mod budget;
mod cache;
mod cluster;
mod dialects;
mod edge;
mod gateway;
mod hostile_origin;
mod html;
mod signed;
mod slow_clients;
mod tls_edge;
mod tls_origin;
