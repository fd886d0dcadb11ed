use super::*;
use crate::origin::Reach;
use ipnet::IpNet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(
        yaml,
        "test.yaml",
        Path::new("/etc/imgate"),
        &EnvOverrides::default(),
    )
}

#[test]
fn example_config_is_valid() {
    let c = Config::embedded_default(&EnvOverrides::default()).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert!(matches!(&c.sites[0].origin, Origin::Dir(p) if p.ends_with("samples")));
}

#[test]
fn unknown_keys_are_rejected_with_file_name() {
    let e = parse("sites: [{origin: 'http://a'}]\nlisten_typo: 1\n").unwrap_err();
    assert_eq!(e.file, "test.yaml");
    assert!(e.message.contains("listen_typo"), "{e}");
    let e = parse("sites: [{origin: 'http://a', colour: red}]\n").unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn presets_and_overrides() {
    let c = parse("performance: memory_efficient\nperformance_overrides: {pool_size: 3}\nsites: [{origin: 'http://a'}]").unwrap();
    assert_eq!(c.performance.max_concurrent_downloads, 5);
    assert_eq!(c.performance.max_image_bytes, 10 << 20);
    assert_eq!(c.max_source_bytes, 10 << 20);
    assert_eq!(c.performance.origin_timeout, Duration::from_secs(45));
    assert_eq!(c.performance.pool_size, 3);
    assert!(c.performance.eager_memory_release);
    assert_eq!(c.performance.response_write_buffer, 16 << 10);
    let c = parse("performance: high_throughput\nsites: [{origin: 'http://a'}]").unwrap();
    assert_eq!(
        (
            c.performance.max_concurrent_downloads,
            c.performance.pool_size
        ),
        (50, 100)
    );
    assert!(!c.performance.eager_memory_release);
    assert_eq!(c.performance.response_write_buffer, 64 << 10);
    let c =
        parse("performance_overrides: {response_write_buffer: 0}\nsites: [{origin: 'http://a'}]")
            .unwrap();
    assert_eq!(c.performance.response_write_buffer, 0);
    let e = parse(
        "performance_overrides: {response_write_buffer: 2MiB}\nsites: [{origin: 'http://a'}]",
    )
    .unwrap_err();
    assert_eq!(e.key, "performance_overrides.response_write_buffer");
    let e = parse("performance: turbo\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert_eq!(e.key, "performance");
}

#[test]
fn source_budget_holds_at_least_one_original_of_the_largest_size() {
    let site = "sites: [{origin: 'http://a'}]";
    let c = parse(site).unwrap();
    assert_eq!(c.performance.source_budget_bytes, 128 << 20);
    let c = parse(&format!("performance: memory_efficient\n{site}")).unwrap();
    assert_eq!(c.performance.source_budget_bytes, 48 << 20);
    // Not set: raised to the largest original allowed.
    let c = parse(&format!("limits: {{max_source_bytes: 300MiB}}\n{site}")).unwrap();
    assert_eq!(c.performance.source_budget_bytes, 300 << 20);
    let c = parse(&format!(
        "performance_overrides: {{source_budget: 60MiB}}\n{site}"
    ))
    .unwrap();
    assert_eq!(c.performance.source_budget_bytes, 60 << 20);
    // Set below it: refused, naming the key.
    let e = parse(&format!(
        "performance_overrides: {{source_budget: 10MiB}}\nlimits: {{max_source_bytes: 20MiB}}\n{site}"
    ))
    .unwrap_err();
    assert_eq!(e.key, "performance_overrides.source_budget");
    assert!(e.message.contains("max_source_bytes"), "{e}");
}

#[test]
fn passthrough_pool_has_pool_size_per_distinct_http_origin() {
    let c = parse(
        "performance_overrides: {pool_size: 7}\nsites: [{hosts: [a], origin: 'http://a'}, \
         {hosts: [b], origin: 'http://b:81'}, {hosts: [c], origin: 'http://a/other'}, \
         {hosts: [d], origin: 'file:///srv'}]",
    )
    .unwrap();
    assert_eq!(c.passthrough_pool_size, 14);
    let c =
        parse("performance_overrides: {pool_size: 7}\nsites: [{origin: 'file:///srv'}]").unwrap();
    assert_eq!(c.passthrough_pool_size, 7);
}

#[test]
fn origins_parse_and_bad_ones_name_the_key() {
    let base = Path::new("/etc/imgate");
    assert_eq!(
        parse_origin("https://img.example.com/base/", base).unwrap(),
        Origin::Http(HttpOrigin {
            tls: true,
            host: "img.example.com".into(),
            port: 443,
            base_path: "/base".into()
        })
    );
    assert_eq!(
        parse_origin("file://samples", base).unwrap(),
        Origin::Dir("/etc/imgate/samples".into())
    );
    let e = parse("sites: [{origin: 'ftp://a'}]").unwrap_err();
    assert_eq!(e.key, "sites[0].origin");
}

#[test]
fn env_overrides_win() {
    let env = EnvOverrides {
        listen: Some("0.0.0.0:80".into()),
        origin: Some("http://o:81".into()),
        ..Default::default()
    };
    let c = Config::from_yaml("sites: [{origin: 'file:///x'}]", "t", Path::new("/"), &env).unwrap();
    assert_eq!(c.listen, "0.0.0.0:80");
    assert!(matches!(&c.sites[0].origin, Origin::Http(o) if o.port == 81));
}

#[test]
fn sizes_and_ttl_bounds() {
    assert_eq!(wire::parse_byte_size("256MiB").unwrap(), 256 << 20);
    assert_eq!(wire::parse_byte_size("10").unwrap(), 10);
    assert!(wire::parse_byte_size("10XB").is_err());
    let e =
        parse("sites: [{origin: 'http://a', ttl: {min_seconds: 10, max_seconds: 5}}]").unwrap_err();
    assert_eq!(e.key, "sites[0].ttl");
    let e = parse("sites: [{origin: 'http://a', ttl: {negative_seconds: 86400}}]").unwrap_err();
    assert_eq!(e.key, "sites[0].ttl.negative_seconds");
    let ttl = TtlPolicy {
        min: Duration::from_secs(60),
        max: Duration::from_secs(3600),
        default: Duration::from_secs(600),
        negative: Duration::from_secs(10),
    };
    assert_eq!(ttl.bound(None), Duration::from_secs(600));
    assert_eq!(
        ttl.bound(Some(Duration::from_secs(5))),
        Duration::from_secs(60)
    );
    assert_eq!(
        ttl.bound(Some(Duration::from_secs(99999))),
        Duration::from_secs(3600)
    );
}

#[test]
fn site_lookup_prefers_exact_host() {
    let c = parse("sites: [{hosts: ['*'], origin: 'http://a'}, {hosts: ['Img.Example.com'], origin: 'http://b'}]").unwrap();
    assert_eq!(c.site_for("img.example.com:8080").unwrap().0, 1);
    assert_eq!(c.site_for("other").unwrap().0, 0);
}

#[test]
fn cache_tiers_and_admin_token() {
    let c = parse("sites: [{origin: 'http://a'}]").unwrap();
    assert_eq!(c.cache.dir, None);
    assert_eq!(c.cache.disk_bytes, 1 << 30);
    assert_eq!(c.admin_token, None);
    let c = parse(
        "cache: {dir: /var/cache/imgate, disk_size: 2GiB, memory_size: 64MB}\n\
         admin: {token: abcdefghijklmnop}\nsites: [{origin: 'http://a'}]",
    )
    .unwrap();
    assert_eq!(c.cache.dir, Some(PathBuf::from("/var/cache/imgate")));
    assert_eq!(c.cache.disk_bytes, 2 << 30);
    assert_eq!(c.cache.memory_bytes, 64 << 20);
    assert_eq!(c.admin_token.as_deref(), Some("abcdefghijklmnop"));
    let e = parse("cache: {disk_size: 0}\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert_eq!(e.key, "cache.disk_size");
    let e = parse("admin: {token: short}\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert_eq!(e.key, "admin.token");
    let e = parse("admin: {tokn: abcdefghijklmnop}\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert!(e.message.contains("tokn"), "{e}");
    let env = EnvOverrides {
        cache_dir: Some("/tmp/c".into()),
        admin_token: Some("0123456789abcdef0123".into()),
        ..Default::default()
    };
    let c = Config::from_yaml("sites: [{origin: 'http://a'}]", "t", Path::new("/"), &env).unwrap();
    assert_eq!(c.cache.dir, Some(PathBuf::from("/tmp/c")));
    assert_eq!(c.admin_token.as_deref(), Some("0123456789abcdef0123"));
}

#[test]
fn html_rewrite_section_and_env_switch() {
    let c = parse("sites: [{origin: 'http://a'}]").unwrap();
    assert!(c.sites[0].html_rewrite.is_none(), "off by default");
    let c = parse(
        "sites: [{hosts: [www.example.com, '*'], origin: 'http://a', allowed_source_hosts: [cdn.example.net],\n  html_rewrite: {enabled: true, widths: [640, 320, 640], eager_images: 0}}]",
    )
    .unwrap();
    let h = c.sites[0].html_rewrite.as_ref().unwrap();
    assert_eq!(h.options.widths, [320, 640]);
    assert_eq!(h.options.densities, [1, 2]);
    assert_eq!(h.options.own_hosts, ["www.example.com"]);
    assert_eq!(h.options.allowed_source_hosts, ["cdn.example.net"]);
    let e = parse("sites: [{origin: 'http://a', html_rewrite: {enabled: true, widths: [0]}}]")
        .unwrap_err();
    assert_eq!(e.key, "sites[0].html_rewrite.widths");
    let e = parse("sites: [{origin: 'http://a', html_rewrite: {enabled: true, densities: [5]}}]")
        .unwrap_err();
    assert_eq!(e.key, "sites[0].html_rewrite.densities");
    let e = parse("sites: [{origin: 'http://a', html_rewrite: {enable: true}}]").unwrap_err();
    assert!(e.message.contains("enable"), "{e}");

    let with_env = |v: &str, yaml: &str| {
        let env = EnvOverrides {
            html_rewrite: Some(v.into()),
            ..Default::default()
        };
        Config::from_yaml(yaml, "t", Path::new("/"), &env)
    };
    let two = "sites: [{hosts: [a], origin: 'http://a'}, {hosts: [b], origin: 'http://b'}]";
    let c = with_env("on", two).unwrap();
    assert!(c.sites[0].html_rewrite.is_some());
    assert!(c.sites[1].html_rewrite.is_none(), "only the first site");
    let on = "sites: [{origin: 'http://a', html_rewrite: {enabled: true}}]";
    assert!(with_env("off", on).unwrap().sites[0].html_rewrite.is_none());
    assert_eq!(with_env("yes", on).unwrap_err().key, "IMGATE_HTML_REWRITE");
    // A config change changes the fingerprint that keys rewritten pages.
    let a = parse(on).unwrap();
    let b =
        parse("sites: [{origin: 'http://a', html_rewrite: {enabled: true, sizes: 50vw}}]").unwrap();
    assert_ne!(
        a.sites[0].html_rewrite.as_ref().unwrap().fingerprint,
        b.sites[0].html_rewrite.as_ref().unwrap().fingerprint
    );
}

#[test]
fn trusted_proxies_and_access_log() {
    let c = parse("sites: [{origin: 'http://a'}]").unwrap();
    assert!(!c.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
    assert_eq!(
        c.access_log,
        Some(crate::access_log::AccessLogConfig {
            format: crate::access_log::Format::Json,
            target: crate::access_log::Target::Stdout,
        })
    );
    let c = parse(
        "trusted_proxies: [10.0.0.0/8, '::1']\naccess_log: {format: combined, path: /var/log/imgate.log}\nsites: [{origin: 'http://a'}]",
    )
    .unwrap();
    assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    assert!(c.trusted_proxies.contains("::1".parse().unwrap()));
    assert_eq!(
        c.access_log.unwrap().target,
        crate::access_log::Target::File("/var/log/imgate.log".into())
    );
    let c = parse("access_log: {enabled: false}\nsites: [{origin: 'http://a'}]").unwrap();
    assert_eq!(c.access_log, None);
    let e = parse("trusted_proxies: [10.0.0.1/8]\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert_eq!(e.key, "trusted_proxies");
    let e = parse("access_log: {format: xml}\nsites: [{origin: 'http://a'}]").unwrap_err();
    assert_eq!(e.key, "access_log.format");
}

#[test]
fn absolute_sources_need_host_scheme_and_port_and_reach_public_addresses_only() {
    let url = |s: &str| crate::route::parse_source(s).unwrap();
    let plain = parse(
        "sites: [{origin: 'http://10.0.0.5:8080/base', allowed_source_hosts: [img.example.net, 10.0.0.5]}]",
    )
    .unwrap();
    let site = &plain.sites[0];
    let public = Reach::Public {
        also: Arc::from(Vec::new()),
    };
    // Paths and the site's own origin (even private, even http, even an odd port) are trusted.
    for own in [
        "/a.jpg",
        "http://10.0.0.5:8080/a.jpg",
        "http:/10.0.0.5:8080/a.jpg",
    ] {
        assert_eq!(
            site.source_access(&url(own)).unwrap().reach,
            Reach::Any,
            "{own}"
        );
    }
    assert_eq!(
        site.source_access(&url("https://img.example.net/a.jpg"))
            .unwrap()
            .reach,
        public
    );
    for (refused, why) in [
        ("https://evil.example/a.jpg", "source host not allowed"),
        (
            "http://img.example.net/a.jpg",
            "http source URLs not allowed",
        ),
        (
            "https://img.example.net:8443/a.jpg",
            "source port not allowed",
        ),
        // Same host as the origin, other port or scheme: not the origin.
        ("http://10.0.0.5:9090/a.jpg", "http source URLs not allowed"),
        ("https://10.0.0.5:8080/a.jpg", "source port not allowed"),
    ] {
        assert_eq!(site.source_access(&url(refused)), Err(why), "{refused}");
    }
    // Dotfiles stay off for the origin unless the site allows them.
    assert!(!site.source_access(&url("/a.jpg")).unwrap().dotfiles);

    let relaxed = parse(
        "sites: [{origin: 'file:///srv', allowed_source_hosts: [img.example.net], \
         allow_http_sources: true, allowed_source_ports: [8443], \
         allowed_source_ranges: ['10.1.2.3/16', '::1'], allow_dotfiles: true}]",
    )
    .unwrap();
    let site = &relaxed.sites[0];
    let access = site
        .source_access(&url("http://img.example.net:8443/a.jpg"))
        .unwrap();
    assert_eq!(
        access.reach,
        Reach::Public {
            also: Arc::from(vec![
                "10.1.0.0/16".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ])
        }
    );
    assert!(!access.dotfiles, "dotfiles are a directory origin's matter");
    assert!(site.source_access(&url("/.env")).unwrap().dotfiles);

    for (yaml, key) in [
        (
            "sites: [{origin: 'http://a', allowed_source_ranges: ['10.0.0.0/33']}]",
            "sites[0].allowed_source_ranges",
        ),
        (
            "sites: [{origin: 'http://a', allowed_source_ranges: [localhost]}]",
            "sites[0].allowed_source_ranges",
        ),
        (
            "sites: [{origin: 'http://a', allowed_source_ports: [0]}]",
            "sites[0].allowed_source_ports",
        ),
    ] {
        assert_eq!(parse(yaml).unwrap_err().key, key, "{yaml}");
    }
}

#[test]
fn max_image_bytes_is_a_deprecated_alias_of_max_source_bytes() {
    let site = "sites: [{origin: 'http://a'}]";
    // The alias alone sets the source limit, as it always did.
    let c = parse(&format!(
        "performance_overrides: {{max_image_bytes: 7MiB}}\n{site}"
    ))
    .unwrap();
    assert_eq!(c.max_source_bytes, 7 << 20);
    // The key alone, and both with one value, are the same limit.
    let c = parse(&format!("limits: {{max_source_bytes: 7MiB}}\n{site}")).unwrap();
    assert_eq!(c.max_source_bytes, 7 << 20);
    let c = parse(&format!(
        "performance_overrides: {{max_image_bytes: 7MiB}}\nlimits: {{max_source_bytes: 7MiB}}\n{site}"
    ))
    .unwrap();
    assert_eq!(c.max_source_bytes, 7 << 20);
    // Two different values: refused, naming the key and its alias.
    let e = parse(&format!(
        "performance_overrides: {{max_image_bytes: 20MiB}}\nlimits: {{max_source_bytes: 7MiB}}\n{site}"
    ))
    .unwrap_err();
    assert_eq!(e.key, "limits.max_source_bytes");
    assert!(e.message.contains("max_image_bytes"), "{e}");
}

fn parse_env(yaml: &str, env: &EnvOverrides) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, "test.yaml", Path::new("/etc/imgate"), env)
}

#[test]
fn signing_keys_from_the_file_and_from_the_environment() {
    let c = parse(
        "sites: [{origin: 'http://a', signing: {keys: [{key: '736563726574', salt: '73616c74'}]}}]",
    )
    .unwrap();
    let s = c.sites[0].urls.signing.as_ref().unwrap();
    assert_eq!(s.keys[0].key, b"secret");
    assert_eq!(s.keys[0].salt, b"salt");
    assert!(s.required, "keys without `required` mean signed URLs only");
    let c = parse(
        "sites: [{origin: 'http://a', signing: {keys: [{key: '736563726574'}], required: false}}]",
    )
    .unwrap();
    assert!(!c.sites[0].urls.signing_required());
    // The environment's lists replace the first site's keys, pairwise.
    let env = EnvOverrides {
        signing_key: Some("6e6577,6f6c64".into()),
        signing_salt: Some("01,02".into()),
        ..EnvOverrides::default()
    };
    let c = parse_env(
        "sites: [{origin: 'http://a', signing: {keys: [{key: 'aa'}]}}, {origin: 'http://b'}]",
        &env,
    )
    .unwrap();
    let keys = &c.sites[0].urls.signing.as_ref().unwrap().keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].key.as_slice(), keys[0].salt.as_slice()),
        (&b"new"[..], &[1u8][..])
    );
    assert_eq!(
        (keys[1].key.as_slice(), keys[1].salt.as_slice()),
        (&b"old"[..], &[2u8][..])
    );
    assert!(c.sites[1].urls.signing.is_none());
    for (env, what) in [
        (
            EnvOverrides {
                signing_key: Some("aa,bb".into()),
                signing_salt: Some("01".into()),
                ..EnvOverrides::default()
            },
            "1 salts for 2 keys",
        ),
        (
            EnvOverrides {
                signing_salt: Some("01".into()),
                ..EnvOverrides::default()
            },
            "without IMGATE_SIGNING_KEY",
        ),
        (
            EnvOverrides {
                signing_key: Some("zz".into()),
                ..EnvOverrides::default()
            },
            "must be hex",
        ),
    ] {
        let e = parse_env("sites: [{origin: 'http://a'}]", &env).unwrap_err();
        assert!(e.to_string().contains(what), "{e}");
    }
    let e = parse("sites: [{origin: 'http://a', signing: {required: true}}]").unwrap_err();
    assert!(e.to_string().contains("sites[0].signing.required"), "{e}");
    let e = parse("sites: [{origin: 'http://a', signing: {keys: [{key: ''}]}}]").unwrap_err();
    assert!(e.to_string().contains("signing.keys[0].key"), "{e}");
}

#[test]
fn presets_and_allowed_values_are_checked_when_loading() {
    let c = parse(
        "sites: [{origin: 'http://a', presets: {thumb: 'width=200,fit=cover'}, \
         allowed_widths: [640, 200, 200], allowed_qualities: [80]}]",
    )
    .unwrap();
    let urls = &c.sites[0].urls;
    assert_eq!(urls.presets.get("thumb"), Some("width=200,fit=cover"));
    assert_eq!(urls.allowed_widths, vec![200, 640]);
    for (yaml, what) in [
        ("presets: {thumb: 'width=abc'}", "sites[0].presets.thumb"),
        ("presets: {'a b': 'width=1'}", "sites[0].presets.a b"),
        ("presets: {t: 'preset=u'}", "no preset named u"),
        ("presets_only: true", "sites[0].presets_only"),
        ("allowed_widths: [0]", "sites[0].allowed_widths"),
        ("allowed_qualities: [101]", "sites[0].allowed_qualities"),
        (
            "presets: {big: 'width=900'}, allowed_widths: [640]",
            "sites[0].presets.big",
        ),
        (
            "presets: {t: 'width=1'}, presets_only: true, html_rewrite: {enabled: true}",
            "sites[0].html_rewrite",
        ),
    ] {
        let e = parse(&format!("sites: [{{origin: 'http://a', {yaml}}}]")).unwrap_err();
        assert!(e.to_string().contains(what), "{yaml}: {e}");
    }
    // Rewriting on a site with allowed widths and keys: the rewriter gets both.
    let c = parse(
        "sites: [{origin: 'http://a', allowed_widths: [300], html_rewrite: {enabled: true}, \
         signing: {keys: [{key: 'aa'}]}}]",
    )
    .unwrap();
    let o = &c.sites[0].html_rewrite.as_ref().unwrap().options;
    assert_eq!(o.allowed_widths, vec![300]);
    assert_eq!(o.signer.as_ref().unwrap().key, vec![0xaa]);
}

#[test]
fn imgproxy_prefix() {
    let c = parse("sites: [{origin: 'http://a', imgproxy: {}}]").unwrap();
    assert_eq!(
        c.sites[0].urls.imgproxy_prefix.as_deref(),
        Some("/imgproxy")
    );
    let c = parse("sites: [{origin: 'http://a', imgproxy: {prefix: /}}]").unwrap();
    assert_eq!(c.sites[0].urls.imgproxy_prefix.as_deref(), Some("/"));
    assert!(parse("sites: [{origin: 'http://a'}]").unwrap().sites[0]
        .urls
        .imgproxy_prefix
        .is_none());
    for bad in ["img", "/img/", "/a//b", "/cdn-cgi/image/x", "/a b"] {
        let e = parse(&format!(
            "sites: [{{origin: 'http://a', imgproxy: {{prefix: '{bad}'}}}}]"
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains("sites[0].imgproxy.prefix"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn nextjs_settings_default_to_next_16s() {
    let c = parse("sites: [{origin: 'http://a', nextjs: {enabled: true}}]").unwrap();
    let n = c.sites[0].urls.nextjs.as_ref().unwrap();
    assert_eq!(
        n.device_sizes,
        vec![640, 750, 828, 1080, 1200, 1920, 2048, 3840]
    );
    assert_eq!(n.image_sizes, vec![32, 48, 64, 96, 128, 256, 384]);
    assert_eq!((n.qualities.as_slice(), n.avif), (&[75u8][..], false));
    let c = parse(
        "sites: [{origin: 'http://a', nextjs: {enabled: true, qualities: [90, 60], \
         formats: [image/avif, image/webp]}}]",
    )
    .unwrap();
    let n = c.sites[0].urls.nextjs.as_ref().unwrap();
    assert_eq!((n.qualities.as_slice(), n.avif), (&[60u8, 90][..], true));
    assert!(
        parse("sites: [{origin: 'http://a', nextjs: {enabled: false}}]")
            .unwrap()
            .sites[0]
            .urls
            .nextjs
            .is_none()
    );
    for (yaml, key) in [
        ("formats: [image/avif]", "nextjs.formats"),
        ("formats: [image/png, image/webp]", "nextjs.formats"),
        ("qualities: [0]", "nextjs.qualities"),
        ("device_sizes: []", "nextjs.device_sizes"),
        ("image_sizes: [20000]", "nextjs.image_sizes"),
    ] {
        let e = parse(&format!(
            "sites: [{{origin: 'http://a', nextjs: {{enabled: true, {yaml}}}}}]"
        ))
        .unwrap_err();
        assert!(
            e.to_string().contains(&format!("sites[0].{key}")),
            "{yaml}: {e}"
        );
    }
}

#[test]
fn thumbor_settings() {
    let c = parse("sites: [{origin: 'http://a', thumbor: {security_key: 'k'}}]").unwrap();
    let t = c.sites[0].urls.thumbor.as_ref().unwrap();
    assert_eq!((t.prefix.as_str(), t.allow_unsafe), ("/thumbor", false));
    assert_eq!(t.security_key.as_deref(), Some(&b"k"[..]));
    assert!(
        !format!("{t:?}").contains("\"k\""),
        "the key is not printed"
    );
    let c = parse("sites: [{origin: 'http://a', thumbor: {}}]").unwrap();
    assert!(
        c.sites[0].urls.thumbor.as_ref().unwrap().allow_unsafe,
        "no key: unsafe only"
    );
    for (yaml, key) in [
        ("thumbor: {allow_unsafe: false}", "thumbor.security_key"),
        ("thumbor: {security_key: ''}", "thumbor.security_key"),
        ("thumbor: {prefix: 'x'}", "thumbor.prefix"),
        (
            "imgproxy: {prefix: /p}, thumbor: {prefix: /p}",
            "thumbor.prefix",
        ),
    ] {
        let e = parse(&format!("sites: [{{origin: 'http://a', {yaml}}}]")).unwrap_err();
        assert!(
            e.to_string().contains(&format!("sites[0].{key}")),
            "{yaml}: {e}"
        );
    }
}

#[test]
fn watermarks_are_read_and_checked_when_loading() {
    use crate::spec::{Gravity, WatermarkPosition};
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let load = |yaml: &str| {
        Config::from_yaml(
            &format!("sites: [{{origin: 'http://a', {yaml}}}]"),
            "test.yaml",
            &fixtures,
            &EnvOverrides::default(),
        )
    };
    let c = load(
        "watermarks: {logo: {file: watermark.png}, \
         proof: {source: /brand/proof.png, position: tile, offset: 40, offset_y: 8, opacity: 0.3, scale: 0.5}}, \
         imgproxy: {watermark: proof}",
    )
    .unwrap();
    let site = &c.sites[0];
    let logo = &site.watermarks["logo"];
    assert!(matches!(&logo.image, OverlayImage::File(b) if b.starts_with(b"\x89PNG")));
    assert_eq!(
        logo.placement.position,
        WatermarkPosition::At(Gravity::BottomRight)
    );
    assert_eq!(
        (
            logo.placement.offset,
            logo.placement.opacity,
            logo.placement.scale
        ),
        ((0, 0), 1.0, None)
    );
    let proof = &site.watermarks["proof"];
    assert!(matches!(&proof.image, OverlayImage::Source(p) if p == "/brand/proof.png"));
    assert_eq!(proof.placement.position, WatermarkPosition::Tile);
    assert_eq!(proof.placement.offset, (40, 8));
    assert_eq!(proof.placement.scale, Some(0.5));
    assert_eq!(site.urls.imgproxy_watermark.as_deref(), Some("proof"));
    let names: Vec<_> = site.urls.watermarks.iter().flatten().collect();
    assert_eq!(names.len(), 2);

    for (yaml, what) in [
        ("watermarks: {a: {file: nope.png}}", "watermarks.a.file"),
        ("watermarks: {a: {file: notes.txt}}", "watermarks.a.file"),
        ("watermarks: {a: {}}", "needs one of file or source"),
        (
            "watermarks: {a: {file: watermark.png, source: /x.png}}",
            "needs one of file or source",
        ),
        (
            "watermarks: {a: {source: 'https://x.test/a.png'}}",
            "watermarks.a.source",
        ),
        ("watermarks: {'a b': {source: /x.png}}", "watermarks.a b"),
        (
            "watermarks: {a: {source: /x.png, position: auto}}",
            "watermarks.a.position",
        ),
        (
            "watermarks: {a: {source: /x.png, opacity: 1.5}}",
            "watermarks.a.opacity",
        ),
        (
            "watermarks: {a: {source: /x.png, scale: 0}}",
            "watermarks.a.scale",
        ),
        (
            "watermarks: {a: {source: /x.png, offset: 10001}}",
            "watermarks.a.offset_x",
        ),
        ("watermarks: {a: {source: /x.png, colour: red}}", "colour"),
        ("imgproxy: {watermark: nope}", "imgproxy.watermark"),
        ("presets: {p: 'watermark=nope'}", "no watermark named nope"),
    ] {
        let e = load(yaml).unwrap_err();
        assert!(e.to_string().contains(what), "{yaml}: {e}");
    }
}

#[test]
fn cluster_section_needs_its_listener_token_and_peers() {
    let site = "sites: [{origin: 'http://a'}]";
    assert!(parse(site).unwrap().cluster.is_none());
    let ok = "cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789', \
              peers: ['10.0.0.1:8091', '10.0.0.2:8091', 'imgate-peers.imgate.svc:8091']}";
    let c = parse(&format!("{ok}\n{site}")).unwrap().cluster.unwrap();
    assert_eq!(c.me, "10.0.0.1:8091".parse().unwrap());
    assert_eq!(c.peers.len(), 3);
    assert!(c.keep_copies);
    assert_eq!(c.health_check_interval, Duration::from_secs(1));
    assert_eq!(c.peer_timeout, Duration::from_secs(30));
    for (yaml, key) in [
        ("cluster: {peers: ['10.0.0.1:8091']}", "cluster.listen"),
        ("cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789'}", "cluster.peers"),
        ("cluster: {listen: '10.0.0.1:8091', peers: ['10.0.0.1:8091']}", "cluster.token"),
        ("cluster: {listen: '10.0.0.1:8091', token: short, peers: ['10.0.0.1:8091']}", "cluster.token"),
        // A list of addresses alone must name this node.
        ("cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789', peers: ['10.0.0.2:8091']}", "cluster.peers"),
        ("cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789', peers: ['nameonly']}", "cluster.peers"),
        // A wildcard listener: peers need to be told the address.
        ("cluster: {listen: '0.0.0.0:8091', token: 'cluster-token-0123456789', peers: ['a:8091']}", "cluster.advertise"),
        ("cluster: {listen: '127.0.0.1:8080', token: 'cluster-token-0123456789', peers: ['127.0.0.1:8080']}", "cluster.listen"),
        ("cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789', peers: ['10.0.0.1:8091'], redis_url: 'http://r'}", "cluster.redis_url"),
        ("cluster: {listen: '10.0.0.1:8091', token: 'cluster-token-0123456789', peers: ['10.0.0.1:8091'], peer_timeout_seconds: 0}", "cluster.peer_timeout_seconds"),
    ] {
        let e = parse(&format!("{yaml}\n{site}")).unwrap_err();
        assert_eq!(e.key, key, "{yaml}: {e}");
    }
    // The environment: a Kubernetes pod's address and the peers' headless Service.
    let env = EnvOverrides {
        cluster_listen: Some("0.0.0.0:8091".into()),
        cluster_advertise: Some("10.1.2.3:8091".into()),
        peers: Some("imgate-peers.imgate.svc.cluster.local:8091".into()),
        cluster_token: Some("from-the-secret-0123456789".into()),
        redis_url: Some("redis://redis.imgate.svc:6379".into()),
        ..Default::default()
    };
    let c = parse_env(site, &env).unwrap().cluster.unwrap();
    assert_eq!(c.listen, "0.0.0.0:8091".parse().unwrap());
    assert_eq!(c.me, "10.1.2.3:8091".parse().unwrap());
    assert_eq!(c.peers, ["imgate-peers.imgate.svc.cluster.local:8091"]);
    assert_eq!(c.token, "from-the-secret-0123456789");
    assert_eq!(
        c.redis_url.as_deref(),
        Some("redis://redis.imgate.svc:6379")
    );
}

#[test]
fn tls_section_needs_a_listener_and_a_certificate() {
    let site = "sites: [{origin: 'http://a'}]";
    assert!(parse(site).unwrap().tls.is_none());
    let ok = "tls: {listen: '0.0.0.0:8443', certificates: [{hosts: [Img.Example.com, '*.example.org'], \
              cert: certs/a.pem, key: certs/a.key}], default_certificate: {cert: /d.pem, key: /d.key}}";
    let t = parse(&format!("{ok}\n{site}")).unwrap().tls.unwrap();
    assert_eq!(t.listen, "0.0.0.0:8443");
    assert_eq!(
        t.certificates[0].hosts,
        ["img.example.com", "*.example.org"]
    );
    assert_eq!(t.certificates[0].cert, Path::new("/etc/imgate/certs/a.pem"));
    assert_eq!(t.default_certificate.unwrap().key, Path::new("/d.key"));
    assert!(!t.redirect_http);
    assert_eq!(t.hsts, None);
    let t = parse(&format!(
        "tls: {{listen: '0.0.0.0:8443', default_certificate: {{cert: a, key: b}}, \
         redirect_http: true, hsts_max_age_seconds: 600, hsts_include_subdomains: true}}\n{site}"
    ))
    .unwrap()
    .tls
    .unwrap();
    assert!(t.redirect_http);
    assert_eq!(t.hsts.as_deref(), Some("max-age=600; includeSubDomains"));
    assert_eq!(t.port(), 8443);
    for (yaml, key) in [
        (
            "tls: {certificates: [{hosts: [a], cert: a, key: b}]}",
            "tls.listen",
        ),
        ("tls: {listen: '0.0.0.0:8443'}", "tls.certificates"),
        (
            "tls: {listen: 'nope', default_certificate: {cert: a, key: b}}",
            "tls.listen",
        ),
        (
            "tls: {listen: '127.0.0.1:8080', default_certificate: {cert: a, key: b}}",
            "tls.listen",
        ),
        (
            "tls: {listen: ':8443', certificates: [{cert: a, key: b}]}",
            "tls.listen",
        ),
        (
            "tls: {listen: '0.0.0.0:8443', certificates: [{cert: a, key: b}]}",
            "tls.certificates[0].hosts",
        ),
        (
            "tls: {listen: '0.0.0.0:8443', certificates: [{hosts: ['a b'], cert: a, key: b}]}",
            "tls.certificates[0].hosts",
        ),
    ] {
        let e = parse(&format!("{yaml}\n{site}")).unwrap_err();
        assert_eq!(e.key, key, "{yaml}: {e}");
    }
    let env = EnvOverrides {
        tls_listen: Some("0.0.0.0:443".into()),
        ..Default::default()
    };
    let t = parse_env(
        &format!("tls: {{default_certificate: {{cert: a, key: b}}}}\n{site}"),
        &env,
    )
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(t.listen, "0.0.0.0:443");
}

#[test]
fn tls_acme_and_minimum_version() {
    use super::{AcmeChallenge, TlsVersion};
    let site = "sites: [{origin: 'http://a'}]";
    // ACME alone is enough certificates for a TLS listener.
    let t = parse(&format!(
        "tls: {{listen: '0.0.0.0:8443', min_version: '1.3', acme: {{directory: 'https://ca.test/dir', \
         email: ops@example.com, hosts: [Img.Example.com], storage: acme, ca_file: ca.pem}}}}\n{site}"
    ))
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(t.min_version, TlsVersion::V1_3);
    let a = t.acme.unwrap();
    assert_eq!(a.hosts, ["img.example.com"]);
    assert_eq!(a.storage, Path::new("/etc/imgate/acme"));
    assert_eq!(a.ca_file.as_deref(), Some(Path::new("/etc/imgate/ca.pem")));
    assert_eq!(a.challenge, AcmeChallenge::Http01);
    assert_eq!(a.retry_initial, Duration::from_secs(60));
    assert_eq!(a.retry_max, Duration::from_secs(3600));
    let t = parse(&format!(
        "tls: {{listen: '0.0.0.0:8443', default_certificate: {{cert: a, key: b}}, acme: {{directory: 'https://ca.test/dir', \
         hosts: [a.test], storage: /var/acme, challenge: tls-alpn-01, retry_initial_seconds: 2, retry_max_seconds: 8}}}}\n{site}"
    ))
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(t.min_version, TlsVersion::V1_2);
    let a = t.acme.unwrap();
    assert_eq!(a.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!((a.retry_initial.as_secs(), a.retry_max.as_secs()), (2, 8));
    let acme = |inner: &str| format!("tls: {{listen: '0.0.0.0:8443', acme: {{{inner}}}}}");
    for (yaml, key) in [
        (acme("hosts: [a.test], storage: s"), "tls.acme.directory"),
        (
            acme("directory: 'http://ca.test/dir', hosts: [a.test], storage: s"),
            "tls.acme.directory",
        ),
        (acme("directory: 'https://ca', storage: s"), "tls.acme.hosts"),
        (
            acme("directory: 'https://ca', hosts: ['*.a.test'], storage: s"),
            "tls.acme.hosts",
        ),
        (acme("directory: 'https://ca', hosts: [a.test]"), "tls.acme.storage"),
        (
            acme("directory: 'https://ca', hosts: [a.test], storage: s, email: nobody"),
            "tls.acme.email",
        ),
        (
            acme("directory: 'https://ca', hosts: [a.test], storage: s, challenge: dns-01"),
            "tls.acme.challenge",
        ),
        (
            acme("directory: 'https://ca', hosts: [a.test], storage: s, retry_initial_seconds: 0"),
            "tls.acme.retry_initial_seconds",
        ),
        (
            "tls: {listen: '0.0.0.0:8443', min_version: '1.1', default_certificate: {cert: a, key: b}}".to_string(),
            "tls.min_version",
        ),
        (
            "tls: {acme: {directory: 'https://ca', hosts: [a.test], storage: s}}".to_string(),
            "tls.listen",
        ),
    ] {
        let e = parse(&format!("{yaml}\n{site}")).unwrap_err();
        assert_eq!(e.key, key, "{yaml}: {e}");
    }
}

/// The keys of the config file at `path` (keys from the top; `[]` steps into a list's element,
/// `{}` into a map's value), or `None` when no struct lives there. Asks serde itself: every wire
/// struct rejects unknown keys with the list of the keys it knows, so a probe key at a level
/// names that level's keys, new ones included.
fn wire_struct_keys(path: &[String]) -> Option<Vec<String>> {
    let yaml = path
        .iter()
        .rev()
        .fold("{zzz_probe: 1}".to_string(), |inner, step| {
            match step.as_str() {
                "[]" => format!("[{inner}]"),
                "{}" => format!("{{k: {inner}}}"),
                key => format!("{{{key}: {inner}}}"),
            }
        });
    let err = serde_yaml::from_str::<wire::WireConfig>(&yaml)
        .err()?
        .to_string();
    if !err.contains("unknown field `zzz_probe`") {
        return None;
    }
    // "... expected one of `a`, `b` at line 1 column 3": the names are between backticks.
    let (_, list) = err.split_once("expected")?;
    Some(
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Every key at or below `path`, into `keys`.
fn collect_wire_keys(path: &[String], keys: &mut std::collections::BTreeSet<String>) {
    let Some(fields) = wire_struct_keys(path) else {
        return;
    };
    for field in fields {
        keys.insert(field.clone());
        for shape in [&[][..], &["[]"], &["{}"]] {
            let mut child = path.to_vec();
            child.push(field.clone());
            child.extend(shape.iter().map(|s| s.to_string()));
            if wire_struct_keys(&child).is_some() {
                collect_wire_keys(&child, keys);
                break;
            }
        }
    }
}

#[test]
fn every_config_key_is_in_the_fuzz_dictionary() {
    let mut keys = std::collections::BTreeSet::new();
    collect_wire_keys(&[], &mut keys);
    // The probe itself works: top-level, list-element, map-value and nested sections are found.
    for known in [
        "listen",
        "sites",
        "allowed_source_hosts",
        "opacity",
        "acme",
        "challenge",
        "peers",
    ] {
        assert!(
            keys.contains(known),
            "{known} not found by the probe: {keys:?}"
        );
    }
    assert!(keys.len() > 100, "{}", keys.len());

    let tokens = crate::fuzzing::dict_tokens("config", ":");
    let missing: Vec<&String> = keys.iter().filter(|k| !tokens.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "fuzz/dict/config.dict lacks {missing:?}: add each as \"key:\" so the config fuzz target \
         reaches its section"
    );
}
