//! Cluster mode end to end: three real `imgate` nodes on loopback, each with its own disk
//! tier, one real origin, peers found by their cluster listeners. What one original costs the
//! cluster (one origin fetch, each variant made once), owners dying under load, and the cluster
//! listener refusing anyone without the token.

use crate::support::*;
use std::time::{Duration, Instant};

const TOKEN: &str = "cluster-token-0123456789";
const FLOWER: &str = "/photos/FreshFlower.jpg";

/// Three nodes sharing one cache, and the directories of their disk tiers.
struct Nodes {
    nodes: Vec<Option<Imgate>>,
    cluster_ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    pingora: String,
    origin: String,
    extra: String,
    /// How the peers list names the nodes: an address, or a name resolving to it.
    peer_host: String,
}

impl Nodes {
    /// Three nodes in front of `origin`, `extra` YAML added to the `cluster` section; returns
    /// once every node sees all three live.
    fn start(origin: &str, extra: &str) -> Nodes {
        Nodes::start_with(PINGORA, origin, extra)
    }

    /// [`Nodes::start`] with the peers listed by a host name instead of their address.
    fn start_named(origin: &str, host: &str) -> Nodes {
        Nodes::start_full(PINGORA, origin, "", host)
    }

    /// [`Nodes::start`] with a `pingora:` section of the test's (shutdown grace periods).
    fn start_with(pingora: &str, origin: &str, extra: &str) -> Nodes {
        Nodes::start_full(pingora, origin, extra, "127.0.0.1")
    }

    fn start_full(pingora: &str, origin: &str, extra: &str, peer_host: &str) -> Nodes {
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut nodes = Nodes {
            nodes: vec![None, None, None],
            cluster_ports,
            dirs,
            pingora: pingora.to_string(),
            origin: origin.to_string(),
            extra: extra.to_string(),
            peer_host: peer_host.to_string(),
        };
        for i in 0..3 {
            nodes.restart(i);
        }
        nodes.wait_ring(3);
        nodes
    }

    /// Start node `i` (again): the same cluster listener and disk tier, new client and admin
    /// ports. Returns once it reports ready (caught up with the purge stream).
    fn restart(&mut self, i: usize) {
        let body = self.body(i, self.dirs[i].path(), &self.origin, &self.extra);
        self.nodes[i] = Some(Imgate::start_sites(&self.pingora, &body, &[], &[]));
    }

    fn body(&self, i: usize, dir: &std::path::Path, origin: &str, extra: &str) -> String {
        let extra = extra
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect::<String>();
        let peers: Vec<String> = self
            .cluster_ports
            .iter()
            .map(|p| format!("'{}:{p}'", self.peer_host))
            .collect();
        format!(
            "cache:\n  dir: {}\nadmin:\n  token: admin-token-0123456789\n\
             cluster:\n  listen: 127.0.0.1:{}\n  peers: [{}]\n  token: {TOKEN}\n{extra}\
             sites:\n  - hosts: ['*']\n    origin: {origin}\n",
            dir.display(),
            self.cluster_ports[i],
            peers.join(", ")
        )
    }

    fn node(&self, i: usize) -> &Imgate {
        self.nodes[i].as_ref().expect("node running")
    }

    fn running(&self) -> impl Iterator<Item = &Imgate> {
        self.nodes.iter().flatten()
    }

