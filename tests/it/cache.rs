//! The edge cache end to end: the real binary, a real origin and a real disk tier in a temp
//! directory. Restarts, promotion between tiers, the disk budget, damaged files, every purge
//! kind and its auth, soft purge with stale-if-error, warming, and a SIGKILL mid-write.

use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123456789";
const FLOWER: &str = "/photos/FreshFlower.jpg";
const MEADOW: &str = "/photos/GreenMeadow.jpg";
const HIT: Option<&str> = Some("imgate; hit");
const DISK_HIT: Option<&str> = Some("imgate; hit; detail=disk");
const MISS: Option<&str> = Some("imgate; fwd=miss");

fn cache_yaml(dir: &Path, memory: &str, disk: &str) -> String {
    format!(
        "cache:\n  dir: {}\n  memory_size: {memory}\n  disk_size: {disk}\nadmin:\n  token: {TOKEN}\n",
        dir.display()
    )
}

/// Entry files of the disk tier (two-level layout), temp files excluded.
fn entry_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| p.extension().is_none())
        .collect()
}

fn tmp_files(dir: &Path) -> usize {
    files(dir)
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .count()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if shard.path().is_dir() {
            for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
                out.push(f.path());
            }
        }
    }
    out
}

/// The entry file whose (plain-text) primary key contains `needle`.
fn file_for(dir: &Path, needle: &str) -> PathBuf {
    entry_files(dir)
        .into_iter()
        .find(|p| {
            std::fs::read(p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .unwrap_or_else(|| panic!("no entry file for {needle}"))
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_of(gw: &Imgate, url: &str) -> Option<String> {
    let r = gw.get(url);
    assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
    r.header("cache-status").map(str::to_string)
}

fn admin_post(gw: &Imgate, path: &str, auth: Option<&str>, body: &str) -> (u16, Response) {
    let bearer = auth.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let r = send_body(&gw.admin, "POST", path, &headers, body.as_bytes()).unwrap();
    (r.status, r)
}

fn purge(gw: &Imgate, body: Value) -> Value {
    let (status, r) = admin_post(gw, "/purge", Some(TOKEN), &body.to_string());
    assert_eq!(status, 200, "{body}: {}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

/// An origin, a cache directory and the YAML for tiers of these sizes, the disk one there.
fn disk_cached(memory: &str, disk: &str) -> (TestOrigin, tempfile::TempDir, String) {
    let cache = tempfile::tempdir().unwrap();
    let extra = cache_yaml(cache.path(), memory, disk);
    (TestOrigin::start(fixtures()), cache, extra)
}

/// JPEG thumbnails of the flower, one per width.
fn jpeg_thumbnails(widths: std::ops::Range<u32>) -> Vec<String> {
    widths
        .map(|w| format!("/cdn-cgi/image/width={w},format=jpeg{FLOWER}"))
        .collect()
}

fn dims(body: &[u8]) -> (u32, u32) {
    decode(body).dimensions()
}

#[test]
fn disk_hit_after_restart_then_memory_hit_without_touching_the_origin() {
    let (o, cache, extra) = disk_cached("64MiB", "64MiB");
    let img = format!("/cdn-cgi/image/width=200,format=png{FLOWER}");
    let mut gw = Imgate::start(&o.url(), &extra);
    let first_img = gw.get(&img);
    assert_eq!(first_img.header("cache-status"), MISS);
    let first_raw = gw.get(MEADOW);
    assert_eq!(first_raw.header("cache-status"), MISS);
    wait_for("two entry files", || entry_files(cache.path()).len() == 2);
    gw.terminate();
    gw.wait_exit(Duration::from_secs(10)).expect("imgate exits");
    let origin_hits = (o.hits(FLOWER), o.hits(MEADOW));

    let gw = Imgate::start(&o.url(), &extra);
    for (url, first) in [(img.as_str(), &first_img), (MEADOW, &first_raw)] {
        let r = gw.get(url);
        assert_eq!(r.header("cache-status"), DISK_HIT, "{url}");
        assert_eq!(r.body, first.body, "{url}");
        assert_eq!(r.header("etag"), first.header("etag"));
        // Promoted: the next one is a memory hit.
        assert_eq!(status_of(&gw, url).as_deref(), HIT, "{url}");
    }
    assert_eq!((o.hits(FLOWER), o.hits(MEADOW)), origin_hits);
    let disk_hits = metric(
        &gw.admin,
        "imgate_cache_lookups_total{result=\"hit\",tier=\"disk\"}",
    );
    assert_eq!(disk_hits, 2.0);
    assert_eq!(
        metric(&gw.admin, "imgate_cache_entries{tier=\"disk\"}"),
        2.0
    );
}

#[test]
fn entries_evicted_from_memory_come_back_from_disk_and_are_promoted() {
    // Room in memory for two or three of these thumbnails, not ten.
    let (o, cache, extra) = disk_cached("16KiB", "64MiB");
    let gw = Imgate::start(&o.url(), &extra);
    let urls = jpeg_thumbnails(120..130);
    for u in &urls {
        assert_eq!(status_of(&gw, u).as_deref(), MISS);
    }
    wait_for("ten entry files", || entry_files(cache.path()).len() == 10);
    // Ten variants of one original: fetched once per variant at most (fewer when a download
    // still in use serves the next variant), and never again below.
    let fetched = o.hits(FLOWER);
    assert!(
        (1..=10).contains(&fetched),
        "{fetched} fetches for ten variants"
    );
    // moka admits a newcomer over a victim only once it is asked for more often, so a promoted
    // entry may need a few disk hits before memory keeps it.
    let (mut from_disk, mut promoted) = (0, 0);
    for u in &urls {
        let mut tier = status_of(&gw, u);
        let width: u32 = u["/cdn-cgi/image/width=".len()..][..3].parse().unwrap();
        for _ in 0..6 {
            if tier.as_deref() != DISK_HIT {
                break;
            }
            from_disk += 1;
            let r = gw.get(u);
            assert_eq!(dims(&r.body).0, width);
            tier = r.header("cache-status").map(str::to_string);
            if tier.as_deref() == HIT {
                promoted += 1;
            }
        }
    }
    assert!(from_disk > 0, "nothing was served from disk");
    assert!(promoted > 0, "no disk hit was promoted to memory");
    assert_eq!(
        o.hits(FLOWER),
        fetched,
        "every answer came from a cache tier"
    );
    println!("memory->disk->memory: {from_disk} disk hits, {promoted} promoted");
}

#[test]
fn disk_tier_stays_within_its_byte_budget() {
    let budget = 40 * 1024;
    let (o, cache, extra) = disk_cached("64MiB", "40KiB");
    let gw = Imgate::start(&o.url(), &extra);
    let urls = jpeg_thumbnails(140..152);
    for u in &urls {
        assert_eq!(status_of(&gw, u).as_deref(), MISS);
        // The memory insert follows the disk write: a hit means the file is settled.
        assert_eq!(status_of(&gw, u).as_deref(), HIT);
    }
    let files = entry_files(cache.path());
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(bytes <= budget, "{bytes} bytes on disk over {budget}");
    assert!(files.len() < urls.len() && !files.is_empty());
    let evicted = metric(&gw.admin, "imgate_cache_evictions_total{tier=\"disk\"}");
    assert_eq!(evicted as usize, urls.len() - files.len());
    assert_eq!(
        metric(&gw.admin, "imgate_cache_bytes{tier=\"disk\"}") as u64,
        bytes
    );
    // The most recent entry is the one kept.
    file_for(cache.path(), "width=151");
}

#[test]
fn corrupt_and_truncated_entries_are_misses_removed_and_refilled() {
    let (o, cache, extra) = disk_cached("64MiB", "64MiB");
    let flower = format!("/cdn-cgi/image/width=180,format=png{FLOWER}");
    let meadow = format!("/cdn-cgi/image/width=180,format=png{MEADOW}");
    let mut gw = Imgate::start(&o.url(), &extra);
    let originals = [gw.get(&flower), gw.get(&meadow)];
    wait_for("two entry files", || entry_files(cache.path()).len() == 2);
    gw.terminate();
    gw.wait_exit(Duration::from_secs(10)).expect("imgate exits");

    // One flipped byte in a body (found only by the checksum on read), one file cut in half
    // (found by the startup scan).
    let flipped = file_for(cache.path(), "FreshFlower");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x55;
    std::fs::write(&flipped, bytes).unwrap();
    let cut = file_for(cache.path(), "GreenMeadow");
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();

    let gw = Imgate::start(&o.url(), &extra);
    assert!(!cut.exists(), "truncated entry removed at startup");
    let before = (o.hits(FLOWER), o.hits(MEADOW));
    for (url, original) in [(&flower, &originals[0]), (&meadow, &originals[1])] {
        let r = gw.get(url);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-status"), MISS, "{url}");
        assert_eq!(dims(&r.body), dims(&original.body));
        let s = ssim(&decode(&original.body), &decode(&r.body));
        assert!(s > 0.99, "{url}: refilled entry looks different, SSIM {s}");
        assert_eq!(status_of(&gw, url).as_deref(), HIT);
    }
    assert_eq!(
        (o.hits(FLOWER), o.hits(MEADOW)),
        (before.0 + 1, before.1 + 1)
    );
    assert_eq!(
        metric(
            &gw.admin,
            "imgate_cache_disk_errors_total{kind=\"corrupt\"}"
        ),
        2.0
    );
    // Both files are back, whole: a restart serves them from disk.
    wait_for("two entry files", || entry_files(cache.path()).len() == 2);
    drop(gw);
    let gw = Imgate::start(&o.url(), &extra);
    for url in [&flower, &meadow] {
        assert_eq!(status_of(&gw, url).as_deref(), DISK_HIT);
    }
}

#[test]
fn purge_by_url_source_prefix_tag_and_everything_with_auth() {
    let o = TestOrigin::start(fixtures());
    let front = TagFront::start(o.addr);
    let cache = tempfile::tempdir().unwrap();
    let gw = Imgate::start(&front.url(), &cache_yaml(cache.path(), "64MiB", "64MiB"));
    let avif = "image/avif,image/webp,*/*";
    let webp = "image/webp,*/*";
    let u1 = format!("/cdn-cgi/image/width=100,format=jpeg{FLOWER}");
    let u2 = format!("/cdn-cgi/image/width=120,format=jpeg{FLOWER}");
    let auto = format!("/cdn-cgi/image/width=70,format=auto{FLOWER}");
    let g1 = format!("/cdn-cgi/image/width=100,format=jpeg{MEADOW}");
    let g2 = format!("/cdn-cgi/image/width=64,format=png{MEADOW}");
    let p1 = "/cdn-cgi/image/width=50,format=jpeg/orientation/Landscape_1.jpg";
    let p2 = "/orientation/Landscape_2.jpg";
    let t1 = "/cdn-cgi/image/width=60,format=jpeg/tag/cats+dogs/photos/FreshFlower.jpg";
    let t2 = "/ctag/birds,bees/photos/GreenMeadow.jpg";
    let plain: Vec<&str> = vec![&u1, &u2, &g1, &g2, MEADOW, p1, p2, t1, t2];
    let cache_status = |url: &str, accept: Option<&str>| {
        let headers: Vec<(&str, &str)> = accept.map(|a| vec![("Accept", a)]).unwrap_or_default();
        let r = gw.get_with(url, &headers);
        assert_eq!(r.status, 200, "{url}");
        r.header("cache-status").unwrap_or("").to_string()
    };
    let fill = |urls: &[&str]| {
        for u in urls {
            cache_status(u, None);
            assert_eq!(cache_status(u, None), "imgate; hit", "{u}");
        }
    };
    fill(&plain);
    for accept in [avif, webp] {
        cache_status(&auto, Some(accept));
        assert_eq!(cache_status(&auto, Some(accept)), "imgate; hit");
    }
    // The transform forwarded the origin's Surrogate-Key; passthrough kept Cache-Tag.
    assert_eq!(gw.get(t1).header("surrogate-key"), Some("cats dogs"));
    assert_eq!(gw.get(t2).header("cache-tag"), Some("birds,bees"));

    // Refused purges change nothing.
    let everything = r#"{"everything": true}"#;
    let (status, r) = admin_post(&gw, "/purge", None, everything);
    assert_eq!(status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert_eq!(
        admin_post(&gw, "/purge", Some("wrong-token-0123456789"), everything).0,
        403
    );
    assert_eq!(admin_post(&gw, "/purge", Some(TOKEN), "{not json").0, 400);
    assert_eq!(
        admin_post(&gw, "/purge", Some(TOKEN), r#"{"urls": "x"}"#).0,
        400
    );
    assert_eq!(
        admin_post(&gw, "/purge", Some(TOKEN), r#"{"colour": 1}"#).0,
        400
    );
    let many = json!({ "tags": (0..101).map(|i| i.to_string()).collect::<Vec<_>>() });
    assert_eq!(
        admin_post(&gw, "/purge", Some(TOKEN), &many.to_string()).0,
        400
    );
    let huge = format!(r#"{{"tags": ["{}"]}}"#, "x".repeat(70 * 1024));
    assert_eq!(admin_post(&gw, "/purge", Some(TOKEN), &huge).0, 413);
    assert_eq!(get(&gw.admin, "/purge", &[]).unwrap().status, 405);
    let o2 = TestOrigin::start(fixtures());
    let no_token = Imgate::start(&o2.url(), "");
    let (status, r) = admin_post(&no_token, "/purge", Some(TOKEN), everything);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("disabled"));
    for u in &plain {
        assert_eq!(
            cache_status(u, None),
            "imgate; hit",
            "{u} after refused purges"
        );
    }

    // By URL, in another spelling of the same options and with a host: only that entry.
    let r = purge(
        &gw,
        json!({"urls": [format!("http://img.example.com/cdn-cgi/image/w=100,format=jpeg,dpr=1{FLOWER}")]}),
    );
    assert_eq!(
        r,
        json!({"purged": {"memory": 1, "disk": 1}, "soft": false})
    );
    assert_eq!(cache_status(&u1, None), "imgate; fwd=miss");
    assert_eq!(cache_status(&u2, None), "imgate; hit");
    // Every Vary variant of a URL.
    let r = purge(&gw, json!({"urls": [auto]}));
    assert_eq!(r["purged"], json!({"memory": 2, "disk": 2}));
    assert_eq!(cache_status(&auto, Some(avif)), "imgate; fwd=miss");
    assert_eq!(cache_status(&auto, Some(webp)), "imgate; fwd=miss");
    // By source: every transform plus the passthrough copy, nothing else.
    let r = purge(&gw, json!({"sources": [MEADOW]}));
    assert_eq!(r["purged"], json!({"memory": 3, "disk": 3}));
    for u in [&g1, &g2, MEADOW] {
        assert_eq!(cache_status(u, None), "imgate; fwd=miss", "{u}");
    }
    assert_eq!(cache_status(t2, None), "imgate; hit");
    // By prefix: images and passthrough under it.
    let r = purge(&gw, json!({"prefixes": ["/orientation/"]}));
    assert_eq!(r["purged"], json!({"memory": 2, "disk": 2}));
    for u in [p1, p2] {
        assert_eq!(cache_status(u, None), "imgate; fwd=miss", "{u}");
    }
    // By tag, from Surrogate-Key (space separated) and Cache-Tag (comma separated).
    let r = purge(&gw, json!({"tags": ["dogs", "bees"]}));
    assert_eq!(r["purged"], json!({"memory": 2, "disk": 2}));
    for u in [t1, t2] {
        assert_eq!(cache_status(u, None), "imgate; fwd=miss", "{u}");
    }
    assert_eq!(cache_status(&u2, None), "imgate; hit");
    // Everything (refilled first, so each entry is settled in both tiers).
    fill(&plain);
    for accept in [avif, webp] {
        assert_eq!(cache_status(&auto, Some(accept)), "imgate; hit");
    }
    let r = purge(&gw, json!({"everything": true}));
    assert_eq!(r["purged"], json!({"memory": 11, "disk": 11}));
    assert!(entry_files(cache.path()).is_empty());
    for u in &plain {
        assert_eq!(cache_status(u, None), "imgate; fwd=miss", "{u}");
    }
    let m = |kind: &str| {
        metric(
            &gw.admin,
            &format!("imgate_cache_purges_total{{kind=\"{kind}\",mode=\"hard\"}}"),
        )
    };
    assert_eq!(
        [
            m("url"),
            m("source"),
            m("prefix"),
            m("tag"),
            m("everything")
        ],
        [2.0, 1.0, 1.0, 2.0, 1.0]
    );
}

#[test]
fn soft_purge_revalidates_and_serves_stale_if_error_when_the_origin_is_down() {
    let (o, cache, extra) = disk_cached("64MiB", "64MiB");
    let gw = Imgate::start(&o.url(), &extra);
    let sie = "/cc/max-age=3600,stale-if-error=600/photos/FreshFlower.jpg";
    let plain = "/cc/max-age=3600/photos/GreenMeadow.jpg";
    let img = format!("/cdn-cgi/image/width=90,format=jpeg{FLOWER}");
    for u in [sie, plain, &img] {
        assert_eq!(status_of(&gw, u).as_deref(), MISS);
        assert_eq!(status_of(&gw, u).as_deref(), HIT);
    }
    let r = purge(&gw, json!({"urls": [sie, plain, img], "soft": true}));
    assert_eq!(r, json!({"purged": {"memory": 3, "disk": 3}, "soft": true}));
    // Soft-purged entries are kept: the disk still has all three.
    assert_eq!(entry_files(cache.path()).len(), 3);
    o.stop();
    let r = gw.get(sie);
    assert_eq!(
        r.status, 200,
        "stale-if-error not honoured after a soft purge"
    );
    assert_eq!(
        r.body,
        std::fs::read(fixtures().join("photos/FreshFlower.jpg")).unwrap()
    );
    assert!(
        r.header("cache-status").unwrap().contains("stale"),
        "{:?}",
        r.header("cache-status")
    );
    let r = gw.get(&img);
    assert_eq!(r.status, 200, "variant carries stale-if-error");
    assert_eq!(dims(&r.body), (90, 68));
    // Without stale-if-error a soft-purged entry is not served once the origin is gone.
    assert!(gw.get(plain).status >= 500);
    assert_eq!(
        metric(
            &gw.admin,
            "imgate_cache_purges_total{kind=\"url\",mode=\"soft\"}"
        ),
        3.0
    );
}

#[test]
fn warm_fetches_through_the_edge_then_requests_hit() {
    let o = TestOrigin::start(fixtures());
    let gw = Imgate::start(&o.url(), &format!("admin:\n  token: {TOKEN}\n"));
    let img = format!("/cdn-cgi/image/width=110,format=auto{FLOWER}");
    let body = json!({"urls": [img, MEADOW, "http://img.example.com/photos/missing.jpg"], "accept": "image/webp,*/*"});
    assert_eq!(admin_post(&gw, "/warm", None, &body.to_string()).0, 401);
    assert_eq!(
        admin_post(&gw, "/warm", Some(TOKEN), r#"{"urls": []}"#).0,
        400
    );
    let (status, r) = admin_post(&gw, "/warm", Some(TOKEN), &body.to_string());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 200);
    assert_eq!(results[0]["cache_status"], "imgate; fwd=miss");
    assert!(results[0]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(results[1]["status"], 200);
    assert_eq!(results[2]["status"], 404);
    // Same key and variance as real traffic: a WebP client hits, a JPEG-only one does not.
    let r = gw.get_with(&img, &[("Accept", "image/webp")]);
    assert_eq!(r.header("cache-status"), HIT);
    assert_eq!(sniff(&r.body), "webp");
    assert_eq!(status_of(&gw, MEADOW).as_deref(), HIT);
    assert_eq!(status_of(&gw, &img).as_deref(), MISS);
    assert_eq!(o.hits(MEADOW), 1);
}

/// Many concurrent misses writing to disk, SIGKILL mid-way, restart on the same directory:
/// every URL must come back whole (decodes, exact dimensions, looks like a fresh transform),
/// from disk or refilled, and the cache must keep working.
#[test]
fn sigkill_during_disk_writes_never_serves_a_truncated_entry() {
    let o = TestOrigin::start(fixtures());
    let cache = tempfile::tempdir().unwrap();
    let extra = cache_yaml(cache.path(), "64MiB", "256MiB");
    // Transforms (CPU-bound misses) interleaved with 1 MB passthrough copies (write-bound
    // misses: distinct keys through the query string), so the kill lands among disk writes.
    let formats = ["png", "jpeg", "webp"];
    let big = "/ladybird-cmyk.jpg";
    let urls: Arc<Vec<String>> = Arc::new(
        (0..96)
            .map(|i| match i % 2 {
                0 => format!("{big}?v={i}"),
                _ => format!(
                    "/cdn-cgi/image/width={},format={}{}",
                    200 + i,
                    formats[i % 3],
                    if i % 4 == 1 { FLOWER } else { MEADOW }
                ),
            })
            .collect(),
    );
    let gw = Imgate::start(&o.url(), &extra);
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (urls, answered, addr) = (urls.clone(), answered.clone(), gw.addr.clone());
            std::thread::spawn(move || {
                for u in urls.iter().skip(t).step_by(8) {
                    match get(&addr, u, &[]) {
                        Ok(r) if r.status == 200 => answered.fetch_add(1, Ordering::SeqCst),
                        _ => return,
                    };
                }
            })
        })
        .collect();
    wait_for("30 answers", || answered.load(Ordering::SeqCst) >= 30);
    gw.kill9();
    for w in workers {
        w.join().unwrap();
    }
    let before_kill = answered.load(Ordering::SeqCst);
    let on_disk = entry_files(cache.path()).len();
    let temp_left = tmp_files(cache.path());
    drop(gw);

    let gw = Imgate::start(&o.url(), &extra);
    assert_eq!(tmp_files(cache.path()), 0, "temp files cleaned at startup");
    let indexed = metric(&gw.admin, "imgate_cache_entries{tier=\"disk\"}") as usize;
    let fresh = Imgate::start(&o.url(), "");
    let original = std::fs::read(fixtures().join(&big[1..])).unwrap();
    let (mut from_disk, mut refilled) = (0, 0);
    for u in urls.iter() {
        let r = gw.get(u);
        assert_eq!(r.status, 200, "{u}");
        if let Some(len) = r.header("content-length") {
            assert_eq!(
                len.parse::<usize>().unwrap(),
                r.body.len(),
                "{u}: truncated"
            );
        }
        match r.header("cache-status") {
            DISK_HIT => from_disk += 1,
            MISS => refilled += 1,
            other => panic!("{u}: unexpected cache status {other:?}"),
        }
        if u.starts_with(big) {
            assert_eq!(r.body, original, "{u}");
            continue;
        }
        let want = fresh.get(u);
        let (got_img, want_img) = (decode(&r.body), decode(&want.body));
        assert_eq!(got_img.dimensions(), want_img.dimensions(), "{u}");
        assert_eq!(sniff(&r.body), sniff(&want.body), "{u}");
        let s = ssim(&want_img, &got_img);
        assert!(s > 0.98, "{u}: SSIM {s} against a fresh transform");
    }
    for u in urls.iter() {
        assert_eq!(status_of(&gw, u).as_deref(), HIT, "{u} after refill");
    }
    let corrupt = metric(
        &gw.admin,
        "imgate_cache_disk_errors_total{kind=\"corrupt\"}",
    );
    println!(
        "crash test: {} URLs, {before_kill} answered before SIGKILL; {on_disk} entry files and \
         {temp_left} temp files left by the kill; after restart {indexed} entries indexed, \
         {from_disk} served from disk, {refilled} refilled, {corrupt} corrupt dropped, \
         0 truncated bodies",
        urls.len()
    );
    assert_eq!(
        from_disk, indexed,
        "every indexed entry was served from disk"
    );
    assert_eq!(
        corrupt, 0.0,
        "rename-into-place leaves no torn entry after SIGKILL"
    );
    assert!(from_disk > 0, "entries written before the kill survive it");
}

#[test]
fn an_unsafe_request_during_a_fill_keeps_that_fill_out_of_the_cache() {
    // RFC 9111 §4.4: a successful POST invalidates what is stored for its URL. One that
    // succeeds while a GET of that URL is being filled must keep that fill out too, and only
    // that one.
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("page.txt"), "before the POST").unwrap();
    std::fs::write(root.path().join("other.txt"), "another page").unwrap();
    let o = TestOrigin::start(root.path());
    let cache = tempfile::tempdir().unwrap();
    let gw = Arc::new(Imgate::start(
        &o.url(),
        &cache_yaml(cache.path(), "64MiB", "64MiB"),
    ));
    // GETs that take 800 ms at the origin (the POST is answered at once).
    let (url, other) = ("/slow/800/page.txt", "/slow/800/other.txt");
    let fills: Vec<_> = [url, other]
        .into_iter()
        .map(|u| {
            let gw = gw.clone();
            std::thread::spawn(move || gw.get(u))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let post = request(&gw.addr, "POST", url, &[("Content-Length", "0")]).unwrap();
    assert_eq!(post.status, 200);
    let filled: Vec<Response> = fills.into_iter().map(|f| f.join().unwrap()).collect();
    assert_eq!(
        filled[0].body, b"before the POST",
        "the fill itself is still served"
    );
    assert_eq!(o.hits(url), 2, "one GET and the POST");
    // What a stored copy of that fill would hide.
    std::fs::write(root.path().join("page.txt"), "after the POST").unwrap();
    let next = gw.get(url);
    assert_eq!(
        next.header("cache-status"),
        MISS,
        "the overtaken fill was stored"
    );
    assert_eq!(next.body, b"after the POST");
    assert_eq!(o.hits(url), 3);
    assert!(metric(&gw.admin, "imgate_cache_fills_dropped_total") >= 1.0);
    // The other URL's fill, which no invalidation covered, was stored; so is the new one.
    assert_eq!(status_of(&gw, other).as_deref(), HIT);
    assert_eq!(status_of(&gw, url).as_deref(), HIT);
    assert_eq!((o.hits(url), o.hits(other)), (3, 1));
}

#[test]
fn a_purge_during_a_fill_keeps_that_fill_out_of_the_cache() {
    // The origin serves one file that changes from one photo to another around a purge.
    let root = tempfile::tempdir().unwrap();
    let photo = |name: &str| std::fs::read(fixtures().join("photos").join(name)).unwrap();
    std::fs::write(root.path().join("img.jpg"), photo("GreenMeadow.jpg")).unwrap(); // 1280x1024
    let o = TestOrigin::start(root.path());
    let cache = tempfile::tempdir().unwrap();
    let gw = Arc::new(Imgate::start(
        &o.url(),
        &cache_yaml(cache.path(), "64MiB", "64MiB"),
    ));
    let url = "/cdn-cgi/image/width=100,format=jpeg/slow/800/img.jpg";
    let height = |r: &Response| image::load_from_memory(&r.body).unwrap().height();
    // A miss that takes 800 ms at the origin; an admin purge lands in the middle of it.
    let fill = {
        let gw = gw.clone();
        std::thread::spawn(move || gw.get(url))
    };
    std::thread::sleep(Duration::from_millis(300));
    purge(&gw, json!({"everything": true}));
    let first = fill.join().unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(height(&first), 80, "the fill itself is still served");
    // The original changes. The purge must have kept the overtaken fill out of both tiers,
    // and the transform service must not reuse the download it still holds from before.
    std::fs::write(root.path().join("img.jpg"), photo("FreshFlower.jpg")).unwrap(); // 1600x1203
    let next = gw.get(url);
    assert_eq!(next.status, 200);
    assert_eq!(
        next.header("cache-status"),
        MISS,
        "the overtaken fill was stored"
    );
    assert_eq!(
        height(&next),
        75,
        "a variant was made from the original of before the purge"
    );
    assert_eq!(o.hits("/slow/800/img.jpg"), 2);
    assert!(metric(&gw.admin, "imgate_cache_fills_dropped_total") >= 1.0);
    // Fills that no purge overtook are stored as ever.
    assert_eq!(status_of(&gw, url).as_deref(), HIT);
    assert_eq!(o.hits("/slow/800/img.jpg"), 2);
}
