//! Opening a file without following a symbolic link at its last component, with std alone
//! (no O_NOFOLLOW without libc): look at the name (lstat), open it, then check the open file
//! is the very file looked at (same device and inode). A link planted or swapped in between
//! makes the open land on another inode, which is refused. Only regular files are opened, so a
//! FIFO cannot block a reader.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The whole content of the regular file `path`; `NotFound` if it does not exist.
pub fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    let before = regular(path)?;
    let mut file = File::open(path)?;
    same_file(path, &before, &file)?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)?;
    Ok(content)
}

/// Opens `path` for reading and writing, creating it mode 0600 if it is missing.
pub fn open_private(path: &Path) -> std::io::Result<File> {
    let before = match regular(path) {
        Err(error) if error.kind() == ErrorKind::NotFound => {
            // create_new is O_CREAT|O_EXCL, which never follows a link.
            match private_options().create_new(true).open(path) {
                Err(error) if error.kind() == ErrorKind::AlreadyExists => regular(path)?,
                other => return other,
            }
        }
        other => other?,
    };
    let file = private_options().open(path)?;
    same_file(path, &before, &file)?;
    Ok(file)
}

fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

fn regular(path: &Path) -> std::io::Result<Metadata> {
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Err(Error::other(format!(
            "{} is a symbolic link; refusing to follow it",
            path.display()
        )));
    }
    if !metadata.is_file() {
        return Err(Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(metadata)
}

#[cfg(unix)]
fn same_file(path: &Path, before: &Metadata, file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let after = file.metadata()?;
    if (after.dev(), after.ino()) != (before.dev(), before.ino()) {
        return Err(Error::other(format!(
            "{} was replaced while being opened; refusing it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn same_file(_path: &Path, _before: &Metadata, _file: &File) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn links_are_refused_files_are_read_and_created_private() {
        let dir = std::env::temp_dir().join(format!("keyrot-nofollow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let target = dir.join("target");
        std::fs::write(&target, b"theirs").expect("write");
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(read(&link).is_err(), "a link is not read through");
        assert!(open_private(&link).is_err(), "a link is not opened");
        assert_eq!(read(&target).expect("read"), b"theirs");
        assert_eq!(
            read(&dir.join("missing")).expect_err("missing").kind(),
            ErrorKind::NotFound
        );
        let fresh = dir.join("fresh");
        open_private(&fresh).expect("created");
        let mode = std::fs::metadata(&fresh)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        open_private(&fresh).expect("opened again");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_swapped_between_look_and_open_is_refused() {
        let dir = std::env::temp_dir().join(format!("keyrot-swap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (looked_at, opened) = (dir.join("a"), dir.join("b"));
        std::fs::write(&looked_at, b"a").expect("write");
        std::fs::write(&opened, b"b").expect("write");
        let before = std::fs::symlink_metadata(&looked_at).expect("meta");
        let file = File::open(&opened).expect("open");
        assert!(same_file(&looked_at, &before, &file).is_err());
        let file = File::open(&looked_at).expect("open");
        assert!(same_file(&looked_at, &before, &file).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
