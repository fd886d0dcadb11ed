//! `benchmark`: a closed-loop HTTP/1.1 load generator for a running imgate. It owns argument
//! parsing, URL generation per scenario (miss / hit / mixed), the worker threads with their
//! keep-alive connections and minimal response parser, sampling of the server process from
//! `/proc`, and the summary printed on stdout.
//!
//! It is std only on purpose: a benchmark client that pulls in an async runtime and an HTTP
//! stack measures those as much as the server, and would compete for the same two cores.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
benchmark: load generator for a running imgate

USAGE:
    benchmark [--target HOST:PORT] [--scenario miss|hit|mixed] [--concurrency N]
              [--duration SECS] [--images a.jpg,b.jpg] [--template PATH] [--pid PID]
              [--accept VALUE] [--seed N] [--max-requests N] [--allow-remote]

OPTIONS:
    --target HOST:PORT   imgate edge listener (default 127.0.0.1:8080); must be loopback
                         unless --allow-remote is given
    --scenario S         miss:  every request is a variant no other request of the run asks for
                         hit:   widths {300} x images, each fetched once before timing starts
                         mixed: ~200 variants with Zipf (s=1.0) popularity, not pre-warmed
                         (default hit)
    --concurrency N      connections, one thread each, each with one request in flight (default 8)
    --duration SECS      timed phase; requests in flight at the end are finished (default 10)
    --images LIST        comma-separated source paths on the origin
                         (default FreshFlower.jpg,GreenMeadow.jpg,Aqua.jpg)
    --template PATH      request path; {w} width, {q} quality, {f} image
                         (default /cdn-cgi/image/width={w},quality=80,format=jpeg/{f})
    --pid PID            the server's pid: report its CPU time (utime+stime from /proc/PID/stat)
                         over the timed phase and its peak RSS (/proc/PID/status every 100 ms)
    --accept VALUE       send this Accept header (matters for format=auto templates)
    --seed N             start of the miss counter (modulo its key space) and the mixed PRNG
                         seed (default: from the clock for miss, so repeated runs against one
                         server stay misses; 1 for mixed, so runs are comparable)
    --max-requests N     stop after this many requests even if time is left (default 10000000)
    --allow-remote       allow a non-loopback target
    -h, --help           this text

MISS UNIQUENESS:
    Request n of the run (n counted from --seed by one shared atomic counter, I images) maps to
    image = n mod I and, with m = n / I, width = 200 + (389*m mod 1001), quality = 51 + m mod 50.
    As 1001 and 50 are coprime (Chinese remainder theorem) and 389 is coprime to 1001, the map
    is one-to-one over I*1001*50 consecutive values of n (150150 with three images), so no two
    requests of a run share a cache key unless the run is longer than that, which is reported.
    The stride spreads even a short run over the whole 200..=1200 width and 51..=100 quality
    range, so miss results do not depend on where the seed starts. If the template has no {q},
    its quality option is replaced by quality={q} for miss (or one is added), since the default
    template pins quality=80.

OUTPUT:
    Latency is measured from writing the request to reading the last body byte, for every
    complete HTTP response (any status); I/O failures are counted as errors without a latency.";

const DEFAULT_IMAGES: &str = "FreshFlower.jpg,GreenMeadow.jpg,Aqua.jpg";
const DEFAULT_TEMPLATE: &str = "/cdn-cgi/image/width={w},quality=80,format=jpeg/{f}";
const MISS_WIDTH_MIN: u64 = 200;
const MISS_WIDTHS: u64 = 1001; // 200..=1200
const MISS_QUALITY_MIN: u64 = 51;
const MISS_QUALITIES: u64 = 50; // 51..=100
/// Coprime to MISS_WIDTHS (7*11*13), so multiplying by it permutes the width indices.
const MISS_WIDTH_STRIDE: u64 = 389;
const HIT_WIDTH: u64 = 300;
const FIXED_QUALITY: u64 = 80;
const MIXED_VARIANTS: usize = 200;
const MIXED_ZIPF_S: f64 = 1.0;
/// A stuck server must not hold the benchmark past its duration for long.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Caps on header lines keep a misbehaving server from growing our buffers without bound.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Miss,
    Hit,
    Mixed,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Miss => "miss",
            Scenario::Hit => "hit",
            Scenario::Mixed => "mixed",
        }
    }
}

