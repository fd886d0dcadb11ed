//! TLS test tools: certificates made by the `openssl` command (a CA, and certificates it signs
//! for the names a test asks: `DNS:a.test`, `IP:127.0.0.1`), and `curl` over HTTPS.

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (./dev test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA `{ca}.pem` (key `{ca}.key`) in `dir`.
pub fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=imgate test {ca}"),
        ],
    );
}

/// `{name}.pem` and `{name}.key` in `dir`, for `sans` (`DNS:a.test`), signed by CA `ca`.
pub fn make_cert(dir: &Path, ca: &str, name: &str, sans: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={sans}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

/// `curl` to `https://{host}:{port}{path}` on loopback, trusting only the CA in `ca` (a file
/// in `dir`): the HTTP version, status, response headers (lower case) and body size; the body is
/// saved as `body` in `dir`. `Err(curl's exit code)` when it failed.
pub fn curl_with(
    dir: &Path,
    ca: &str,
    body: &str,
    port: u16,
    host: &str,
    path: &str,
    version: &str,
) -> Result<(String, u16, String, usize), i32> {
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", body, version, "--cacert", ca])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(format!("https://{host}:{port}{path}"))
        .current_dir(dir)
        .output()
        .expect("curl runs");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (headers, last) = text.trim_end().rsplit_once('\n').unwrap();
    let (http, code) = last.split_once(' ').unwrap();
    let size = std::fs::metadata(dir.join(body)).map_or(0, |m| m.len() as usize);
    Ok((
        http.to_string(),
        code.parse().unwrap(),
        headers.to_ascii_lowercase(),
        size,
    ))
}

/// Assert that imgate (admin listener `admin`) exports an expiry for `certificate` within the
/// next `seconds`, and later than now.
pub fn assert_expires_within(admin: &str, certificate: &str, seconds: f64) {
    let expiry = super::metric(
        admin,
        &format!(
            "imgate_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}}"
        ),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now && expiry < now + seconds,
        "{certificate}: expiry {expiry}, now {now}"
    );
}
