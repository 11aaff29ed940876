//! Typed configuration read once from the environment, with a clear error for a bad value.

use crate::backoff::Backoff;
use crate::iam_key::KeyLifetime;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

/// Settings of `rotation-fn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    /// How long testSecret waits for a new key to be accepted by STS. New IAM keys usually
    /// work after 5–15 s; the function timeout must exceed this.
    pub verify_backoff: Backoff,
    /// The key lifetime contract's promise and how long createSecret may wait for one.
    pub lifetime: KeyLifetime,
    /// Managed IAM key secrets are named this prefix followed by the user name.
    pub managed_prefix: String,
    /// Where the client registry's parameters are (the emergency revoke names who is affected).
    pub clients_parameter_path: String,
    /// The signing key secret's name; every other secret is an IAM access key secret.
    pub signing_key_secret: String,
    /// The SSM parameter the signing key's public halves are published to.
    pub public_keys_parameter: String,
    /// Sender and recipient of failure mail; `None` when no sender is configured.
    pub failure_mail: Option<(String, String)>,
    /// Versions younger than this count against the version quota.
    pub version_retention: Duration,
    /// How many kept versions a secret may hold before a rotation is refused up front.
    pub version_limit: usize,
    /// The secret operators record an emergency revoke in before asking for it.
    pub revoke_requests_secret: String,
}

pub const SENDER_EMAIL: &str = "KEYROT_SENDER_EMAIL";
pub const ROTATION_INTERVAL_MINUTES: &str = "KEYROT_ROTATION_INTERVAL_MINUTES";
/// Seconds instead of minutes, for the local stack's compressed time; wins when set.
pub const ROTATION_INTERVAL_SECONDS: &str = "KEYROT_ROTATION_INTERVAL_SECONDS";
pub const MANAGED_SECRET_PREFIX: &str = "KEYROT_MANAGED_SECRET_PREFIX";
pub const DEFAULT_MANAGED_SECRET_PREFIX: &str = "keyrot/iam/";
pub const PROMISE_WAIT_MAX_MS: &str = "KEYROT_PROMISE_WAIT_MAX_MS";
/// How long Secrets Manager keeps every version, for the version count: AWS's 24 hours, or
/// less in the local stack's compressed time.
pub const VERSION_RETENTION_SECONDS: &str = "KEYROT_VERSION_RETENTION_SECONDS";
/// Secrets Manager's version quota per secret (about 100 on AWS); the local stack sets its own.
pub const VERSION_LIMIT: &str = "KEYROT_VERSION_LIMIT";
pub const CLIENTS_PARAMETER_PATH: &str = "KEYROT_CLIENTS_PARAMETER_PATH";
pub const REVOKE_REQUESTS_SECRET: &str = "KEYROT_REVOKE_REQUESTS_SECRET";
pub const DEFAULT_CLIENTS_PARAMETER_PATH: &str = "/keyrot/clients/";

/// SSM paths are compared as prefixes of parameter names: always end them with a slash.
pub fn with_trailing_slash(mut path: String) -> String {
    if !path.ends_with('/') {
        path.push('/');
    }
    path
}

