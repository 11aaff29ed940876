//! Typed configuration of `authorizer-fn` and `api-fn`, read once from the environment.

use super::authorizer::AuthorizerSettings;
use super::endpoints::ApiSettings;
use super::source_ip::CidrList;
use super::token::TokenSettings;
use crate::config::{
    number_or, required, rotation_interval, text_or, ConfigError, DEFAULT_MANAGED_SECRET_PREFIX,
    DEFAULT_PUBLIC_KEYS_PARAMETER, DEFAULT_SIGNING_KEY_SECRET, MANAGED_SECRET_PREFIX,
    PUBLIC_KEYS_PARAMETER, SIGNING_KEY_SECRET_NAME,
};
use std::time::Duration;

pub const ALLOWED_CIDRS: &str = "KEYROT_ALLOWED_CIDRS";
pub const CLIENTS_PARAMETER_PATH: &str = "KEYROT_CLIENTS_PARAMETER_PATH";
pub const CLIENT_SECRET_PREFIX: &str = "KEYROT_CLIENT_SECRET_PREFIX";
pub const TOKEN_ISSUER: &str = "KEYROT_TOKEN_ISSUER";
pub const TOKEN_AUDIENCE: &str = "KEYROT_TOKEN_AUDIENCE";
pub const REGISTRY_TTL_SECONDS: &str = "KEYROT_REGISTRY_TTL_SECONDS";
pub const TOKEN_TTL_SECONDS: &str = "KEYROT_TOKEN_TTL_SECONDS";

/// Tokens live at most this long, whatever the configuration says.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 900;

#[derive(Debug, Clone)]
pub struct AuthorizerConfig {
    pub settings: AuthorizerSettings,
    pub clients_parameter_path: String,
    pub client_secret_prefix: String,
    pub public_keys_parameter: String,
    /// How long the registry and keys are reused; changes apply within this time.
    pub cache_ttl: Duration,
}

impl AuthorizerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let cidrs_text = required(&lookup, ALLOWED_CIDRS)?;
        let allowed_cidrs =
            CidrList::parse_comma_separated(&cidrs_text).map_err(|e| ConfigError {
                variable: ALLOWED_CIDRS,
                value: cidrs_text.clone(),
                reason: e.to_string(),
            })?;
        let mut path = text_or(&lookup, CLIENTS_PARAMETER_PATH, "/keyrot/clients/");
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(Self {
            settings: AuthorizerSettings {
                allowed_cidrs,
                issuer: required(&lookup, TOKEN_ISSUER)?,
                audience: required(&lookup, TOKEN_AUDIENCE)?,
            },
            clients_parameter_path: path,
            client_secret_prefix: text_or(&lookup, CLIENT_SECRET_PREFIX, "keyrot/clients/"),
            public_keys_parameter: text_or(
                &lookup,
                PUBLIC_KEYS_PARAMETER,
                DEFAULT_PUBLIC_KEYS_PARAMETER,
            ),
            cache_ttl: Duration::from_secs(number_or(&lookup, REGISTRY_TTL_SECONDS, 30, 0..=60)?),
        })
    }
}

pub fn api_settings_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<ApiSettings, ConfigError> {
    Ok(ApiSettings {
        token: TokenSettings {
            issuer: required(&lookup, TOKEN_ISSUER)?,
            audience: required(&lookup, TOKEN_AUDIENCE)?,
            ttl: Duration::from_secs(number_or(
                &lookup,
                TOKEN_TTL_SECONDS,
                120,
                10..=MAX_TOKEN_TTL_SECONDS,
            )?),
        },
        managed_secret_prefix: text_or(
            &lookup,
            MANAGED_SECRET_PREFIX,
            DEFAULT_MANAGED_SECRET_PREFIX,
        ),
        signing_key_secret: text_or(&lookup, SIGNING_KEY_SECRET_NAME, DEFAULT_SIGNING_KEY_SECRET),
        rotation_interval: rotation_interval(&lookup)?,
        signing_key_cache_ttl: Duration::from_secs(60),
    })
}

pub fn api_settings_from_env() -> Result<ApiSettings, ConfigError> {
    api_settings_from_lookup(|name| std::env::var(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn authorizer_requires_cidrs_issuer_audience_and_names_bad_values() {
        let base = [
            (ALLOWED_CIDRS, "10.0.0.0/8,2001:db8::/32"),
            (TOKEN_ISSUER, "iss"),
            (TOKEN_AUDIENCE, "aud"),
        ];
        let config = AuthorizerConfig::from_lookup(lookup(&base)).expect("valid");
        assert_eq!(config.clients_parameter_path, "/keyrot/clients/");
        assert_eq!(config.cache_ttl, Duration::from_secs(30));
        let missing = AuthorizerConfig::from_lookup(lookup(&base[1..])).unwrap_err();
        assert_eq!(missing.variable, ALLOWED_CIDRS);
        let bad = AuthorizerConfig::from_lookup(lookup(&[
            (ALLOWED_CIDRS, "10.0.0.0/8,nope"),
            (TOKEN_ISSUER, "i"),
            (TOKEN_AUDIENCE, "a"),
        ]))
        .unwrap_err();
        assert!(bad.to_string().contains("nope"), "{bad}");
        let ttl = AuthorizerConfig::from_lookup(lookup(&[
            base[0],
            base[1],
            base[2],
            (REGISTRY_TTL_SECONDS, "600"),
        ]))
        .unwrap_err();
        assert_eq!(ttl.variable, REGISTRY_TTL_SECONDS);
    }

    #[test]
    fn api_token_ttl_is_capped() {
        let base = [(TOKEN_ISSUER, "iss"), (TOKEN_AUDIENCE, "aud")];
        let settings = api_settings_from_lookup(lookup(&base)).expect("valid");
        assert_eq!(settings.token.ttl, Duration::from_secs(120));
        assert_eq!(settings.rotation_interval, Duration::from_secs(600));
        let too_long =
            api_settings_from_lookup(lookup(&[base[0], base[1], (TOKEN_TTL_SECONDS, "3600")]))
                .unwrap_err();
        assert_eq!(too_long.variable, TOKEN_TTL_SECONDS);
    }
}
