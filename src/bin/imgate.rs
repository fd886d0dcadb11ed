//! The `imgate` binary: parse arguments, load and validate the config, run the server.

use imgate::config::{Config, EnvOverrides};
use imgate::server::{self, Role};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "\
imgate: an image CDN edge

USAGE:
    imgate [--config FILE] [--role all|transform]
    imgate --validate FILE [FILE...]   (with the IMGATE_* variables below applied)

With no --config, runs the embedded example config (conf/imgate.yaml), which serves
the sample images in conf/samples.

ENVIRONMENT (each overrides the config):
    IMGATE_LISTEN         edge listener (default 127.0.0.1:8080)
    IMGATE_ADMIN_LISTEN   admin listener: /metrics, /livez, /readyz, /purge, /warm
    IMGATE_ORIGIN         origin of every site (http://host:port, https://host, file:///dir)
    IMGATE_CACHE_DIR      disk tier directory
    IMGATE_ADMIN_TOKEN    bearer token of the purge and warm API
    IMGATE_HTML_REWRITE   on|off: HTML rewriting for the first site
    IMGATE_CLUSTER_LISTEN, IMGATE_CLUSTER_ADVERTISE, IMGATE_PEERS (comma-separated),
    IMGATE_CLUSTER_TOKEN, IMGATE_REDIS_URL: cluster mode (README: Running several nodes)
    IMGATE_SVG_WORKER     program run as `PROGRAM --svg-worker W H` to draw each SVG original
                          (default: this binary; off: draw in this process)
    RUST_LOG              log level (default info)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child that draws one SVG document (`imaging::svg::worker`): nothing else starts.
    if args.first().map(String::as_str) == Some(imgate::imaging::SVG_WORKER_FLAG) {
        return ExitCode::from(imgate::imaging::serve_svg_worker(&args[1..]) as u8);
    }
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,pingora_cache::meta=error"),
    )
    .init();
    let mut config_path: Option<PathBuf> = None;
    let mut role = Role::All;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--validate" => return validate(&args[i + 1..]),
            "-c" | "--config" if i + 1 < args.len() => {
                config_path = Some(PathBuf::from(&args[i + 1]));
                i += 1;
            }
            "--role" if i + 1 < args.len() => {
                role = match args[i + 1].as_str() {
                    "all" => Role::All,
                    "transform" => Role::Transform,
                    other => {
                        eprintln!("unknown role '{other}': expected all or transform");
                        return ExitCode::from(2);
                    }
                };
                i += 1;
            }
            other => {
                eprintln!("unknown argument '{other}'\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let env = EnvOverrides::from_env();
    let config = match &config_path {
        Some(p) => Config::load(p, &env),
        None => Config::embedded_default(&env),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid config: {e}");
            return ExitCode::from(2);
        }
    };
    // SVG originals are drawn in child processes running this binary, so that no document can
    // take the gateway down (`/proc/self/exe` stays runnable if the file is replaced).
    let own = PathBuf::from("/proc/self/exe");
    let worker = match std::env::var_os("IMGATE_SVG_WORKER") {
        Some(off) if off == "off" => None,
        Some(program) => Some(PathBuf::from(program)),
        None if own.exists() => Some(own),
        None => std::env::current_exe().ok(),
    };
    match worker {
        Some(program) => imgate::imaging::draw_svg_in_child_processes(program),
        None => log::warn!("SVG is drawn in the gateway's process: a crash in it stops them all"),
    }
    log::info!(
        "imgate edge on http://{}, admin on http://{}",
        config.listen,
        config.admin_listen
    );
    match server::build(config, role) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("cannot start: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--validate FILE...`: check each config with this environment's `IMGATE_*` overrides (the
/// config the server would run here), print one line per file, fail if any is invalid.
fn validate(files: &[String]) -> ExitCode {
    if files.is_empty() {
        eprintln!("--validate needs at least one file");
        return ExitCode::from(2);
    }
    let mut ok = true;
    let env = EnvOverrides::from_env();
    for f in files {
        match Config::load(std::path::Path::new(f), &env) {
            Ok(_) => println!("{f}: ok"),
            Err(e) => {
                println!("{e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
