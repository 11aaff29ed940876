//! [`SecretStore`] on the AWS SDK's Secrets Manager client.

use super::store::{SecretDescription, SecretStore, Stage};
use crate::iam_key::SiblingSecret;
use crate::{AwsCallError, Sensitive};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
use aws_sdk_secretsmanager::Client;
use std::time::SystemTime;

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
            last_rotated: output
                .last_rotated_date
                .and_then(|date| SystemTime::try_from(date).ok()),
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

    async fn count_kept_versions(
        &self,
        secret_id: &str,
        kept_since: SystemTime,
    ) -> Result<usize, AwsCallError> {
        let versions = self.all_versions(secret_id).await?;
        Ok(versions
            .iter()
            .filter(|version| {
                let labelled = !version.version_stages().is_empty();
                let young = version
                    .created_date()
                    .and_then(|date| SystemTime::try_from(*date).ok())
                    .is_none_or(|created| created > kept_since);
                labelled || young
            })
            .count())
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

impl SecretsManagerStore {
    /// Every version of the secret, deprecated (unlabelled) ones included, all pages.
    async fn all_versions(
        &self,
        secret_id: &str,
    ) -> Result<Vec<aws_sdk_secretsmanager::types::SecretVersionsListEntry>, AwsCallError> {
        let mut pages = self
            .client
            .list_secret_version_ids()
            .secret_id(secret_id)
            .include_deprecated(true)
            .max_results(100)
            .into_paginator()
            .send();
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsCallError::from_sdk("ListSecretVersionIds", &e))?;
            versions.extend(page.versions.unwrap_or_default());
        }
        Ok(versions)
    }
}

impl crate::iam_key::SecretVersions for SecretsManagerStore {
    async fn sibling(&self, secret_id: &str) -> Result<Option<SiblingSecret>, AwsCallError> {
        // The fleet's DescribeSecret reading; its fleet tag does not matter here.
        let described = crate::fleet::FleetSecrets::describe(self, secret_id, "").await?;
        let Some(described) = described.filter(|secret| secret.deleted.is_none()) else {
            return Ok(None);
        };
        let current = self.get_value(secret_id, None, Stage::Current).await?;
        // Only while it rotates: whether that rotation carries its key forward.
        let pending = match described.rotating {
            true => self.get_value(secret_id, None, Stage::Pending).await?,
            false => None,
        };
        Ok(Some(SiblingSecret {
            current,
            pending,
            rotating: described.rotating,
            last_rotated: described.last_rotated,
        }))
    }

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

    async fn version_listed(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> Result<bool, AwsCallError> {
        Ok(self
            .all_versions(secret_id)
            .await?
            .iter()
            .any(|version| version.version_id() == Some(version_id)))
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
