//! The AWS calls the CLI makes, as one port (`Cloud`) over IAM (the library's [`IamKeys`]),
//! SSM, Secrets Manager, API Gateway, Lambda and EventBridge Scheduler. The SDK adapter is in
//! `sdk.rs`; tests use an in-memory one.

use keyrot::iam_key::IamKeys;
use keyrot::{AwsCallError, Sensitive};
use serde_json::Value;
use std::collections::HashMap;
use std::time::SystemTime;

/// What DescribeSecret / ListSecrets say about a secret (never its value).
#[derive(Debug, Clone, Default)]
pub struct SecretInfo {
    pub name: String,
    pub rotation_enabled: bool,
    pub rotation_function: Option<String>,
    pub last_rotated: Option<SystemTime>,
    pub created: Option<SystemTime>,
    /// Set when the secret is scheduled for deletion.
    pub deleted: Option<SystemTime>,
    pub tags: Vec<(String, String)>,
    /// Version id → staging labels.
    pub versions: HashMap<String, Vec<String>>,
}

impl SecretInfo {
    pub fn has_tag(&self, key: &str) -> bool {
        self.tags.iter().any(|(k, _)| k == key)
    }
}

/// One version of a secret (ListSecretVersionIds, deprecated ones included).
#[derive(Debug, Clone)]
pub struct VersionInfo {
    pub id: String,
    pub stages: Vec<String>,
    pub created: Option<SystemTime>,
}

/// An API Gateway API key attached to a usage plan. Its value is the usage key, which is not
/// a credential (clients never send it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanKey {
    pub id: String,
    pub name: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyState {
    pub id: String,
    pub enabled: bool,
}

/// An EventBridge Scheduler schedule, as doctor checks it.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub enabled: bool,
    pub target_input: Option<String>,
}

/// A Lambda invocation's result.
#[derive(Debug, Clone)]
pub enum Invocation {
    Returned(Value),
    /// The function reported an error (`errorType`, `errorMessage`).
    FunctionError {
        error_type: String,
        message: String,
    },
}

#[allow(async_fn_in_trait)]
pub trait Cloud: IamKeys {
    // SSM parameters.
    async fn list_parameters(&self, path: &str) -> Result<Vec<(String, String)>, AwsCallError>;
    async fn get_parameter(&self, name: &str) -> Result<Option<String>, AwsCallError>;
    /// PutParameter (String). Without `overwrite`, an existing parameter is an error with
    /// code `ParameterAlreadyExists`.
    async fn put_parameter(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<(), AwsCallError>;
    /// `false` when it did not exist.
    async fn delete_parameter(&self, name: &str) -> Result<bool, AwsCallError>;

    // Secrets Manager.
    /// Every secret whose name starts with `prefix`, those scheduled for deletion included.
    async fn list_secrets(&self, prefix: &str) -> Result<Vec<SecretInfo>, AwsCallError>;
    /// `None` when the secret does not exist.
    async fn describe_secret(&self, id: &str) -> Result<Option<SecretInfo>, AwsCallError>;
    /// The AWSCURRENT value; `None` when there is none.
    async fn current_value(&self, id: &str) -> Result<Option<Sensitive>, AwsCallError>;
    async fn secret_versions(&self, id: &str) -> Result<Vec<VersionInfo>, AwsCallError>;
    /// CreateSecret, under `kms_key` when given (else Secrets Manager's own key).
    async fn create_secret(
        &self,
        name: &str,
        value: &Sensitive,
        kms_key: Option<&str>,
    ) -> Result<(), AwsCallError>;
    /// PutResourcePolicy, refusing a policy that would make the secret public.
    async fn put_secret_policy(&self, id: &str, policy: &str) -> Result<(), AwsCallError>;
    /// PutSecretValue as AWSCURRENT.
    async fn put_secret_value(&self, id: &str, value: &Sensitive) -> Result<(), AwsCallError>;
    /// DeleteSecret without a recovery window; `false` when it did not exist.
    async fn delete_secret_now(&self, id: &str) -> Result<bool, AwsCallError>;
    /// RotateSecret with the configured function; the new version's id.
    async fn rotate_secret(&self, id: &str) -> Result<String, AwsCallError>;

    // API Gateway.
    async fn create_api_key(&self, name: &str, value: &str) -> Result<String, AwsCallError>;
    async fn attach_api_key(&self, plan_id: &str, key_id: &str) -> Result<(), AwsCallError>;
    /// DeleteUsagePlanKey; `false` when it was not attached.
    async fn detach_api_key(&self, plan_id: &str, key_id: &str) -> Result<bool, AwsCallError>;
    /// `false` when it did not exist.
    async fn delete_api_key(&self, key_id: &str) -> Result<bool, AwsCallError>;
    async fn plan_keys(&self, plan_id: &str) -> Result<Vec<PlanKey>, AwsCallError>;
    async fn api_key_state(&self, key_id: &str) -> Result<Option<ApiKeyState>, AwsCallError>;
    /// (id, name) of every usage plan.
    async fn usage_plans(&self) -> Result<Vec<(String, String)>, AwsCallError>;

    // Lambda.
    async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, AwsCallError>;
    /// The function's resource policy document; `None` when it has none.
    async fn function_policy(&self, function: &str) -> Result<Option<String>, AwsCallError>;

    // EventBridge Scheduler.
    async fn schedules(&self, group: Option<&str>) -> Result<Vec<Schedule>, AwsCallError>;
}
