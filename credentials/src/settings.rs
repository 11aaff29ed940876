//! The settings every mode needs, checked once: the URL's transport, the user, the API key
//! (from a private file or the environment) and the cache directory.

use crate::cli::Cli;
use crate::endpoint::{Endpoint, EndpointError};
use crate::secret::Secret;
use std::path::{Path, PathBuf};

/// Read directly from the environment rather than through clap, whose help output would
/// otherwise print its value.
pub const API_KEY_ENV: &str = "KEYROT_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("missing --{flag} (or the {env} environment variable)")]
    Missing {
        flag: &'static str,
        env: &'static str,
    },
    #[error(
        "no API key: pass --api-key-file PATH (a file only you can read) or set {API_KEY_ENV}"
    )]
    NoApiKey,
    #[error("cannot read the API key file {path}: {source}")]
    ApiKeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the API key file {path} is readable by others (mode {mode:03o}): run chmod 600 {path}"
    )]
    ApiKeyFileMode { path: String, mode: u32 },
    #[error("the API key file {0} is empty")]
    ApiKeyEmpty(String),
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("no cache directory: set HOME or XDG_CACHE_HOME, or pass --cache-dir")]
    NoCacheDir,
}

#[derive(Debug)]
pub struct Settings {
    pub endpoint: Endpoint,
    pub user: String,
    pub api_key: Secret,
    pub cache_dir: PathBuf,
    pub timeout_seconds: u64,
}

impl Settings {
    pub fn from_cli(cli: &Cli) -> Result<Self, SettingsError> {
        let api = cli
            .api
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or(SettingsError::Missing {
                flag: "api",
                env: "KEYROT_API_URL",
            })?;
        let user = cli
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or(SettingsError::Missing {
                flag: "user",
                env: "KEYROT_USER",
            })?;
        let endpoint = Endpoint::parse(api)?;
        let api_key = match &cli.api_key_file {
            Some(path) => read_key_file(path)?,
            None => std::env::var(API_KEY_ENV)
                .ok()
                .map(|key| key.trim().to_owned())
                .filter(|key| !key.is_empty())
                .map(Secret::new)
                .ok_or(SettingsError::NoApiKey)?,
        };
        let cache_dir = cli
            .cache_dir
            .clone()
            .or_else(crate::cache::default_dir)
            .ok_or(SettingsError::NoCacheDir)?;
        Ok(Self {
            endpoint,
            user,
            api_key,
            cache_dir,
            timeout_seconds: cli.timeout_seconds,
        })
    }
}

fn read_key_file(path: &Path) -> Result<Secret, SettingsError> {
    let shown = path.display().to_string();
    let io = |source| SettingsError::ApiKeyFile {
        path: shown.clone(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SettingsError::ApiKeyFileMode { path: shown, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = metadata;
    let text = std::fs::read_to_string(path).map_err(io)?;
    let key = text.trim();
    if key.is_empty() {
        return Err(SettingsError::ApiKeyEmpty(shown));
    }
    Ok(Secret::new(key))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_file_must_be_private_and_not_empty() {
        let dir = std::env::temp_dir().join(format!("keyrot-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("api-key");
        std::fs::write(&path, "  the-key\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read_key_file(&path).expect_err("loose");
        assert!(error.to_string().contains("mode 644"), "{error}");
        assert!(!error.to_string().contains("the-key"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read_key_file(&path).expect("ok").expose(), "the-key");
        std::fs::write(&path, "\n").expect("write");
        assert!(matches!(
            read_key_file(&path),
            Err(SettingsError::ApiKeyEmpty(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
