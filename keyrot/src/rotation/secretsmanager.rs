//! [`SecretStore`] on the AWS SDK's Secrets Manager client.

use super::store::{SecretDescription, SecretStore, Stage};
use crate::{AwsCallError, Sensitive};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::Client;

#[derive(Clone, Debug)]
pub struct SecretsManagerStore {
    client: Client,
}

impl SecretsManagerStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl SecretStore for SecretsManagerStore {
    async fn describe(&self, secret_id: &str) -> Result<SecretDescription, AwsCallError> {
        let output = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DescribeSecret", &e))?;
        Ok(SecretDescription {
            arn: output.arn.unwrap_or_default(),
            name: output.name.unwrap_or_default(),
            rotation_enabled: output.rotation_enabled.unwrap_or(false),
            versions: output.version_ids_to_stages.unwrap_or_default(),
        })
    }

    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Stage,
    ) -> Result<Option<Sensitive>, AwsCallError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .set_version_id(version_id.map(str::to_owned))
            .version_stage(stage.label())
            .send()
            .await;
        value_or_none(result)
    }

    async fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &Sensitive,
    ) -> Result<(), AwsCallError> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose())
            .version_stages(Stage::Pending.label())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutSecretValue", &e))?;
        Ok(())
    }

    async fn count_versions(&self, secret_id: &str) -> Result<usize, AwsCallError> {
        let mut count = 0usize;
        let mut next = None;
        loop {
            let output = self
                .client
                .list_secret_version_ids()
                .secret_id(secret_id)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListSecretVersionIds", &e))?;
            count = count.saturating_add(output.versions.map_or(0, |versions| versions.len()));
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(count),
            }
        }
    }

    async fn move_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), AwsCallError> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(stage.label())
            .set_move_to_version_id(move_to.map(str::to_owned))
            .set_remove_from_version_id(remove_from.map(str::to_owned))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("UpdateSecretVersionStage", &e))?;
        Ok(())
    }
}

impl crate::iam_key::SecretVersions for SecretsManagerStore {
    async fn version_value(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<Option<Sensitive>, AwsCallError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .version_id(version_id)
            .send()
            .await;
        value_or_none(result)
    }
}

/// A GetSecretValue answer: the value, `None` for a version without one (or gone).
fn value_or_none<E: ProvideErrorMetadata, R>(
    result: Result<GetSecretValueOutput, SdkError<E, R>>,
) -> Result<Option<Sensitive>, AwsCallError> {
    match result {
        Ok(output) => Ok(output.secret_string.map(Sensitive::new)),
        Err(error) => {
            let error = AwsCallError::from_sdk("GetSecretValue", &error);
            if error.has_code("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(error)
            }
        }
    }
}
