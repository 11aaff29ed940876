//! `write`: one profile of a shared credentials file kept current, once or (`--watch`) at
//! every `RefreshAfter`, for tools that read only the file.

use crate::cache::CachedKey;
use crate::clock::{Clock, Seconds};
use crate::profile_file;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// While the API is down (a cached key served) or a fetch fails transiently, the watch loop
/// retries this often rather than at a `RefreshAfter` already past.
pub const RETRY_SECONDS: Seconds = 10;
/// Longest sleep between checks, so a suspended laptop catches up within the hour.
const MAX_SLEEP_SECONDS: Seconds = 3600;

/// `~/.aws/credentials`, the AWS tools' default.
pub fn default_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| PathBuf::from(home).join(".aws").join("credentials"))
}

/// Rewrites `profile` of `file` with `key`, atomically and mode 0600.
pub fn write_profile(file: &Path, profile: &str, key: &CachedKey) -> std::io::Result<()> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(error),
    };
    let updated = profile_file::update(
        &text,
        profile,
        &key.access_key_id,
        key.secret_access_key.expose(),
    );
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::atomic::create_private_dir(dir)?;
    }
    crate::atomic::write_private(file, updated.as_bytes())
}

/// How long the watch loop sleeps after handing out `key`.
pub fn sleep_after(key: &CachedKey, clock: &dyn Clock) -> Duration {
    let now = clock.now();
    let seconds = if key.is_fresh(now) {
        key.refresh_after.saturating_sub(now)
    } else {
        RETRY_SECONDS
    };
    Duration::from_secs(seconds.clamp(1, MAX_SLEEP_SECONDS).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    struct At(Seconds);
    impl Clock for At {
        fn now(&self) -> Seconds {
            self.0
        }
    }

    fn key() -> CachedKey {
        CachedKey {
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret::new("s"),
            expiration: 2_000,
            refresh_after: 1_600,
            fetched_at: 1_000,
        }
    }

    #[test]
    fn sleeps_until_refresh_after_or_retries_soon() {
        assert_eq!(sleep_after(&key(), &At(1_000)), Duration::from_secs(600));
        assert_eq!(sleep_after(&key(), &At(1_599)), Duration::from_secs(1));
        assert_eq!(
            sleep_after(&key(), &At(1_700)),
            Duration::from_secs(RETRY_SECONDS.unsigned_abs())
        );
    }
}