    /// Until every running node's ring holds `live` nodes (health checks run every second).
    fn wait_ring(&self, live: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let sizes: Vec<f64> = self
                .running()
                .map(|n| metric(&n.admin, "imgate_cluster_ring_size"))
                .collect();
            if sizes.iter().all(|s| *s == live as f64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "rings did not settle on {live} nodes: {sizes:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every labelled series of `name` summed, over the running nodes.
    fn total_labelled(&self, name: &str) -> f64 {
        let prefix = format!("{name}{{");
        self.running()
            .map(|n| {
                let text = String::from_utf8(get(&n.admin, "/metrics", &[]).unwrap().body).unwrap();
                text.lines()
                    .filter(|l| l.starts_with(&prefix))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .sum()
    }

    /// Until series `series` of each node in `which` reads `value`, at most `limit`.
    fn wait_for(&self, which: &[usize], series: &str, value: f64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let now: Vec<f64> = which
                .iter()
                .map(|i| metric(&self.node(*i).admin, series))
                .collect();
            if now.iter().all(|v| *v == value) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{series} of nodes {which:?} not {value} within {limit:?}: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A series summed over the running nodes.
    fn total(&self, series: &str) -> f64 {
        self.running().map(|n| metric(&n.admin, series)).sum()
    }
}

fn variants() -> Vec<String> {
    (0..10)
        .map(|i| format!("/cdn-cgi/image/width={},format=webp{FLOWER}", 100 + 20 * i))
        .collect()
}

#[test]
fn one_original_costs_the_cluster_one_fetch_and_each_variant_one_transform() {
    let origin = TestOrigin::start(fixtures());
    let nodes = Nodes::start(&origin.url(), "");
    // 30 requests at once: each of the 10 variants asked of all three nodes.
    let results: Vec<(usize, String, Response)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|k| {
                let (node, path) = (k % 3, variants()[k / 3].clone());
                let addr = nodes.node(node).addr.clone();
                s.spawn(move || {
                    let r = get(&addr, &path, &[]).expect("request completes");
                    (node, path, r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (node, path, r) in &results {
        assert_eq!(r.status, 200, "node {node} {path}");
        let width: u32 = path["/cdn-cgi/image/width=".len()..]
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sniff(&r.body), "webp");
        assert_eq!(size_of(&r.body).0, width, "node {node} {path}");
    }
    assert_eq!(
        origin.hits(FLOWER),
        1,
        "one origin fetch for the whole cluster"
    );
    let encodes = nodes.total("imgate_transform_step_duration_seconds_count{step=\"encode\"}");
    assert_eq!(encodes, 10.0, "each variant made once, cluster-wide");
    let forwarded: f64 = nodes.total_labelled("imgate_cluster_forwarded_total");
    assert!(
        (1.0..=20.0).contains(&forwarded),
        "two nodes of three ask the owner: {forwarded}"
    );
    // Asked again anywhere: every node holds its own copy now.
    for i in 0..3 {
        let r = nodes.node(i).get(&variants()[0]);
        assert_eq!(r.header("cache-status"), Some("imgate; hit"), "node {i}");
    }
}

#[test]
fn the_cluster_listener_answers_peers_only() {
    let origin = TestOrigin::start(fixtures());
    let nodes = Nodes::start(&origin.url(), "");
    let listener = format!("127.0.0.1:{}", nodes.cluster_ports[0]);
    let path = "/cdn-cgi/image/width=120,format=webp/photos/FreshFlower.jpg";
    let hop = ("imgate-cluster-hop", "127.0.0.1:1");
    for headers in [
        vec![],
        vec![hop],
        vec![("imgate-cluster-token", "wrong-token-0123456789"), hop],
        vec![("imgate-cluster-token", &TOKEN[1..]), hop],
    ] {
        let r = get(&listener, path, &headers).unwrap();
        assert_eq!(r.status, 403, "{headers:?}");
        let r = get(&listener, "/.imgate/cluster/health", &headers).unwrap();
        assert_eq!(r.status, 403, "{headers:?}");
    }
    let r = get(&listener, path, &[("imgate-cluster-token", TOKEN)]).unwrap();
    assert_eq!(r.status, 400, "the token without a hop marker");
    assert_eq!(
        origin.hits(FLOWER),
        0,
        "nothing fetched for a refused request"
    );
    // A peer is answered.
    let r = get(&listener, path, &[("imgate-cluster-token", TOKEN), hop]).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(size_of(&r.body).0, 120);
    // Passthrough paths are not the cluster listener's business, even for peers.
    let r = get(
        &listener,
        "/photos/FreshFlower.jpg",
        &[("imgate-cluster-token", TOKEN), hop],
    )
    .unwrap();
    assert_eq!(r.status, 404);
    // On the client listener, the markers reach neither a peer nor the origin.
    let echo = EchoOrigin::start();
    let single = Imgate::start(&echo.url(), "");
    let r = single.get_with(
        "/page",
        &[("imgate-cluster-token", TOKEN), ("imgate-cluster-hop", "x")],
    );
    assert_eq!(r.status, 200);
    assert!(echo.last("imgate-cluster-token").is_empty());
    assert!(echo.last("imgate-cluster-hop").is_empty());
}

#[test]
fn an_owner_killed_under_load_costs_no_request() {
    let origin = TestOrigin::start(fixtures());
    let mut nodes = Nodes::start(&origin.url(), "");
    // Find the owner of the flower: the node that made its first variant.
    let first = nodes.node(0).get(&variants()[0]);
    assert_eq!(first.status, 200);
    let owner = (0..3)
        .find(|i| {
            metric(
                &nodes.node(*i).admin,
                "imgate_transform_step_duration_seconds_count{step=\"encode\"}",
            ) == 1.0
        })
        .expect("one node made it");
    let askers: Vec<usize> = (0..3).filter(|i| *i != owner).collect();
    let addrs: Vec<String> = askers.iter().map(|i| nodes.node(*i).addr.clone()).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ok, failed) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (addrs, stop) = (&addrs, &stop);
                s.spawn(move || {
                    let (mut ok, mut failed) = (0, Vec::new());
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Always a new variant: every request is a miss its node asks the owner for.
                        let path = format!(
                            "/cdn-cgi/image/width={},format=jpeg{FLOWER}",
                            40 + w * 1000 + n
                        );
                        n += 1;
                        match get(&addrs[n % 2], &path, &[]) {
                            Ok(r) if r.status == 200 => ok += 1,
                            Ok(r) => failed.push(format!("{path}: {}", r.status)),
                            Err(e) => failed.push(format!("{path}: {e}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        nodes.node(owner).kill9();
        std::thread::sleep(Duration::from_millis(2500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        workers
            .into_iter()
            .fold((0, Vec::new()), |(ok, mut failed), h| {
                let (o, f) = h.join().unwrap();
                failed.extend(f);
                (ok + o, failed)
            })
    });
    assert!(
        failed.is_empty(),
        "requests failed when the owner died: {failed:?}"
    );
    assert!(ok > 20, "the load ran: {ok} requests");
    nodes.nodes[owner] = None;
    nodes.wait_ring(2);
    let fallbacks = nodes.total_labelled("imgate_cluster_fallbacks_total");
    assert!(fallbacks >= 1.0, "the askers fell back: {fallbacks}");
}

#[test]
fn a_draining_node_leaves_the_ring_within_a_health_check_and_finishes_its_work() {
    let origin = TestOrigin::start(fixtures());
    let pingora =
        "pingora:\n  threads: 2\n  grace_period_seconds: 4\n  graceful_shutdown_timeout_seconds: 1\n";
    let nodes = Nodes::start_with(pingora, &origin.url(), "");
    let draining = nodes.node(0);
    std::thread::scope(|s| {
        // Work in flight when SIGTERM comes: an original that takes 1.5 s to arrive.
        let in_flight = s.spawn(|| {
            get(
                &draining.addr,
                "/cdn-cgi/image/width=80/slow/1500/photos/FreshFlower.jpg",
                &[],
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        draining.terminate();
        let started = Instant::now();
        nodes.wait_for(
            &[1, 2],
            "imgate_cluster_ring_size",
            2.0,
            Duration::from_secs(3),
        );
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "off the ring within a health-check interval (1 s) and its timeout: {:?}",
            started.elapsed()
        );
        assert_eq!(get(&draining.admin, "/readyz", &[]).unwrap().status, 503);
        let r = in_flight
            .join()
            .unwrap()
            .expect("the in-flight request completes");
        assert_eq!(r.status, 200);
        assert_eq!(size_of(&r.body).0, 80);
    });
    // The others serve every original without it.
    for (i, photo) in ["FreshFlower", "GreenMeadow", "LadyBird", "YellowFlower"]
        .iter()
        .enumerate()
    {
        let path = format!("/cdn-cgi/image/width=90/photos/{photo}.jpg");
        let r = get(&nodes.node(1 + i % 2).addr, &path, &[]).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(size_of(&r.body).0, 90);
    }
    let forwarded_to_draining = [1, 2]
        .iter()
        .map(|i| {
            metric(
                &nodes.node(*i).admin,
                &format!(
                    "imgate_cluster_forwarded_total{{peer=\"127.0.0.1:{}\"}}",
                    nodes.cluster_ports[0]
                ),
            )
        })
        .sum::<f64>();
    assert_eq!(
        forwarded_to_draining, 0.0,
        "nothing asked of the draining node"
    );
}

const ADMIN: &str = "admin-token-0123456789";
const HIT: Option<&str> = Some("imgate; hit");

/// POST a purge to node `i`'s admin API: status and JSON answer.
fn purge(nodes: &Nodes, i: usize, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {ADMIN}");
    let r = send_body(
        &nodes.node(i).admin,
        "POST",
        "/purge",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap())
}

/// Every node asked for every path once, then asked again: all hits.
fn fill_everywhere(nodes: &Nodes, paths: &[String]) {
    for n in nodes.running() {
        for p in paths {
            assert_eq!(n.get(p).status, 200, "{p}");
        }
    }
    for n in nodes.running() {
        for p in paths {
            assert_eq!(n.get(p).header("cache-status"), HIT, "{p} on {}", n.addr);
        }
    }
}

/// The running nodes that still answer `path` from their own cache.
fn still_cached(nodes: &Nodes, path: &str) -> Vec<String> {
    nodes
        .running()
        .filter_map(|n| {
            let r = n.get(path);
            assert_eq!(r.status, 200);
            r.header("cache-status")
                .is_some_and(|s| s.starts_with("imgate; hit"))
                .then(|| n.addr.clone())
        })
        .collect()
}

fn redis_extra(redis: &TestRedis) -> String {
    format!("redis_url: '{}'", redis.url())
}

#[test]
fn a_purge_sent_to_one_node_reaches_every_node() {
    let origin = TestOrigin::start(fixtures());
    let redis = TestRedis::start();
    let nodes = Nodes::start(&origin.url(), &redis_extra(&redis));
    let flower = variants()[..3].to_vec();
    let meadow = "/cdn-cgi/image/width=150/photos/GreenMeadow.jpg".to_string();
    fill_everywhere(&nodes, &[flower.clone(), vec![meadow.clone()]].concat());
    let (status, answer) = purge(&nodes, 1, &format!(r#"{{"sources": ["{FLOWER}"]}}"#));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cluster"]["nodes_reached"], 3, "{answer}");
    assert_eq!(answer["cluster"]["nodes_live"], 3, "{answer}");
    // Each node asked for a different variant: a miss on one node refills the owner, which
    // may be another.
    for (i, p) in flower.iter().enumerate() {
        let r = nodes.node(i).get(p);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("cache-status"),
            Some("imgate; fwd=miss"),
            "node {i} {p}"
        );
    }
    // Only that original: the meadow is still everywhere.
    assert_eq!(still_cached(&nodes, &meadow).len(), 3);
    // Soft purges stay soft on every node: entries kept, stale, revalidated.
    let (status, answer) = purge(
        &nodes,
        0,
        r#"{"sources": ["/photos/GreenMeadow.jpg"], "soft": true}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cluster"]["nodes_reached"], 3, "{answer}");
    for n in nodes.running() {
        let r = n.get(&meadow);
        assert_eq!(r.status, 200);
        let status = r.header("cache-status").unwrap_or("");
        assert!(
            status.contains("fwd=stale"),
            "{}: a soft-purged entry revalidates: {status}",
            n.addr
        );
    }
}

#[test]
fn a_node_down_during_a_purge_applies_it_when_it_returns() {
    let origin = TestOrigin::start(fixtures());
    let redis = TestRedis::start();
    let mut nodes = Nodes::start(&origin.url(), &redis_extra(&redis));
    let paths = variants()[..2].to_vec();
    let other = "/cdn-cgi/image/width=150/photos/LadyBird.jpg".to_string();
    fill_everywhere(&nodes, &[paths.clone(), vec![other.clone()]].concat());
    nodes.node(2).kill9();
    nodes.nodes[2] = None;
    nodes.wait_ring(2);
    let (status, answer) = purge(&nodes, 0, &format!(r#"{{"sources": ["{FLOWER}"]}}"#));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cluster"]["nodes_reached"], 2, "{answer}");
    // Back with its disk tier, which still holds the purged variants: it catches up on the
    // stream before it reports ready.
    nodes.restart(2);
    for p in &paths {
        let r = nodes.node(2).get(p);
        assert_eq!(r.status, 200);
        assert!(
            !r.header("cache-status").unwrap_or("").contains("hit"),
            "{p}: the restarted node served a purged entry: {:?}",
            r.header("cache-status")
        );
    }
    let r = nodes.node(2).get(&other);
    assert_eq!(
        r.header("cache-status"),
        Some("imgate; hit; detail=disk"),
        "the rest kept"
    );

    // Down for longer than the stream remembers: it empties its cache rather than guess.
    nodes.node(2).kill9();
    nodes.nodes[2] = None;
    nodes.wait_ring(2);
    let (status, _) = purge(&nodes, 0, r#"{"sources": ["/photos/YellowFlower.jpg"]}"#);
    assert_eq!(status, 200);
    assert_eq!(
        redis
            .command(&["XTRIM", "imgate:purges", "MAXLEN", "0"])
            .as_deref(),
        Some(":2")
    );
    nodes.restart(2);
    let r = nodes.node(2).get(&other);
    assert!(
        !r.header("cache-status").unwrap_or("").contains("hit"),
        "a node that missed trimmed purges starts empty: {:?}",
        r.header("cache-status")
    );
}

#[test]
fn without_redis_serving_goes_on_and_purges_catch_up_when_it_returns() {
    let origin = TestOrigin::start(fixtures());
    let mut redis = TestRedis::start();
    let nodes = Nodes::start(&origin.url(), &redis_extra(&redis));
    let paths = variants()[..2].to_vec();
    fill_everywhere(&nodes, &paths);
    redis.stop();
    // Hits and misses are served as before.
    for n in nodes.running() {
        assert_eq!(n.get(&paths[0]).header("cache-status"), HIT);
        let r = n.get("/cdn-cgi/image/width=77/photos/GreenMeadow.jpg");
        assert_eq!(r.status, 200);
        assert_eq!(size_of(&r.body).0, 77);
    }
    // A purge: the error, and the local purge.
    let (status, answer) = purge(&nodes, 0, &format!(r#"{{"sources": ["{FLOWER}"]}}"#));
    assert_eq!(status, 503, "{answer}");
    assert!(
        answer["cluster"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{answer}"
    );
    assert_eq!(answer["cluster"]["nodes_reached"], 1);
    assert!(
        answer["purged"]["memory"].as_u64().unwrap() >= 2,
        "{answer}"
    );
    // Purged on the node that took it, which takes no copy from peers that still hold the
    // old one: it goes to the origin.
    let fetched = origin.hits(FLOWER);
    let r = nodes.node(0).get(&paths[0]);
    assert_eq!(r.status, 200);
    assert_ne!(r.header("cache-status"), HIT);
    assert_eq!(
        origin.hits(FLOWER),
        fetched + 1,
        "fetched again, not copied from a peer"
    );
    assert_eq!(
        metric(&nodes.node(0).admin, "imgate_cluster_purge_outbox"),
        1.0
    );
    // Redis back: the queued purge goes out and the others apply it.
    redis.resume();
    nodes.wait_for(
        &[1, 2],
        "imgate_cluster_purges_applied_total",
        1.0,
        Duration::from_secs(15),
    );
    assert_eq!(
        metric(&nodes.node(0).admin, "imgate_cluster_purge_outbox"),
        0.0
    );
    // One variant per node: asking a node for a variant refills its owner, which may be the
    // other node.
    for (i, p) in [1, 2].into_iter().zip(&paths) {
        let r = nodes.node(i).get(p);
        assert_eq!(r.status, 200);
        assert_ne!(r.header("cache-status"), HIT, "node {i} {p}");
    }
}

#[test]
fn an_invalidation_through_one_node_reaches_every_node() {
    let origin = TestOrigin::start(fixtures());
    let redis = TestRedis::start();
    let nodes = Nodes::start(&origin.url(), &redis_extra(&redis));
    // A passthrough page, stored by every node.
    let page = "/photos/LadyBird.jpg";
    fill_everywhere(&nodes, &[page.to_string()]);
    assert_eq!(origin.hits(page), 3);
    // RFC 9111 §4.4: a successful POST through node 0 invalidates the URL on every node.
    let posted = request(
        &nodes.node(0).addr,
        "POST",
        page,
        &[("content-length", "0")],
    )
    .unwrap();
    assert_eq!(posted.status, 200);
    nodes.wait_for(
        &[1, 2],
        "imgate_cluster_purges_applied_total",
        1.0,
        Duration::from_secs(5),
    );
    for n in nodes.running() {
        let r = n.get(page);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("cache-status"),
            Some("imgate; fwd=miss"),
            "{}",
            n.addr
        );
    }
    assert_eq!(
        origin.hits(page),
        3 + 1 + 3,
        "the POST, then one fetch per node"
    );
}

#[test]
fn without_keep_copies_only_the_owner_stores_a_variant() {
    let origin = TestOrigin::start(fixtures());
    let nodes = Nodes::start(&origin.url(), "keep_copies: false");
    let path = &variants()[4];
    for i in 0..3 {
        assert_eq!(nodes.node(i).get(path).status, 200);
    }
    // Asked again: the owner answers from its cache, the others ask it again each time.
    let statuses: Vec<String> = (0..3)
        .map(|i| {
            let r = nodes.node(i).get(path);
            assert_eq!(r.status, 200);
            assert_eq!(size_of(&r.body).0, 180);
            r.header("cache-status").unwrap_or("").to_string()
        })
        .collect();
    let hits = statuses.iter().filter(|s| *s == "imgate; hit").count();
    assert_eq!(hits, 1, "only the owner keeps it: {statuses:?}");
    assert_eq!(
        nodes.total("imgate_transform_step_duration_seconds_count{step=\"encode\"}"),
        1.0,
        "made once"
    );
    assert_eq!(nodes.total_labelled("imgate_cluster_forwarded_total"), 4.0);
}

#[test]
fn peers_named_by_a_host_name_are_found_by_resolving_it() {
    // `localhost` from /etc/hosts, as a Kubernetes headless Service name is from DNS: each
    // node finds the others (and itself) among the addresses the name resolves to.
    let origin = TestOrigin::start(fixtures());
    let nodes = Nodes::start_named(&origin.url(), "localhost");
    for (k, path) in variants()[..6].iter().enumerate() {
        let r = nodes.node(k % 3).get(path);
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(
        nodes.total("imgate_transform_step_duration_seconds_count{step=\"encode\"}"),
        6.0
    );
    assert!(
        nodes.total_labelled("imgate_cluster_forwarded_total") >= 2.0,
        "variants went to their owner"
    );
}
