//! Creates what the SAM template creates, on moto: the managed IAM users and their secrets
//! with rotation configured on `rotation-fn`, which runs the first rotation at once.

use crate::options::Options;
use crate::processes::{LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};
use crate::LocalError;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::types::RotationRulesType;

/// moto's default account; the function name is the binary name, as the emulator serves it.
pub const ROTATION_FUNCTION_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:rotation-fn";

pub struct Aws {
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl Aws {
    pub async fn connect(endpoint: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(LOCAL_REGION))
            .credentials_provider(Credentials::new(
                LOCAL_ACCESS_KEY_ID,
                LOCAL_SECRET_ACCESS_KEY,
                None,
                None,
                "keyrot-local",
            ))
            .load()
            .await;
        Self {
            iam: aws_sdk_iam::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
        }
    }
}

/// The secret id of a managed user, as in the template.
pub fn secret_id(user: &str) -> String {
    format!("keyrot/iam/{user}")
}

fn failed(step: impl Into<String>, error: impl std::fmt::Display) -> LocalError {
    LocalError::Provision {
        step: step.into(),
        message: error.to_string(),
    }
}

/// Returns the managed secret ids.
pub async fn provision(aws: &Aws, options: &Options) -> Result<Vec<String>, LocalError> {
    let mut secret_ids = Vec::new();
    for user in &options.users {
        aws.iam
            .create_user()
            .user_name(user)
            .send()
            .await
            .map_err(|e| {
                failed(
                    format!("creating IAM user {user}"),
                    aws_sdk_iam::error::DisplayErrorContext(e),
                )
            })?;
        let id = secret_id(user);
        aws.secrets
            .create_secret()
            .name(&id)
            .description(format!("keyrot-managed access key of IAM user {user}"))
            .secret_string(serde_json::json!({ "UserName": user }).to_string())
            .send()
            .await
            .map_err(|e| {
                failed(
                    format!("creating secret {id}"),
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e),
                )
            })?;
        // Configuring rotation rotates at once: rotation-fn creates the first managed key.
        aws.secrets
            .rotate_secret()
            .secret_id(&id)
            .rotation_lambda_arn(ROTATION_FUNCTION_ARN)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(1)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                failed(
                    format!("first rotation of {id}"),
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e),
                )
            })?;
        secret_ids.push(id);
    }
    Ok(secret_ids)
}
