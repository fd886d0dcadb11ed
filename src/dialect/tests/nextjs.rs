//! The Next.js optimizer's URLs: what `getImageProps` writes, Next.js 16's validation, and
//! the formats `format=auto` may pick.

use super::*;
use crate::route::Source;
use crate::spec::{Accepts, Fit, FormatRequest};

fn policy(avif: bool) -> UrlPolicy {
    UrlPolicy {
        nextjs: Some(NextjsConfig {
            avif,
            ..NextjsConfig::default()
        }),
        ..UrlPolicy::default()
    }
}

#[test]
fn get_image_props_urls() {
    let r = resolved(
        &policy(false),
        "/_next/image?url=%2Fphotos%2Fa%20b.jpg&w=640&q=75",
    );
    assert_eq!(r.dialect, Dialect::Nextjs);
    assert_eq!((r.spec.width, r.spec.quality), (Some(640), Some(75)));
    assert_eq!(
        (r.spec.fit, r.spec.format),
        (Fit::ScaleDown, FormatRequest::Auto)
    );
    assert_eq!(r.source, Source::Path("/photos/a%20b.jpg".into()));
    assert_eq!(
        r.modern,
        Accepts {
            avif: false,
            webp: true
        },
        "WebP only by default"
    );
    assert!(
        resolved(&policy(true), "/_next/image?url=%2Fa.jpg&w=32&q=75")
            .modern
            .avif
    );
    let r = resolved(
        &policy(false),
        "/_next/image?url=https%3A%2F%2Fimg.example.com%2Fa.jpg%3Fv%3D1&w=3840&q=75",
    );
    assert_eq!(r.source.key(), "https://img.example.com/a.jpg?v=1");
    // Unknown parameters are ignored, as Next.js does; `+` is a space.
    let r = resolved(&policy(false), "/_next/image?w=48&x=1&q=75&url=/my+cat.jpg");
    assert_eq!(r.source, Source::Path("/my%20cat.jpg".into()));
    // Other paths, or a site without Next.js, are not its URLs.
    assert!(resolve(&policy(false), "/_next/static/a.js").is_none());
    assert!(resolve(
        &UrlPolicy::default(),
        "/_next/image?url=%2Fa.jpg&w=640&q=75"
    )
    .is_none());
}

#[test]
fn nextjs_validation() {
    for (query, reason) in [
        ("url=%2Fa.jpg&w=641&q=75", RefusalReason::NotAllowed),
        ("url=%2Fa.jpg&w=640&q=76", RefusalReason::NotAllowed),
        ("url=%2Fa.jpg&w=640&q=0", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&w=640&q=101", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&w=0&q=75", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&w=6.4e2&q=75", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&w=640", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&q=75", RefusalReason::BadUrl),
        ("w=640&q=75", RefusalReason::BadUrl),
        ("url=&w=640&q=75", RefusalReason::BadUrl),
        ("url=%2Fa.jpg&w=640&w=640&q=75", RefusalReason::BadUrl),
        ("url=%2F%2Fh%2Fa.jpg&w=640&q=75", RefusalReason::BadUrl),
        (
            "url=%2F_next%2Fimage%3Furl%3D%2Fa&w=640&q=75",
            RefusalReason::BadUrl,
        ),
        ("url=%2F_next%252Fimage&w=640&q=75", RefusalReason::BadUrl),
        ("url=data%3Aimage%2Fpng&w=640&q=75", RefusalReason::BadUrl),
        ("url=a.jpg&w=640&q=75", RefusalReason::BadUrl),
    ] {
        let r = refused(&policy(false), &format!("/_next/image?{query}"));
        assert_eq!(
            (r.status, r.reason),
            (400, reason),
            "{query}: {}",
            r.message
        );
    }
    let long = format!("/_next/image?url=%2F{}&w=640&q=75", "a".repeat(3100));
    assert_eq!(refused(&policy(false), &long).status, 400);
    // Signing required: Next.js URLs carry no signature.
    let signed = UrlPolicy {
        signing: Some(Signing {
            keys: vec![key("k", "s")],
            required: true,
        }),
        ..policy(false)
    };
    assert_eq!(
        refused(&signed, "/_next/image?url=%2Fa.jpg&w=640&q=75").status,
        403
    );
    // The site's own allowed lists apply too.
    let narrow = UrlPolicy {
        allowed_widths: vec![750],
        ..policy(false)
    };
    assert_eq!(
        refused(&narrow, "/_next/image?url=%2Fa.jpg&w=640&q=75").status,
        400
    );
    resolved(&narrow, "/_next/image?url=%2Fa.jpg&w=750&q=75");
}
