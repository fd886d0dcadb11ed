//! Reading a TLS ClientHello from the first bytes of a connection, before any TLS library sees
//! them: the server name, the ALPN protocols and the versions offered, which is what the
//! handshake gate ([`super::gate`]) decides on. Outside bytes: every length is checked, nothing
//! panics, and a hello is refused past [`MAX_HELLO`] bytes.

/// The most bytes read for one ClientHello (records and their headers). Real ones are under
/// 2 KB; post-quantum key shares keep them well under this.
pub const MAX_HELLO: usize = 64 << 10;

/// The TLS record type of a handshake message, and the handshake type of a ClientHello.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
/// Extension numbers (RFC 6066, RFC 7301, RFC 8446).
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// What a ClientHello asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// The `server_name` host name, lower-cased, when it is one.
    pub server_name: Option<String>,
    /// ALPN protocol names, in the client's order.
    pub alpn: Vec<Vec<u8>>,
    /// The versions offered (`supported_versions`, else the hello's own version).
    pub versions: Vec<u16>,
}

impl Hello {
    /// Whether the client can speak `version` (wire number, `0x0304` for TLS 1.3).
    pub fn offers(&self, version: u16) -> bool {
        self.versions.contains(&version)
    }

    /// A TLS-ALPN-01 validation (RFC 8737 §3): `acme-tls/1` as the only protocol.
    pub fn is_acme_validation(&self) -> bool {
        self.alpn.len() == 1 && self.alpn[0] == b"acme-tls/1"
    }
}

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// A whole ClientHello, and how many bytes of the input it took.
    Hello(Hello, usize),
    /// A ClientHello begun; at least this many bytes in all are needed.
    NeedMore(usize),
    /// Not a ClientHello (not TLS, malformed, or over [`MAX_HELLO`]).
    NotHello,
}

/// Read `raw`, the first bytes of a connection.
pub fn scan(raw: &[u8]) -> Scan {
    // The handshake message may span several records: gather their fragments.
    let mut message = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = raw.get(at..at + 5) else {
            return need(at + 5);
        };
        if header[0] != HANDSHAKE || header[1] != 3 {
            return Scan::NotHello;
        }
        let len = u16::from_be_bytes([header[3], header[4]]) as usize;
        if len == 0 || len > (1 << 14) + 2048 {
            return Scan::NotHello;
        }
        let Some(fragment) = raw.get(at + 5..at + 5 + len) else {
            return need(at + 5 + len);
        };
        message.extend_from_slice(fragment);
        at += 5 + len;
        if message.len() >= 4 {
            if message[0] != CLIENT_HELLO {
                return Scan::NotHello;
            }
            let body = u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
            if 4 + body > MAX_HELLO {
                return Scan::NotHello;
            }
            if message.len() >= 4 + body {
                return match parse_body(&message[4..4 + body]) {
                    Some(hello) => Scan::Hello(hello, at),
                    None => Scan::NotHello,
                };
            }
        }
    }
}

fn need(bytes: usize) -> Scan {
    if bytes > MAX_HELLO {
        Scan::NotHello
    } else {
        Scan::NeedMore(bytes)
    }
}

