//! What the steps share: the context one run of the pipeline reads and updates, the decode
//! phase's result as shared between jobs, and the frames of the animated path.

use super::error::PipelineError;
use super::geometry::Rect;
use super::limits::Limits;
use super::watermark::Overlay;
use crate::imaging::animation::Frame;
use crate::imaging::meta::SourceMeta;
use crate::imaging::{Probe, Raster};
use crate::spec::{Accepts, Gravity, OutputFormat, TransformSpec};
use std::sync::Arc;

/// Everything the steps share.
pub(super) struct Ctx<'a> {
    pub input: &'a [u8],
    pub spec: &'a TransformSpec,
    pub accepts: Accepts,
    pub limits: &'a Limits,
    /// Set by `probe`.
    pub probe: Option<Probe>,
    pub meta: SourceMeta,
    /// Empty (0x0) until `decode`, and while `shared` holds the decode instead.
    pub raster: Raster,
    /// The decode phase's result when it is shared with other jobs (`process_shared`):
    /// read-only. `fit` resizes from it in place; any step that needs pixels of its own gets
    /// a copy from `take_raster`. Empty from `fit` on.
    pub shared: Option<Arc<Decoded>>,
    /// Set by `trim_border`: what `trim=border` keeps of the upright original.
    pub trimmed: Option<Rect>,
    /// Set by `attention` for `gravity=auto`: the focal point `fit` crops around.
    pub focus: Option<Gravity>,
    /// Set by `choose_format`.
    pub format: Option<OutputFormat>,
    /// Set by `encode` (or by `describe`, for `format=json`).
    pub output: Vec<u8>,
    /// Set by `describe`: the size the finished picture would have.
    pub described: Option<(u32, u32)>,
    /// What `watermark` lays on the picture; set by the caller.
    pub overlay: Option<&'a Overlay<'a>>,
    /// Set by `decode_frames` on the animated path (`ANIM_STEPS`), taken by `encode_frames`.
    pub animation: Option<Animation>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(
        input: &'a [u8],
        spec: &'a TransformSpec,
        accepts: Accepts,
        limits: &'a Limits,
    ) -> Self {
        Ctx {
            input,
            spec,
            accepts,
            limits,
            probe: None,
            meta: SourceMeta::default(),
            raster: empty_raster(),
            shared: None,
            trimmed: None,
            focus: None,
            format: None,
            output: Vec::new(),
            described: None,
            animation: None,
            overlay: None,
        }
    }

    /// The probe result; an error (not a panic) if a step runs before `probe`.
    pub(super) fn probe(&self) -> Result<Probe, PipelineError> {
        self.probe
            .ok_or_else(|| PipelineError::Undecodable("internal: step ran before probe".into()))
    }

    /// Move the raster out for a step that consumes it, leaving an empty one behind. A
    /// shared decode is copied out here, by the first step that must own its pixels.
    pub(super) fn take_raster(&mut self) -> Raster {
        match self.shared.take() {
            Some(shared) => shared.raster.clone(),
            None => std::mem::replace(&mut self.raster, empty_raster()),
        }
    }
}

fn empty_raster() -> Raster {
    Raster {
        width: 0,
        height: 0,
        channels: 3,
        data: Vec::new(),
    }
}

/// The decode phase's result (upright sRGB raster and the source's metadata), as shared
/// between variants of one original.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub(super) meta: SourceMeta,
    pub(super) raster: Raster,
}

impl Decoded {
    /// Bytes of pixels held.
    pub fn weight(&self) -> usize {
        self.raster.data.len()
    }
}

/// The frames `steps::animated::decode_step` leaves for its `encode_step`, already at their output
/// size.
pub(super) struct Animation {
    pub frames: Vec<Frame>,
    /// As the `image` decoder reports it (a GIF's NETSCAPE count passes through unchanged,
    /// a GIF without one loops); 0 = forever, as in WebP's ANIM chunk.
    pub loop_count: u16,
}
