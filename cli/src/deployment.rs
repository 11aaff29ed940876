//! Where a deployment's pieces are: from the stack (outputs, parameters, resources) when it
//! exists, otherwise from keyrot's fixed names (as on the local stack).

use crate::cloud::Cloud;
use crate::sdk::StackFacts;
use serde::Serialize;
use std::time::Duration;

/// keyrot's fixed names; each can be overridden with the variable the functions use.
#[derive(Debug, Clone, Serialize)]
pub struct Names {
    pub managed_prefix: String,
    pub users_path: String,
    pub clients_path: String,
    pub client_secret_prefix: String,
    pub signing_key_secret: String,
    pub public_keys_parameter: String,
    /// Where an emergency revoke is recorded before it is asked for.
    pub revoke_requests_secret: String,
}

impl Names {
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Self {
            managed_prefix: var("KEYROT_MANAGED_SECRET_PREFIX", "keyrot/iam/"),
            users_path: var("KEYROT_USERS_PARAMETER_PATH", "/keyrot/users/"),
            clients_path: var("KEYROT_CLIENTS_PARAMETER_PATH", "/keyrot/clients/"),
            client_secret_prefix: var("KEYROT_CLIENT_SECRET_PREFIX", "keyrot/clients/"),
            signing_key_secret: var("KEYROT_SIGNING_KEY_SECRET_NAME", "keyrot/signing-key"),
            public_keys_parameter: var(
                "KEYROT_PUBLIC_KEYS_PARAMETER",
                "/keyrot/signing-public-keys",
            ),
            revoke_requests_secret: var(
                "KEYROT_REVOKE_REQUESTS_SECRET",
                keyrot::revoke::DEFAULT_REVOKE_REQUESTS_SECRET,
            ),
        }
    }

    /// The user's first slot secret (docs/rotation.md).
    pub fn user_secret(&self, user: &str) -> String {
        keyrot::key_slots::secret_name(&self.managed_prefix, user, keyrot::key_slots::Slot::A)
    }

    /// Both of the user's slot secrets, slot A first.
    pub fn user_secrets(&self, user: &str) -> [String; 2] {
        keyrot::key_slots::Slot::BOTH
            .map(|slot| keyrot::key_slots::secret_name(&self.managed_prefix, user, slot))
    }
    pub fn user_parameter(&self, user: &str) -> String {
        format!("{}{user}", self.users_path)
    }
    pub fn client_parameter(&self, client: &str) -> String {
        format!("{}{client}", self.clients_path)
    }
    pub fn client_secret(&self, client: &str) -> String {
        format!("{}{client}", self.client_secret_prefix)
    }
}

/// How the deployment was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From the CloudFormation stack.
    Stack,
    /// No stack: keyrot's fixed names (the local stack).
    FixedNames,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub source: Source,
    pub stack: Option<String>,
    pub names: Names,
    /// The rotation function (name or ARN), if known.
    pub rotation_function: Option<String>,
    pub usage_plan_id: Option<String>,
    pub schedule_group: Option<String>,
    pub interval_seconds: u64,
    /// The local stack (`keyrot-local`): no stack, and its usage plan. It has no Lambda
    /// resource policies, schedules or alarms to check.
    pub local: bool,
    /// The stack's `ManagedUsers` seed list.
    pub seed_users: Vec<String>,
    /// Who may read client API key secrets (the stack's `ClientSecretReaderArns`): the
    /// resource policy `clients add` puts on a new client's secret. Empty when unknown.
    pub client_secret_readers: Vec<String>,
    /// The customer managed key client secrets are created under (`SecretsKmsKeyArn`).
    pub secrets_kms_key: Option<String>,
    /// The IAM path of the users keyrot may manage (`EligibleUserPath`), if known.
    pub eligible_user_path: Option<String>,
    /// Why a piece could not be found (shown by doctor).
    pub notes: Vec<String>,
}

impl Deployment {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }
}

/// The usage plan the local stack creates on moto.
const LOCAL_USAGE_PLAN: &str = "keyrot-local-clients";
const DEFAULT_INTERVAL_SECONDS: u64 = 600;

