//! Loads the client registry: one SSM parameter per client under a path (users, CIDRs, usage
//! key; no secret) and one Secrets Manager secret per client holding its API key.
//!
//! Parameter `<path><client-id>`: `{"users": ["alice"], "cidrs": ["203.0.113.0/24"], "usage_key": "..."}`
//! Secret `<prefix><client-id>`: `{"ClientId": "<client-id>", "ApiKey": "..."}`, and after
//! `keyrot clients rotate-key` also `"PreviousApiKey"` and `"PreviousApiKeyValidUntil"`
//! (RFC 3339): the key before, accepted until then.

use super::clients::{Client, PreviousApiKey};
use super::secret_reader::{SecretReader, SecretsManagerReader};
use super::source_ip::CidrList;
use crate::{AwsCallError, Sensitive};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::SystemTime;
use tracing::warn;

pub trait ClientSource: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<Vec<Client>, AwsCallError>> + Send;
}

/// A client's registry parameter: `{"users": [...], "cidrs": [...], "usage_key": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub users: Vec<String>,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_key: Option<String>,
}

impl ClientSettings {
    /// Parses a parameter value, CIDRs included; the error says what is wrong without
    /// echoing the value.
    pub fn parse(value: &str) -> Result<(Self, CidrList), String> {
        let settings: Self = serde_json::from_str(value)
            .map_err(|error| crate::json_error::describe_json_error(&error))?;
        let cidrs = CidrList::parse_all(settings.cidrs.iter().map(String::as_str))
            .map_err(|error| error.to_string())?;
        Ok((settings, cidrs))
    }
}

/// A client's API key secret. `Debug` never shows the keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key: Option<String>,
    /// RFC 3339 (UTC): the previous key is refused from then on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key_valid_until: Option<String>,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("client_id", &self.client_id)
            .field("api_key", &"<redacted>")
            .field(
                "previous_api_key",
                &self.previous_api_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "previous_api_key_valid_until",
                &self.previous_api_key_valid_until,
            )
            .finish()
    }
}

impl ClientKey {
    /// The previous key and the end of its grace; `None` when absent, incomplete or with a
    /// date that does not parse (the previous key is then refused: fail closed).
    pub fn previous(&self) -> Option<PreviousApiKey> {
        let key = self.previous_api_key.as_deref().filter(|k| !k.is_empty())?;
        let until = self.previous_api_key_valid_until.as_deref()?;
        let until = DateTime::from_str(until, Format::DateTime).ok()?;
        Some(PreviousApiKey {
            api_key: Sensitive::new(key),
            valid_until: SystemTime::try_from(until).ok()?,
        })
    }
}

#[derive(Clone, Debug)]
pub struct AwsClientSource {
    ssm: aws_sdk_ssm::Client,
    secrets: SecretsManagerReader,
    parameter_path: String,
    secret_prefix: String,
}

impl AwsClientSource {
    pub fn new(
        ssm: aws_sdk_ssm::Client,
        secrets: aws_sdk_secretsmanager::Client,
        parameter_path: impl Into<String>,
        secret_prefix: impl Into<String>,
    ) -> Self {
        Self {
            ssm,
            secrets: SecretsManagerReader::new(secrets),
            parameter_path: parameter_path.into(),
            secret_prefix: secret_prefix.into(),
        }
    }

    async fn api_key(&self, client_id: &str) -> Result<Option<ClientKey>, AwsCallError> {
        let secret_id = format!("{}{client_id}", self.secret_prefix);
        let current = self.secrets.current(&secret_id).await?;
        Ok(current
            .and_then(|version| serde_json::from_str::<ClientKey>(version.value.expose()).ok()))
    }
}

impl ClientSource for AwsClientSource {
    async fn load(&self) -> Result<Vec<Client>, AwsCallError> {
        let mut clients = Vec::new();
        let parameters =
            super::parameters::list_parameters(&self.ssm, &self.parameter_path).await?;
        for (name, value) in parameters {
            let id = name
                .strip_prefix(&self.parameter_path)
                .unwrap_or(&name)
                .trim_start_matches('/')
                .to_owned();
            // One broken entry must not lock every client out: skip it, loudly.
            let (settings, cidrs) = match ClientSettings::parse(&value) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    warn!(decision = "client_skipped", client_id = %id, reason = %reason, "client parameter is not valid");
                    continue;
                }
            };
            // An unreadable secret (scheduled for deletion: InvalidRequestException; denied by
            // a policy; a KMS failure) locks out this client only. Only the listing above may
            // fail the whole load.
            let api_key = match self.api_key(&id).await {
                Ok(Some(api_key)) => api_key,
                Ok(None) => {
                    warn!(decision = "client_skipped", client_id = %id, reason = "no API key secret (or no ApiKey in it)");
                    continue;
                }
                Err(error) => {
                    warn!(decision = "client_skipped", client_id = %id, reason = %error, "client API key secret is unreadable");
                    continue;
                }
            };
            clients.push(Client {
                id,
                previous_api_key: api_key.previous(),
                api_key: Sensitive::new(api_key.api_key),
                users: settings.users,
                cidrs,
                usage_key: settings.usage_key,
            });
        }
        Ok(clients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_key_needs_a_valid_end_of_grace() {
        let key = |until: Option<&str>| ClientKey {
            client_id: Some("ci".into()),
            api_key: "new".into(),
            previous_api_key: Some("old".into()),
            previous_api_key_valid_until: until.map(str::to_owned),
        };
        let previous = key(Some("2030-01-01T00:00:00Z")).previous().expect("valid");
        assert_eq!(previous.api_key.expose(), "old");
        assert_eq!(
            previous.valid_until,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000)
        );
        assert!(key(None).previous().is_none());
        assert!(key(Some("tomorrow")).previous().is_none());
        let shown = format!("{:?}", key(None));
        assert!(!shown.contains("old") && !shown.contains("new"), "{shown}");
        let parsed: ClientKey =
            serde_json::from_str(r#"{"ClientId":"ci","ApiKey":"k"}"#).expect("old format");
        assert!(parsed.previous().is_none());
    }

    #[test]
    fn settings_parse_with_their_cidrs() {
        let (settings, cidrs) =
            ClientSettings::parse(r#"{"users":["alice"],"cidrs":["10.0.0.0/8"]}"#).expect("ok");
        assert_eq!(settings.users, vec!["alice"]);
        assert!(!cidrs.is_empty());
        assert!(ClientSettings::parse(r#"{"users":["a"],"cidrs":["nope"]}"#).is_err());
        assert!(ClientSettings::parse(r#"{"cidrs":[]}"#).is_err());
    }
}
