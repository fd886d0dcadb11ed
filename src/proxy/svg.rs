//! SVG passed through unchanged (the passthrough route): a document can carry scripts, and a
//! browser that opens it directly runs them in the site's origin. The response gets a
//! `Content-Security-Policy` that allows its inline styles and `data:` images and nothing else
//! (no scripts, no requests, a sandbox), and `nosniff`; `<img>` tags never run scripts anyway.

use pingora_http::ResponseHeader;

/// The policy for SVG documents served as they are.
pub(super) const SVG_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox";

/// Adds the policy to an SVG response (by its `Content-Type`); leaves others alone.
pub(super) fn confine(resp: &mut ResponseHeader) {
    let is_svg = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("image/svg+xml"));
    if is_svg {
        // Both values are static and valid header text, so inserting them cannot fail.
        let _ = resp.insert_header("content-security-policy", SVG_POLICY);
        let _ = resp.insert_header("x-content-type-options", "nosniff");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_svg_responses_are_confined() {
        for (ctype, confined) in [
            ("image/svg+xml", true),
            ("Image/SVG+XML; charset=utf-8", true),
            ("image/png", false),
            ("text/html", false),
        ] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.insert_header("content-type", ctype).unwrap();
            confine(&mut resp);
            let csp = resp.headers.get("content-security-policy");
            assert_eq!(csp.is_some(), confined, "{ctype}");
            if confined {
                assert_eq!(csp.unwrap(), SVG_POLICY);
                assert_eq!(
                    resp.headers.get("x-content-type-options").unwrap(),
                    "nosniff"
                );
            }
        }
        let mut resp = ResponseHeader::build(200, None).unwrap();
        confine(&mut resp);
        assert!(resp.headers.get("content-security-policy").is_none());
    }
}
