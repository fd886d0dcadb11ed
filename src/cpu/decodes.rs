//! The decodes of a burst: variants of one original being made at the same time decode it
//! once per shrink-on-load factor instead of once each, which is what a burst of widths of one
//! large photo costs otherwise. Bounded in bytes (the decodes and the input buffers they keep)
//! and dropped as soon as the pool goes idle (`release.rs`).

use crate::metrics;
use crate::pipeline::{DecodeKey, DecodeShare, Decoded, PipelineError};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

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
    pub(super) fn new(budget_bytes: u64) -> SharedDecodes {
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

    pub(super) fn clear(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                    let out = process_shared(
                        &input,
                        &spec(w),
                        Accepts::default(),
                        limits,
                        Some(&share),
                        None,
                    )
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
            process_shared(
                input,
                &spec,
                Accepts::default(),
                &limits,
                Some(&share),
                None,
            )
            .unwrap();
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
}
