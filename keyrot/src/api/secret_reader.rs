//! Reads the AWSCURRENT version of a secret, with its version id and creation time.

use crate::{AwsCallError, Sensitive};
use std::future::Future;
use std::time::SystemTime;

#[derive(Debug, Clone)]
pub struct CurrentVersion {
    pub value: Sensitive,
    pub version_id: String,
    pub created: Option<SystemTime>,
}

pub trait SecretReader: Send + Sync {
    /// `None` when the secret does not exist or has no AWSCURRENT value.
    fn current(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<CurrentVersion>, AwsCallError>> + Send;
}

#[derive(Clone, Debug)]
pub struct SecretsManagerReader {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerReader {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }
}

impl SecretReader for SecretsManagerReader {
    async fn current(&self, secret_id: &str) -> Result<Option<CurrentVersion>, AwsCallError> {
        let output = match self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage("AWSCURRENT")
            .send()
            .await
        {
            Ok(output) => output,
            Err(error) => {
                let error = AwsCallError::from_sdk("GetSecretValue", &error);
                // A secret scheduled for deletion (an offboarded user) is refused with
                // InvalidRequestException "…marked for deletion": no key to hand out, as for
                // a secret that does not exist.
                if error.has_code("ResourceNotFoundException")
                    || (error.has_code("InvalidRequestException")
                        && error.message.contains("marked for deletion"))
                {
                    return Ok(None);
                }
                return Err(error);
            }
        };
        Ok(output.secret_string.map(|value| CurrentVersion {
            value: Sensitive::new(value),
            version_id: output.version_id.unwrap_or_default(),
            created: output
                .created_date
                .and_then(|date| SystemTime::try_from(date).ok()),
        }))
    }
}
