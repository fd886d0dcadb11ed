//! The access log: one line per request answered by the edge, as JSON (default) or nginx's
//! "combined" format, to stdout or a file that SIGUSR1 reopens (log rotation).
//!
//! It owns formatting and writing; it must not know Pingora or block a request: lines go
//! through a bounded queue to one writer thread, and a line that finds the queue full is
//! dropped and counted (`imgate_access_log_dropped_total`), never waited for. The proxy's
//! `logging` phase is the only caller that knows where the fields come from.

use serde::Serialize;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines waiting for the writer; beyond this they are dropped (about 4 MB of typical lines).
const QUEUE_LINES: usize = 16 * 1024;
/// How often the writer empties the queue (and looks at the reopen flag). Requests never wake
/// the writer: a wake-up per line (a futex call on each side) cost about a fifth of a cache
/// hit's CPU over HTTPS. At this tick the queue holds 20 ms of lines at 800,000 requests/s.
const DRAIN_TICK: Duration = Duration::from_millis(20);

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line (every field, machine-readable). The default.
    Json,
    /// nginx's `combined`: what existing log tools parse, without cache or timing fields.
    Combined,
}

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stdout,
    /// Appended to, created `0640` if missing; reopened by path on SIGUSR1, so a rotated
    /// (renamed) file stops growing and a new one starts.
    File(PathBuf),
}

/// `access_log` in the config; absent from `Config` when the log is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub format: Format,
    pub target: Target,
}

/// The transform service's own account of a miss (its `Server-Timing`): milliseconds spent
/// fetching the original and in the pipeline (decode + resize + encode).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TransformTimings {
    pub fetch_ms: f64,
    pub pipeline_ms: f64,
}

impl TransformTimings {
    /// Read `fetch;dur=12.5, decode;dur=3, resize;dur=1, encode;dur=4`; `None` when there is no
    /// `fetch` metric (not a transform's answer).
    pub fn from_server_timing(value: &str) -> Option<TransformTimings> {
        let mut t = TransformTimings::default();
        let mut fetched = false;
        for metric in value.split(',') {
            let mut params = metric.split(';');
            let name = params.next().unwrap_or("").trim();
            let dur = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("dur"))
                .and_then(|(_, v)| v.trim().parse::<f64>().ok())
                .filter(|d| d.is_finite() && *d >= 0.0);
            let Some(dur) = dur else { continue };
            match name {
                "fetch" => {
                    t.fetch_ms = dur;
                    fetched = true;
                }
                "decode" | "resize" | "encode" => t.pipeline_ms += dur,
                _ => {}
            }
        }
        fetched.then_some(t)
    }
}

/// One request, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// When the request arrived.
    pub time: SystemTime,
    /// After `trusted_proxies` (`forwarded::client_address`).
    pub client: Option<IpAddr>,
    pub method: &'a str,
    pub host: &'a str,
    /// Path and query as requested.
    pub path: &'a str,
    /// `HTTP/1.1`, for the combined format's request line.
    pub protocol: &'a str,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    pub duration: Duration,
    /// `hit`, `miss`, `stale`, `revalidated` or `bypass` (as the metrics label it).
    pub cache: &'a str,
    /// `image`, `passthrough` or `error`.
    pub route: &'a str,
    pub transform: Option<TransformTimings>,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Record<'_> {
    /// The line for `format`, with its newline.
    pub fn line(&self, format: Format) -> String {
        match format {
            Format::Json => self.json(),
            Format::Combined => self.combined(),
        }
    }

    fn json(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            time: String,
            client: Option<String>,
            method: &'a str,
            host: &'a str,
            path: &'a str,
            status: u16,
            bytes: u64,
            duration_ms: f64,
            cache: &'a str,
            route: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            fetch_ms: Option<f64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pipeline_ms: Option<f64>,
            referer: Option<&'a str>,
            user_agent: Option<&'a str>,
        }
        let line = Line {
            time: rfc3339(self.time),
            client: self.client.map(|c| c.to_string()),
            method: self.method,
            host: self.host,
            path: self.path,
            status: self.status,
            bytes: self.bytes,
            duration_ms: millis(self.duration),
            cache: self.cache,
            route: self.route,
            fetch_ms: self.transform.map(|t| round3(t.fetch_ms)),
            pipeline_ms: self.transform.map(|t| round3(t.pipeline_ms)),
            referer: self.referer,
            user_agent: self.user_agent,
        };
        // serde_json escapes quotes, backslashes and control characters: a hostile path or
        // user agent stays one valid line.
        let mut out = serde_json::to_string(&line).unwrap_or_else(|_| "{}".into());
        out.push('\n');
        out
    }

    fn combined(&self) -> String {
        let client = self
            .client
            .map_or_else(|| "-".to_string(), |c| c.to_string());
        format!(
            "{client} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"\n",
            clf_time(self.time),
            nginx_escape(self.method),
            nginx_escape(self.path),
            nginx_escape(self.protocol),
            self.status,
            self.bytes,
            nginx_escape(self.referer.unwrap_or("-")),
            nginx_escape(self.user_agent.unwrap_or("-")),
        )
    }
}

