//! Human output: aligned tables, colour only on a terminal, progress on stderr only on a
//! terminal, and times as RFC 3339 and ages.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    pub fn detect() -> Self {
        Self {
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn bad(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn good(&self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn warn(&self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Column widths count characters, not bytes (✔, …), and ignore colour codes.
fn visible_width(text: &str) -> usize {
    let mut width = 0;
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => width += 1,
        }
    }
    width
}

/// An aligned table: a header and rows of cells, two spaces between columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| visible_width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(visible_width(cell));
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(visible_width(cell)) + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(time: SystemTime) -> String {
    let seconds = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    aws_smithy_types::DateTime::from_secs(seconds)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| seconds.to_string())
}

/// `3m12s`, `2h5m`, `4d3h`.
pub fn human_duration(duration: Duration) -> String {
    let s = duration.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// How long ago `then` was ("in 3m" when it is ahead).
pub fn age(now: SystemTime, then: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(past) => format!("{} ago", human_duration(past)),
        Err(ahead) => format!("in {}", human_duration(ahead.duration())),
    }
}

/// `[3/40] status…` on stderr, rewritten in place, only when stderr is a terminal.
pub struct Progress {
    enabled: bool,
    label: &'static str,
    total: usize,
}

impl Progress {
    pub fn new(label: &'static str, total: usize, json: bool) -> Self {
        Self {
            enabled: !json && std::io::stderr().is_terminal() && total > 1,
            label,
            total,
        }
    }

    pub fn tick(&self, done: usize) {
        if self.enabled {
            let mut stderr = std::io::stderr();
            let _ = write!(stderr, "\r\x1b[2K[{done}/{}] {}…", self.total, self.label);
            let _ = stderr.flush();
        }
    }

    pub fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_characters() {
        let text = table(
            &["USER", "STATE"],
            &[
                vec!["alice".into(), "\x1b[32m✔ ok\x1b[0m".into()],
                vec!["bo".into(), "✘ stuck".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "USER   STATE");
        assert_eq!(lines[1], "alice  \x1b[32m✔ ok\x1b[0m");
        assert_eq!(lines[2], "bo     ✘ stuck");
    }

    #[test]
    fn times_and_ages_read_well() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
        assert_eq!(rfc3339(t), "2030-01-01T00:00:00Z");
        assert_eq!(age(t + Duration::from_secs(75), t), "1m15s ago");
        assert_eq!(age(t, t + Duration::from_secs(7200)), "in 2h00m");
        assert_eq!(human_duration(Duration::from_secs(90_000)), "1d01h");
    }
}
