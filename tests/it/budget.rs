//! Output that costs far more than its input ("Safe to face the internet"): the real binary in
//! front of a real origin, with jobs admitted by their estimated memory cost.

use crate::support::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A 16-bit RGB PNG of `size` x `size`: a smooth picture, so the file is small while its
/// decode is not (6 bytes a pixel, then 3 more at 8 bits).
fn write_16_bit_png(path: &Path, size: u32) {
    let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_fn(size, size, |x, y| {
        image::Rgb([(x * 16) as u16, (y * 16) as u16, ((x + y) * 8) as u16])
    });
    img.save(path).unwrap();
}

/// An origin folder with `copies` distinct 16-bit 4000x4000 PNGs (distinct URLs, so neither
/// downloads nor decodes are shared) and a small JPEG.
fn origin_with_large_pngs(copies: usize) -> (tempfile::TempDir, TestOrigin) {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("big0.png");
    write_16_bit_png(&first, 4000);
    for i in 1..copies {
        std::fs::copy(&first, dir.path().join(format!("big{i}.png"))).unwrap();
    }
    std::fs::copy(
        fixtures().join("photos/GreenMeadow.jpg"),
        dir.path().join("meadow.jpg"),
    )
    .unwrap();
    let origin = TestOrigin::start(dir.path());
    (dir, origin)
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmHWM") / 1024
}

#[test]
fn r_budget_a_job_over_the_whole_budget_is_refused_413_before_decoding() {
    let (_dir, o) = origin_with_large_pngs(1);
    let gw = Imgate::start(
        &o.url(),
        "performance_overrides: {processing_budget: 64MiB}",
    );
    let started = Instant::now();
    let r = gw.get("/cdn-cgi/image/width=4000,format=jpeg/big0.png");
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        String::from_utf8_lossy(&r.body).contains("too expensive"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Nothing was decoded: the process never held the 144 MB the decode would take.
    assert!(
        peak_rss_mib(gw.pid()) < 100,
        "{} MiB",
        peak_rss_mib(gw.pid())
    );
    // A cheap job on the same server is made.
    let ok = gw.get("/cdn-cgi/image/width=100,format=jpeg/meadow.jpg");
    assert_eq!(ok.status, 200);
}

#[test]
fn r_budget_output_over_max_output_pixels_is_refused_from_the_header() {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start(&o.url(), "");
    // The request: 2048x2048 at dpr=4, padded AVIF = 8192x8192 (67 MP) from a small
    // JPEG. It took 49 s and 4.7 GB; now it is refused at once.
    let started = Instant::now();
    let r = gw.get(
        "/cdn-cgi/image/width=2048,height=2048,dpr=4,fit=pad,format=avif/photos/GreenMeadow.jpg",
    );
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("output too large"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(gw);
    // The limit is the output's width x height after dpr, and it can be set.
    let gw = Imgate::start(&o.url(), "limits: {max_output_pixels: 1000000}");
    let over = gw.get("/cdn-cgi/image/width=500,height=501,dpr=2,fit=pad/photos/GreenMeadow.jpg");
    assert_eq!(over.status, 413);
    let at = gw.get("/cdn-cgi/image/width=500,height=500,dpr=2,fit=pad/photos/GreenMeadow.jpg");
    assert_eq!(at.status, 200);
    assert_eq!(at.header("x-imgate-dimensions"), Some("1000x1000"));
}

/// Six expensive jobs at once (16-bit 4000x4000 PNGs, AVIF output, each estimated at about
/// 550 MiB, measured 577 MiB) against a 768 MiB budget: they run one at a time instead of two
/// (one per CPU; 596 MiB peak measured with one at a time, about 1.1 GiB expected with two),
/// so the peak stays within the budget plus the process's own, while a thumbnail asked for in
/// the middle of the burst overtakes the queued ones and answers at once.
#[test]
fn r_budget_a_burst_of_expensive_jobs_queues_within_the_budget_and_a_thumbnail_still_answers() {
    let (_dir, o) = origin_with_large_pngs(6);
    let budget_mib = 768;
    let gw = Imgate::start(
        &o.url(),
        &format!(
            "performance_overrides: {{processing_budget: {budget_mib}MiB, shared_decode_size: 16MiB, \
             max_concurrent_processing: 2}}"
        ),
    );
    let idle = peak_rss_mib(gw.pid());
    let addr = gw.addr.clone();
    let burst: Vec<_> = (0..6)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = get(
                    &addr,
                    &format!("/cdn-cgi/image/width=2000,format=avif/big{i}.png"),
                    &[],
                )
                .unwrap();
                (r.status, started.elapsed())
            })
        })
        .collect();
    // In the middle of the burst: the expensive jobs are running or queued.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let thumb = gw.get("/cdn-cgi/image/width=100,format=jpeg/meadow.jpg");
    let thumb_took = started.elapsed();
    let results: Vec<_> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(thumb.status, 200);
    for (status, _) in &results {
        assert_eq!(*status, 200);
    }
    let slowest = results.iter().map(|r| r.1).max().unwrap();
    let peak = peak_rss_mib(gw.pid());
    eprintln!("idle {idle} MiB, peak {peak} MiB, thumbnail {thumb_took:?}, slowest {slowest:?}");
    // Overhead: the idle process, six downloaded PNGs and their 16 MiB of shared decodes,
    // allocator slack.
    assert!(
        peak < budget_mib + idle + 48,
        "peak {peak} MiB, idle {idle} MiB"
    );
    assert!(
        thumb_took < Duration::from_millis(1500) && thumb_took * 4 < slowest,
        "thumbnail took {thumb_took:?}, slowest expensive job {slowest:?}"
    );
}
