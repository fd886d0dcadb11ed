//! SVG drawn in a child process, so that no document can take the gateway down.
//!
//! usvg and resvg have aborted the process four ways that fuzzing found (a panic while
//! unwinding, a failed allocation, a stack overflow) and looped for ever a fifth: each class
//! is now refused before drawing, but a sixth would again stop every request in flight. With
//! [`draw_in_child_processes`] set (the `imgate` binary sets it at start), each SVG decode runs
//! `<program> --svg-worker <width> <height>`: the document on its stdin, one status byte and
//! the straight RGBA raster (or the error) on its stdout. A child that dies, loops past its CPU
//! limit or stalls past the wall-clock limit costs that one request a `422` or `413`.
//!
//! SVG misses are rare and their results cached, so the cost of a process (a few
//! milliseconds) is paid seldom. Without the setting (unit tests, fuzz targets) documents are
//! drawn in the calling thread, where a crash is what the fuzzer must see.

use super::super::error::ImageError;
use super::super::raster::{reserve_pixels, Raster};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

/// The first argument that makes the binary a worker.
pub const WORKER_FLAG: &str = "--svg-worker";

/// CPU seconds a worker may spend: far past what the drawing budget allows (about 5 s).
const CPU_SECONDS: u64 = 30;

/// Wall-clock time a worker may take, waiting for a core included, before it is killed.
const WALL: Duration = Duration::from_secs(120);

static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// From now on, draw every SVG document in a child process running `program` (this binary:
/// `/proc/self/exe`, which stays runnable when the file is replaced during an upgrade).
pub fn draw_in_child_processes(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// The program that draws SVG, when documents are drawn out of process.
pub(super) fn program() -> Option<&'static Path> {
    PROGRAM.get().map(PathBuf::as_path)
}

/// Draws `input` at `width` x `height` in a child process running `program`.
pub(super) fn draw(
    program: &Path,
    input: &[u8],
    width: u32,
    height: u32,
) -> Result<Raster, ImageError> {
    let len = width as usize * height as usize * 4;
    // The parent's copy of the raster is allocated before the child draws: no point drawing
    // what could not be received.
    let mut pixels = reserve_pixels(len)?;
    let mut child = Command::new(program)
        .arg(WORKER_FLAG)
        .arg(width.to_string())
        .arg(height.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ImageError::Encode(format!("SVG: cannot start the drawing process: {e}")))?;
    let watchdog = Watchdog::start(child.id(), WALL);
    // The child reads the whole document before it writes anything: no deadlock. A child that
    // dies early closes the pipe, and the write fails; its exit says why. The pipe closes when
    // the write is done.
    let sent = child.stdin.take().map(|mut s| s.write_all(input));
    let mut stdout = child.stdout.take();
    let mut status = [0u8; 1];
    let mut reply = Vec::new();
    let received = stdout.as_mut().map(|out| {
        out.read_exact(&mut status)?;
        if status[0] == b'O' {
            out.take(len as u64 + 1).read_to_end(&mut pixels)
        } else {
            out.take(4096).read_to_end(&mut reply)
        }
    });
    drop(stdout);
    let killed = watchdog.finish();
    let exit = child
        .wait()
        .map_err(|e| ImageError::Encode(format!("SVG: the drawing process was lost: {e}")))?;
    match (sent, received) {
        (Some(Ok(())), Some(Ok(_))) if exit.success() && status[0] == b'O' => {
            if pixels.len() != len {
                return Err(ImageError::Undecodable(format!(
                    "SVG: the drawing process sent {} bytes for a {width}x{height} raster",
                    pixels.len()
                )));
            }
            Ok(Raster::new(width, height, 4, pixels))
        }
        (_, Some(Ok(_))) if exit.success() && status[0] == b'E' => Err(read_error(&reply)),
        _ => Err(failed(exit, killed)),
    }
}

/// Why a child stopped without an answer.
fn failed(exit: std::process::ExitStatus, killed: bool) -> ImageError {
    use std::os::unix::process::ExitStatusExt;
    if killed {
        return ImageError::TooLarge(format!("SVG drawing took longer than {} s", WALL.as_secs()));
    }
    match exit.signal() {
        Some(libc::SIGXCPU) | Some(libc::SIGKILL) => {
            ImageError::TooLarge(format!("SVG drawing took more than {CPU_SECONDS} s of CPU"))
        }
        Some(signal) => ImageError::Undecodable(format!(
            "SVG drawing failed (the drawing process stopped on signal {signal})"
        )),
        None => ImageError::Undecodable(format!(
            "SVG drawing failed (the drawing process exited with {})",
            exit.code().unwrap_or(-1)
        )),
    }
}

