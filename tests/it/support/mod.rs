//! Shared test harness: a real origin (HTTP/1.1 over TCP, serving real files), the real
//! `imgate` binary started on ephemeral ports, a small HTTP client that shows exactly what went
//! over the wire, and image comparison (exact dimensions, SSIM for look).
//!
//! - [`origin`]: [`TestOrigin`], the file server with fault paths; [`read_request_head`].
//! - [`echo`]: [`EchoOrigin`], answers with the header lines it received.
//! - [`tag_front`]: [`TagFront`], adds purge tags to the test origin's answers.
//! - [`binary`]: [`Imgate`], the real binary on a config written for the test.
//! - [`client`]: [`get`], [`request`], [`send_body`], [`raw_request`], [`metric`].
//! - [`look`]: decoding, format sniffing and SSIM of output images.
//! - [`process`]: the server's memory figures from `/proc`.
//! - [`redis`]: [`TestRedis`], a real `redis-server` on a free port.
//! - [`certs`]: a CA and certificates made by `openssl`.
//! - [`pebble`]: [`TestPebble`], Let's Encrypt's test ACME CA with its DNS stand-in.
//! - [`sample_page`]: a generated HTML page for measuring the rewriter.

mod binary;
mod certs;
mod client;
mod echo;
mod look;
mod origin;
mod pebble;
mod process;
mod redis;
pub mod sample_page;
mod ssim;
mod tag_front;

pub use binary::*;
pub use certs::*;
pub use client::*;
pub use echo::EchoOrigin;
pub use look::*;
pub use origin::*;
pub use pebble::TestPebble;
pub use process::*;
pub use redis::TestRedis;
pub use tag_front::TagFront;

use std::path::{Path, PathBuf};

/// The directory of the test images and pages (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}
