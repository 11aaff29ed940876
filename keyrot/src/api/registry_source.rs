//! Loads the client registry: one SSM parameter per client under a path (users, CIDRs, usage
//! key; no secret) and one Secrets Manager secret per client holding its API key.
//!
//! Parameter `<path><client-id>`: `{"users": ["alice"], "cidrs": ["203.0.113.0/24"], "usage_key": "..."}`
//! Secret `<prefix><client-id>`: `{"ClientId": "<client-id>", "ApiKey": "..."}`

use super::clients::Client;
use super::secret_reader::{SecretReader, SecretsManagerReader};
use super::source_ip::CidrList;
use crate::{AwsCallError, Sensitive};
use serde::Deserialize;
use std::future::Future;
use tracing::warn;

pub trait ClientSource: Send + Sync {
    fn load(&self) -> impl Future<Output = Result<Vec<Client>, AwsCallError>> + Send;
}

#[derive(Debug, Deserialize)]
struct ClientSettings {
    users: Vec<String>,
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    usage_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ClientKey {
    api_key: String,
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

    async fn api_key(&self, client_id: &str) -> Result<Option<Sensitive>, AwsCallError> {
        let secret_id = format!("{}{client_id}", self.secret_prefix);
        let current = self.secrets.current(&secret_id).await?;
        Ok(current
            .and_then(|version| serde_json::from_str::<ClientKey>(version.value.expose()).ok())
            .map(|key| Sensitive::new(key.api_key)))
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
            let settings = match serde_json::from_str::<ClientSettings>(&value) {
                Ok(settings) => settings,
                Err(error) => {
                    warn!(decision = "client_skipped", client_id = %id, reason = %crate::json_error::describe_json_error(&error), "client parameter is not valid");
                    continue;
                }
            };
            let cidrs = match CidrList::parse_all(settings.cidrs.iter().map(String::as_str)) {
                Ok(cidrs) => cidrs,
                Err(error) => {
                    warn!(decision = "client_skipped", client_id = %id, reason = %error, "client parameter is not valid");
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
                api_key,
                users: settings.users,
                cidrs,
                usage_key: settings.usage_key,
            });
        }
        Ok(clients)
    }
}
