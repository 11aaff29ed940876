//! The cache directory must be this user's own before anything in it is trusted: a directory
//! another user owns or can write to could hold their key in place of keyrot's (every AWS call
//! would then go to their account) or read ours. A missing directory is created mode 0700; an
//! existing one is checked, never repaired, since chmod on someone else's directory would
//! hide the problem rather than fix it.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("cannot create the cache directory {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot check the cache directory {path}: {source}")]
    Inspect {
        path: String,
        source: std::io::Error,
    },
    #[error("the cache directory {path} is a symbolic link: pass the directory it points to as --cache-dir")]
    Symlink { path: String },
    #[error("the cache directory {path} is not a directory")]
    NotDirectory { path: String },
    #[error("the cache directory {path} belongs to user id {owner}, not to this user (id {me}): remove it or pass another --cache-dir")]
    Owner { path: String, owner: u32, me: u32 },
    #[error("the cache directory {path} is open to group or others (mode {mode:03o}): run chmod 700 {path}")]
    Mode { path: String, mode: u32 },
}

/// Creates `dir` (mode 0700) if it is missing, then checks it is a real directory (not a link
/// someone could re-point), owned by this process's user, with no group or other bits.
pub fn ensure(dir: &Path) -> Result<(), DirError> {
    let path = dir.display().to_string();
    let metadata = match std::fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            crate::atomic::create_private_dir(dir).map_err(|source| DirError::Create {
                path: path.clone(),
                source,
            })?;
            std::fs::symlink_metadata(dir)
        }
        other => other,
    }
    .map_err(|source| DirError::Inspect {
        path: path.clone(),
        source,
    })?;
    check(&path, &metadata)
}

#[cfg(unix)]
fn check(path: &str, metadata: &std::fs::Metadata) -> Result<(), DirError> {
    use std::os::unix::fs::MetadataExt;
    let me = current_uid().map_err(|source| DirError::Inspect {
        path: path.to_owned(),
        source,
    })?;
    judge(
        path,
        metadata.file_type(),
        metadata.uid(),
        metadata.mode(),
        me,
    )
}

#[cfg(not(unix))]
fn check(path: &str, metadata: &std::fs::Metadata) -> Result<(), DirError> {
    // No owner or mode bits to compare: only the kind of file is checked.
    judge(path, metadata.file_type(), 0, 0, 0)
}

fn judge(
    path: &str,
    kind: std::fs::FileType,
    owner: u32,
    mode: u32,
    me: u32,
) -> Result<(), DirError> {
    let path = path.to_owned();
    if kind.is_symlink() {
        return Err(DirError::Symlink { path });
    }
    if !kind.is_dir() {
        return Err(DirError::NotDirectory { path });
    }
    if owner != me {
        return Err(DirError::Owner { path, owner, me });
    }
    if mode & 0o077 != 0 {
        return Err(DirError::Mode {
            path,
            mode: mode & 0o777,
        });
    }
    Ok(())
}

/// This process's effective user id, without libc: a new pipe belongs to the effective
/// user that made it (Linux, macOS and the BSDs all stat it so), the same id a file this
/// process creates gets. Nothing is written to disk.
#[cfg(unix)]
pub fn current_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let (reader, _writer) = std::io::pipe()?;
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
    Ok(file.metadata()?.uid())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("keyrot-pdir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn the_current_uid_is_the_owner_of_a_new_file() {
        let dir = temp("uid");
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("probe");
        std::fs::write(&file, b"").expect("write");
        let owner = std::fs::metadata(&file).expect("meta").uid();
        assert_eq!(current_uid().expect("uid"), owner);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_dir_is_created_0700_and_accepted() {
        let dir = temp("fresh").join("nested");
        ensure(&dir).expect("created");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        ensure(&dir).expect("accepted again");
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }

    #[test]
    fn a_dir_open_to_others_is_refused_and_left_alone() {
        let dir = temp("loose");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let error = ensure(&dir).expect_err("refused");
        assert!(
            matches!(error, DirError::Mode { mode: 0o755, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("chmod 700"), "{error}");
        let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "not silently repaired");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_dir_of_another_user_is_refused() {
        let dir = temp("owner");
        std::fs::create_dir_all(&dir).expect("dir");
        let kind = std::fs::symlink_metadata(&dir).expect("meta").file_type();
        let error = judge("/c", kind, 4242, 0o40700, 1000).expect_err("refused");
        assert!(
            error.to_string().contains("belongs to user id 4242"),
            "{error}"
        );
        // Under root the real thing can be staged too.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        if std::os::unix::fs::chown(&dir, Some(4242), None).is_ok() {
            assert!(matches!(
                ensure(&dir),
                Err(DirError::Owner { owner: 4242, .. })
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_dir_is_refused() {
        let real = temp("real");
        let link = temp("link");
        std::fs::create_dir_all(&real).expect("dir");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(matches!(ensure(&link), Err(DirError::Symlink { .. })));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&real);
    }
}