fn millis(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

fn round3(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// As nginx escapes variables in its default log escaping: `"`, `\`, control and non-ASCII
/// bytes become `\xHH`, so a field can never end its quotes or the line.
fn nginx_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\x{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Seconds since the epoch -> (year, month, day, hour, minute, second) in UTC
/// (days-to-civil after Howard Hinnant's date algorithms).
fn civil(time: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
        since.subsec_millis(),
    )
}

/// `2026-12-05T18:33:17.123Z`
fn rfc3339(time: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(time);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `05/Dec/2026:18:33:17 +0000`, the common log format's time.
fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, _) = civil(time);
    let month = MONTHS[(mo as usize).clamp(1, 12) - 1];
    format!("{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000")
}

type Opener = Box<dyn FnMut() -> io::Result<Box<dyn Write + Send>> + Send>;

/// The request side of the log: formats a line and hands it to the writer thread.
pub struct AccessLog {
    format: Format,
    queue: SyncSender<String>,
}

impl AccessLog {
    /// Open the target (an unwritable file fails start-up, not the first request), start the
    /// writer thread and, for a file, take SIGUSR1 for reopening.
    pub fn start(config: &AccessLogConfig) -> io::Result<AccessLog> {
        let opener: Opener = match &config.target {
            Target::Stdout => Box::new(|| Ok(Box::new(io::stdout()) as Box<dyn Write + Send>)),
            Target::File(path) => {
                let path = path.clone();
                Box::new(move || {
                    let file = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .mode(0o640)
                        .open(&path)?;
                    Ok(Box::new(file) as Box<dyn Write + Send>)
                })
            }
        };
        if matches!(config.target, Target::File(_)) {
            crate::signals::watch(libc::SIGUSR1)?;
        }
        AccessLog::with_opener(config.format, QUEUE_LINES, opener)
    }

    fn with_opener(format: Format, queue: usize, mut open: Opener) -> io::Result<AccessLog> {
        let first = open()?;
        let (tx, rx) = mpsc::sync_channel(queue);
        std::thread::Builder::new()
            .name("imgate-access-log".into())
            .spawn(move || write_lines(rx, first, open))?;
        Ok(AccessLog { format, queue: tx })
    }

    /// Queue the line for `record`; `false` (and counted) when it had to be dropped.
    pub fn record(&self, record: &Record) -> bool {
        match self.queue.try_send(record.line(self.format)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                crate::metrics::ACCESS_LOG_DROPPED
                    .with_label_values(&["full"])
                    .inc();
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                crate::metrics::ACCESS_LOG_DROPPED
                    .with_label_values(&["writer_gone"])
                    .inc();
                false
            }
        }
    }
}

