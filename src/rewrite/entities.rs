//! Character references in attribute values: lol_html hands attribute values over raw (as
//! written, `&#038;` and all) and writes new values with only `"` escaped. This module decodes
//! what a browser would before a URL is read (`/a.jpg?w=1&#038;h=2` is `/a.jpg?w=1&h=2`), and
//! escapes what the rewriter writes back (`&` -> `&amp;`, `"` -> `&quot;`). Pure text work: no
//! HTML parsing, no URLs.
//!
//! Numeric references (decimal and hex) are decoded as HTML does, and the named references
//! that turn up in URLs (`&amp;` `&lt;` `&gt;` `&quot;` `&apos;`). The trap: any other named
//! reference ending in `;` (`&copy;`) means something to a browser that we cannot know without
//! HTML's 2,231-name table, so such a value is not decoded at all (`None`) and its tag is left
//! as written; a name without `;` (`?a=1&size=2`) stays literal text, as a browser keeps it
//! after `=` or an alphanumeric.

/// Named references decoded here, with the ones HTML also accepts without `;` (legacy).
const NAMED: &[(&str, char, bool)] = &[
    ("amp", '&', true),
    ("lt", '<', true),
    ("gt", '>', true),
    ("quot", '"', true),
    ("apos", '\'', false),
];

/// HTML's replacements for numeric references to C1 controls 0x80-0x9F (windows-1252's
/// characters); 0 keeps the code point.
const C1: [u16; 32] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0, 0x017D, 0, 0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC,
    0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
];

/// An attribute value as a browser reads it, or `None` when it holds a named reference this
/// module does not know (leave such a tag alone). Without any `&` the value is returned as is.
pub fn decode_attribute(raw: &str) -> Option<String> {
    if !raw.contains('&') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (decoded, used) = reference(rest)?;
        match decoded {
            Some(c) => out.push(c),
            None => out.push('&'),
        }
        rest = &rest[used..];
    }
    out.push_str(rest);
    Some(out)
}

/// The reference at the start of `text` (which starts with `&`): the character and the bytes
/// it took, `(None, 1)` for an `&` that is just text, `None` for an unknown named reference.
fn reference(text: &str) -> Option<(Option<char>, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(1) == Some(&b'#') {
        return Some(numeric(text));
    }
    let name_len = bytes[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    if name_len == 0 {
        return Some((None, 1));
    }
    let name = &text[1..1 + name_len];
    let after = bytes.get(1 + name_len).copied();
    if after == Some(b';') {
        let &(_, c, _) = NAMED.iter().find(|(n, _, _)| *n == name)?;
        return Some((Some(c), name_len + 2));
    }
    // Without `;`: only a legacy name that is not followed by `=` (the name itself took every
    // alphanumeric) is a reference.
    match NAMED.iter().find(|(n, _, legacy)| *legacy && *n == name) {
        Some(&(_, c, _)) if after != Some(b'=') => Some((Some(c), name_len + 1)),
        _ => Some((None, 1)),
    }
}

/// `&#123;`, `&#x7B;` (the `;` is optional, as in HTML): out-of-range, surrogate and zero
/// values become U+FFFD, C1 controls their windows-1252 characters. `&#` without digits is
/// text.
fn numeric(text: &str) -> (Option<char>, usize) {
    let bytes = text.as_bytes();
    let hex = matches!(bytes.get(2), Some(b'x' | b'X'));
    let start = if hex { 3 } else { 2 };
    let digits = bytes[start..]
        .iter()
        .take_while(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
        .count();
    if digits == 0 {
        return (None, 1);
    }
    let radix = if hex { 16 } else { 10 };
    let value = u32::from_str_radix(&text[start..start + digits], radix).unwrap_or(u32::MAX);
    let value = match value {
        0x80..=0x9F => match C1[(value - 0x80) as usize] {
            0 => value,
            v => u32::from(v),
        },
        v => v,
    };
    let c = match value {
        0 => '\u{FFFD}',
        v => char::from_u32(v).unwrap_or('\u{FFFD}'),
    };
    let end = start + digits;
    let used = if bytes.get(end) == Some(&b';') {
        end + 1
    } else {
        end
    };
    (Some(c), used)
}

/// A value ready to go between double quotes: `&` and `"` escaped, so a browser reads back
/// exactly `value`. (lol_html's `set_attribute` escapes only `"`.)
pub fn escape_attribute(value: &str) -> String {
    if !value.contains(['&', '"']) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_a_browser_decodes_in_urls() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/a.jpg?w=1&#038;h=2", Some("/a.jpg?w=1&h=2")),
            ("/a.jpg?w=1&#x26;h=2", Some("/a.jpg?w=1&h=2")),
            ("/a.jpg?w=1&#X26h=2", Some("/a.jpg?w=1&h=2")),
            ("/a.jpg?w=1&amp;h=2", Some("/a.jpg?w=1&h=2")),
            ("&#x2f;photos&#47;a.jpg", Some("/photos/a.jpg")),
            ("/a.jpg?q=&quot;x&quot;&apos;", Some("/a.jpg?q=\"x\"'")),
            ("/a.jpg?a=1&b=2", Some("/a.jpg?a=1&b=2")),
            ("/a.jpg?a=1&amp=2", Some("/a.jpg?a=1&amp=2")),
            ("/a.jpg?a=1&ampx", Some("/a.jpg?a=1&ampx")),
            ("/a.jpg?a&lt", Some("/a.jpg?a<")),
            ("/a.jpg?a=1&apos", Some("/a.jpg?a=1&apos")),
            ("a & b &# &#x; &", Some("a & b &# &#x; &")),
            (
                "&#0;&#xD800;&#x110000;&#128;&#99999999999;",
                Some("\u{FFFD}\u{FFFD}\u{FFFD}€\u{FFFD}"),
            ),
            ("/a.jpg?c=&copy;", None),
            ("plain", Some("plain")),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_attribute(raw).as_deref(), *want, "{raw}");
        }
    }

    #[test]
    fn escaping_round_trips_through_decoding() {
        for value in ["/a.jpg?w=1&h=2", "say \"hi\"", "&amp;", "plain", "&#038;"] {
            let escaped = escape_attribute(value);
            assert!(!escaped.contains('"'));
            assert_eq!(
                decode_attribute(&escaped).as_deref(),
                Some(value),
                "{escaped}"
            );
        }
        assert_eq!(
            escape_attribute("/a?w=1&h=\"2\""),
            "/a?w=1&amp;h=&quot;2&quot;"
        );
    }
}