/// The rotation interval, shared by api-fn (which promises keys for it) and rotation-fn
/// (which keeps them for it): `KEYROT_ROTATION_INTERVAL_SECONDS`, else `..._MINUTES`, else 10
/// minutes.
pub fn rotation_interval(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Duration, ConfigError> {
    if lookup(ROTATION_INTERVAL_SECONDS).is_some_and(|v| !v.trim().is_empty()) {
        let seconds = number_or(lookup, ROTATION_INTERVAL_SECONDS, 600, 5..=86_400)?;
        return Ok(Duration::from_secs(seconds));
    }
    let minutes = number_or(lookup, ROTATION_INTERVAL_MINUTES, 10, 1..=1440)?;
    Ok(Duration::from_secs(minutes.saturating_mul(60)))
}
pub const ADMIN_EMAIL: &str = "KEYROT_ADMIN_EMAIL";

pub const SIGNING_KEY_SECRET_NAME: &str = "KEYROT_SIGNING_KEY_SECRET_NAME";
pub const PUBLIC_KEYS_PARAMETER: &str = "KEYROT_PUBLIC_KEYS_PARAMETER";
pub const DEFAULT_SIGNING_KEY_SECRET: &str = "keyrot/signing-key";
pub const DEFAULT_PUBLIC_KEYS_PARAMETER: &str = "/keyrot/signing-public-keys";

/// A variable's value, or `default` when unset; empty counts as unset.
pub(crate) fn text_or(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: &str,
) -> String {
    lookup(variable)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A variable that must be set.
pub(crate) fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<String, ConfigError> {
    lookup(variable)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ConfigError {
            variable,
            value: String::new(),
            reason: "must be set".into(),
        })
}

/// A whole number within `range`, or `default` when unset.
pub(crate) fn number_or(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(value) = lookup(variable).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(ConfigError {
            variable,
            value,
            reason: format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
}

impl RotationConfig {
    pub const VERIFY_MAX_WAIT: &'static str = "KEYROT_VERIFY_MAX_WAIT_MS";
    pub const VERIFY_INITIAL_DELAY: &'static str = "KEYROT_VERIFY_INITIAL_DELAY_MS";
    pub const VERIFY_MAX_DELAY: &'static str = "KEYROT_VERIFY_MAX_DELAY_MS";

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let millis = |variable: &'static str, default: u64, max: u64| {
            duration_ms(variable, lookup(variable), default, max)
        };
        let verify_backoff = Backoff {
            initial: millis(Self::VERIFY_INITIAL_DELAY, 1_000, 60_000)?,
            max_delay: millis(Self::VERIFY_MAX_DELAY, 8_000, 120_000)?,
            max_wait: millis(Self::VERIFY_MAX_WAIT, 60_000, 600_000)?,
        };
        if verify_backoff.initial.is_zero() {
            return Err(ConfigError {
                variable: Self::VERIFY_INITIAL_DELAY,
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let interval = rotation_interval(&lookup)?;
        // The wait absorbs the previous rotation's STS wait on the tick; a quarter of the
        // interval keeps it small against the interval in compressed local time.
        let max_wait = millis(PROMISE_WAIT_MAX_MS, 60_000, 600_000)?.min(interval / 4);
        Ok(Self {
            verify_backoff,
            lifetime: KeyLifetime { interval, max_wait },
            managed_prefix: text_or(
                &lookup,
                MANAGED_SECRET_PREFIX,
                DEFAULT_MANAGED_SECRET_PREFIX,
            ),
            clients_parameter_path: with_trailing_slash(text_or(
                &lookup,
                CLIENTS_PARAMETER_PATH,
                DEFAULT_CLIENTS_PARAMETER_PATH,
            )),
            signing_key_secret: text_or(
                &lookup,
                SIGNING_KEY_SECRET_NAME,
                DEFAULT_SIGNING_KEY_SECRET,
            ),
            public_keys_parameter: text_or(
                &lookup,
                PUBLIC_KEYS_PARAMETER,
                DEFAULT_PUBLIC_KEYS_PARAMETER,
            ),
            failure_mail: failure_mail(&lookup)?,
            revoke_requests_secret: text_or(
                &lookup,
                REVOKE_REQUESTS_SECRET,
                crate::revoke::DEFAULT_REVOKE_REQUESTS_SECRET,
            ),
            version_retention: Duration::from_secs(number_or(
                &lookup,
                VERSION_RETENTION_SECONDS,
                crate::rotation::VERSION_RETENTION.as_secs(),
                1..=crate::rotation::VERSION_RETENTION.as_secs(),
            )?),
            version_limit: usize::try_from(number_or(
                &lookup,
                VERSION_LIMIT,
                crate::rotation::VERSION_LIMIT as u64,
                2..=10_000,
            )?)
            .unwrap_or(crate::rotation::VERSION_LIMIT),
        })
    }
}

/// Both addresses, or neither: a sender without an admin address is a mistake worth stopping on.
fn failure_mail(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, String)>, ConfigError> {
    let sender = text_or(lookup, SENDER_EMAIL, "");
    if sender.is_empty() {
        return Ok(None);
    }
    let admin = required(lookup, ADMIN_EMAIL)?;
    for (variable, address) in [(SENDER_EMAIL, &sender), (ADMIN_EMAIL, &admin)] {
        if !address.contains('@') {
            return Err(ConfigError {
                variable,
                value: address.clone(),
                reason: "must be an email address".into(),
            });
        }
    }
    Ok(Some((sender, admin)))
}

fn duration_ms(
    variable: &'static str,
    value: Option<String>,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(Duration::from_millis(default));
    };
    match value.trim().parse::<u64>() {
        Ok(ms) if ms <= max => Ok(Duration::from_millis(ms)),
        Ok(_) => Err(ConfigError {
            variable,
            value,
            reason: format!("must be at most {max} (milliseconds)"),
        }),
        Err(_) => Err(ConfigError {
            variable,
            value,
            reason: "must be a whole number of milliseconds".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<RotationConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RotationConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_fit_iam_propagation() {
        let backoff = config(&[]).expect("defaults").verify_backoff;
        assert_eq!(backoff.max_wait, Duration::from_secs(60));
        assert_eq!(backoff.initial, Duration::from_secs(1));
    }

    #[test]
    fn reads_overrides_and_names_the_bad_variable() {
        let backoff = config(&[(RotationConfig::VERIFY_MAX_WAIT, "250")])
            .expect("valid")
            .verify_backoff;
        assert_eq!(backoff.max_wait, Duration::from_millis(250));
        let error = config(&[(RotationConfig::VERIFY_MAX_WAIT, "ten")]).unwrap_err();
        assert_eq!(error.variable, RotationConfig::VERIFY_MAX_WAIT);
        assert!(error.to_string().contains("whole number"));
        let too_big = config(&[(RotationConfig::VERIFY_MAX_WAIT, "9999999")]).unwrap_err();
        assert!(too_big.to_string().contains("at most"));
        assert!(config(&[(RotationConfig::VERIFY_INITIAL_DELAY, "0")]).is_err());
    }

    #[test]
    fn interval_and_promise_wait() {
        let defaults = config(&[]).expect("defaults");
        assert_eq!(defaults.lifetime.interval, Duration::from_secs(600));
        assert_eq!(defaults.lifetime.max_wait, Duration::from_secs(60));
        assert_eq!(defaults.managed_prefix, "keyrot/iam/");
        let minutes = config(&[(ROTATION_INTERVAL_MINUTES, "15")]).expect("valid");
        assert_eq!(minutes.lifetime.interval, Duration::from_secs(900));
        let compressed = config(&[
            (ROTATION_INTERVAL_MINUTES, "1"),
            (ROTATION_INTERVAL_SECONDS, "8"),
        ])
        .expect("valid");
        assert_eq!(compressed.lifetime.interval, Duration::from_secs(8));
        assert_eq!(compressed.lifetime.max_wait, Duration::from_secs(2));
        assert_eq!(
            config(&[(ROTATION_INTERVAL_SECONDS, "1")])
                .unwrap_err()
                .variable,
            ROTATION_INTERVAL_SECONDS
        );
        assert_eq!(
            config(&[(ROTATION_INTERVAL_MINUTES, "0")])
                .unwrap_err()
                .variable,
            ROTATION_INTERVAL_MINUTES
        );
    }

    #[test]
    fn failure_mail_needs_both_addresses() {
        assert_eq!(config(&[]).expect("no mail").failure_mail, None);
        let both = config(&[
            (SENDER_EMAIL, "keyrot@example.com"),
            (ADMIN_EMAIL, "ops@example.com"),
        ])
        .expect("mail");
        assert_eq!(
            both.failure_mail,
            Some(("keyrot@example.com".into(), "ops@example.com".into()))
        );
        assert_eq!(
            config(&[(SENDER_EMAIL, "keyrot@example.com")])
                .unwrap_err()
                .variable,
            ADMIN_EMAIL
        );
        assert_eq!(
            config(&[(SENDER_EMAIL, "nope"), (ADMIN_EMAIL, "ops@example.com")])
                .unwrap_err()
                .variable,
            SENDER_EMAIL
        );
    }
}