/// Builds the deployment from the stack's facts (or their absence) and overrides.
pub async fn discover<C: Cloud>(
    cloud: &C,
    stack_name: &str,
    stack: Option<StackFacts>,
    overrides: &Overrides,
) -> Deployment {
    let names = Names::from_env();
    let mut notes = Vec::new();
    let mut deployment = match stack {
        Some(facts) => {
            let resource = |logical: &str| facts.resources.get(logical).map(|(_, id)| id.clone());
            let output = |key: &str| facts.outputs.get(key).cloned();
            let interval_seconds = facts
                .parameters
                .get("RotationIntervalMinutes")
                .and_then(|m| m.trim().parse::<u64>().ok())
                .map_or(DEFAULT_INTERVAL_SECONDS, |m| m.saturating_mul(60));
            Deployment {
                source: Source::Stack,
                stack: Some(stack_name.to_owned()),
                rotation_function: output("RotationFunction")
                    .or_else(|| output("RotationFunctionArn"))
                    .or_else(|| resource("RotationFunction")),
                usage_plan_id: output("ClientUsagePlanId").or_else(|| resource("ClientUsagePlan")),
                schedule_group: output("RotationScheduleGroup")
                    .or_else(|| resource("RotationScheduleGroup")),
                interval_seconds,
                local: false,
                seed_users: facts
                    .parameters
                    .get("ManagedUsers")
                    .map(|list| {
                        list.split(',')
                            .map(str::trim)
                            .filter(|u| !u.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                client_secret_readers: output("ClientSecretReaderArns")
                    .map(|list| split_list(&list))
                    .unwrap_or_default(),
                secrets_kms_key: output("SecretsKmsKeyArn"),
                eligible_user_path: facts.parameters.get("EligibleUserPath").cloned(),
                names,
                notes: Vec::new(),
            }
        }
        None => Deployment {
            source: Source::FixedNames,
            stack: None,
            rotation_function: None,
            usage_plan_id: None,
            schedule_group: None,
            interval_seconds: DEFAULT_INTERVAL_SECONDS,
            local: false,
            seed_users: Vec::new(),
            client_secret_readers: Vec::new(),
            secrets_kms_key: None,
            eligible_user_path: None,
            names,
            notes: Vec::new(),
        },
    };
    if !overrides.client_secret_readers.is_empty() {
        deployment.client_secret_readers = overrides.client_secret_readers.clone();
    }
    if let Some(key) = &overrides.secrets_kms_key {
        deployment.secrets_kms_key = Some(key.clone());
    }
    if let Some(path) = &overrides.eligible_user_path {
        deployment.eligible_user_path = Some(path.clone());
    }
    if let Some(function) = &overrides.rotation_function {
        deployment.rotation_function = Some(function.clone());
    }
    if let Some(plan) = &overrides.usage_plan_id {
        deployment.usage_plan_id = Some(plan.clone());
    }
    if let Some(group) = &overrides.schedule_group {
        deployment.schedule_group = Some(group.clone());
    }
    if let Some(seconds) = overrides.interval_seconds {
        deployment.interval_seconds = seconds.max(1);
    }
    // The rotation function, as the managed secrets' rotation names it.
    if deployment.rotation_function.is_none() {
        match cloud.list_secrets(&deployment.names.managed_prefix).await {
            Ok(secrets) => {
                deployment.rotation_function = secrets
                    .into_iter()
                    .filter(|s| s.deleted.is_none())
                    .find_map(|s| s.rotation_function);
            }
            Err(error) => notes.push(format!("rotation function not found: {error}")),
        }
    }
    // Without a stack: the local stack's plan, else the only plan there is.
    if deployment.usage_plan_id.is_none() {
        match cloud.usage_plans().await {
            Ok(plans) => {
                let local = plans.iter().find(|(_, name)| name == LOCAL_USAGE_PLAN);
                deployment.local = local.is_some() && deployment.source == Source::FixedNames;
                deployment.usage_plan_id = local
                    .or(if plans.len() == 1 {
                        plans.first()
                    } else {
                        None
                    })
                    .map(|(id, _)| id.clone());
                if deployment.usage_plan_id.is_none() {
                    notes.push(format!(
                        "client usage plan not found ({} plans; pass --usage-plan-id)",
                        plans.len()
                    ));
                }
            }
            Err(error) => notes.push(format!("client usage plan not found: {error}")),
        }
    }
    deployment.notes.extend(notes);
    deployment
}

#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub rotation_function: Option<String>,
    pub usage_plan_id: Option<String>,
    pub schedule_group: Option<String>,
    pub interval_seconds: Option<u64>,
    pub client_secret_readers: Vec<String>,
    pub secrets_kms_key: Option<String>,
    pub eligible_user_path: Option<String>,
}

/// A comma-separated list, without blanks.
fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The function name to invoke: the last part of an ARN (`…:function:NAME[:qualifier]`).
pub fn function_name(function: &str) -> &str {
    match function.split_once(":function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => function,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_come_out_of_arns() {
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:rotation-fn"),
            "rotation-fn"
        );
        assert_eq!(
            function_name("arn:aws:lambda:eu-west-1:1:function:keyrot-rotation:live"),
            "keyrot-rotation"
        );
        assert_eq!(function_name("rotation-fn"), "rotation-fn");
    }
}
