//! What the emergency revoke needs beyond the rotation's ports: starting a rotation, and the
//! clients that may read a user (who is affected).

use crate::rotation::SecretsManagerStore;
use crate::AwsCallError;
use std::future::Future;

pub trait RotationStarter: Send + Sync {
    /// RotateSecret with the configured function; the new version's id.
    fn start_rotation(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<String, AwsCallError>> + Send;
}

impl RotationStarter for SecretsManagerStore {
    async fn start_rotation(&self, secret_id: &str) -> Result<String, AwsCallError> {
        let output = self
            .client()
            .rotate_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("RotateSecret", &e))?;
        Ok(output.version_id.unwrap_or_default())
    }
}

pub trait ClientDirectory: Send + Sync {
    /// Ids of the clients whose registry entry lists `user`.
    fn readers_of(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<String>, AwsCallError>> + Send;
}

/// The client registry's SSM parameters (`{"users": [...], ...}` under a path).
pub struct SsmClientDirectory {
    ssm: aws_sdk_ssm::Client,
    path: String,
}

impl SsmClientDirectory {
    pub fn new(ssm: aws_sdk_ssm::Client, path: impl Into<String>) -> Self {
        Self {
            ssm,
            path: path.into(),
        }
    }
}

impl ClientDirectory for SsmClientDirectory {
    async fn readers_of(&self, user: &str) -> Result<Vec<String>, AwsCallError> {
        let parameters = crate::api::parameters::list_parameters(&self.ssm, &self.path).await?;
        let mut readers: Vec<String> = parameters
            .into_iter()
            .filter(|(_, value)| {
                serde_json::from_str::<serde_json::Value>(value)
                    .ok()
                    .and_then(|settings| settings.get("users").cloned())
                    .and_then(|users| users.as_array().cloned())
                    .is_some_and(|users| users.iter().any(|u| u.as_str() == Some(user)))
            })
            .map(|(name, _)| {
                name.strip_prefix(self.path.as_str())
                    .unwrap_or(&name)
                    .to_owned()
            })
            .collect();
        readers.sort();
        Ok(readers)
    }
}
