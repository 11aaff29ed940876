//! [`IamKeys`] and [`KeyVerifier`] on the AWS SDK's IAM and STS clients.

use super::ports::{AccessKeyInfo, IamKeys, IamUser, KeyCheck, KeyVerifier, NewAccessKey};
use crate::{AwsCallError, Sensitive};
use aws_credential_types::Credentials;
use aws_sdk_iam::types::{StatusType, Tag};
use aws_sdk_iam::Client as IamClient;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::retry::RetryConfig;
use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct IamSdk {
    client: IamClient,
}

impl IamSdk {
    pub fn new(client: IamClient) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &IamClient {
        &self.client
    }
}

fn to_system_time(value: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    value.and_then(|date| SystemTime::try_from(*date).ok())
}

impl IamKeys for IamSdk {
    async fn get_user(&self, user: &str) -> Result<Option<IamUser>, AwsCallError> {
        match self.client.get_user().user_name(user).send().await {
            Ok(output) => Ok(output.user.map(|user| IamUser {
                tags: user
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .map(|tag| (tag.key, tag.value))
                    .collect(),
                name: user.user_name,
                arn: user.arn,
            })),
            Err(error) => {
                let error = AwsCallError::from_sdk("GetUser", &error);
                if error.has_code("NoSuchEntity") {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, AwsCallError> {
        let output = self
            .client
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("ListAccessKeys", &e))?;
        Ok(output
            .access_key_metadata
            .into_iter()
            .filter_map(|key| {
                Some(AccessKeyInfo {
                    active: key.status == Some(StatusType::Active),
                    created: to_system_time(key.create_date.as_ref()),
                    id: key.access_key_id?,
                })
            })
            .collect())
    }

    async fn key_last_used(&self, key_id: &str) -> Result<Option<SystemTime>, AwsCallError> {
        let output = self
            .client
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetAccessKeyLastUsed", &e))?;
        Ok(to_system_time(
            output
                .access_key_last_used
                .as_ref()
                .and_then(|used| used.last_used_date.as_ref()),
        ))
    }

    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        let mut tags = Vec::new();
        let mut marker = None;
        loop {
            let output = self
                .client
                .list_user_tags()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListUserTags", &e))?;
            tags.extend(output.tags.into_iter().map(|tag| (tag.key, tag.value)));
            match output.marker {
                Some(next) if output.is_truncated => marker = Some(next),
                _ => return Ok(tags),
            }
        }
    }

    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), AwsCallError> {
        let tag = Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| AwsCallError {
                operation: "TagUser",
                code: None,
                message: e.to_string(),
            })?;
        self.client
            .tag_user()
            .user_name(user)
            .tags(tag)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("TagUser", &e))?;
        Ok(())
    }

    async fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), AwsCallError> {
        self.client
            .untag_user()
            .user_name(user)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("UntagUser", &e))?;
        Ok(())
    }

    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, AwsCallError> {
        let output = self
            .client
            .create_access_key()
            .user_name(user)
            .customize()
            .config_override(
                aws_sdk_iam::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("CreateAccessKey", &e))?;
        let key = output.access_key.ok_or_else(|| AwsCallError {
            operation: "CreateAccessKey",
            code: None,
            message: "response carried no access key".into(),
        })?;
        Ok(NewAccessKey {
            created_at: key
                .create_date
                .and_then(|date| date.fmt(Format::DateTime).ok()),
            secret: Sensitive::new(key.secret_access_key),
            id: key.access_key_id,
        })
    }

    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsCallError> {
        match self
            .client
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = AwsCallError::from_sdk("DeleteAccessKey", &error);
                if error.has_code("NoSuchEntity") {
                    Ok(())
                } else {
                    Err(error)
                }
            }
        }
    }
}

/// Asks STS who a key is. Each check is one attempt (no SDK retries): the rotator's backoff
/// decides when to ask again.
#[derive(Clone, Debug)]
pub struct StsKeyVerifier {
    base: aws_sdk_sts::config::Builder,
}

impl StsKeyVerifier {
    pub fn new(sdk_config: &aws_config::SdkConfig) -> Self {
        Self {
            base: aws_sdk_sts::config::Builder::from(sdk_config)
                .retry_config(RetryConfig::disabled()),
        }
    }
}

impl KeyVerifier for StsKeyVerifier {
    async fn check(&self, key_id: &str, secret: &Sensitive) -> KeyCheck {
        let credentials = Credentials::new(key_id, secret.expose(), None, None, "keyrot-new-key");
        let client = aws_sdk_sts::Client::from_conf(
            self.base.clone().credentials_provider(credentials).build(),
        );
        match client.get_caller_identity().send().await {
            Ok(output) => match output.arn {
                Some(arn) => KeyCheck::Authenticated { arn },
                None => KeyCheck::Rejected {
                    reason: "GetCallerIdentity returned no ARN".into(),
                },
            },
            Err(error) => {
                let error = AwsCallError::from_sdk("GetCallerIdentity", &error);
                KeyCheck::Rejected {
                    reason: error.code.unwrap_or(error.message),
                }
            }
        }
    }
}
