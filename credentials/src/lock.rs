//! An exclusive lock between processes: an advisory lock on a lock file of its own (never the
//! file being replaced, whose inode changes at every rename), opened without following links.
//! Shared by the cache (one fetch at a time) and `write` (one writer of a credentials file).

use std::fs::{File, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot lock {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} stayed locked by another process for {seconds} s")]
    Busy { path: String, seconds: u64 },
}

/// Held while the caller works; dropping it (closing the file) releases the lock.
pub struct FileLock(#[allow(dead_code)] File);

/// Waits up to `wait` for the lock on `path` (created mode 0600 if missing).
pub fn lock(path: &Path, wait: Duration) -> Result<FileLock, LockError> {
    let shown = || path.display().to_string();
    let file = crate::nofollow::open_private(path).map_err(|source| LockError::Open {
        path: shown(),
        source,
    })?;
    let deadline = Instant::now().checked_add(wait);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(FileLock(file)),
            Err(TryLockError::WouldBlock) if deadline.is_some_and(|d| Instant::now() < d) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Busy {
                    path: shown(),
                    seconds: wait.as_secs(),
                })
            }
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Open {
                    path: shown(),
                    source,
                })
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_makes_others_wait_then_give_up_and_a_link_is_refused() {
        let dir = std::env::temp_dir().join(format!("keyrot-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.lock");
        let held = lock(&path, Duration::ZERO).expect("first");
        assert!(matches!(
            lock(&path, Duration::from_millis(50)),
            Err(LockError::Busy { .. })
        ));
        drop(held);
        lock(&path, Duration::ZERO).expect("free again");
        let link = dir.join("link.lock");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        assert!(matches!(
            lock(&link, Duration::ZERO),
            Err(LockError::Open { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
