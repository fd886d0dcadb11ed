//! The real `imgate` binary facing origins and sources that are broken or hostile: a name that
//! does not resolve, a `file://` directory with links leading out of it and dotfiles,
//! absolute source URLs pointing at the gateway's own host, and SVG documents that break the
//! drawing process.

use crate::support::*;
use std::path::Path;
use std::time::{Duration, Instant};

const FLOWER: &str = "photos/FreshFlower.jpg";

fn text(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// One site, written out in full (per-site keys included).
fn start_site(site: &str) -> Imgate {
    Imgate::start_sites(
        PINGORA,
        &format!("sites:\n  - hosts: ['*']\n{site}"),
        &[],
        &[],
    )
}

#[test]
fn r_unresolvable_origin_is_a_502_and_the_process_keeps_serving() {
    let mut gw = Imgate::start("http://does-not-exist.invalid:80", "");
    for round in 0..2 {
        // Passthrough: Pingora's upstream peer; it used to panic in a blocking DNS lookup
        // and abort the whole process.
        let r = gw.get("/photos/LadyBird.jpg");
        assert_eq!(r.status, 502, "round {round}: {}", text(&r));
        assert!(text(&r).contains("origin unreachable"), "{}", text(&r));
        assert!(
            gw.alive(),
            "round {round}: imgate died on an unresolvable origin"
        );

        // Transform: one quick 502, not a panic per attempt and the edge retrying.
        let started = Instant::now();
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{FLOWER}"));
        assert_eq!(r.status, 502, "round {round}: {}", text(&r));
        assert!(text(&r).contains("origin unreachable"), "{}", text(&r));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert!(gw.alive());
    }
    assert!(
        metric(&gw.admin, r#"imgate_origin_errors_total{kind="dns"}"#) >= 2.0,
        "DNS failures are counted"
    );
    assert_eq!(get(&gw.admin, "/livez", &[]).unwrap().status, 200);
}

#[test]
fn localhost_and_hosts_file_names_still_reach_the_origin() {
    let o = TestOrigin::start(fixtures());
    let mut names = vec!["localhost".to_string()];
    // A name /etc/hosts maps to 127.0.0.1 besides localhost (hickory answers `localhost`
    // itself), when this machine has one.
    if let Some(name) = hosts_file_loopback_name() {
        names.push(name);
    }
    for name in names {
        let gw = Imgate::start(&format!("http://{name}:{}", o.addr.port()), "");
        let r = gw.get("/photos/LadyBird.jpg");
        assert_eq!(r.status, 200, "{name}: {}", text(&r));
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{FLOWER}"));
        assert_eq!(r.status, 200, "{name}: {}", text(&r));
        assert_eq!(decode(&r.body).width(), 100);
    }
}

fn hosts_file_loopback_name() -> Option<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").ok()?;
    hosts.lines().find_map(|line| {
        let mut fields = line.split('#').next()?.split_whitespace();
        (fields.next()? == "127.0.0.1")
            .then(|| fields.find(|n| !n.starts_with("localhost") && !n.contains(':')))
            .flatten()
            .map(str::to_string)
    })
}

/// A served directory with a real image, links out of it (to a file, to a directory), links
/// that stay inside, and dotfiles; and an image outside it that a followed link would serve.
struct Tree {
    _outside: tempfile::TempDir,
    root: tempfile::TempDir,
}

fn tree() -> Tree {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (o, r) = (outside.path(), root.path());
    let flower = std::fs::read(fixtures().join(FLOWER)).unwrap();
    std::fs::write(o.join("secret.jpg"), &flower).unwrap();
    std::fs::write(o.join("passwd"), b"root:x:0:0\n").unwrap();
    std::fs::create_dir(r.join("img")).unwrap();
    std::fs::write(r.join("img/flower.jpg"), &flower).unwrap();
    std::fs::write(r.join(".env"), b"SECRET=1\n").unwrap();
    std::fs::create_dir(r.join(".git")).unwrap();
    std::fs::write(r.join(".git/config"), b"[core]\n").unwrap();
    symlink(o.join("secret.jpg"), r.join("secret.jpg")).unwrap();
    symlink(o.join("passwd"), r.join("passwd")).unwrap();
    symlink(o, r.join("out")).unwrap();
    symlink(r.join("img/flower.jpg"), r.join("same.jpg")).unwrap();
    symlink("img", r.join("pictures")).unwrap();
    Tree {
        _outside: outside,
        root,
    }
}

fn dir_site(root: &Path, extra: &str) -> Imgate {
    start_site(&format!("    origin: file://{}\n{extra}", root.display()))
}

#[test]
fn r_file_origin_links_leading_outside_and_dotfiles_are_not_served() {
    let t = tree();
    let mut gw = dir_site(t.root.path(), "");
    for path in [
        "/secret.jpg",
        "/passwd",
        "/out/secret.jpg",
        "/out/passwd",
        "/.env",
        "/.git/config",
        "/img/../.env",
        "/%2eenv",
    ] {
        let r = gw.get(path);
        assert!(
            r.status == 404 || (path.contains("..") && r.status == 400),
            "passthrough {path}: {} {}",
            r.status,
            text(&r)
        );
        assert!(!text(&r).contains("root:") && !text(&r).contains("SECRET"));
    }
    for source in ["secret.jpg", "out/secret.jpg", ".env", ".git/config"] {
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{source}"));
        assert_eq!(r.status, 404, "transform {source}: {}", text(&r));
    }
    // Links that stay inside the directory still work, on both routes.
    for path in ["/img/flower.jpg", "/same.jpg", "/pictures/flower.jpg"] {
        let r = gw.get(path);
        assert_eq!(r.status, 200, "{path}");
        let r = gw.get(&format!("/cdn-cgi/image/width=100{path}"));
        assert_eq!(r.status, 200, "{path}: {}", text(&r));
        assert_eq!(decode(&r.body).width(), 100);
    }
    assert!(gw.alive());

    // `allow_dotfiles` serves dotfiles; links out of the directory stay refused.
    let gw = dir_site(t.root.path(), "    allow_dotfiles: true\n");
    assert_eq!(gw.get("/.env").body, b"SECRET=1\n");
    assert_eq!(gw.get("/.git/config").status, 200);
    assert_eq!(gw.get("/out/passwd").status, 404);
    assert_eq!(gw.get("/secret.jpg").status, 404);
}

#[test]
fn r_internal_source_addresses_are_refused_alike_whatever_listens_there() {
    let o = TestOrigin::start(fixtures());
    let port = o.addr.port();
    let closed = free_port();
    // Another gateway's admin listener: an internal HTTP service on loopback.
    let other = Imgate::start(&o.url(), "");
    let admin = other.admin.rsplit(':').next().unwrap().to_string();
    // The site's own origin is a directory, so every absolute URL below is a foreign source.
    let site = |extra: &str| {
        format!(
            "    origin: file://{}\n    allowed_source_hosts: ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']\n    \
             allow_http_sources: true\n    allowed_source_ports: [{port}, {closed}, {admin}]\n{extra}",
            fixtures().display(),
        )
    };
    let gw = start_site(&site(""));
    let urls = [
        // An admin listener (today: 415, its /metrics text fetched as an image).
        format!("http://127.0.0.1:{admin}/metrics"),
        // A closed port (today: 502) and an open one.
        format!("http://127.0.0.1:{closed}/x.jpg"),
        format!("http://127.0.0.1:{port}/{FLOWER}"),
        // A name for it, and the IPv4-mapped IPv6 spelling.
        format!("http://localhost:{port}/{FLOWER}"),
        format!("http://[::ffff:127.0.0.1]:{port}/{FLOWER}"),
    ];
    for url in &urls {
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{url}"));
        assert_eq!(
            (r.status, text(&r).as_str()),
            (403, "source address not allowed\n"),
            "{url}"
        );
    }
    assert_eq!(o.hits(&format!("/{FLOWER}")), 0, "nothing was connected to");
    assert!(metric(&gw.admin, r#"imgate_origin_errors_total{kind="address"}"#) >= 5.0);

    // Allowing loopback serves it, by address and by name.
    let gw = start_site(&site("    allowed_source_ranges: ['127.0.0.0/8']\n"));
    for host in ["127.0.0.1", "localhost"] {
        let r = gw.get(&format!(
            "/cdn-cgi/image/width=100/http://{host}:{port}/{FLOWER}"
        ));
        assert_eq!(r.status, 200, "{host}: {}", text(&r));
        assert_eq!(decode(&r.body).width(), 100);
    }
    let r = gw.get(&format!(
        "/cdn-cgi/image/width=100/http://127.0.0.1:{closed}/x.jpg"
    ));
    assert_eq!(r.status, 502, "{}", text(&r));
}

#[test]
fn source_scheme_and_port_need_the_sites_leave() {
    let o = TestOrigin::start(fixtures());
    let port = o.addr.port();
    let gw = start_site(&format!(
        "    origin: file://{}\n    allowed_source_hosts: ['127.0.0.1']\n    allowed_source_ranges: ['127.0.0.1']\n",
        fixtures().display(),
    ));
    for (url, message) in [
        (
            format!("http://127.0.0.1/{FLOWER}"),
            "http source URLs not allowed",
        ),
        (
            format!("https://127.0.0.1:{port}/{FLOWER}"),
            "source port not allowed",
        ),
    ] {
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{url}"));
        assert_eq!(r.status, 403, "{url}");
        assert!(text(&r).contains(message), "{url}: {}", text(&r));
    }
    assert_eq!(o.connections(), 0);
}

/// SVG originals are drawn in a child process (`imaging::svg::worker`): a document that makes
/// usvg or resvg abort costs its own request a `422`, never the gateway. The stand-in drawing
/// programs below fail the way a crashing renderer does (a signal, a short answer); the real
/// one draws, and refuses a document with a circular reference, which aborted the whole
/// process before it was checked (fuzz finding 14).
#[test]
fn r_svg_is_drawn_in_a_child_process_whose_failure_costs_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(fixtures().join("logo.svg"), root.join("logo.svg")).unwrap();
    std::fs::create_dir(root.join("photos")).unwrap();
    std::fs::copy(fixtures().join(FLOWER), root.join(FLOWER)).unwrap();
    std::fs::write(
        root.join("ring.svg"),
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" fill="url(#p)">
           <pattern id="p" width="8" height="8" patternUnits="userSpaceOnUse">
           <rect width="4" height="4"/></pattern><rect width="10" height="10"/></svg>"#,
    )
    .unwrap();
    let origin = TestOrigin::start(root);

    let mut gw = Imgate::start(&origin.url(), "");
    let r = gw.get("/cdn-cgi/image/width=200,format=png/logo.svg");
    assert_eq!(r.status, 200, "{}", text(&r));
    let img = decode(&r.body);
    assert_eq!(img.dimensions(), (200, 100));
    let red = img.get_pixel(50, 50).0;
    assert!(red[0] > 200 && red[1] < 60 && red[3] == 255, "{red:?}");
    for _ in 0..2 {
        let r = gw.get("/cdn-cgi/image/width=8,format=png/ring.svg");
        assert_eq!(r.status, 422, "{}", text(&r));
    }
    assert!(gw.alive(), "the gateway survives the circular document");

    let abort = root.join("abort.sh");
    let short = root.join("short.sh");
    std::fs::write(&abort, "#!/bin/sh\nkill -ABRT $$\n").unwrap();
    std::fs::write(&short, "#!/bin/sh\ncat > /dev/null\nprintf O123\n").unwrap();
    for program in [&abort, &short] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let program = program.to_str().unwrap();
        let mut gw = Imgate::start_full(
            &origin.url(),
            PINGORA,
            "",
            &[],
            &[("IMGATE_SVG_WORKER", program)],
        );
        let r = gw.get("/cdn-cgi/image/width=64,format=png/logo.svg");
        assert_eq!(r.status, 422, "{program}: {}", text(&r));
        // Other images are served as before.
        let r = gw.get(&format!("/cdn-cgi/image/width=100/{FLOWER}"));
        assert_eq!(r.status, 200, "{program}: {}", text(&r));
        assert_eq!(decode(&r.body).dimensions(), (100, 75));
        let live = get(&gw.admin, "/livez", &[]).expect("livez answers");
        assert_eq!(live.status, 200);
        assert!(
            gw.alive(),
            "{program}: the gateway survives its drawing process"
        );
    }
}
