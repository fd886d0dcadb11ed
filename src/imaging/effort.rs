//! How hard the encoders work: `Normal` is each codec's tuned setting (BENCHMARKS.md), `Fast`
//! the cheaper one `compression=fast` asks for (larger files for less CPU on a miss).

/// Encoder effort, one setting for every codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effort {
    #[default]
    Normal,
    /// JPEG without optimised Huffman tables, WebP at method 1 instead of 4, AVIF at libaom
    /// speed 9 instead of 6; PNG already uses its fast setting.
    Fast,
}
