//! Reads the AWSCURRENT values of several secrets in one call (BatchGetSecretValue with a
//! `SecretIdList`): the port, and its adapter on the Secrets Manager client.

use crate::{AwsCallError, Sensitive};
use std::future::Future;

/// Most secrets one BatchGetSecretValue call takes in its `SecretIdList` (AWS API reference).
pub const MAX_SECRETS_PER_CALL: usize = 20;

/// What one call returned: the values it read, by secret name, and the secrets it could not
/// read, each with Secrets Manager's reason. A requested secret may be in neither list.
#[derive(Debug, Default)]
pub struct SecretBatch {
    pub values: Vec<(String, Sensitive)>,
    pub errors: Vec<SecretError>,
}

/// One secret Secrets Manager could not read: `ResourceNotFoundException`,
/// `InvalidRequestException` (scheduled for deletion), `AccessDeniedException`,
/// `DecryptionFailure`, ... The message is the service's, which never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretError {
    /// The name or ARN, as the request named the secret.
    pub secret_id: String,
    pub code: String,
    pub message: String,
}

pub trait SecretBatchReader: Send + Sync {
    /// The AWSCURRENT string values of `names` (at most [`MAX_SECRETS_PER_CALL`]) in one
    /// call. Per-secret failures are in [`SecretBatch::errors`]; `Err` means the call itself
    /// failed and nothing was read.
    fn read_current(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<SecretBatch, AwsCallError>> + Send;
}

#[derive(Clone, Debug)]
pub struct SecretsManagerBatchReader {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerBatchReader {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

impl SecretBatchReader for SecretsManagerBatchReader {
    async fn read_current(&self, names: &[String]) -> Result<SecretBatch, AwsCallError> {
        let mut batch = SecretBatch::default();
        let mut next = None;
        // A SecretIdList of up to 20 is answered in one page; the token is followed anyway, so
        // that a split answer could never drop a client.
        loop {
            let output = self
                .client
                .batch_get_secret_value()
                .set_secret_id_list(Some(names.to_vec()))
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("BatchGetSecretValue", &e))?;
            for entry in output.secret_values.unwrap_or_default() {
                if let (Some(name), Some(value)) = (entry.name, entry.secret_string) {
                    batch.values.push((name, Sensitive::new(value)));
                }
            }
            for error in output.errors.unwrap_or_default() {
                batch.errors.push(SecretError {
                    secret_id: error.secret_id.unwrap_or_default(),
                    code: error.error_code.unwrap_or_default(),
                    message: error.message.unwrap_or_default(),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(batch),
            }
        }
    }
}