#[derive(Debug)]
struct Args {
    target: String,
    scenario: Scenario,
    concurrency: usize,
    duration: Duration,
    images: Vec<String>,
    template: String,
    pid: Option<u32>,
    accept: Option<String>,
    seed: Option<u64>,
    max_requests: u64,
    allow_remote: bool,
}

fn parse_args(raw: &[String]) -> Result<Option<Args>, String> {
    let mut args = Args {
        target: "127.0.0.1:8080".into(),
        scenario: Scenario::Hit,
        concurrency: 8,
        duration: Duration::from_secs(10),
        images: Vec::new(),
        template: DEFAULT_TEMPLATE.into(),
        pid: None,
        accept: None,
        seed: None,
        max_requests: 10_000_000,
        allow_remote: false,
    };
    let mut images = DEFAULT_IMAGES.to_string();
    let mut i = 0;
    while i < raw.len() {
        let arg = raw[i].as_str();
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if arg == "--allow-remote" {
            args.allow_remote = true;
            i += 1;
            continue;
        }
        // Both `--flag value` and `--flag=value`.
        let (name, value) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, v.to_string()),
            _ => {
                let v = raw
                    .get(i + 1)
                    .ok_or_else(|| format!("{arg}: missing value"))?;
                i += 1;
                (arg, v.clone())
            }
        };
        i += 1;
        match name {
            "--target" => args.target = value,
            "--scenario" => {
                args.scenario = match value.as_str() {
                    "miss" => Scenario::Miss,
                    "hit" => Scenario::Hit,
                    "mixed" => Scenario::Mixed,
                    other => {
                        return Err(format!("--scenario: '{other}' is not miss, hit or mixed"))
                    }
                }
            }
            "--concurrency" => args.concurrency = int_in(name, &value, 1, 1024)? as usize,
            "--duration" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("{name}: '{value}' is not a number of seconds"))?;
                if !(0.1..=3600.0).contains(&secs) {
                    return Err(format!("{name}: must be between 0.1 and 3600 seconds"));
                }
                args.duration = Duration::from_secs_f64(secs);
            }
            "--images" => images = value,
            "--template" => args.template = value,
            "--pid" => args.pid = Some(int_in(name, &value, 1, u64::from(u32::MAX))? as u32),
            "--accept" => args.accept = Some(value),
            "--seed" => args.seed = Some(int_in(name, &value, 0, u64::MAX)?),
            "--max-requests" => args.max_requests = int_in(name, &value, 1, 1_000_000_000)?,
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    args.images = images
        .split(',')
        .map(|s| s.trim().trim_start_matches('/').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if args.images.is_empty() {
        return Err("--images: at least one image is needed".into());
    }
    // Everything below ends up inside the request head; a stray CR/LF or space would either
    // break the request line or smuggle headers.
    let bad = |s: &str| s.chars().any(|c| c.is_control() || c == ' ');
    if let Some(img) = args.images.iter().find(|s| bad(s)) {
        return Err(format!(
            "--images: '{img}' contains spaces or control characters"
        ));
    }
    if !args.template.starts_with('/') || bad(&args.template) {
        return Err(
            "--template: must start with '/' and contain no spaces or control characters".into(),
        );
    }
    if args
        .accept
        .as_deref()
        .is_some_and(|a| a.chars().any(char::is_control))
    {
        return Err("--accept: contains control characters".into());
    }
    if bad(&args.target) {
        return Err("--target: contains spaces or control characters".into());
    }
    Ok(Some(args))
}

fn int_in(name: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{name}: '{value}' is not an integer between {min} and {max}"
        )),
    }
}

