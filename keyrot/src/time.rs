//! Time as the API and the secrets write it: RFC 3339 UTC strings and Unix seconds.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn rfc3339(time: SystemTime) -> String {
    DateTime::from(time)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
