//! `exec`: the command replaces this process (on Unix), so its exit status, signals and
//! terminal are its own, with the key in its environment.

use crate::cache::CachedKey;
use std::ffi::OsString;
use std::process::{Command, ExitCode};

pub fn run(command: &[OsString], key: &CachedKey) -> Result<ExitCode, std::io::Error> {
    let Some((program, args)) = command.split_first() else {
        return Err(std::io::Error::other("no command given"));
    };
    let mut child = Command::new(program);
    child
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key.expose())
        // Signing with a session token from elsewhere would make every request fail.
        .env_remove("AWS_SESSION_TOKEN");
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Returns only if the command could not be started.
        Err(child.exec())
    }
    #[cfg(not(unix))]
    {
        let status = child.status()?;
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1);
        Ok(ExitCode::from(code))
    }
}