/// Resolves once so every connection goes to the same address, and refuses anything but
/// loopback by default: this tool exists to hammer a server, and a typo must not point it at
/// someone else's.
fn resolve_target(target: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("--target {target}: {e}"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("--target {target}: resolves to no address"))?;
    if !allow_remote {
        if let Some(remote) = addrs.iter().find(|a| !a.ip().is_loopback()) {
            return Err(format!(
                "--target {target} resolves to {remote}, which is not loopback; pass --allow-remote to load it anyway"
            ));
        }
    }
    Ok(first)
}

/// The request paths of a run. Built once, then shared read-only by the workers.
struct Plan {
    scenario: Scenario,
    template: String,
    images: Vec<String>,
    /// Miss: size of the one-to-one part of the counter -> variant map.
    miss_space: u64,
    miss_widths: u64,
    miss_qualities: u64,
    miss_images: u64,
    /// Mixed: cumulative Zipf weights over variant ranks, normalised to end at 1.0.
    zipf_cdf: Vec<f64>,
    seed: u64,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let template = if args.scenario == Scenario::Miss && !args.template.contains("{q}") {
            with_quality_placeholder(&args.template)
        } else {
            args.template.clone()
        };
        // Placeholders the template lacks cannot make requests differ, so they do not count
        // towards the key space.
        let dim = |placeholder: &str, n: u64| if template.contains(placeholder) { n } else { 1 };
        let miss_widths = dim("{w}", MISS_WIDTHS);
        let miss_qualities = dim("{q}", MISS_QUALITIES);
        let miss_images = dim("{f}", args.images.len() as u64);
        let mut zipf_cdf = Vec::new();
        if args.scenario == Scenario::Mixed {
            let mut acc = 0.0;
            for rank in 1..=MIXED_VARIANTS {
                acc += 1.0 / (rank as f64).powf(MIXED_ZIPF_S);
                zipf_cdf.push(acc);
            }
            for c in &mut zipf_cdf {
                *c /= acc;
            }
        }
        let seed = args.seed.unwrap_or(match args.scenario {
            Scenario::Miss => {
                // Nanoseconds since the epoch: two runs against one server start far apart in
                // the key space, so the second does not find the first's variants cached.
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            }
            _ => 1,
        });
        // Folded into the key space so the counter cannot hit u64 wrap-around mid-run.
        let miss_space = miss_widths * miss_qualities * miss_images;
        let seed = if args.scenario == Scenario::Miss {
            seed % miss_space
        } else {
            seed
        };
        Plan {
            scenario: args.scenario,
            template,
            images: args.images.clone(),
            miss_space,
            miss_widths,
            miss_qualities,
            miss_images,
            zipf_cdf,
            seed,
        }
    }

    fn path(&self, width: u64, quality: u64, image: usize) -> String {
        self.template
            .replace("{w}", &width.to_string())
            .replace("{q}", &quality.to_string())
            .replace("{f}", &self.images[image % self.images.len()])
    }

    /// Decodes the counter so consecutive requests rotate over the sources and sweep the whole
    /// width and quality range, yet never repeat within the key space (see MISS UNIQUENESS).
    fn miss_path(&self, n: u64) -> String {
        let n = n % self.miss_space;
        let image = n % self.miss_images;
        let m = n / self.miss_images;
        // m -> (m mod widths, m mod qualities) is one-to-one because the moduli are coprime;
        // the stride only reorders widths.
        let width = MISS_WIDTH_MIN + (m % self.miss_widths) * MISS_WIDTH_STRIDE % self.miss_widths;
        let quality = MISS_QUALITY_MIN + m % self.miss_qualities;
        self.path(width, quality, image as usize)
    }

    fn hit_paths(&self) -> Vec<String> {
        (0..self.images.len())
            .map(|i| self.path(HIT_WIDTH, FIXED_QUALITY, i))
            .collect()
    }

    /// Variant of popularity rank `rank` (0 = most popular): images alternate so each one gets
    /// popular and unpopular variants; widths step by 10 px.
    fn mixed_path(&self, rank: usize) -> String {
        let n = self.images.len();
        self.path(200 + 10 * (rank / n) as u64, FIXED_QUALITY, rank % n)
    }

    fn zipf_rank(&self, rng: &mut XorShift) -> usize {
        let u = rng.next_f64();
        self.zipf_cdf
            .partition_point(|&c| c < u)
            .min(self.zipf_cdf.len() - 1)
    }
}

