//! Value syntax shared by options, colours and `Accept` q-values: integers within a range and
//! decimals read exactly (no float rounding) and quantised to integers.

/// Plain ASCII digits (no sign, no exponent), saturating so huge inputs are just out of range.
pub(super) fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

pub(super) fn int_in(s: &str, lo: u64, hi: u64) -> Option<u64> {
    parse_uint(s).filter(|v| (lo..=hi).contains(v))
}

/// A non-negative decimal exactly as written. Kept as text rather than `f64` so range checks
/// are exact (`4.0000001` is out of `1..=4`) and quantising never meets float rounding.
pub(super) struct Decimal<'a> {
    pub(super) int: u64,
    frac: &'a str,
}

impl Decimal<'_> {
    pub(super) fn parse(s: &str) -> Option<Decimal<'_>> {
        let (int_s, frac) = s.split_once('.').unwrap_or((s, ""));
        if int_s.is_empty() && frac.is_empty() {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = if int_s.is_empty() {
            0
        } else {
            parse_uint(int_s)?
        };
        Some(Decimal { int, frac })
    }

    pub(super) fn frac_is_zero(&self) -> bool {
        self.frac.bytes().all(|b| b == b'0')
    }

    /// `lo <= self <= hi` for integer bounds.
    fn within(&self, lo: u64, hi: u64) -> bool {
        self.int >= lo && (self.int < hi || (self.int == hi && self.frac_is_zero()))
    }

    /// The value times `10^digits`, rounded half up.
    fn scaled(&self, digits: u32) -> u64 {
        let mut v = self.int;
        let mut frac = self.frac.bytes();
        for _ in 0..digits {
            let d = frac.next().map_or(0, |b| u64::from(b - b'0'));
            v = v.saturating_mul(10).saturating_add(d);
        }
        if frac.next().is_some_and(|b| b >= b'5') {
            v = v.saturating_add(1);
        }
        v
    }
}

/// A decimal in `lo..=hi`, quantised to `digits` decimal places.
pub(super) fn decimal_in(s: &str, lo: u64, hi: u64, digits: u32) -> Option<u64> {
    let d = Decimal::parse(s)?;
    d.within(lo, hi).then(|| d.scaled(digits))
}
