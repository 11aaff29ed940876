//! Time as this crate uses it: whole Unix seconds (the API's RFC 3339 times have second
//! precision), formatted and parsed as RFC 3339 UTC.

use time::format_description::well_known::{Rfc2822, Rfc3339};
use time::OffsetDateTime;

/// Seconds since the Unix epoch.
pub type Seconds = i64;

/// The wall clock; a trait so the refresh logic can be tested at chosen instants.
pub trait Clock {
    fn now(&self) -> Seconds;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Seconds {
        OffsetDateTime::now_utc().unix_timestamp()
    }
}

/// `2026-11-28T10:05:10Z`, or `None` for a time `time` cannot represent.
pub fn rfc3339(at: Seconds) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(at)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

pub fn parse_rfc3339(text: &str) -> Option<Seconds> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// An HTTP `Date` (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`, which RFC 2822 parsing
/// covers). The obsolete RFC 850 and asctime forms give `None`: the caller then goes without.
pub fn parse_http_date(text: &str) -> Option<Seconds> {
    OffsetDateTime::parse(text.trim(), &Rfc2822)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_utc_seconds() {
        let at = parse_rfc3339("2026-11-28T10:05:10Z").expect("parses");
        assert_eq!(rfc3339(at).as_deref(), Some("2026-11-28T10:05:10Z"));
    }

    #[test]
    fn accepts_offsets_and_fractions_and_refuses_garbage() {
        assert_eq!(
            parse_rfc3339("2026-11-28T11:05:10.5+01:00"),
            parse_rfc3339("2026-11-28T10:05:10Z")
        );
        assert_eq!(parse_rfc3339("tomorrow"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
    }
}
