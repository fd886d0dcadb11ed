#!/usr/bin/env python3
"""Output size and look of imgate against libvips at the same quality setting (issue 5).

For every corpus photo under 5 MB and each output format, one 300 px wide thumbnail from
libvips in-process (pyvips thumbnail_buffer, the same call libvips_reference.py times) and one
from a running imgate (over HTTP, its miss path). Both are scored against one reference: the
original decoded at full size and resized with Lanczos3 (no shrink-on-load, no lossy encoding). SSIM
is computed on luma (8x8 Gaussian-weighted windows, the usual constants). Prints per-format
totals: bytes of each, the byte ratio, and mean SSIM of each.
  setup: apt-get install -y libvips42; pip install pyvips numpy
  usage: python3 quality_vs_libvips.py http://127.0.0.1:8080 [PHOTO_DIR]
         (imgate's origin must serve PHOTO_DIR at its root)
"""
import glob, os, sys, urllib.request
import numpy as np
import pyvips

base = sys.argv[1]
folder = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "corpus", "photos")
files = sorted(f for f in glob.glob(os.path.join(folder, "*.jpg")) if os.path.getsize(f) < 5_000_000)
WIDTH = int(os.environ.get("W", 300))
FORMATS = [("jpeg", 80, ".jpg[Q={q},strip]"), ("webp", 80, ".webp[Q={q},strip]"), ("avif", 60, ".avif[Q={q},strip]")]
pyvips.cache_set_max(0)


def luma(img):
    """8-bit sRGB image -> float luma array (BT.601 weights, as SSIM is usually reported)."""
    if img.interpretation in ("rgb16", "grey16") or img.format != "uchar":
        img = img.colourspace("srgb")  # e.g. 10-bit AVIF decodes as 16 bits per sample
    if img.bands == 4:
        img = img.flatten(background=255)
    if img.bands == 1:
        img = img.bandjoin([img, img])
    a = np.ndarray(buffer=img.cast("uchar").write_to_memory(), dtype=np.uint8, shape=[img.height, img.width, img.bands]).astype(np.float64)
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def blur(x):
    # Separable Gaussian, sigma 1.5, 11 taps (Wang et al.).
    t = np.arange(-5, 6)
    k = np.exp(-(t ** 2) / (2 * 1.5 ** 2)); k /= k.sum()
    x = np.apply_along_axis(lambda r: np.convolve(r, k, mode="valid"), 1, x)
    return np.apply_along_axis(lambda c: np.convolve(c, k, mode="valid"), 0, x)


def ssim(a, b):
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:h, :w], b[:h, :w]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma ** 2, blur(b * b) - mb ** 2, blur(a * b) - ma * mb
    return float((((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))).mean())


totals = {f: [0, 0, [], []] for f, _, _ in FORMATS}
for path in files:
    name = os.path.basename(path)
    data = open(path, "rb").read()
    # Neutral reference: the full-size decode (no shrink-on-load) resized with Lanczos3.
    full = pyvips.Image.new_from_buffer(data, "", access="sequential").autorot()
    ref = luma(full.resize(WIDTH / full.width, kernel="lanczos3"))
    for fmt, q, suffix in FORMATS:
        vips_bytes = pyvips.Image.thumbnail_buffer(data, WIDTH).write_to_buffer(suffix.format(q=q))
        url = f"{base}/cdn-cgi/image/width={WIDTH},quality={q},format={fmt}/{name}"
        ours = urllib.request.urlopen(url).read()
        s_vips = ssim(ref, luma(pyvips.Image.new_from_buffer(vips_bytes, "")))
        s_ours = ssim(ref, luma(pyvips.Image.new_from_buffer(ours, "")))
        t = totals[fmt]
        t[0] += len(vips_bytes); t[1] += len(ours); t[2].append(s_vips); t[3].append(s_ours)
        print(f"{name:22} {fmt:5} libvips {len(vips_bytes):7} B ssim {s_vips:.4f}   imgate {len(ours):7} B ssim {s_ours:.4f}")
print()
for fmt, q, _ in FORMATS:
    vb, ob, vs, os_ = totals[fmt]
    print(f"{fmt:5} q{q}: libvips {vb:8} B mean ssim {np.mean(vs):.4f} | imgate {ob:8} B mean ssim {np.mean(os_):.4f} | bytes ratio {ob / vb:.3f}")
