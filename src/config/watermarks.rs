//! `sites[].watermarks`: named overlays, from a file (read and probed here, once) or a path
//! on the site's origin, with a validated placement. Errors name the key below `sites[i]`.

use super::model::{OverlayImage, WatermarkDef};
use super::wire::WireWatermark;
use crate::pipeline::{self, Limits, Placement};
use crate::route::{self, Source};
use crate::spec::{self, Gravity, TransformSpec, WatermarkPosition};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest watermark file: overlays are logos and marks, not photos.
const MAX_FILE_BYTES: u64 = 8 << 20;

pub(super) fn watermarks(
    wire: BTreeMap<String, WireWatermark>,
    base_dir: &Path,
) -> Result<BTreeMap<String, WatermarkDef>, (String, String)> {
    let mut out = BTreeMap::new();
    for (name, w) in wire {
        let key = |k: &str| format!("watermarks.{name}.{k}");
        // Names travel in URLs (`watermark=<name>`): the option's own syntax decides.
        let mut probe = TransformSpec::default();
        spec::apply_options(&mut probe, &format!("watermark={name}")).map_err(|_| {
            (
                format!("watermarks.{name}"),
                "a name is 1-64 letters, digits, '-', '_' or '.'".into(),
            )
        })?;
        let image = match (w.file, w.source) {
            (Some(file), None) => {
                OverlayImage::File(read_file(base_dir, &file).map_err(|m| (key("file"), m))?)
            }
            (None, Some(source)) => match route::parse_source(&source) {
                Ok(Source::Path(p)) => OverlayImage::Source(p),
                _ => {
                    return Err((
                        key("source"),
                        "must be a path on the site's origin, like /brand/logo.png".into(),
                    ))
                }
            },
            _ => {
                return Err((
                    format!("watermarks.{name}"),
                    "needs one of file or source".into(),
                ))
            }
        };
        let position = match w.position.as_deref() {
            None => WatermarkPosition::At(Gravity::BottomRight),
            Some(text) => {
                let mut probe = TransformSpec::default();
                spec::apply_options(
                    &mut probe,
                    &format!("watermark={name},watermark.position={text}"),
                )
                .ok()
                .and_then(|()| probe.watermark?.position)
                .ok_or_else(|| {
                    (
                        key("position"),
                        "must be tile, center, top, bottom, left, right, top-left, top-right, \
                             bottom-left, bottom-right or <x>x<y>"
                            .into(),
                    )
                })?
            }
        };
        let max = spec::Watermark::MAX_OFFSET;
        let offset = |v: Option<u16>, k: &str| -> Result<u32, (String, String)> {
            match v.or(w.offset).unwrap_or(0) {
                o if o <= max => Ok(u32::from(o)),
                _ => Err((key(k), format!("at most {max} pixels"))),
            }
        };
        let offset = (
            offset(w.offset_x, "offset_x")?,
            offset(w.offset_y, "offset_y")?,
        );
        let opacity = w.opacity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&opacity) {
            return Err((key("opacity"), "must be between 0 and 1".into()));
        }
        let scale = match w.scale {
            None => None,
            Some(s) if s > 0.0 && s <= 1.0 => Some(s as f32),
            Some(_) => return Err((key("scale"), "must be above 0 and at most 1".into())),
        };
        let placement = Placement {
            position,
            offset,
            opacity: opacity as f32,
            scale,
        };
        out.insert(name, WatermarkDef { image, placement });
    }
    Ok(out)
}

/// The file's bytes, once they are known to be a picture imgate reads, of a sensible size.
fn read_file(base_dir: &Path, file: &str) -> Result<Bytes, String> {
    let path = base_dir.join(file);
    let len = std::fs::metadata(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(format!("{}: over {MAX_FILE_BYTES} bytes", path.display()));
    }
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let probe = pipeline::probe(&bytes, &Limits::default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if u64::from(probe.width) * u64::from(probe.height) > pipeline::MAX_OVERLAY_PIXELS {
        return Err(format!(
            "{}: {}x{} is larger than a watermark may be (16 MP)",
            path.display(),
            probe.width,
            probe.height
        ));
    }
    Ok(Bytes::from(bytes))
}
