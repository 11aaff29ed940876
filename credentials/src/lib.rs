//! `keyrot-credentials`: hands keyrot's current IAM access key to AWS SDKs and tools
//! (credential_process, exec, a shared credentials file, shell exports), from a disk cache
//! refreshed only when keyrot expects a newer key. It speaks only HTTP(S) to the keyrot API.

pub mod api;
pub mod atomic;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod endpoint;
pub mod exec;
pub mod http;
pub mod key_times;
pub mod lock;
pub mod nofollow;
pub mod output;
pub mod private_dir;
pub mod profile_file;
pub mod provider;
pub mod secret;
pub mod settings;
pub mod write;

use cache::{Cache, CachedKey};
use cli::{Cli, Mode};
use clock::SystemClock;
use provider::{Provider, ProviderError};
use settings::{Settings, SettingsError};
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("no credentials file: set HOME or AWS_SHARED_CREDENTIALS_FILE, or pass --file")]
    NoCredentialsFile,
    #[error(transparent)]
    Write(#[from] write::WriteError),
    #[error("cannot run {program}: {source}")]
    Exec {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

/// Runs the mode `cli` asks for. Warnings go to stderr here; errors are the caller's to print.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    let settings = Settings::from_cli(&cli)?;
    let api = http::HttpApi::new(
        settings.endpoint.clone(),
        settings.api_key.clone(),
        settings.timeout_seconds,
    );
    let cache = Cache::new(
        &settings.cache_dir,
        settings.endpoint.as_str(),
        &settings.api_key,
        &settings.user,
    );
    // A fetch is at most three requests (token, key, key again with a new token).
    let lock_wait =
        Duration::from_secs(settings.timeout_seconds.saturating_mul(3).saturating_add(1));
    let provider = Provider {
        api: &api,
        cache: &cache,
        clock: &SystemClock,
        user: &settings.user,
        api_url: settings.endpoint.as_str(),
        lock_wait,
    };
    match cli.mode.unwrap_or(Mode::CredentialProcess) {
        Mode::CredentialProcess => {
            let key = current(&provider)?;
            print(&output::credential_process(&key))?;
            Ok(ExitCode::SUCCESS)
        }
        Mode::Env => {
            let key = current(&provider)?;
            print(&output::env_lines(&key))?;
            Ok(ExitCode::SUCCESS)
        }
        Mode::Exec { command } => {
            let key = current(&provider)?;
            exec::run(&command, &key).map_err(|source| Error::Exec {
                program: command
                    .first()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source,
            })
        }
        Mode::Write {
            profile,
            file,
            watch,
        } => {
            let file = file
                .or_else(write::default_file)
                .ok_or(Error::NoCredentialsFile)?;
            write_mode(&provider, &file, &profile, watch)
        }
    }
}

fn write_mode(
    provider: &Provider<'_>,
    file: &std::path::Path,
    profile: &str,
    watch: bool,
) -> Result<ExitCode, Error> {
    let mut written: Option<String> = None;
    loop {
        let key = match current(provider) {
            Ok(key) => key,
            // A daemon outlives API outages; a refusal (bad key, revoked user) still stops it.
            Err(Error::Provider(ProviderError::Api(error))) if watch && error.is_transient() => {
                warn(&format!("{error}; retrying in {} s", write::RETRY_SECONDS));
                std::thread::sleep(Duration::from_secs(write::RETRY_SECONDS.unsigned_abs()));
                continue;
            }
            Err(error) => return Err(error),
        };
        if written.as_deref() != Some(key.access_key_id.as_str()) {
            write::write_profile(file, profile, &key, write::LOCK_WAIT)?;
            written = Some(key.access_key_id.clone());
        }
        if !watch {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(write::sleep_after(&key, &SystemClock));
    }
}

fn current(provider: &Provider<'_>) -> Result<CachedKey, Error> {
    let outcome = provider.current()?;
    for warning in &outcome.warnings {
        warn(warning);
    }
    Ok(outcome.key)
}

fn warn(message: &str) {
    eprintln!("keyrot-credentials: warning: {message}");
}

/// Writes to stdout without panicking on a closed pipe (println! would).
fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(Error::Stdout)
}
