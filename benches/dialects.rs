//! What reading a transform URL costs at the edge, per dialect, signed and unsigned:
//! `dialect::resolve` on each (the signature check, the options, the source) plus
//! `canonical_path` (the key and the service path). The difference between a signed URL and
//! the same URL unsigned is what signing adds per request.
//!
//!   cargo bench --bench dialects

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use imgate::dialect::{
    canonical_path, resolve, sign_cloudflare_path, sign_path, thumbor_signature, NextjsConfig,
    Signing, SigningKey, ThumborConfig, UrlPolicy,
};

fn policy(signing: Option<Signing>) -> UrlPolicy {
    UrlPolicy {
        signing,
        imgproxy_prefix: Some("/imgproxy".into()),
        nextjs: Some(NextjsConfig::default()),
        thumbor: Some(ThumborConfig {
            prefix: "/thumbor".into(),
            security_key: Some(b"my-security-key".to_vec()),
            allow_unsafe: true,
        }),
        ..UrlPolicy::default()
    }
}

fn bench(c: &mut Criterion) {
    // Keys as long as imgproxy's documented examples (32 bytes each).
    let key = SigningKey {
        key: hex::decode("943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881")
            .unwrap(),
        salt: hex::decode("520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5")
            .unwrap(),
    };
    let open = policy(None);
    // Three keys listed (a rotation in progress, the right one last): every key is tried.
    let other = |b: u8| SigningKey {
        key: vec![b; 32],
        salt: vec![b; 32],
    };
    let signed = policy(Some(Signing {
        keys: vec![other(1), other(2), key.clone()],
        required: true,
    }));

    let cf = "/cdn-cgi/image/width=640,height=480,fit=cover,format=auto,quality=80/photos/2026/summer/beach.jpg";
    let cf_signed = sign_cloudflare_path(&key, cf).unwrap();
    let ip_path = "/rs:fill:640:480/q:80/g:sm/plain/photos/2026/summer/beach.jpg@webp";
    let ip = format!("/imgproxy/insecure{ip_path}");
    let ip_signed = format!(
        "/imgproxy/{}{ip_path}",
        sign_path(&key.key, &key.salt, ip_path)
    );
    let th_path =
        "fit-in/640x480/smart/filters:quality(80):format(webp)/photos/2026/summer/beach.jpg";
    let th = format!("/thumbor/unsafe/{th_path}");
    let th_signed = format!(
        "/thumbor/{}/{th_path}",
        thumbor_signature(b"my-security-key", th_path)
    );
    let next = "/_next/image?url=%2Fphotos%2F2026%2Fsummer%2Fbeach.jpg&w=640&q=75";

    let mut g = c.benchmark_group("resolve");
    for (name, policy, url) in [
        ("cloudflare_unsigned", &open, cf.to_string()),
        ("cloudflare_signed", &signed, cf_signed),
        ("imgproxy_unsigned", &open, ip),
        ("imgproxy_signed", &signed, ip_signed),
        ("thumbor_unsafe", &open, th),
        ("thumbor_signed", &open, th_signed),
        ("nextjs", &open, next.to_string()),
    ] {
        let r = resolve(policy, &url)
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(r.spec.width.is_some(), "{name}");
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = resolve(black_box(policy), black_box(&url))
                    .unwrap()
                    .unwrap();
                black_box(canonical_path(&r.spec.canonical(), &r.source.key()))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
