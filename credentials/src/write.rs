//! `write`: one profile of a shared credentials file kept current, once or (`--watch`) at
//! every `RefreshAfter`, for tools that read only the file. Writers of one file take turns
//! (a lock file beside it), or two keeping different profiles would each rewrite the file
//! without the other's change. A credentials file that is a symbolic link (dotfiles kept
//! elsewhere) is written through: the file it points to is replaced and the link stays.

use crate::cache::CachedKey;
use crate::clock::{Clock, Seconds};
use crate::lock::{lock, LockError};
use crate::profile_file::{self, UnsafeValue};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for another writer of the same file: one write takes milliseconds, so a lock
/// held this long belongs to a stuck process.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// As many links as Linux follows before giving up (ELOOP).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("refusing to write {path}: {source}")]
    Unsafe { path: String, source: UnsafeValue },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

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

/// Rewrites `profile` of `file` (or of the file it links to) with `key`, atomically and mode
/// 0600, waiting up to `wait` for another writer of it.
pub fn write_profile(
    file: &Path,
    profile: &str,
    key: &CachedKey,
    wait: Duration,
) -> Result<(), WriteError> {
    let shown = file.display().to_string();
    let (id, secret) = (&key.access_key_id, key.secret_access_key.expose());
    profile_file::check(profile, id, secret).map_err(|source| WriteError::Unsafe {
        path: shown.clone(),
        source,
    })?;
    let io = |source| WriteError::Io {
        path: shown.clone(),
        source,
    };
    let target = resolve(file).map_err(io)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::atomic::create_private_dir(dir).map_err(io)?;
    }
    let _lock = lock(&lock_path(&target), wait)?;
    let text = match std::fs::read_to_string(&target) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    let updated =
        profile_file::update(&text, profile, id, secret).map_err(|source| WriteError::Unsafe {
            path: shown.clone(),
            source,
        })?;
    crate::atomic::write_private(&target, updated.as_bytes()).map_err(io)
}

/// The file a write replaces: `file`, or where its chain of symbolic links ends (which may not
/// exist yet). Renaming over the link itself would turn it into a plain file.
fn resolve(file: &Path) -> std::io::Result<PathBuf> {
    let mut path = file.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                // A relative target is relative to the link's directory; join keeps an
                // absolute one as it is.
                path = match path.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => return Ok(path),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// `.credentials.lock` beside `credentials`: a file of its own, since the credentials file's
/// inode changes at every rename.
fn lock_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.lock"))
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
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyrot-write-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        dir
    }

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

    #[test]
    fn a_writer_waits_for_the_one_holding_the_lock() {
        let dir = temp("lock");
        let file = dir.join("credentials");
        let held = lock(&dir.join(".credentials.lock"), Duration::ZERO).expect("held");
        let busy = write_profile(&file, "p", &key(), Duration::from_millis(50));
        assert!(matches!(
            busy,
            Err(WriteError::Lock(LockError::Busy { .. }))
        ));
        assert!(
            !file.exists(),
            "nothing written while another writer holds the lock"
        );
        drop(held);
        write_profile(&file, "p", &key(), Duration::ZERO).expect("written");
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.contains("aws_access_key_id = AKIA1"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unsafe_profile_name_is_refused_before_the_file_is_touched() {
        let dir = temp("unsafe");
        let file = dir.join("credentials");
        let error =
            write_profile(&file, "p\n[default]", &key(), Duration::ZERO).expect_err("refused");
        assert!(matches!(error, WriteError::Unsafe { .. }), "{error}");
        assert!(error.to_string().contains("profile name"), "{error}");
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_file_is_written_through_and_the_link_kept() {
        let dir = temp("link");
        std::fs::create_dir_all(dir.join("dotfiles")).expect("dir");
        let real = dir.join("dotfiles").join("credentials");
        std::fs::write(&real, "[other]\nregion = x\n").expect("seed");
        let link = dir.join("credentials");
        std::os::unix::fs::symlink("dotfiles/credentials", &link).expect("symlink");
        write_profile(&link, "p", &key(), Duration::ZERO).expect("written");
        let metadata = std::fs::symlink_metadata(&link).expect("meta");
        assert!(metadata.file_type().is_symlink(), "the link is kept");
        let text = std::fs::read_to_string(&real).expect("read");
        assert!(text.starts_with("[other]\nregion = x\n") && text.contains("[p]\n"));
        assert!(dir.join("dotfiles").join(".credentials.lock").exists());
        // A dangling link creates the file it names.
        std::fs::remove_file(&real).expect("rm");
        write_profile(&link, "p", &key(), Duration::ZERO).expect("written");
        assert!(
            real.exists()
                && std::fs::symlink_metadata(&link)
                    .expect("m")
                    .file_type()
                    .is_symlink()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