/// Makes the quality option of a `/cdn-cgi/image/<options>/...` template a `{q}` placeholder
/// (adding one if absent) so miss can vary it.
fn with_quality_placeholder(template: &str) -> String {
    const PREFIX: &str = "/cdn-cgi/image/";
    let Some(rest) = template.strip_prefix(PREFIX) else {
        return template.to_string();
    };
    let (options, source) = rest.split_once('/').unwrap_or((rest, ""));
    let mut parts: Vec<String> = Vec::new();
    let mut replaced = false;
    for opt in options.split(',') {
        let key = opt.split('=').next().unwrap_or("").trim();
        if key == "quality" || key == "q" {
            if !replaced {
                parts.push("quality={q}".into());
                replaced = true;
            }
        } else {
            parts.push(opt.to_string());
        }
    }
    if !replaced {
        parts.push("quality={q}".into());
    }
    format!("{PREFIX}{}/{source}", parts.join(","))
}

/// xorshift64*: deterministic, tiny, and good enough to draw popularity ranks.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds (worker ids) give unrelated streams and a
        // zero seed does not get stuck at zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one worker saw; merged after the run so the hot loop shares nothing but two counters.
#[derive(Default)]
struct Stats {
    /// Microseconds per complete response; u32 keeps ten million samples at 40 MB.
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    io_errors: BTreeMap<String, u64>,
    cache_hit: u64,
    cache_miss: u64,
    cache_other: u64,
    body_bytes: u64,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.io_errors {
            *self.io_errors.entry(k).or_default() += v;
        }
        self.cache_hit += other.cache_hit;
        self.cache_miss += other.cache_miss;
        self.cache_other += other.cache_other;
        self.body_bytes += other.body_bytes;
    }
}

struct Response {
    status: u16,
    body_bytes: u64,
    keep_alive: bool,
    cache_status: Option<String>,
}

/// One keep-alive connection. Reconnects lazily after any failure or `Connection: close`.
struct Client {
    addr: SocketAddr,
    host: String,
    accept: Option<String>,
    conn: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl Client {
    fn new(addr: SocketAddr, host: &str, accept: Option<String>) -> Client {
        Client {
            addr,
            host: host.to_string(),
            accept,
            conn: None,
        }
    }

    fn connect(&self) -> io::Result<(TcpStream, BufReader<TcpStream>)> {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let reader = BufReader::with_capacity(64 * 1024, stream.try_clone()?);
        Ok((stream, reader))
    }

    fn get(&mut self, path: &str) -> io::Result<Response> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let result = self.exchange(path);
        match &result {
            Ok(r) if r.keep_alive => {}
            _ => self.conn = None,
        }
        result
    }

    fn exchange(&mut self, path: &str) -> io::Result<Response> {
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: imgate-benchmark\r\n",
            self.host
        );
        if let Some(accept) = &self.accept {
            let _ = write!(head, "Accept: {accept}\r\n");
        }
        head.push_str("\r\n");
        let (stream, reader) = self.conn.as_mut().expect("connected above");
        stream.write_all(head.as_bytes())?;
        read_response(reader)
    }
}

fn protocol_error(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A header or chunk-size line, bounded so a broken peer cannot make it grow forever.
fn read_line(reader: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    line.clear();
    let n = reader.by_ref().take(MAX_LINE).read_line(line)?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with('\n') {
        return Err(protocol_error("line too long"));
    }
    while line.ends_with('\n') || line.ends_with('\r') {
        line.pop();
    }
    Ok(())
}

/// Reads and discards exactly `len` bytes.
fn skip_exact(reader: &mut impl BufRead, len: u64) -> io::Result<u64> {
    let copied = io::copy(&mut reader.by_ref().take(len), &mut io::sink())?;
    if copied != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "body truncated",
        ));
    }
    Ok(copied)
}

