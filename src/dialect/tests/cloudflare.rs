//! imgate's own URL form: signatures (right, wrong, rotated, missing), presets and allowed
//! values.

use super::*;
use crate::route::Source;
use crate::spec::{parse_options, Fit};

#[test]
fn other_paths_are_not_transforms() {
    let p = UrlPolicy::default();
    assert!(resolve(&p, "/photos/cat.jpg").is_none());
    assert!(resolve(&p, "/cdn-cgi/imagex/w=1/a.jpg").is_none());
}

#[test]
fn an_unsigned_url_on_a_site_without_keys_resolves_to_the_canonical_spec() {
    let r = resolved(
        &UrlPolicy::default(),
        "/cdn-cgi/image/w=300,fit=cover/photos/cat.jpg",
    );
    assert_eq!(r.dialect, Dialect::Cloudflare);
    assert_eq!(r.spec, parse_options("width=300,fit=cover").unwrap());
    assert_eq!(r.source, Source::Path("/photos/cat.jpg".into()));
    assert_eq!(
        canonical_path(&r.spec.canonical(), &r.source.key()),
        "/cdn-cgi/image/width=300,fit=cover/photos/cat.jpg"
    );
}

#[test]
fn known_signature_vector() {
    // openssl: printf 'salt/cdn-cgi/image/width=300/photos/cat.jpg' \
    //   | openssl dgst -sha256 -hmac secret -binary | basenc --base64url | tr -d '='
    let sig = sign_path(
        b"secret",
        b"salt",
        "/cdn-cgi/image/width=300/photos/cat.jpg",
    );
    assert_eq!(sig, "vLpzr7637jj1aT71OCc6dTXXssmMUxRoWHhLcHW33to");
}

#[test]
fn a_signed_url_is_accepted_wherever_the_sig_item_stands() {
    let k = key("secret", "salt");
    let p = signed_policy(vec![k.clone()], true);
    let path = "/cdn-cgi/image/width=300,format=webp/photos/cat.jpg?v=2";
    let sig = k.sign(path);
    for options in [
        format!("width=300,format=webp,sig={sig}"),
        format!("sig={sig},width=300,format=webp"),
        format!("width=300,sig={sig},format=webp"),
    ] {
        let url = format!("/cdn-cgi/image/{options}/photos/cat.jpg?v=2");
        let r = resolved(&p, &url);
        assert_eq!(r.spec.width, Some(300), "{url}");
        assert_eq!(r.source, Source::Path("/photos/cat.jpg?v=2".into()));
    }
    assert_eq!(
        sign_cloudflare_path(&k, path).unwrap(),
        format!("/cdn-cgi/image/width=300,format=webp,sig={sig}/photos/cat.jpg?v=2")
    );
}

