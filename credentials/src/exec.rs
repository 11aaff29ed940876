//! `exec`: the command replaces this process (on Unix), so its exit status, signals and
//! terminal are its own, with the key in its environment and none of the helper's settings:
//! every `KEYROT_*` variable is withheld, not only `KEYROT_API_KEY`, so a secret setting added
//! later cannot leak by being forgotten here. A command that needs one sets it itself
//! (`exec -- env KEYROT_X=… cmd`).

use crate::cache::CachedKey;
use std::ffi::{OsStr, OsString};
use std::process::{Command, ExitCode};

const WITHHELD_PREFIX: &[u8] = b"KEYROT_";
/// A session token from another source would be sent with this key and fail every request.
/// botocore still reads the legacy `AWS_SECURITY_TOKEN` when `AWS_SESSION_TOKEN` is unset.
pub const STALE_TOKENS: [&str; 2] = ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"];

pub fn run(command: &[OsString], key: &CachedKey) -> Result<ExitCode, std::io::Error> {
    let inherited = std::env::vars_os().map(|(name, _)| name);
    let mut child = prepare(command, key, inherited)?;
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

/// The child: `command` with the key set, and the stale tokens and helper's variables among
/// `inherited` (the names in this process's environment) removed.
fn prepare(
    command: &[OsString],
    key: &CachedKey,
    inherited: impl Iterator<Item = OsString>,
) -> Result<Command, std::io::Error> {
    let Some((program, args)) = command.split_first() else {
        return Err(std::io::Error::other("no command given"));
    };
    let mut child = Command::new(program);
    for name in inherited.filter(|name| is_withheld(name)) {
        child.env_remove(name);
    }
    for name in STALE_TOKENS {
        child.env_remove(name);
    }
    child
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", key.secret_access_key.expose());
    Ok(child)
}

/// `KEYROT_…`, in any case (Windows names are case-insensitive).
fn is_withheld(name: &OsStr) -> bool {
    name.as_encoded_bytes()
        .get(..WITHHELD_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(WITHHELD_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::collections::HashMap;

    #[test]
    fn the_child_gets_the_key_and_none_of_the_helpers_variables_or_stale_tokens() {
        let key = CachedKey {
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret::new("s"),
            expiration: 2_000,
            refresh_after: 1_600,
            fetched_at: 1_000,
        };
        let inherited = ["KEYROT_API_KEY", "KEYROT_USER", "keyrot_x", "PATH", "HOME"];
        let command = [OsString::from("aws"), OsString::from("s3")];
        let child = prepare(&command, &key, inherited.iter().map(OsString::from)).expect("ok");
        let changes: HashMap<&OsStr, Option<&OsStr>> = child.get_envs().collect();
        for removed in [
            "KEYROT_API_KEY",
            "KEYROT_USER",
            "keyrot_x",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
        ] {
            assert_eq!(
                changes.get(OsStr::new(removed)),
                Some(&None),
                "{removed} is removed"
            );
        }
        assert!(
            !changes.contains_key(OsStr::new("PATH")),
            "PATH is inherited"
        );
        assert_eq!(
            changes.get(OsStr::new("AWS_ACCESS_KEY_ID")),
            Some(&Some(OsStr::new("AKIA1")))
        );
        assert!(prepare(&[], &key, std::iter::empty()).is_err());
    }
}