/// Kills a child that outlives its time. The kill happens under the lock that
/// [`Watchdog::finish`] takes before the child is reaped, so it can never reach another
/// process that has been given the same id.
struct Watchdog {
    state: Arc<(Mutex<(bool, bool)>, Condvar)>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Watchdog {
        let state = Arc::new((Mutex::new((false, false)), Condvar::new()));
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            let (lock, done) = &*shared;
            let Ok(guard) = lock.lock() else { return };
            let Ok((mut guard, _)) = done.wait_timeout_while(guard, limit, |s| !s.0) else {
                return;
            };
            if !guard.0 {
                // SAFETY: `kill` takes plain integers; the child has not been reaped (see above).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                guard.1 = true;
            }
        });
        Watchdog { state }
    }

    /// Stops the watchdog; whether it had killed the child.
    fn finish(self) -> bool {
        let (lock, done) = &*self.state;
        let mut guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 = true;
        done.notify_all();
        guard.1
    }
}

/// The child's side: `args` are what follows [`WORKER_FLAG`] (width and height), the document
/// is on stdin. Returns the exit code.
pub fn serve(args: &[String]) -> i32 {
    let size = |i: usize| args.get(i).and_then(|a| a.parse::<u32>().ok());
    let (Some(width), Some(height)) = (size(0), size(1)) else {
        eprintln!("usage: imgate {WORKER_FLAG} WIDTH HEIGHT < document.svg");
        return 2;
    };
    let limit = libc::rlimit {
        rlim_cur: CPU_SECONDS,
        rlim_max: CPU_SECONDS + 1,
    };
    // SAFETY: `setrlimit` reads the struct it is given; failure leaves the limit unset.
    unsafe { libc::setrlimit(libc::RLIMIT_CPU, &limit) };
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return 1;
    }
    let mut out = std::io::stdout().lock();
    let written = match super::draw(&input, width, height) {
        Ok(raster) => out
            .write_all(b"O")
            .and_then(|()| out.write_all(&raster.data)),
        Err(e) => out
            .write_all(b"E")
            .and_then(|()| out.write_all(&write_error(&e))),
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// An error as the child sends it: its kind as one byte, then its message.
fn write_error(e: &ImageError) -> Vec<u8> {
    let (kind, message) = match e {
        ImageError::TooLarge(m) => (b'L', m),
        ImageError::Unsupported(m) => (b'S', m),
        ImageError::Undecodable(m) => (b'U', m),
        ImageError::Encode(m) => (b'E', m),
    };
    let mut out = vec![kind];
    out.extend_from_slice(message.as_bytes());
    out
}

/// The error a child sent.
fn read_error(reply: &[u8]) -> ImageError {
    let message = String::from_utf8_lossy(reply.get(1..).unwrap_or_default()).into_owned();
    match reply.first() {
        Some(b'L') => ImageError::TooLarge(message),
        Some(b'S') => ImageError::Unsupported(message),
        Some(b'E') => ImageError::Encode(message),
        _ => ImageError::Undecodable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::{read_error, write_error, Watchdog};
    use crate::imaging::ImageError;
    use std::os::unix::process::ExitStatusExt;
    use std::process::Command;
    use std::time::{Duration, Instant};

    #[test]
    fn the_watchdog_kills_a_child_past_its_time_and_only_then() {
        let mut late = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        let watchdog = Watchdog::start(late.id(), Duration::from_millis(200));
        let exit = late.wait().unwrap();
        assert_eq!(exit.signal(), Some(libc::SIGKILL));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(watchdog.finish(), "it says it killed");

        let mut quick = Command::new("sleep").arg("0.1").spawn().unwrap();
        let watchdog = Watchdog::start(quick.id(), Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!watchdog.finish(), "finished in time");
        std::thread::sleep(Duration::from_millis(400));
        assert!(quick.wait().unwrap().success());
    }

    #[test]
    fn errors_cross_the_pipe_as_they_were() {
        for e in [
            ImageError::TooLarge("a".into()),
            ImageError::Unsupported("b".into()),
            ImageError::Undecodable("c é".into()),
            ImageError::Encode(String::new()),
        ] {
            let back = read_error(&write_error(&e));
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
        assert!(matches!(read_error(b""), ImageError::Undecodable(m) if m.is_empty()));
    }
}
