//! The one SSIM the tests use, on luma planes: the mean over 8x8 windows stepped by 4, with
//! the usual constants. Integration tests reach it through `support::ssim` (in `look.rs`); the
//! library's unit tests include this file by path (`src/pipeline/avif.rs`), so both judge look
//! the same way.

/// Mean SSIM of two `width`-wide luma planes of the same size; 1.0 when smaller than a window.
pub fn windowed_ssim(la: &[f64], lb: &[f64], width: usize) -> f64 {
    assert_eq!(la.len(), lb.len(), "planes differ in size");
    let (w, h) = (width, la.len() / width.max(1));
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let (mut total, mut n) = (0.0, 0);
    for y in (0..h.saturating_sub(7)).step_by(4) {
        for x in (0..w.saturating_sub(7)).step_by(4) {
            let (mut ma, mut mb, mut va, mut vb, mut cov) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for dy in 0..8 {
                for dx in 0..8 {
                    let i = (y + dy) * w + x + dx;
                    ma += la[i];
                    mb += lb[i];
                }
            }
            ma /= 64.0;
            mb /= 64.0;
            for dy in 0..8 {
                for dx in 0..8 {
                    let i = (y + dy) * w + x + dx;
                    va += (la[i] - ma).powi(2);
                    vb += (lb[i] - mb).powi(2);
                    cov += (la[i] - ma) * (lb[i] - mb);
                }
            }
            va /= 63.0;
            vb /= 63.0;
            cov /= 63.0;
            total += ((2.0 * ma * mb + c1) * (2.0 * cov + c2))
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            n += 1;
        }
    }
    if n == 0 {
        1.0
    } else {
        total / n as f64
    }
}