/// The writer thread: every [`DRAIN_TICK`], writes what is queued and flushes it, reopens when
/// SIGUSR1 asked; ends when the `AccessLog` is dropped and the queue is empty.
fn write_lines(rx: Receiver<String>, first: Box<dyn Write + Send>, mut open: Opener) {
    let mut out = BufWriter::with_capacity(64 << 10, first);
    loop {
        let (mut wrote, mut lost, mut gone) = (false, 0u64, false);
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    wrote = true;
                    lost += u64::from(out.write_all(line.as_bytes()).is_err());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    gone = true;
                    break;
                }
            }
        }
        if wrote && (out.flush().is_err() || lost > 0) {
            crate::metrics::ACCESS_LOG_DROPPED
                .with_label_values(&["write_error"])
                .inc_by(lost.max(1));
        }
        if gone {
            let _ = out.flush();
            return;
        }
        if crate::signals::take(libc::SIGUSR1) {
            let _ = out.flush();
            match open() {
                Ok(next) => out = BufWriter::with_capacity(64 << 10, next),
                // Keep writing where we were rather than lose lines.
                Err(e) => log::warn!("access log: reopening failed, keeping the old file: {e}"),
            }
        }
        std::thread::sleep(DRAIN_TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    fn record<'a>(path: &'a str, ua: Option<&'a str>) -> Record<'a> {
        Record {
            // 2026-12-05T18:33:17.250Z
            time: UNIX_EPOCH + Duration::from_millis(1_796_495_597_250),
            client: Some("203.0.113.9".parse().unwrap()),
            method: "GET",
            host: "img.example",
            path,
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 1234,
            duration: Duration::from_micros(12_345),
            cache: "miss",
            route: "image",
            transform: Some(TransformTimings {
                fetch_ms: 4.5,
                pipeline_ms: 7.25,
            }),
            referer: None,
            user_agent: ua,
        }
    }

    #[test]
    fn json_line_has_every_field_and_survives_hostile_input() {
        let path = "/a\"b\\c\n\u{1}d?x=\u{2028}";
        let line = record(path, Some("ua\"\r\n")).line(Format::Json);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line}"
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2026-12-05T18:33:17.250Z");
        assert_eq!(v["client"], "203.0.113.9");
        assert_eq!(v["path"], path);
        assert_eq!(v["user_agent"], "ua\"\r\n");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes"], 1234);
        assert_eq!(v["duration_ms"], 12.345);
        assert_eq!(v["fetch_ms"], 4.5);
        assert_eq!(v["pipeline_ms"], 7.25);
        assert_eq!(v["referer"], serde_json::Value::Null);
    }

    #[test]
    fn combined_line_is_nginx_combined_and_cannot_be_broken() {
        let line = record("/x\"y z", Some("Mozilla \"5\"\n")).line(Format::Combined);
        assert_eq!(
            line,
            "203.0.113.9 - - [05/Dec/2026:18:33:17 +0000] \"GET /x\\x22y z HTTP/1.1\" 200 1234 \"-\" \"Mozilla \\x225\\x22\\x0A\"\n"
        );
    }

    #[test]
    fn civil_dates() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59.000Z");
        assert_eq!(
            clf_time(UNIX_EPOCH + Duration::from_secs(1_709_164_800)),
            "29/Feb/2024:00:00:00 +0000"
        );
    }

    #[test]
    fn server_timing_of_a_transform() {
        let t = TransformTimings::from_server_timing(
            "fetch;dur=12.5, decode;dur=3.0, resize;dur=1.5, encode;dur=4",
        )
        .unwrap();
        assert_eq!(t.fetch_ms, 12.5);
        assert_eq!(t.pipeline_ms, 8.5);
        assert_eq!(TransformTimings::from_server_timing("db;dur=5"), None);
        assert_eq!(TransformTimings::from_server_timing("fetch;dur=NaN"), None);
    }

    /// A writer that blocks until released, says when it is stuck, and keeps what it got.
    struct Held {
        got: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
        stuck: Arc<AtomicBool>,
    }
    impl Write for Held {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.stuck.store(true, Ordering::SeqCst);
            let _wait = self.gate.lock().unwrap();
            self.got.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_writer_drops_lines_instead_of_blocking() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Mutex::new(()));
        let stuck = Arc::new(AtomicBool::new(false));
        let held = gate.lock().unwrap();
        let writer = Held {
            got: got.clone(),
            gate: gate.clone(),
            stuck: stuck.clone(),
        };
        let mut writer = Some(writer);
        let log = AccessLog::with_opener(
            Format::Json,
            2,
            Box::new(move || {
                let w = writer
                    .take()
                    .ok_or_else(|| io::Error::other("opened once"))?;
                Ok(Box::new(w) as Box<dyn Write + Send>)
            }),
        )
        .unwrap();
        assert!(log.record(&record("/first", None)));
        while !stuck.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = std::time::Instant::now();
        let kept = (0..50).filter(|_| log.record(&record("/p", None))).count();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(kept, 2, "the queue holds two lines; the rest are dropped");
        drop(held);
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while got.lock().unwrap().iter().filter(|b| **b == b'\n').count() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "queued lines are written"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
