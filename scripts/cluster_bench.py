#!/usr/bin/env python3
"""Three clustered imgate nodes against three independent ones, on one skewed workload.

Both setups get the same requests in the same order: REQUESTS draws (seeded) from a Zipf
distribution (exponent ZIPF_S) over the distinct variants (every JPEG in tests/fixtures at
WIDTHS widths), sent round-robin to the three nodes as an L4 load balancer would, from
CLIENTS threads with keep-alive connections. Everything runs on loopback: a real origin
(Python's HTTP server over tests/fixtures, counting GETs), a real redis-server for the
clustered setup, each node with its own disk tier, caches cold at the start.

Reported per setup: origin fetches and CPU seconds (user + system of the three imgate
processes, from /proc) per distinct variant requested, transforms made (the nodes'
encode counts), and the hit ratio clients saw (Cache-Status: hit on the node they asked).

Usage: scripts/cluster_bench.py [BINARY]   (default target/perf/imgate; build it with
       `cargo build --profile perf --bins`). Env: REQUESTS (3000), CLIENTS (8), ZIPF_S (1.0).
"""
import http.client
import http.server
import os
import pathlib
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
WIDTHS = [120, 160, 200, 240, 320, 400, 480, 640, 800, 960]
TOKEN = "bench-cluster-token-0123456789"
REQUESTS = int(os.environ.get("REQUESTS", "3000"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
ZIPF_S = float(os.environ.get("ZIPF_S", "1.0"))
PURGES = 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Origin(http.server.ThreadingHTTPServer):
    """The fixtures over HTTP/1.1, counting GETs."""

    daemon_threads = True

    def __init__(self):
        self.gets = 0
        self.lock = threading.Lock()
        origin = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(FIXTURES), **kw)

            def do_GET(self):
                with origin.lock:
                    origin.gets += 1
                super().do_GET()

            def end_headers(self):
                self.send_header("Cache-Control", "max-age=3600")
                super().end_headers()

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric(admin, series):
    text = urllib.request.urlopen(f"http://{admin}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


class Node:
    def __init__(self, binary, origin_url, cluster_ports, i, redis_url):
        self.dir = tempfile.TemporaryDirectory()
        self.port, self.admin = free_port(), free_port()
        config = (
            "pingora: {threads: 2, grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 0}\n"
            f"listen: 127.0.0.1:{self.port}\nadmin_listen: 127.0.0.1:{self.admin}\n"
            f"transform_socket: {self.dir.name}/t.sock\n"
            f"cache: {{dir: {self.dir.name}/cache}}\n"
            f"admin: {{token: {TOKEN}}}\n"
        )
        if cluster_ports:
            peers = ", ".join(f"'127.0.0.1:{p}'" for p in cluster_ports)
            config += (
                f"cluster:\n  listen: 127.0.0.1:{cluster_ports[i]}\n  peers: [{peers}]\n"
                f"  token: {TOKEN}\n  redis_url: '{redis_url}'\n"
            )
        config += f"sites:\n  - hosts: ['*']\n    origin: {origin_url}\n"
        path = pathlib.Path(self.dir.name) / "imgate.yaml"
        path.write_text(config)
        self.proc = subprocess.Popen(
            [binary, "--config", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "error"},
        )
        self.admin = f"127.0.0.1:{self.admin}"
        for _ in range(200):
            try:
                if urllib.request.urlopen(f"http://{self.admin}/readyz").status == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit("imgate did not become ready")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


def workload():
    originals = sorted(
        p.relative_to(FIXTURES).as_posix()
        for p in FIXTURES.rglob("*.jpg")
        if p.name != "truncated.jpg"
    )
    variants = [f"/cdn-cgi/image/width={w},format=webp/{o}" for o in originals for w in WIDTHS]
    rng = random.Random(17)
    rng.shuffle(variants)
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(len(variants))]
    return originals, variants, rng.choices(variants, weights=weights, k=REQUESTS)


def run(binary, clustered, requests, ports):
    origin = Origin()
    redis = None
    redis_url = None
    if clustered:
        redis_port = free_port()
        redis_dir = tempfile.TemporaryDirectory()
        redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--dir", redis_dir.name],
            stdout=subprocess.DEVNULL,
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        time.sleep(0.3)
    nodes = [
        Node(binary, f"http://127.0.0.1:{origin.server_address[1]}", ports if clustered else None,
             i, redis_url)
        for i in range(3)
    ]
    if clustered:
        # Every ring holds all three before the first request.
        deadline = time.time() + 15
        while any(metric(n.admin, "imgate_cluster_ring_size") != 3 for n in nodes):
            if time.time() > deadline:
                raise SystemExit("rings did not settle")
            time.sleep(0.1)
    cpu0 = sum(cpu_seconds(n.proc.pid) for n in nodes)
    hits, failures = [0], []
    lock = threading.Lock()

    def client(k):
        conns = {}
        for j in range(k, len(requests), CLIENTS):
            node = nodes[j % 3]
            conn = conns.get(node.port) or http.client.HTTPConnection("127.0.0.1", node.port)
            conns[node.port] = conn
            conn.request("GET", requests[j])
            r = conn.getresponse()
            r.read()
            with lock:
                if r.status != 200:
                    failures.append((requests[j], r.status))
                if (r.getheader("cache-status") or "").startswith("imgate; hit"):
                    hits[0] += 1

    started = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - started
    cpu = sum(cpu_seconds(n.proc.pid) for n in nodes) - cpu0
    encodes = sum(
        metric(n.admin, 'imgate_transform_step_duration_seconds_count{step="encode"}')
        for n in nodes
    )
    purges = purge_times(nodes, requests) if clustered else None
    for n in nodes:
        n.stop()
    if redis:
        redis.kill()
        redis.wait()
    origin.shutdown()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {failures[:5]}")
    return {"origin": origin.gets, "cpu": cpu, "encodes": encodes,
            "hits": hits[0] / len(requests), "wall": wall, "purges": purges}


def purge_times(nodes, requests):
    """PURGES purges by source, each to one node in turn, timed from request to answer (the
    answer waits until the live peers applied it): sorted milliseconds, nodes reached."""
    import json
    sources = sorted({"/" + r.split("/", 4)[4] for r in requests})[:PURGES]
    times, reached = [], []
    for k, source in enumerate(sources):
        body = json.dumps({"sources": [source]}).encode()
        req = urllib.request.Request(
            f"http://{nodes[k % 3].admin}/purge", data=body, method="POST",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        started = time.perf_counter()
        answer = json.loads(urllib.request.urlopen(req).read())
        times.append(1000 * (time.perf_counter() - started))
        reached.append(answer["cluster"]["nodes_reached"])
    return sorted(times), reached


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "perf" / "imgate")
    originals, variants, requests = workload()
    distinct = len(set(requests))
    used_originals = len({r.split("/", 4)[4] for r in requests})
    ports = [free_port() for _ in range(3)]
    print(f"{len(requests)} requests, Zipf s={ZIPF_S} over {len(variants)} variants of "
          f"{len(originals)} originals: {distinct} distinct variants of {used_originals} "
          f"originals requested; {CLIENTS} clients, round-robin over 3 nodes")
    print("| setup | origin fetches | per distinct variant | transforms | CPU s | CPU ms per "
          "distinct variant | client hit ratio | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for name, clustered in [("3 independent nodes", False), ("3 clustered nodes", True)]:
        r = run(binary, clustered, requests, ports)
        results[name] = r
        print(f"| {name} | {r['origin']} | {r['origin'] / distinct:.2f} | {r['encodes']:.0f} | "
              f"{r['cpu']:.1f} | {1000 * r['cpu'] / distinct:.0f} | {r['hits']:.3f} | "
              f"{r['wall']:.1f} |")
    a, b = results["3 independent nodes"], results["3 clustered nodes"]
    times, reached = b["purges"]
    print(f"{len(times)} purges by source through the bus (sent to each node in turn): "
          f"median {times[len(times) // 2]:.1f} ms, slowest {times[-1]:.1f} ms from request to "
          f"answer, nodes reached {min(reached)}-{max(reached)} of 3")
    print(f"clustered / independent: origin fetches {b['origin'] / a['origin']:.2f}, "
          f"CPU {b['cpu'] / a['cpu']:.2f}, transforms {b['encodes'] / a['encodes']:.2f}")


if __name__ == "__main__":
    main()