/// A cursor over outside bytes: every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    /// A field prefixed by its length in `width` bytes (1 or 2).
    fn vec(&mut self, width: usize) -> Option<Reader<'a>> {
        let len = match width {
            1 => self.u8()? as usize,
            _ => self.u16()? as usize,
        };
        self.take(len).map(Reader)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_body(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    r.take(32)?; // random
    r.vec(1)?; // legacy_session_id
    r.vec(2)?; // cipher_suites
    r.vec(1)?; // legacy_compression_methods
    let mut hello = Hello::default();
    // Extensions may be absent altogether (before TLS 1.3).
    let mut extensions = if r.is_empty() { Reader(&[]) } else { r.vec(2)? };
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec(2)?;
        match kind {
            EXT_SERVER_NAME => {
                let mut list = data.vec(2)?;
                while !list.is_empty() {
                    let name_type = list.u8()?;
                    let name = list.vec(2)?.0;
                    if name_type == 0 && hello.server_name.is_none() {
                        hello.server_name = std::str::from_utf8(name)
                            .ok()
                            .map(|s| s.to_ascii_lowercase());
                    }
                }
            }
            EXT_ALPN => {
                let mut list = data.vec(2)?;
                while !list.is_empty() {
                    hello.alpn.push(list.vec(1)?.0.to_vec());
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut list = data.vec(1)?;
                while !list.is_empty() {
                    hello.versions.push(list.u16()?);
                }
            }
            _ => {}
        }
    }
    if hello.versions.is_empty() {
        hello.versions.push(legacy_version);
    }
    Some(hello)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello record as a client writes it (server name, ALPN, supported versions).
    pub(crate) fn client_hello(sni: &str, alpn: &[&[u8]], versions: &[u16]) -> Vec<u8> {
        let mut ext = Vec::new();
        let mut push = |kind: u16, data: Vec<u8>| {
            ext.extend_from_slice(&kind.to_be_bytes());
            ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
            ext.extend_from_slice(&data);
        };
        let mut name = vec![0u8];
        name.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        name.extend_from_slice(sni.as_bytes());
        let mut sni_ext = (name.len() as u16).to_be_bytes().to_vec();
        sni_ext.extend_from_slice(&name);
        push(EXT_SERVER_NAME, sni_ext);
        if !alpn.is_empty() {
            let mut list = Vec::new();
            for p in alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p);
            }
            let mut data = (list.len() as u16).to_be_bytes().to_vec();
            data.extend_from_slice(&list);
            push(EXT_ALPN, data);
        }
        if !versions.is_empty() {
            let mut data = vec![(versions.len() * 2) as u8];
            for v in versions {
                data.extend_from_slice(&v.to_be_bytes());
            }
            push(EXT_SUPPORTED_VERSIONS, data);
        }
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut message = vec![CLIENT_HELLO];
        message.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        message.extend_from_slice(&body);
        let mut record = vec![HANDSHAKE, 3, 1];
        record.extend_from_slice(&(message.len() as u16).to_be_bytes());
        record.extend_from_slice(&message);
        record
    }

    #[test]
    fn a_hello_gives_its_name_protocols_and_versions() {
        let raw = client_hello("Img.Example.com", &[b"h2", b"http/1.1"], &[0x0304, 0x0303]);
        let Scan::Hello(hello, used) = scan(&raw) else {
            panic!("not read: {:?}", scan(&raw));
        };
        assert_eq!(used, raw.len());
        assert_eq!(hello.server_name.as_deref(), Some("img.example.com"));
        assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(hello.offers(0x0304) && hello.offers(0x0303));
        assert!(!hello.is_acme_validation());
        let acme = client_hello("a.test", &[b"acme-tls/1"], &[0x0304]);
        assert!(matches!(scan(&acme), Scan::Hello(h, _) if h.is_acme_validation()));
    }

    #[test]
    fn without_supported_versions_the_hello_version_counts() {
        let raw = client_hello("a.test", &[], &[]);
        let Scan::Hello(hello, _) = scan(&raw) else {
            panic!("not read");
        };
        assert_eq!(hello.versions, vec![0x0303]);
        assert!(!hello.offers(0x0304));
    }

    #[test]
    fn a_hello_split_over_records_and_reads_is_gathered() {
        let raw = client_hello("a.test", &[b"h2"], &[0x0304]);
        // Every prefix asks for more, never misreads.
        for cut in 0..raw.len() {
            match scan(&raw[..cut]) {
                Scan::NeedMore(n) => assert!(n > cut && n <= raw.len(), "cut {cut}: {n}"),
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        // The same message in two records.
        let message = &raw[5..];
        let (a, b) = message.split_at(20);
        let mut two = Vec::new();
        for part in [a, b] {
            two.extend_from_slice(&[HANDSHAKE, 3, 1]);
            two.extend_from_slice(&(part.len() as u16).to_be_bytes());
            two.extend_from_slice(part);
        }
        two.extend_from_slice(b"trailing application bytes");
        let Scan::Hello(hello, used) = scan(&two) else {
            panic!("not read");
        };
        assert_eq!(used, two.len() - b"trailing application bytes".len());
        assert_eq!(hello.server_name.as_deref(), Some("a.test"));
    }

    /// Hellos captured from real clients (openssl s_client and curl, TLS 1.2 and 1.3, with and
    /// without ALPN and SNI), kept as the fuzz corpus: each is read whole.
    #[test]
    fn real_clients_hellos_are_read() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/client_hello");
        let mut read = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("plain-http") {
                continue;
            }
            let raw = std::fs::read(&path).unwrap();
            match scan(&raw) {
                Scan::Hello(hello, used) => {
                    assert_eq!(used, raw.len(), "{}", path.display());
                    assert!(hello.offers(0x0303) || hello.offers(0x0304));
                    read += 1;
                }
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert!(read >= 10, "{read} hellos");
    }

    #[test]
    fn what_is_not_a_hello_says_so() {
        assert_eq!(scan(b"GET / HTTP/1.1\r\n\r\n"), Scan::NotHello);
        let mut raw = client_hello("a.test", &[b"h2"], &[0x0304]);
        // A length that runs past its field: the server name list's.
        assert_eq!(&raw[52..54], &[0, 0]);
        raw[56] = 0xff;
        assert_eq!(scan(&raw), Scan::NotHello);
        // A message longer than MAX_HELLO.
        let huge = [HANDSHAKE, 3, 1, 0, 4, CLIENT_HELLO, 0x10, 0, 0];
        assert_eq!(scan(&huge), Scan::NotHello);
        // An empty record.
        assert_eq!(scan(&[HANDSHAKE, 3, 1, 0, 0]), Scan::NotHello);
    }
}
