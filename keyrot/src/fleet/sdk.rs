//! The fleet's ports on the AWS SDK: the registry in SSM, fleet calls on Secrets Manager.

use super::policy::POLICY_TAG;
use super::ports::{
    FleetSecrets, ListedSecret, Registry, RegistryUsers, RotationStart, UserPolicies,
    FLEET_SECRET_TAG,
};
use crate::rotation::SecretsManagerStore;
use crate::AwsCallError;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType, Tag};
use std::collections::HashMap;
use std::time::SystemTime;
use tracing::warn;

/// The registry: one SSM parameter per user, `<path><UserName>` = `{"UserName": …}`.
pub struct SsmRegistry {
    ssm: aws_sdk_ssm::Client,
    path: String,
}

impl SsmRegistry {
    pub fn new(ssm: aws_sdk_ssm::Client, path: impl Into<String>) -> Self {
        Self {
            ssm,
            path: path.into(),
        }
    }
}

/// The user an entry names, if it is well formed and named after that user.
pub fn entry_user(path: &str, name: &str, value: &str) -> Option<String> {
    let user = name.strip_prefix(path)?;
    let entry: serde_json::Value = serde_json::from_str(value).ok()?;
    let named = entry.get("UserName")?.as_str()?;
    (named == user && crate::api::endpoints::is_valid_user_name(user)).then(|| user.to_owned())
}

impl Registry for SsmRegistry {
    async fn users(&self) -> Result<RegistryUsers, AwsCallError> {
        let parameters = crate::api::parameters::list_parameters(&self.ssm, &self.path).await?;
        let mut listing = RegistryUsers::default();
        for (name, value) in parameters {
            match entry_user(&self.path, &name, &value) {
                Some(user) => listing.users.push(user),
                None => {
                    // Never the value: an operator may have pasted something secret by mistake.
                    warn!(
                        decision = "registry_entry_unreadable",
                        parameter = %name,
                        reason = "expected {\"UserName\": \"<the parameter's last path segment>\"}",
                        "registry entry unreadable: its user is kept as it is"
                    );
                    let segment = name.strip_prefix(&self.path).unwrap_or(&name);
                    listing.unreadable.push(segment.to_owned());
                }
            }
        }
        listing.users.sort();
        listing.users.dedup();
        Ok(listing)
    }

    async fn remove(&self, user: &str) -> Result<(), AwsCallError> {
        let name = format!("{}{user}", self.path);
        let result = self.ssm.delete_parameter().name(&name).send().await;
        gone_is_done(result, "DeleteParameter", "ParameterNotFound")
    }
}

fn system_time(value: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    value.and_then(|date| SystemTime::try_from(*date).ok())
}

fn policy_stamp(tags: &[Tag]) -> Option<String> {
    tags.iter()
        .find(|tag| tag.key() == Some(POLICY_TAG))
        .and_then(|tag| tag.value())
        .map(str::to_owned)
}

fn has_fleet_tag(tags: &[Tag], prefix: &str) -> bool {
    tags.iter()
        .any(|tag| tag.key() == Some(FLEET_SECRET_TAG) && tag.value() == Some(prefix))
}

/// A version holds AWSPENDING without AWSCURRENT: a rotation is in progress.
fn is_rotating(versions: Option<&HashMap<String, Vec<String>>>) -> bool {
    versions.is_some_and(|versions| {
        versions.values().any(|stages| {
            stages.iter().any(|s| s == "AWSPENDING") && !stages.iter().any(|s| s == "AWSCURRENT")
        })
    })
}