#[test]
fn wrong_missing_and_unverifiable_signatures_are_refused() {
    let k = key("secret", "salt");
    let p = signed_policy(vec![k.clone()], true);
    let path = "/cdn-cgi/image/width=300/photos/cat.jpg";
    let good = k.sign(path);
    // Missing.
    let r = refused(&p, path);
    assert_eq!((r.status, r.reason), (403, RefusalReason::MissingSignature));
    // Signed for another path: the width, the source or the query changed.
    for url in [
        format!("/cdn-cgi/image/width=301,sig={good}/photos/cat.jpg"),
        format!("/cdn-cgi/image/width=300,sig={good}/photos/dog.jpg"),
        format!("/cdn-cgi/image/width=300,sig={good}/photos/cat.jpg?x=1"),
    ] {
        let r = refused(&p, &url);
        assert_eq!(
            (r.status, r.reason),
            (403, RefusalReason::BadSignature),
            "{url}"
        );
    }
    // Garbage, empty, a truncated signature, another key's, and two sig items.
    let other = key("other", "salt").sign(path);
    for sig in ["!!", "", &good[..20], &other] {
        let r = refused(
            &p,
            &format!("/cdn-cgi/image/width=300,sig={sig}/photos/cat.jpg"),
        );
        assert_eq!(r.status, 403, "{sig}");
    }
    let r = refused(
        &p,
        &format!("/cdn-cgi/image/width=300,sig={good},sig={good}/photos/cat.jpg"),
    );
    assert_eq!(r.status, 400);
    // Not required: unsigned passes, a wrong signature still does not.
    let optional = signed_policy(vec![k.clone()], false);
    resolved(&optional, path);
    assert_eq!(
        refused(
            &optional,
            &format!("/cdn-cgi/image/width=300,sig={other}/photos/cat.jpg")
        )
        .status,
        403
    );
    // A site without keys cannot check a signature.
    let r = refused(
        &UrlPolicy::default(),
        &format!("/cdn-cgi/image/width=300,sig={good}/photos/cat.jpg"),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn rotated_keys_old_and_new_both_verify_a_removed_key_does_not() {
    let old = key("old-key", "old-salt");
    let new = key("new-key", "new-salt");
    let path = "/cdn-cgi/image/width=640/a.jpg";
    let url = |k: &SigningKey| format!("/cdn-cgi/image/width=640,sig={}/a.jpg", k.sign(path));
    let during = signed_policy(vec![new.clone(), old.clone()], true);
    resolved(&during, &url(&old));
    resolved(&during, &url(&new));
    let after = signed_policy(vec![new.clone()], true);
    resolved(&after, &url(&new));
    assert_eq!(
        refused(&after, &url(&old)).reason,
        RefusalReason::BadSignature
    );
}

fn preset_policy(presets_only: bool) -> UrlPolicy {
    let mut presets = Presets::default();
    presets
        .0
        .insert("thumb".into(), "width=200,height=200,fit=cover".into());
    presets
        .0
        .insert("webp".into(), "format=webp,quality=70".into());
    UrlPolicy {
        presets,
        presets_only,
        ..UrlPolicy::default()
    }
}

#[test]
fn presets_expand_combine_and_are_overridden_by_own_options() {
    let p = preset_policy(false);
    let r = resolved(&p, "/cdn-cgi/image/preset=thumb/a.jpg");
    assert_eq!(
        r.spec,
        parse_options("width=200,height=200,fit=cover").unwrap()
    );
    // Two presets and an own option that overrides one of theirs, wherever it stands.
    for options in [
        "width=100,preset=thumb,preset=webp",
        "preset=thumb,preset=webp,width=100",
    ] {
        let r = resolved(&p, &format!("/cdn-cgi/image/{options}/a.jpg"));
        assert_eq!(
            r.spec,
            parse_options("width=100,height=200,fit=cover,format=webp,quality=70").unwrap(),
            "{options}"
        );
        assert_eq!(r.spec.fit, Fit::Cover);
    }
    // The same transform asked with or without a preset is one canonical form.
    let direct = resolved(&p, "/cdn-cgi/image/fit=cover,h=200,w=200/a.jpg");
    assert_eq!(
        canonical_path(&direct.spec.canonical(), &direct.source.key()),
        canonical_path(&r_thumb(&p).spec.canonical(), &r_thumb(&p).source.key())
    );
    let r = refused(&p, "/cdn-cgi/image/preset=nope/a.jpg");
    assert_eq!(r.status, 400);
    assert!(r.message.contains("nope"), "{}", r.message);
    assert_eq!(refused(&p, "/cdn-cgi/image/preset=/a.jpg").status, 400);
}

fn r_thumb(p: &UrlPolicy) -> Resolved {
    resolved(p, "/cdn-cgi/image/preset=thumb/a.jpg")
}

#[test]
fn presets_only_refuses_any_other_option() {
    let p = preset_policy(true);
    resolved(&p, "/cdn-cgi/image/preset=thumb/a.jpg");
    resolved(&p, "/cdn-cgi/image/preset=thumb,preset=webp/a.jpg");
    for url in [
        "/cdn-cgi/image/preset=thumb,width=10/a.jpg",
        "/cdn-cgi/image/width=10/a.jpg",
        "/cdn-cgi/image/blur=5,preset=thumb/a.jpg",
    ] {
        let r = refused(&p, url);
        assert_eq!(
            (r.status, r.reason),
            (400, RefusalReason::NotAllowed),
            "{url}"
        );
        assert!(r.message.contains("only presets"), "{}", r.message);
    }
}

#[test]
fn widths_and_qualities_outside_the_allowed_lists_are_refused() {
    let p = UrlPolicy {
        allowed_widths: vec![320, 640, 1280],
        allowed_qualities: vec![50, 75],
        ..UrlPolicy::default()
    };
    resolved(&p, "/cdn-cgi/image/width=640,quality=75/a.jpg");
    resolved(&p, "/cdn-cgi/image/format=auto/a.jpg");
    for url in [
        "/cdn-cgi/image/width=641/a.jpg",
        "/cdn-cgi/image/width=640,quality=76/a.jpg",
        "/cdn-cgi/image/q=1/a.jpg",
    ] {
        let r = refused(&p, url);
        assert_eq!(
            (r.status, r.reason),
            (400, RefusalReason::NotAllowed),
            "{url}"
        );
        assert!(r.message.contains("must be one of"), "{}", r.message);
    }
    assert_eq!(snap_width(&p.allowed_widths, 300), 320);
    assert_eq!(snap_width(&p.allowed_widths, 640), 640);
    assert_eq!(snap_width(&p.allowed_widths, 5000), 1280);
    assert_eq!(snap_width(&[], 333), 333);
}

#[test]
fn the_default_spec_has_a_canonical_path_the_service_accepts() {
    let r = resolved(&preset_policy(false), "/cdn-cgi/image/fit=scale-down/a.jpg");
    let path = canonical_path(&r.spec.canonical(), &r.source.key());
    assert_eq!(path, "/cdn-cgi/image/fit=scale-down/a.jpg");
    let again = resolved(&UrlPolicy::default(), &path);
    assert_eq!(again.spec, r.spec);
    // An absolute source keeps its scheme and host.
    let r = resolved(
        &UrlPolicy::default(),
        "/cdn-cgi/image/w=5/https://img.example.com/a.jpg",
    );
    assert_eq!(
        canonical_path(&r.spec.canonical(), &r.source.key()),
        "/cdn-cgi/image/width=5/https://img.example.com/a.jpg"
    );
}

#[test]
fn signing_keys_never_print() {
    let k = key("very-secret-key", "salt");
    let shown = format!("{k:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert_ne!(shown, format!("{:?}", key("other", "salt")));
}

/// Fuzz finding (`spec_route`): a thumbor URL whose image is `/` gave a canonical path with no
/// source, which the transform service would have refused.
#[test]
fn r_fuzz_the_root_path_as_source_survives_the_canonical_path() {
    let r = resolved(&UrlPolicy::default(), "/cdn-cgi/image/width=5//");
    assert_eq!(r.source, Source::Path("/".into()));
    let path = canonical_path(&r.spec.canonical(), &r.source.key());
    assert_eq!(path, "/cdn-cgi/image/width=5//");
    assert_eq!(read_canonical(&path).unwrap().unwrap().source, r.source);
}

/// Fuzz finding (`spec_route`): a path on the origin that starts like a URL
/// (`/https:/host/a.jpg`) read back from the canonical path as that host.
#[test]
fn r_fuzz_a_path_that_looks_like_a_url_stays_a_path() {
    let r = resolved(
        &UrlPolicy::default(),
        "/cdn-cgi/image/width=5//https:/h/a.jpg",
    );
    assert_eq!(r.source, Source::Path("/https:/h/a.jpg".into()));
    let path = canonical_path(&r.spec.canonical(), &r.source.key());
    assert_eq!(
        read_canonical(&path).unwrap().unwrap().source,
        r.source,
        "{path}"
    );
}
