//! Creates what the SAM template creates, on moto: the managed IAM users (which the template
//! expects to exist; its `ManagedUsers` seed the fleet, whose first run creates their secrets
//! and rotates them), the signing key, the default client and the usage plan.

use crate::options::Options;
use crate::processes::{LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};
use crate::usage_plans::UsagePlans;
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
    pub ssm: aws_sdk_ssm::Client,
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
            ssm: aws_sdk_ssm::Client::new(&config),
        }
    }
}

/// The secret id of a managed user's first slot, as in the template.
pub fn secret_id(user: &str) -> String {
    keyrot::key_slots::secret_name("keyrot/iam/", user, keyrot::key_slots::Slot::A)
}

fn failed(step: impl Into<String>, error: impl std::fmt::Display) -> LocalError {
    LocalError::Provision {
        step: step.into(),
        message: error.to_string(),
    }
}

pub const SIGNING_KEY_SECRET: &str = "keyrot/signing-key";
pub const PUBLIC_KEYS_PARAMETER: &str = "/keyrot/signing-public-keys";
pub const DEFAULT_CLIENT: &str = "default";
const DEFAULT_USAGE_KEY: &str = "keyrot-local-default-usage";

/// What provisioning made that the gateway, the banner and tests need.
pub struct Provisioned {
    pub secret_ids: Vec<String>,
    /// The default client's API key (as an operator reads it from its secret).
    pub api_key: String,
    /// The stage's usage plan, holding the default client's usage key (as in the template).
    pub usage_plans: UsagePlans,
}

pub async fn provision(
    aws: &Aws,
    endpoint: &str,
    options: &Options,
) -> Result<Provisioned, LocalError> {
    let secret_ids = provision_users(aws, options).await?;
    provision_signing_key(aws).await?;
    let api_key = provision_default_client(aws, options).await?;
    let usage_plans = UsagePlans::provision(endpoint, crate::gateway::STAGE)
        .await
        .map_err(|e| failed("creating the API's usage plan", e))?;
    usage_plans
        .add_key("keyrot-local-default", DEFAULT_USAGE_KEY)
        .await
        .map_err(|e| failed("creating the default client's usage key", e))?;
    Ok(Provisioned {
        secret_ids,
        api_key,
        usage_plans,
    })
}

/// The signing key secret, rotated once so a key exists and its public half is published.
async fn provision_signing_key(aws: &Aws) -> Result<(), LocalError> {
    aws.ssm
        .put_parameter()
        .name(PUBLIC_KEYS_PARAMETER)
        .value(r#"{"keys":[]}"#)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .map_err(|e| {
            failed(
                "creating the public keys parameter",
                aws_sdk_ssm::error::DisplayErrorContext(e),
            )
        })?;
    aws.secrets
        .create_secret()
        .name(SIGNING_KEY_SECRET)
        .description("keyrot JWT signing key")
        .secret_string("{}")
        .send()
        .await
        .map_err(|e| {
            failed(
                "creating the signing key secret",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e),
            )
        })?;
    configure_rotation(aws, SIGNING_KEY_SECRET).await?;
    // The template's RevokeRequestsSecret: where `keyrot revoke` records a revoke before it
    // asks for it (moto enforces no resource policy; on AWS only RevokePrincipalArns write).
    aws.secrets
        .create_secret()
        .name(keyrot::revoke::DEFAULT_REVOKE_REQUESTS_SECRET)
        .description("keyrot emergency revoke requests")
        .secret_string("{}")
        .send()
        .await
        .map_err(|e| {
            failed(
                "creating the revoke requests secret",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e),
            )
        })?;
    Ok(())
}

/// The default client: may read the `--client-users` (all managed users by default), from the
/// allowed CIDRs.
async fn provision_default_client(aws: &Aws, options: &Options) -> Result<String, LocalError> {
    let api_key = keyrot::random::random_hex(32).ok_or_else(|| {
        failed(
            "generating the default client's API key",
            "no system randomness",
        )
    })?;
    aws.secrets
        .create_secret()
        .name(format!("keyrot/clients/{DEFAULT_CLIENT}"))
        .secret_string(
            serde_json::json!({ "ClientId": DEFAULT_CLIENT, "ApiKey": api_key }).to_string(),
        )
        .send()
        .await
        .map_err(|e| {
            failed(
                "creating the default client's secret",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e),
            )
        })?;
    aws.ssm
        .put_parameter()
        .name(format!("/keyrot/clients/{DEFAULT_CLIENT}"))
        .value(serde_json::json!({ "users": options.client_users, "cidrs": [], "usage_key": DEFAULT_USAGE_KEY }).to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .map_err(|e| failed("creating the default client's parameter", aws_sdk_ssm::error::DisplayErrorContext(e)))?;
    Ok(api_key)
}

async fn configure_rotation(aws: &Aws, id: &str) -> Result<(), LocalError> {
    // Configuring rotation rotates at once, through rotation-fn.
    aws.secrets
        .rotate_secret()
        .secret_id(id)
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
    Ok(())
}

/// The managed IAM users; returns the ids of the slot secrets the fleet makes for them.
async fn provision_users(aws: &Aws, options: &Options) -> Result<Vec<String>, LocalError> {
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
        for slot in keyrot::key_slots::Slot::BOTH {
            secret_ids.push(keyrot::key_slots::secret_name("keyrot/iam/", user, slot));
        }
    }
    Ok(secret_ids)
}
