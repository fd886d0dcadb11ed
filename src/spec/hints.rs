//! What a client says about its connection, and when that makes it slow for
//! `slow-connection-quality`: `Save-Data: on`, or a network client hint past Cloudflare's
//! thresholds (`ECT` slow-2g, 2g or 3g; `RTT` over 150 ms; `Downlink` under 5 Mbps). Pure
//! header values in, one decision out: the edge keys its cache on the decision, never on the
//! raw values, so clients on fast connections keep sharing one entry.

/// The request headers the decision reads, as a `Vary` and `Accept-CH` list.
pub const CONNECTION_HINTS: &str = "Save-Data, ECT, RTT, Downlink";

/// The hints one request carried (header values as sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionHints<'a> {
    pub save_data: Option<&'a str>,
    pub ect: Option<&'a str>,
    pub rtt: Option<&'a str>,
    pub downlink: Option<&'a str>,
}

/// `RTT` above this many milliseconds is slow.
const SLOW_RTT_MS: f64 = 150.0;
/// `Downlink` below this many megabits per second is slow.
const SLOW_DOWNLINK_MBPS: f64 = 5.0;

impl<'a> ConnectionHints<'a> {
    /// The hints from a request's headers, `value` giving a header's value by its name: the
    /// one place that names the headers read.
    pub fn read(value: impl Fn(&str) -> Option<&'a str>) -> ConnectionHints<'a> {
        ConnectionHints {
            save_data: value("save-data"),
            ect: value("ect"),
            rtt: value("rtt"),
            downlink: value("downlink"),
        }
    }

    /// Whether any hint says the connection is slow. Unreadable values say nothing.
    pub fn slow(&self) -> bool {
        let number = |v: Option<&str>| v.and_then(|v| v.trim().parse::<f64>().ok());
        let save_data = self
            .save_data
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("on"));
        let ect = self.ect.is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "slow-2g" | "2g" | "3g"
            )
        });
        let rtt = number(self.rtt).is_some_and(|ms| ms > SLOW_RTT_MS);
        let downlink = number(self.downlink).is_some_and(|mbps| mbps < SLOW_DOWNLINK_MBPS);
        save_data || ect || rtt || downlink
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_by_any_one_hint_past_its_threshold() {
        let none = ConnectionHints::default();
        assert!(!none.slow());
        let read = ConnectionHints::read(|name| (name == "ect").then_some("2g"));
        assert_eq!(read.ect, Some("2g"));
        assert!(read.slow());
        let with = |f: fn(&mut ConnectionHints<'static>)| {
            let mut h = ConnectionHints::default();
            f(&mut h);
            h.slow()
        };
        assert!(with(|h| h.save_data = Some("on")));
        assert!(with(|h| h.save_data = Some(" On ")));
        assert!(!with(|h| h.save_data = Some("off")));
        assert!(with(|h| h.ect = Some("3g")));
        assert!(with(|h| h.ect = Some("slow-2g")));
        assert!(!with(|h| h.ect = Some("4g")));
        assert!(with(|h| h.rtt = Some("200")));
        assert!(!with(|h| h.rtt = Some("150")));
        assert!(!with(|h| h.rtt = Some("fast")));
        assert!(with(|h| h.downlink = Some("1.5")));
        assert!(!with(|h| h.downlink = Some("10")));
        assert!(!with(|h| h.downlink = Some("NaN")));
        let fast = ConnectionHints {
            save_data: None,
            ect: Some("4g"),
            rtt: Some("50"),
            downlink: Some("10"),
        };
        assert!(!fast.slow());
    }
}