/// Just enough HTTP/1.1 to drain a response and keep the connection usable: status line,
/// headers, then a Content-Length, chunked or read-to-close body.
fn read_response(reader: &mut impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    read_line(reader, &mut line)?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| protocol_error("bad status line"))?;
    if !version.starts_with("HTTP/1.") {
        return Err(protocol_error("bad status line"));
    }
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut cache_status = None;
    let mut headers = 0;
    loop {
        read_line(reader, &mut line)?;
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(protocol_error("too many headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(protocol_error("bad header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse()
                    .map_err(|_| protocol_error("bad content-length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("cache-status") {
            cache_status = Some(value.to_string());
        }
    }
    let body_bytes = if status < 200 || status == 204 || status == 304 {
        0
    } else if chunked {
        read_chunked(reader, &mut line)?
    } else if let Some(len) = content_length {
        skip_exact(reader, len)?
    } else {
        keep_alive = false;
        io::copy(reader, &mut io::sink())?
    };
    Ok(Response {
        status,
        body_bytes,
        keep_alive,
        cache_status,
    })
}

fn read_chunked(reader: &mut impl BufRead, line: &mut String) -> io::Result<u64> {
    let mut total = 0;
    loop {
        read_line(reader, line)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size =
            u64::from_str_radix(size_text, 16).map_err(|_| protocol_error("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                read_line(reader, line)?;
                if line.is_empty() {
                    return Ok(total);
                }
            }
        }
        total += skip_exact(reader, size)?;
        read_line(reader, line)?;
        if !line.is_empty() {
            return Err(protocol_error("chunk not followed by CRLF"));
        }
    }
}

fn io_error_kind(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::InvalidData => format!("protocol ({e})"),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "io TimedOut".into(),
        kind => format!("io {kind:?}"),
    }
}

/// Shared by the workers: the end of the timed phase and the two global counters.
struct Run {
    deadline: Instant,
    /// Requests issued so far; bounds the run by --max-requests.
    issued: AtomicU64,
    /// The next miss variant; one counter for all workers is what makes misses unique.
    miss_next: AtomicU64,
    max_requests: u64,
}

fn worker(id: usize, plan: &Plan, run: &Run, mut client: Client, hit_paths: &[String]) -> Stats {
    let mut stats = Stats::default();
    let mut rng = XorShift::new(plan.seed ^ (id as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut hit_index = id;
    while Instant::now() < run.deadline {
        if run.issued.fetch_add(1, Ordering::Relaxed) >= run.max_requests {
            break;
        }
        let path = match plan.scenario {
            Scenario::Miss => plan.miss_path(run.miss_next.fetch_add(1, Ordering::Relaxed)),
            Scenario::Hit => {
                hit_index = (hit_index + 1) % hit_paths.len();
                hit_paths[hit_index].clone()
            }
            Scenario::Mixed => plan.mixed_path(plan.zipf_rank(&mut rng)),
        };
        let started = Instant::now();
        match client.get(&path) {
            Ok(resp) => {
                let us = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                stats.latencies_us.push(us);
                *stats.statuses.entry(resp.status).or_default() += 1;
                stats.body_bytes += resp.body_bytes;
                match resp.cache_status.as_deref() {
                    Some(s) if s.contains("fwd=") => stats.cache_miss += 1,
                    Some(s) if s.contains("hit") => stats.cache_hit += 1,
                    _ => stats.cache_other += 1,
                }
            }
            Err(e) => {
                *stats.io_errors.entry(io_error_kind(&e)).or_default() += 1;
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    // A down server would otherwise be hammered by a tight connect loop.
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    stats
}

/// CPU seconds of `pid` so far (user + system, all threads) from `/proc/PID/stat`.
fn proc_cpu_seconds(pid: u32, ticks_per_second: f64) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may itself contain spaces or parentheses, so the
    // fields are counted from the last ')': state is field 3, utime 14, stime 15.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| protocol_error("unexpected /proc stat format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| protocol_error("unexpected /proc stat format"))
    };
    Ok((field(14)? + field(15)?) as f64 / ticks_per_second)
}

/// `(VmRSS, VmHWM)` of `pid` in kB from `/proc/PID/status`.
fn proc_rss_kb(pid: u32) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let value = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((value("VmRSS:"), value("VmHWM:")))
}

/// The kernel's USER_HZ, which `/proc/PID/stat` times are counted in. Asked of `getconf` to
/// stay std only; it is 100 on every mainstream architecture, hence the fallback.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// Samples RSS every 100 ms until `stop`, returning the largest VmRSS seen in kB: VmHWM alone
/// is the peak since the server started, which includes whatever ran before this benchmark.
fn spawn_rss_sampler(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        loop {
            if let Ok((rss, _)) = proc_rss_kb(pid) {
                peak = peak.max(rss);
            }
            if stop.load(Ordering::Relaxed) {
                return peak;
            }
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Fetches each hit variant once so the timed phase measures cache hits only.
fn warm(addr: SocketAddr, args: &Args, paths: &[String]) -> Result<(), String> {
    let mut client = Client::new(addr, &args.target, args.accept.clone());
    for path in paths {
        match client.get(path) {
            Ok(r) if (200..300).contains(&r.status) => {}
            Ok(r) => return Err(format!("warm-up {path}: HTTP {}", r.status)),
            Err(e) => return Err(format!("warm-up {path}: {e}")),
        }
    }
    Ok(())
}

/// Nearest-rank percentile of sorted samples, in milliseconds.
fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&raw) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}\n\nrun with --help for usage");
            return ExitCode::from(2);
        }
    };
    let addr = match resolve_target(&args.target, args.allow_remote) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args, addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args, addr: SocketAddr) -> Result<(), String> {
    let plan = Arc::new(Plan::new(args));
    let hit_paths = Arc::new(plan.hit_paths());
    if args.scenario == Scenario::Hit {
        warm(addr, args, &hit_paths)?;
    }
    let ticks = clock_ticks_per_second();
    let cpu_before = match args.pid {
        Some(pid) => Some(proc_cpu_seconds(pid, ticks).map_err(|e| format!("--pid {pid}: {e}"))?),
        None => None,
    };
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = args
        .pid
        .map(|pid| spawn_rss_sampler(pid, sampler_stop.clone()));

    let started = Instant::now();
    let run = Arc::new(Run {
        deadline: started + args.duration,
        issued: AtomicU64::new(0),
        miss_next: AtomicU64::new(plan.seed),
        max_requests: args.max_requests,
    });
    let workers: Vec<_> = (0..args.concurrency)
        .map(|id| {
            let (plan, run, hit_paths) = (plan.clone(), run.clone(), hit_paths.clone());
            let client = Client::new(addr, &args.target, args.accept.clone());
            thread::spawn(move || worker(id, &plan, &run, client, &hit_paths))
        })
        .collect();
    let mut stats = Stats::default();
    for w in workers {
        stats.merge(
            w.join()
                .map_err(|_| "a worker thread panicked".to_string())?,
        );
    }
    let elapsed = started.elapsed();
    let cpu_after = args.pid.map(|pid| proc_cpu_seconds(pid, ticks));
    sampler_stop.store(true, Ordering::Relaxed);
    let peak_rss_kb = sampler.map(|s| s.join().unwrap_or(0));

    let mut out = String::new();
    let requests = stats.latencies_us.len() as u64;
    let io_errors: u64 = stats.io_errors.values().sum();
    let _ = writeln!(out, "scenario        {}", plan.scenario.name());
    let _ = writeln!(out, "target          {} ({addr})", args.target);
    let _ = writeln!(out, "template        {}", plan.template);
    let _ = writeln!(out, "images          {}", args.images.join(","));
    let _ = writeln!(out, "concurrency     {}", args.concurrency);
    let _ = writeln!(
        out,
        "duration        {:.2} s (requested {:.2} s)",
        elapsed.as_secs_f64(),
        args.duration.as_secs_f64()
    );
    match plan.scenario {
        Scenario::Miss => {
            let used = run.miss_next.load(Ordering::Relaxed) - plan.seed;
            let _ = writeln!(
                out,
                "miss variants   {used} drawn from a key space of {} (seed {})",
                plan.miss_space, plan.seed
            );
            if used > plan.miss_space {
                let _ = writeln!(
                    out,
                    "WARNING         the run wrapped the key space; later requests repeat earlier variants"
                );
            }
        }
        Scenario::Hit => {
            let _ = writeln!(out, "warm variants   {}", hit_paths.len());
        }
        Scenario::Mixed => {
            let _ = writeln!(
                out,
                "mixed variants  {MIXED_VARIANTS}, Zipf s={MIXED_ZIPF_S} (seed {})",
                plan.seed
            );
        }
    }
    let _ = writeln!(
        out,
        "requests        {requests} (+{io_errors} failed with I/O errors)"
    );
    let _ = writeln!(
        out,
        "requests/s      {:.1}",
        requests as f64 / elapsed.as_secs_f64()
    );
    stats.latencies_us.sort_unstable();
    let l = &stats.latencies_us;
    let _ = writeln!(
        out,
        "latency ms      p50 {:.2}  p95 {:.2}  p99 {:.2}  max {:.2}",
        percentile_ms(l, 50.0),
        percentile_ms(l, 95.0),
        percentile_ms(l, 99.0),
        percentile_ms(l, 100.0)
    );
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let _ = writeln!(
        out,
        "statuses        {}",
        if statuses.is_empty() {
            "none".into()
        } else {
            statuses.join(", ")
        }
    );
    let mut errors: Vec<String> = stats
        .statuses
        .iter()
        .filter(|(s, _)| !(200..300).contains(*s))
        .map(|(s, n)| format!("HTTP {s}: {n}"))
        .collect();
    errors.extend(stats.io_errors.iter().map(|(k, n)| format!("{k}: {n}")));
    let _ = writeln!(
        out,
        "errors          {}",
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        }
    );
    let _ = writeln!(
        out,
        "cache-status    hit {}, miss {}, other/absent {}",
        stats.cache_hit, stats.cache_miss, stats.cache_other
    );
    if requests > 0 {
        let _ = writeln!(
            out,
            "body bytes      {:.1} KiB avg, {:.1} MiB/s",
            stats.body_bytes as f64 / requests as f64 / 1024.0,
            stats.body_bytes as f64 / elapsed.as_secs_f64() / (1024.0 * 1024.0)
        );
    }
    if let (Some(pid), Some(before), Some(after)) = (args.pid, cpu_before, cpu_after) {
        match after {
            Ok(after) => {
                let cpu = after - before;
                let _ = writeln!(out, "server pid      {pid}");
                let _ = writeln!(
                    out,
                    "server cpu s    {cpu:.2} ({:.0}% of one core)",
                    100.0 * cpu / elapsed.as_secs_f64()
                );
                if requests > 0 {
                    let _ = writeln!(out, "cpu ms/request  {:.3}", 1000.0 * cpu / requests as f64);
                }
            }
            Err(e) => {
                let _ = writeln!(out, "server cpu      unavailable ({e})");
            }
        }
        let hwm = proc_rss_kb(pid).map(|(_, hwm)| hwm).unwrap_or(0);
        let _ = writeln!(
            out,
            "peak rss MB     {:.1} (VmRSS sampled every 100 ms during the run; VmHWM since server start {:.1})",
            peak_rss_kb.unwrap_or(0) as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    }
    print!("{out}");
    if requests == 0 {
        // Scripts comparing runs must not mistake "nothing answered" for a result.
        return Err("no request completed".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn args(extra: &[&str]) -> Args {
        let raw: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        parse_args(&raw).unwrap().unwrap()
    }

    #[test]
    fn miss_paths_are_unique_over_the_whole_key_space() {
        let plan = Plan::new(&args(&["--scenario", "miss", "--seed", "12345"]));
        assert_eq!(plan.miss_space, 3 * 1001 * 50);
        let mut seen = HashSet::new();
        for n in plan.seed..plan.seed + plan.miss_space {
            assert!(seen.insert(plan.miss_path(n)), "repeat at {n}");
        }
        // And the next lap starts over.
        assert!(!seen.insert(plan.miss_path(plan.seed + plan.miss_space)));
    }

    #[test]
    fn short_miss_runs_sweep_the_width_range() {
        let plan = Plan::new(&args(&["--scenario", "miss", "--seed", "0"]));
        let widths: Vec<u64> = (0..300)
            .map(|n| {
                let p = plan.miss_path(n);
                let w = p.split("width=").nth(1).unwrap().split(',').next().unwrap();
                w.parse().unwrap()
            })
            .collect();
        assert!(widths.iter().any(|&w| w < 300) && widths.iter().any(|&w| w > 1100));
    }

    #[test]
    fn miss_template_gets_a_quality_placeholder() {
        assert_eq!(
            with_quality_placeholder(DEFAULT_TEMPLATE),
            "/cdn-cgi/image/width={w},quality={q},format=jpeg/{f}"
        );
        assert_eq!(
            with_quality_placeholder("/cdn-cgi/image/w={w},q=70/{f}"),
            "/cdn-cgi/image/w={w},quality={q}/{f}"
        );
        assert_eq!(
            with_quality_placeholder("/cdn-cgi/image/w={w}/{f}"),
            "/cdn-cgi/image/w={w},quality={q}/{f}"
        );
    }

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let plan = Plan::new(&args(&["--scenario", "mixed"]));
        let mut rng = XorShift::new(1);
        let mut counts = vec![0u32; MIXED_VARIANTS];
        for _ in 0..100_000 {
            counts[plan.zipf_rank(&mut rng)] += 1;
        }
        // s = 1 over 200 ranks: rank 0 gets 1/H(200) ~ 17%, rank 1 half of that.
        assert!((15_000..19_000).contains(&counts[0]), "{}", counts[0]);
        assert!(counts[1] * 2 > counts[0] * 8 / 10 && counts[1] * 2 < counts[0] * 12 / 10);
    }

    #[test]
    fn parses_content_length_chunked_and_close_delimited_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncache-status: imgate; hit\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\nHTTP/1.0 503 Busy\r\n\r\nrest";
        let mut r = BufReader::new(&raw[..]);
        let a = read_response(&mut r).unwrap();
        assert_eq!((a.status, a.body_bytes, a.keep_alive), (200, 5, true));
        assert_eq!(a.cache_status.as_deref(), Some("imgate; hit"));
        let b = read_response(&mut r).unwrap();
        assert_eq!((b.status, b.body_bytes, b.keep_alive), (404, 5, true));
        let c = read_response(&mut r).unwrap();
        assert_eq!((c.status, c.body_bytes, c.keep_alive), (503, 4, false));
    }

    #[test]
    fn rejects_truncated_and_garbled_responses() {
        let truncated = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
        assert!(read_response(&mut BufReader::new(&truncated[..])).is_err());
        assert!(read_response(&mut BufReader::new(&b"garbage\r\n\r\n"[..])).is_err());
    }

    #[test]
    fn refuses_remote_targets_unless_allowed() {
        assert!(resolve_target("127.0.0.1:8080", false).is_ok());
        assert!(resolve_target("10.1.2.3:80", false).is_err());
        assert!(resolve_target("10.1.2.3:80", true).is_ok());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 50.0), 50.0);
        assert_eq!(percentile_ms(&v, 99.0), 99.0);
        assert_eq!(percentile_ms(&v, 100.0), 100.0);
        assert_eq!(percentile_ms(&[], 50.0), 0.0);
    }
}
