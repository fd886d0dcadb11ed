use super::*;
use pingora_cache::RespCacheable::{Cacheable, Uncacheable};

fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut r = ResponseHeader::build(status, None).unwrap();
    for (n, v) in headers {
        r.append_header(n.to_string(), *v).unwrap();
    }
    r
}

const POLICY: Policy = Policy {
    negative_ttl: Duration::from_secs(10),
};

fn meta(r: &ResponseHeader, now: SystemTime) -> CacheMeta {
    match POLICY.cacheability(r, false, now) {
        Cacheable(m) => m,
        Uncacheable(why) => panic!("expected cacheable, got {why:?} for {r:?}"),
    }
}

fn stored(r: &ResponseHeader) -> bool {
    matches!(
        POLICY.cacheability(r, false, SystemTime::now()),
        Cacheable(_)
    )
}

fn fresh_for(m: &CacheMeta, now: SystemTime) -> i64 {
    match m.fresh_until().duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[test]
fn age_is_subtracted_from_freshness() {
    let now = SystemTime::now();
    let m = meta(
        &resp(200, &[("cache-control", "max-age=3600"), ("age", "3000")]),
        now,
    );
    assert!(
        (599..=600).contains(&fresh_for(&m, now)),
        "{}",
        fresh_for(&m, now)
    );
    // Age on hits counts from the origin's age, not from when we stored it.
    assert!(m.age().as_secs() >= 3000);
    assert!(
        m.headers().get("age").is_none(),
        "Age is recomputed, never stored"
    );
}

#[test]
fn old_date_makes_a_response_arrive_stale() {
    let now = SystemTime::now();
    let then = now - Duration::from_secs(7200);
    let r = resp(
        200,
        &[
            ("date", &date(then)),
            ("expires", &date(then + Duration::from_secs(3600))),
        ],
    );
    assert!(fresh_for(&meta(&r, now), now) < 0);
    // Expires is relative to Date, not to our clock.
    let r = resp(
        200,
        &[("cache-control", "max-age=100"), ("date", &date(then))],
    );
    assert!(fresh_for(&meta(&r, now), now) < 0);
}

#[test]
fn invalid_expires_means_stale_on_arrival() {
    let now = SystemTime::now();
    let bad_expires = resp(200, &[("expires", "yesterday-ish")]);
    assert!(fresh_for(&meta(&bad_expires, now), now) <= 0);
}

fn fresh_with_age(lines: &[&str], now: SystemTime) -> i64 {
    let mut headers = vec![("cache-control", "max-age=3600")];
    headers.extend(lines.iter().map(|v| ("age", *v)));
    fresh_for(&meta(&resp(200, &headers), now), now)
}

// cache-tests age-parse-nonnumeric, -negative, -float: RFC 9111 §5.1 says an invalid Age is
// ignored, not that it makes the response stale.
#[test]
fn invalid_age_is_ignored() {
    let now = SystemTime::now();
    for age in ["abc", "-7200", "7200.0", "+7200", "10;a=b", "", "0x10"] {
        let fresh = fresh_with_age(&[age], now);
        assert!((3599..=3600).contains(&fresh), "Age: {age:?} left {fresh}s");
    }
}

// cache-tests age-parse-prefix, -suffix, -prefix-twoline, -suffix-twoline, -dup-0: the first
// member counts, whether the list is on one line or on several.
#[test]
fn list_valued_age_uses_its_first_member() {
    let now = SystemTime::now();
    for fresh_lines in [
        &["0, 7200"][..],
        &["0", "7200"],
        &["0, 0"],
        &["0", "0"],
        &[" , 0"],
    ] {
        let fresh = fresh_with_age(fresh_lines, now);
        assert!(
            (3599..=3600).contains(&fresh),
            "Age: {fresh_lines:?} left {fresh}s"
        );
    }
    for stale_lines in [
        &["7200, 0"][..],
        &["7200", "0"],
        &["2147483648"],
        &["99999999999"],
    ] {
        let fresh = fresh_with_age(stale_lines, now);
        assert!(fresh < 0, "Age: {stale_lines:?} left {fresh}s");
    }
    let m = meta(
        &resp(200, &[("cache-control", "max-age=3600"), ("age", "600, 9")]),
        now,
    );
    assert!(
        m.age().as_secs() >= 600,
        "hits count Age from the first member"
    );
}

/// Each `CDN-Cache-Control` value must be ignored as a whole: `Cache-Control` decides.
fn assert_cdn_cache_control_ignored(values: &[&str]) {
    let now = SystemTime::now();
    for value in values {
        let with = |cc| resp(200, &[("cdn-cache-control", *value), ("cache-control", cc)]);
        assert!(
            !stored(&with("no-store")),
            "CDN-Cache-Control: {value:?} not ignored"
        );
        let fresh = fresh_for(&meta(&with("max-age=60"), now), now);
        assert!(
            (59..=60).contains(&fresh),
            "CDN-Cache-Control: {value:?} not ignored"
        );
    }
}

// cache-tests cdn-cc-invalid-sh-type-unknown: a CDN-Cache-Control that is not a valid
// structured Dictionary is ignored as a whole, and Cache-Control applies.
#[test]
fn cdn_cache_control_that_is_no_dictionary_is_ignored() {
    assert_cdn_cache_control_ignored(&[
        "max-age=10000, &&&&&",
        "max-age =100",
        "max-age= 100",
        "MaX-aGe=100",
        "max-age=100,",
        "",
    ]);
}

// cache-tests cdn-cc-invalid-sh-type-wrong: a directive imgate uses with a value of the wrong
// structured type makes the field invalid; valid members and unknown directives are fine.
#[test]
fn cdn_cache_control_with_a_wrongly_typed_directive_is_ignored() {
    assert_cdn_cache_control_ignored(&[
        "max-age=\"10000\"",
        "max-age=10000.5",
        "max-age=-1",
        "max-age=(1 2)",
        "no-store=1, max-age=10000",
        "max-age=10000, no-cache=:AA==:",
    ]);
    let now = SystemTime::now();
    // Valid: an unknown directive of any type, a qualified no-cache, lines combined.
    let m = meta(
        &resp(
            200,
            &[
                ("cdn-cache-control", "foo=\"bar\";a=1, max-age=100"),
                ("cdn-cache-control", "stale-if-error=30"),
                ("cache-control", "no-store"),
            ],
        ),
        now,
    );
    assert!((99..=100).contains(&fresh_for(&m, now)));
    assert_eq!(m.stale_if_error_sec(), 30);
    let qualified = meta(
        &resp(
            200,
            &[("cdn-cache-control", "max-age=100, no-cache=\"set-cookie\"")],
        ),
        now,
    );
    assert!(fresh_for(&qualified, now) <= 0);
    assert!(!stored(&resp(
        200,
        &[("cdn-cache-control", "max-age=100, no-store=?1")]
    )));
    let off = meta(
        &resp(200, &[("cdn-cache-control", "max-age=100, no-store=?0")]),
        now,
    );
    assert!((99..=100).contains(&fresh_for(&off, now)));
}

#[test]
fn no_explicit_freshness_is_not_stored_except_negative_404() {
    assert!(!stored(&resp(
        200,
        &[("last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")]
    )));
    let now = SystemTime::now();
    let m = meta(&resp(404, &[]), now);
    assert!((9..=10).contains(&fresh_for(&m, now)));
    let off = Policy {
        negative_ttl: Duration::ZERO,
    };
    assert!(matches!(
        off.cacheability(&resp(404, &[]), false, now),
        Uncacheable(_)
    ));
}

#[test]
fn storability_directives() {
    assert!(!stored(&resp(
        200,
        &[("cache-control", "max-age=60, no-store")]
    )));
    assert!(!stored(&resp(
        200,
        &[("cache-control", "max-age=60, private")]
    )));
    assert!(!stored(&resp(
        200,
        &[("cache-control", "public"), ("vary", "a")]
    )));
    let now = SystemTime::now();
    let nc = meta(
        &resp(200, &[("cache-control", "max-age=60, no-cache")]),
        now,
    );
    assert!(
        fresh_for(&nc, now) <= 0,
        "no-cache is stored but always revalidated"
    );
    // Authorization needs public / s-maxage / must-revalidate.
    let plain = resp(200, &[("cache-control", "max-age=60")]);
    assert!(matches!(
        POLICY.cacheability(&plain, true, now),
        Uncacheable(_)
    ));
    let public = resp(200, &[("cache-control", "public, max-age=60")]);
    assert!(matches!(
        POLICY.cacheability(&public, true, now),
        Cacheable(_)
    ));
}

#[test]
fn must_understand_overrides_no_store_only_for_known_statuses() {
    let cc = [("cache-control", "max-age=60, must-understand, no-store")];
    assert!(stored(&resp(200, &cc)));
    assert!(!stored(&resp(599, &cc)));
}

#[test]
fn targeted_fields_replace_cache_control() {
    let now = SystemTime::now();
    // CDN-Cache-Control wins over Cache-Control in both directions.
    let m = meta(
        &resp(
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=120"),
            ],
        ),
        now,
    );
    assert!((119..=120).contains(&fresh_for(&m, now)));
    assert!(!stored(&resp(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cdn-cache-control", "no-store")
        ]
    )));
    // Surrogate-Control: untargeted and targeted at us apply, other targets don't.
    let m = meta(
        &resp(
            200,
            &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=30;imgate"),
            ],
        ),
        now,
    );
    assert!((29..=30).contains(&fresh_for(&m, now)));
    assert!(!stored(&resp(
        200,
        &[("surrogate-control", "max-age=30;someone-else")]
    )));
    assert!(!stored(&resp(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("surrogate-control", "no-store")
        ]
    )));
    assert!(!stored(&resp(
        200,
        &[("surrogate-control", "max-age =100")]
    )));
    let big = meta(
        &resp(200, &[("surrogate-control", "foo, MaX-aGe=99999999999")]),
        now,
    );
    assert!(fresh_for(&big, now) >= 2_147_483_000);
}

