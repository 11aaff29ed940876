//! Loads the client registry: one SSM parameter per client under a path (users, CIDRs, usage
//! key; no secret, see `registry_entry`) and one Secrets Manager secret per client holding its
//! API key, `<prefix><client-id>`: `{"ClientId": "<client-id>", "ApiKey": "..."}`, and after
//! `keyrot clients rotate-key` also `"PreviousApiKey"` and `"PreviousApiKeyValidUntil"`
//! (RFC 3339): the key before, accepted until then.
//!
//! AWS calls per load, for E parameters under the path of which V parse: the
//! GetParametersByPath pages (at most 10 parameters a page, so at least `max(1, ceil(E / 10))`),
//! then `ceil(V / 20)` BatchGetSecretValue calls (a `SecretIdList` of up to 20 names each), at
//! most [`CONCURRENT_BATCHES`] at once.

use super::clients::{Client, PreviousApiKey};
use super::parameters::{ParameterLister, SsmParameterLister};
use super::registry_entry::{parse_entry, Entry};
use super::secret_batch::{
    SecretBatch, SecretBatchReader, SecretError, SecretsManagerBatchReader, MAX_SECRETS_PER_CALL,
};
use super::source_ip::CidrList;
use crate::{AwsCallError, Sensitive};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;
use tracing::{info, warn};

/// BatchGetSecretValue calls in flight at once. Its quota is 100 calls/s per account and
/// region, shared by every instance refreshing; four keep a cold start's reads to one or two
/// round trips up to 80 or 160 clients without bursting the quota when many instances start.
pub const CONCURRENT_BATCHES: usize = 4;

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

/// The registry on its two ports: the parameter listing and the batched secret reads.
#[derive(Clone, Debug)]
pub struct RegistrySource<P, S> {
    parameters: P,
    secrets: S,
    parameter_path: String,
    secret_prefix: String,
}

/// The registry on SSM and Secrets Manager, as authorizer-fn reads it.
pub type AwsClientSource = RegistrySource<SsmParameterLister, SecretsManagerBatchReader>;

impl AwsClientSource {
    pub fn new(
        ssm: aws_sdk_ssm::Client,
        secrets: aws_sdk_secretsmanager::Client,
        parameter_path: impl Into<String>,
        secret_prefix: impl Into<String>,
    ) -> Self {
        Self::with_ports(
            SsmParameterLister::new(ssm),
            SecretsManagerBatchReader::new(secrets),
            parameter_path,
            secret_prefix,
        )
    }
}

impl<P, S> RegistrySource<P, S> {
    pub fn with_ports(
        parameters: P,
        secrets: S,
        parameter_path: impl Into<String>,
        secret_prefix: impl Into<String>,
    ) -> Self {
        Self {
            parameters,
            secrets,
            parameter_path: parameter_path.into(),
            secret_prefix: secret_prefix.into(),
        }
    }

    fn secret_name(&self, entry: &Entry) -> String {
        format!("{}{}", self.secret_prefix, entry.id)
    }

    /// The clients of one batch whose API key was read. Every other entry is skipped and
    /// logged: an unreadable secret (scheduled for deletion, denied, a KMS failure, missing)
    /// locks out that client only.
    fn keyed(&self, entries: Vec<Entry>, batch: SecretBatch) -> Vec<Client> {
        let mut values: HashMap<String, Sensitive> = batch.values.into_iter().collect();
        let mut clients = Vec::with_capacity(entries.len());
        for entry in entries {
            let name = self.secret_name(&entry);
            let api_key = values
                .remove(&name)
                .and_then(|value| serde_json::from_str::<ClientKey>(value.expose()).ok());
            match api_key {
                Some(key) => clients.push(Client {
                    id: entry.id,
                    previous_api_key: key.previous(),
                    api_key: Sensitive::new(key.api_key),
                    users: entry.users,
                    cidrs: entry.cidrs,
                    usage_key: entry.usage_key,
                }),
                None => match batch.errors.iter().find(|e| names_secret(e, &name)) {
                    Some(error) => {
                        warn!(decision = "client_skipped", client_id = %entry.id, reason = %format!("{}: {}", error.code, error.message), "client API key secret is unreadable");
                    }
                    None => {
                        warn!(decision = "client_skipped", client_id = %entry.id, reason = "no API key secret (or no ApiKey in it)");
                    }
                },
            }
        }
        clients
    }
}

/// Whether `error` is about the secret `name`: named as requested, or by its ARN
/// (`arn:...:secret:<name>-<6 characters>`).
fn names_secret(error: &SecretError, name: &str) -> bool {
    if error.secret_id == name {
        return true;
    }
    error
        .secret_id
        .rsplit_once(":secret:")
        .and_then(|(_, rest)| rest.strip_prefix(name))
        .and_then(|suffix| suffix.strip_prefix('-'))
        .is_some_and(|random| random.len() == 6)
}

/// `entries` in groups of at most `size`, in order.
fn batches(entries: Vec<Entry>, size: usize) -> Vec<Vec<Entry>> {
    let mut groups: Vec<Vec<Entry>> = Vec::new();
    for entry in entries {
        match groups.last_mut() {
            Some(group) if group.len() < size => group.push(entry),
            _ => groups.push(vec![entry]),
        }
    }
    groups
}

impl<P: ParameterLister, S: SecretBatchReader> ClientSource for RegistrySource<P, S> {
    fn load(&self) -> impl Future<Output = Result<Vec<Client>, AwsCallError>> + Send {
        // Boxed: nested in the authorizer's handler, the load's future type is otherwise too
        // deep for rustc's layout computation (recursion limit).
        let load: LoadFuture<'_> = Box::pin(self.load_all());
        load
    }
}

type LoadFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Client>, AwsCallError>> + Send + 'a>>;

impl<P: ParameterLister, S: SecretBatchReader> RegistrySource<P, S> {
    async fn load_all(&self) -> Result<Vec<Client>, AwsCallError> {
        // Only the listing may fail the whole load (fail closed): without it nobody is known.
        let parameters = self.parameters.list(&self.parameter_path).await?;
        let listed = parameters.len();
        let entries: Vec<Entry> = parameters
            .iter()
            .filter_map(|(name, value)| parse_entry(&self.parameter_path, name, value))
            .collect();
        let groups = batches(entries, MAX_SECRETS_PER_CALL);
        let calls = groups.len();
        let read: Vec<(Vec<Entry>, Result<SecretBatch, AwsCallError>)> = stream::iter(groups)
            .map(|group| async move {
                let names: Vec<String> = group.iter().map(|e| self.secret_name(e)).collect();
                let batch = self.secrets.read_current(&names).await;
                (group, batch)
            })
            .buffered(CONCURRENT_BATCHES)
            .collect()
            .await;
        let mut clients = Vec::new();
        for (group, batch) in read {
            match batch {
                Ok(batch) => clients.extend(self.keyed(group, batch)),
                // A failed call (throttled past the SDK's retries, say) skips its clients,
                // as a failed read of one secret skips that client.
                Err(error) => {
                    for entry in group {
                        warn!(decision = "client_skipped", client_id = %entry.id, reason = %error, "client API key secret is unreadable");
                    }
                }
            }
        }
        info!(
            listed,
            clients = clients.len(),
            secret_calls = calls,
            "client registry loaded"
        );
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