impl FleetSecrets for SecretsManagerStore {
    async fn list(&self, prefix: &str) -> Result<Vec<ListedSecret>, AwsCallError> {
        let mut secrets = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .client()
                .list_secrets()
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix)
                        .build(),
                )
                .include_planned_deletion(true)
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListSecrets", &e))?;
            for entry in output.secret_list.unwrap_or_default() {
                let Some(name) = entry.name.clone() else {
                    continue;
                };
                // AWS's name filter is a case-insensitive prefix match: keep exact ones only.
                if !name.starts_with(prefix) {
                    continue;
                }
                secrets.push(ListedSecret {
                    name,
                    fleet: has_fleet_tag(entry.tags(), prefix),
                    rotation_enabled: entry.rotation_enabled.unwrap_or(false),
                    last_rotated: system_time(entry.last_rotated_date.as_ref()),
                    deleted: system_time(entry.deleted_date.as_ref()),
                    rotating: is_rotating(entry.secret_versions_to_stages.as_ref()),
                    policy_stamp: policy_stamp(entry.tags()),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(secrets),
            }
        }
    }

    async fn describe(
        &self,
        name: &str,
        prefix: &str,
    ) -> Result<Option<ListedSecret>, AwsCallError> {
        let output = match self.client().describe_secret().secret_id(name).send().await {
            Ok(output) => output,
            Err(error) => {
                let error = AwsCallError::from_sdk("DescribeSecret", &error);
                if error.has_code("ResourceNotFoundException") {
                    return Ok(None);
                }
                return Err(error);
            }
        };
        Ok(Some(ListedSecret {
            name: output.name.clone().unwrap_or_else(|| name.to_owned()),
            fleet: has_fleet_tag(output.tags(), prefix),
            rotation_enabled: output.rotation_enabled.unwrap_or(false),
            last_rotated: system_time(output.last_rotated_date.as_ref()),
            deleted: system_time(output.deleted_date.as_ref()),
            rotating: is_rotating(output.version_ids_to_stages.as_ref()),
            policy_stamp: policy_stamp(output.tags()),
        }))
    }

    async fn create(
        &self,
        name: &str,
        value: &str,
        fleet_tag: &str,
        kms_key_id: Option<&str>,
    ) -> Result<bool, AwsCallError> {
        let result = self
            .client()
            .create_secret()
            .name(name)
            .description("Current IAM access key, rotated by keyrot")
            .secret_string(value)
            .set_kms_key_id(kms_key_id.map(str::to_owned))
            .tags(
                Tag::builder()
                    .key(FLEET_SECRET_TAG)
                    .value(fleet_tag)
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => {
                let error = AwsCallError::from_sdk("CreateSecret", &error);
                if error.has_code("ResourceExistsException") {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn tag_fleet(&self, name: &str, fleet_tag: &str) -> Result<(), AwsCallError> {
        self.client()
            .tag_resource()
            .secret_id(name)
            .tags(
                Tag::builder()
                    .key(FLEET_SECRET_TAG)
                    .value(fleet_tag)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("TagResource", &e))?;
        Ok(())
    }

    async fn put_policy(&self, name: &str, policy: &str, stamp: &str) -> Result<(), AwsCallError> {
        self.client()
            .put_resource_policy()
            .secret_id(name)
            .resource_policy(policy)
            .block_public_policy(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutResourcePolicy", &e))?;
        // After the policy: a stamp never claims a policy that is not in place.
        self.client()
            .tag_resource()
            .secret_id(name)
            .tags(Tag::builder().key(POLICY_TAG).value(stamp).build())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("TagResource", &e))?;
        Ok(())
    }

    async fn enable_rotation(
        &self,
        name: &str,
        function_arn: &str,
    ) -> Result<RotationStart, AwsCallError> {
        let result = self
            .client()
            .rotate_secret()
            .secret_id(name)
            .rotation_lambda_arn(function_arn)
            // The longest native schedule: it counts from the last rotation, so the fleet's
            // dispatch always comes first (README, "The native schedule never fires").
            .rotation_rules(longest_native_schedule())
            .rotate_immediately(true)
            .send()
            .await;
        rotation_start(result.map(|_| ()))
    }

    async fn rotate(&self, name: &str, function_arn: &str) -> Result<RotationStart, AwsCallError> {
        let result = self
            .client()
            .rotate_secret()
            .secret_id(name)
            .rotation_lambda_arn(function_arn)
            .rotation_rules(longest_native_schedule())
            .send()
            .await;
        rotation_start(result.map(|_| ()))
    }

    async fn schedule_deletion(&self, name: &str) -> Result<(), AwsCallError> {
        self.client()
            .delete_secret()
            .secret_id(name)
            .recovery_window_in_days(7)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DeleteSecret", &e))?;
        Ok(())
    }

    async fn restore(&self, name: &str) -> Result<(), AwsCallError> {
        self.client()
            .restore_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("RestoreSecret", &e))?;
        Ok(())
    }

    async fn purge(&self, name: &str) -> Result<(), AwsCallError> {
        let result = self
            .client()
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await;
        gone_is_done(result, "DeleteSecret", "ResourceNotFoundException")
    }
}

/// A deletion's answer: what is already gone counts as deleted, so a retried call is harmless.
fn gone_is_done<T, E, R>(
    result: Result<T, aws_smithy_runtime_api::client::result::SdkError<E, R>>,
    operation: &'static str,
    gone: &str,
) -> Result<(), AwsCallError>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    match result {
        Ok(_) => Ok(()),
        Err(error) => {
            let error = AwsCallError::from_sdk(operation, &error);
            if error.has_code(gone) {
                Ok(())
            } else {
                Err(error)
            }
        }
    }
}

/// RotateSecret's answer: refused while a rotation is in progress ("A previous rotation isn't
/// complete"), which Secrets Manager reports as InvalidRequestException.
fn rotation_start<E, R>(
    result: Result<(), aws_sdk_secretsmanager::error::SdkError<E, R>>,
) -> Result<RotationStart, AwsCallError>
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata,
{
    match result {
        Ok(()) => Ok(RotationStart::Started),
        Err(error) => {
            let error = AwsCallError::from_sdk("RotateSecret", &error);
            if error.has_code("InvalidRequestException")
                && error.message.contains("previous rotation")
            {
                Ok(RotationStart::InProgress)
            } else {
                Err(error)
            }
        }
    }
}

/// The longest native schedule: it counts from the last rotation, so the fleet's dispatch
/// always comes first (README, "The native schedule never fires"). No `ScheduleExpression`:
/// a `rate(4 hours)` someone set is replaced.
fn longest_native_schedule() -> RotationRulesType {
    RotationRulesType::builder()
        .automatically_after_days(1000)
        .build()
}

impl UserPolicies for crate::iam_key::IamSdk {
    async fn attach_user_policy(&self, user: &str, policy_arn: &str) -> Result<(), AwsCallError> {
        self.client()
            .attach_user_policy()
            .user_name(user)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("AttachUserPolicy", &e))?;
        Ok(())
    }

    async fn detach_user_policy(&self, user: &str, policy_arn: &str) -> Result<(), AwsCallError> {
        let result = self
            .client()
            .detach_user_policy()
            .user_name(user)
            .policy_arn(policy_arn)
            .send()
            .await;
        gone_is_done(result, "DetachUserPolicy", "NoSuchEntity")
    }
}