#[test]
fn stale_serving_follows_directives() {
    let now = SystemTime::now();
    let m = meta(
        &resp(
            200,
            &[(
                "cache-control",
                "max-age=1, stale-while-revalidate=30, stale-if-error=60",
            )],
        ),
        now,
    );
    assert_eq!(
        (m.stale_while_revalidate_sec(), m.stale_if_error_sec()),
        (30, 60)
    );
    for cc in [
        "max-age=1, must-revalidate, stale-if-error=60",
        "s-maxage=1, stale-if-error=60",
    ] {
        let m = meta(&resp(200, &[("cache-control", cc)]), now);
        assert_eq!(m.stale_if_error_sec(), 0, "{cc}");
    }
}

#[test]
fn hop_by_hop_and_connection_listed_fields_are_removed() {
    let mut r = resp(
        200,
        &[
            ("connection", "a, B"),
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("keep-alive", "timeout=5"),
        ],
    );
    strip_hop_by_hop(&mut r);
    let names: Vec<&str> = r.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["c"]);
}

#[test]
fn not_modified_updates_every_field_but_the_body_framing() {
    let stored = resp(
        200,
        &[
            ("etag", "\"a\""),
            ("content-length", "5"),
            ("x-test", "old"),
            ("set-cookie", "a=b"),
            ("content-type", "text/plain"),
        ],
    );
    let nm = resp(
        304,
        &[
            ("etag", "\"b\""),
            ("content-length", "0"),
            ("x-test", "new"),
            ("set-cookie", "a=c"),
            ("content-type", "text/html"),
        ],
    );
    let merged = merge_not_modified(&stored, &nm);
    assert_eq!(merged.status.as_u16(), 200);
    let get = |n: &str| merged.headers.get(n).unwrap().to_str().unwrap().to_string();
    assert_eq!(get("etag"), "\"a\"");
    assert_eq!(get("content-length"), "5");
    assert_eq!(get("x-test"), "new");
    assert_eq!(get("set-cookie"), "a=c");
    assert_eq!(get("content-type"), "text/html");
}

#[test]
fn unsafe_methods_invalidate() {
    use http::Method;
    assert!(invalidates(&Method::POST) && invalidates(&Method::DELETE));
    assert!(invalidates(&Method::from_bytes(b"M-SEARCH").unwrap()));
    assert!(!invalidates(&Method::GET) && !invalidates(&Method::HEAD));
}
