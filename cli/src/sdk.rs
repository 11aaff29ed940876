//! [`Cloud`] on the AWS SDK, and the CloudFormation look-up that finds a deployment.

use crate::cloud::{ApiKeyState, Cloud, Invocation, PlanKey, Schedule, SecretInfo, VersionInfo};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_smithy_types::Blob;
use keyrot::iam_key::{AccessKeyInfo, IamKeys, IamSdk, IamUser, NewAccessKey};
use keyrot::{AwsCallError, Sensitive};
use serde_json::Value;
use std::collections::HashMap;
use std::time::SystemTime;

#[derive(Clone, Debug)]
pub struct Sdk {
    pub iam: IamSdk,
    pub ssm: aws_sdk_ssm::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
}

impl Sdk {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            iam: IamSdk::new(aws_sdk_iam::Client::new(config)),
            ssm: aws_sdk_ssm::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
            apigateway: aws_sdk_apigateway::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
        }
    }
}

fn time(value: Option<&aws_smithy_types::DateTime>) -> Option<SystemTime> {
    value.and_then(|date| SystemTime::try_from(*date).ok())
}

fn not_found_is_none<T>(
    result: Result<T, AwsCallError>,
    codes: &[&str],
) -> Result<Option<T>, AwsCallError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if codes.iter().any(|code| error.has_code(code)) => Ok(None),
        Err(error) => Err(error),
    }
}

impl IamKeys for Sdk {
    async fn get_user(&self, user: &str) -> Result<Option<IamUser>, AwsCallError> {
        self.iam.get_user(user).await
    }
    async fn list_access_keys(&self, user: &str) -> Result<Vec<AccessKeyInfo>, AwsCallError> {
        self.iam.list_access_keys(user).await
    }
    async fn key_last_used(&self, key_id: &str) -> Result<Option<SystemTime>, AwsCallError> {
        self.iam.key_last_used(key_id).await
    }
    async fn list_user_tags(&self, user: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        self.iam.list_user_tags(user).await
    }
    async fn tag_user(&self, user: &str, key: &str, value: &str) -> Result<(), AwsCallError> {
        self.iam.tag_user(user, key, value).await
    }
    async fn untag_user(&self, user: &str, keys: &[String]) -> Result<(), AwsCallError> {
        self.iam.untag_user(user, keys).await
    }
    async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, AwsCallError> {
        self.iam.create_access_key(user).await
    }
    async fn delete_access_key(&self, user: &str, key_id: &str) -> Result<(), AwsCallError> {
        self.iam.delete_access_key(user, key_id).await
    }
}

impl Cloud for Sdk {
    async fn list_parameters(&self, path: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        keyrot::api::parameters::list_parameters(&self.ssm, path).await
    }

    async fn get_parameter(&self, name: &str) -> Result<Option<String>, AwsCallError> {
        let result = self
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetParameter", &e));
        Ok(not_found_is_none(result, &["ParameterNotFound"])?
            .and_then(|output| output.parameter.and_then(|p| p.value)))
    }

    async fn put_parameter(
        &self,
        name: &str,
        value: &str,
        overwrite: bool,
    ) -> Result<(), AwsCallError> {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(overwrite)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutParameter", &e))?;
        Ok(())
    }

    async fn delete_parameter(&self, name: &str) -> Result<bool, AwsCallError> {
        let result = self
            .ssm
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DeleteParameter", &e));
        Ok(not_found_is_none(result, &["ParameterNotFound"])?.is_some())
    }

    async fn list_secrets(&self, prefix: &str) -> Result<Vec<SecretInfo>, AwsCallError> {
        let mut secrets = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .secrets
                .list_secrets()
                .include_planned_deletion(true)
                .filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix)
                        .build(),
                )
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListSecrets", &e))?;
            for entry in output.secret_list.unwrap_or_default() {
                let name = entry.name.clone().unwrap_or_default();
                if !name.starts_with(prefix) {
                    continue;
                }
                secrets.push(SecretInfo {
                    name,
                    rotation_enabled: entry.rotation_enabled.unwrap_or(false),
                    rotation_function: entry.rotation_lambda_arn.clone(),
                    last_rotated: time(entry.last_rotated_date.as_ref()),
                    created: time(entry.created_date.as_ref()),
                    deleted: time(entry.deleted_date.as_ref()),
                    tags: entry
                        .tags
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|tag| Some((tag.key?, tag.value.unwrap_or_default())))
                        .collect(),
                    versions: entry.secret_versions_to_stages.unwrap_or_default(),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(secrets),
            }
        }
    }

    async fn describe_secret(&self, id: &str) -> Result<Option<SecretInfo>, AwsCallError> {
        let result = self
            .secrets
            .describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DescribeSecret", &e));
        Ok(
            not_found_is_none(result, &["ResourceNotFoundException"])?.map(|output| SecretInfo {
                name: output.name.unwrap_or_default(),
                rotation_enabled: output.rotation_enabled.unwrap_or(false),
                rotation_function: output.rotation_lambda_arn,
                last_rotated: time(output.last_rotated_date.as_ref()),
                created: time(output.created_date.as_ref()),
                deleted: time(output.deleted_date.as_ref()),
                tags: output
                    .tags
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|tag| Some((tag.key?, tag.value.unwrap_or_default())))
                    .collect(),
                versions: output.version_ids_to_stages.unwrap_or_default(),
            }),
        )
    }

    async fn current_value(&self, id: &str) -> Result<Option<Sensitive>, AwsCallError> {
        let result = self
            .secrets
            .get_secret_value()
            .secret_id(id)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetSecretValue", &e));
        Ok(not_found_is_none(result, &["ResourceNotFoundException"])?
            .and_then(|output| output.secret_string.map(Sensitive::new)))
    }

    async fn secret_versions(&self, id: &str) -> Result<Vec<VersionInfo>, AwsCallError> {
        let mut versions = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .secrets
                .list_secret_version_ids()
                .secret_id(id)
                .include_deprecated(true)
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListSecretVersionIds", &e))?;
            for version in output.versions.unwrap_or_default() {
                versions.push(VersionInfo {
                    id: version.version_id.unwrap_or_default(),
                    stages: version.version_stages.unwrap_or_default(),
                    created: time(version.created_date.as_ref()),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(versions),
            }
        }
    }

    async fn create_secret(
        &self,
        name: &str,
        value: &Sensitive,
        kms_key: Option<&str>,
    ) -> Result<(), AwsCallError> {
        self.secrets
            .create_secret()
            .name(name)
            .secret_string(value.expose())
            .set_kms_key_id(kms_key.map(str::to_owned))
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("CreateSecret", &e))?;
        Ok(())
    }

    async fn put_secret_policy(&self, id: &str, policy: &str) -> Result<(), AwsCallError> {
        self.secrets
            .put_resource_policy()
            .secret_id(id)
            .resource_policy(policy)
            .block_public_policy(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutResourcePolicy", &e))?;
        Ok(())
    }

    async fn put_secret_value(&self, id: &str, value: &Sensitive) -> Result<(), AwsCallError> {
        self.secrets
            .put_secret_value()
            .secret_id(id)
            .secret_string(value.expose())
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutSecretValue", &e))?;
        Ok(())
    }

    async fn delete_secret_now(&self, id: &str) -> Result<bool, AwsCallError> {
        let result = self
            .secrets
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DeleteSecret", &e));
        Ok(not_found_is_none(result, &["ResourceNotFoundException"])?.is_some())
    }

    async fn rotate_secret(&self, id: &str) -> Result<String, AwsCallError> {
        let output = self
            .secrets
            .rotate_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("RotateSecret", &e))?;
        Ok(output.version_id.unwrap_or_default())
    }

    async fn create_api_key(&self, name: &str, value: &str) -> Result<String, AwsCallError> {
        let output = self
            .apigateway
            .create_api_key()
            .name(name)
            .value(value)
            .enabled(true)
            .description("keyrot client usage key (created by keyrot clients add)")
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("CreateApiKey", &e))?;
        output.id.ok_or_else(|| AwsCallError {
            operation: "CreateApiKey",
            code: None,
            message: "the response carried no key id".into(),
        })
    }

    async fn attach_api_key(&self, plan_id: &str, key_id: &str) -> Result<(), AwsCallError> {
        self.apigateway
            .create_usage_plan_key()
            .usage_plan_id(plan_id)
            .key_id(key_id)
            .key_type("API_KEY")
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("CreateUsagePlanKey", &e))?;
        Ok(())
    }

    async fn detach_api_key(&self, plan_id: &str, key_id: &str) -> Result<bool, AwsCallError> {
        let result = self
            .apigateway
            .delete_usage_plan_key()
            .usage_plan_id(plan_id)
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DeleteUsagePlanKey", &e));
        Ok(not_found_is_none(result, &["NotFoundException"])?.is_some())
    }

    async fn delete_api_key(&self, key_id: &str) -> Result<bool, AwsCallError> {
        let result = self
            .apigateway
            .delete_api_key()
            .api_key(key_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("DeleteApiKey", &e));
        Ok(not_found_is_none(result, &["NotFoundException"])?.is_some())
    }

    async fn plan_keys(&self, plan_id: &str) -> Result<Vec<PlanKey>, AwsCallError> {
        let mut keys = Vec::new();
        let mut position = None;
        loop {
            let output = self
                .apigateway
                .get_usage_plan_keys()
                .usage_plan_id(plan_id)
                .limit(500)
                .set_position(position)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("GetUsagePlanKeys", &e))?;
            for item in output.items.unwrap_or_default() {
                if let Some(id) = item.id {
                    keys.push(PlanKey {
                        id,
                        name: item.name,
                        value: item.value,
                    });
                }
            }
            match output.position {
                Some(next) if !next.is_empty() => position = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    async fn api_key_state(&self, key_id: &str) -> Result<Option<ApiKeyState>, AwsCallError> {
        let result = self
            .apigateway
            .get_api_key()
            .api_key(key_id)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetApiKey", &e));
        Ok(
            not_found_is_none(result, &["NotFoundException"])?.map(|output| ApiKeyState {
                id: output.id.unwrap_or_default(),
                enabled: output.enabled,
            }),
        )
    }

    async fn usage_plans(&self) -> Result<Vec<(String, String)>, AwsCallError> {
        let output = self
            .apigateway
            .get_usage_plans()
            .limit(500)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetUsagePlans", &e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|plan| Some((plan.id?, plan.name.unwrap_or_default())))
            .collect())
    }

    async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, AwsCallError> {
        let result = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await;
        let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
        let function_error = |body: &Value| Invocation::FunctionError {
            error_type: body["errorType"].as_str().unwrap_or("Unknown").to_owned(),
            message: body["errorMessage"]
                .as_str()
                .unwrap_or("the function failed without a message")
                .to_owned(),
        };
        match result {
            Ok(output) => {
                let body = output
                    .payload
                    .as_ref()
                    .map(|blob| parse(blob.as_ref()))
                    .unwrap_or(Value::Null);
                if output.function_error.is_some() {
                    Ok(function_error(&body))
                } else {
                    Ok(Invocation::Returned(body))
                }
            }
            Err(error) => {
                // A Lambda emulator answers a function error with HTTP 500 and the error
                // document as the body (real Lambda: 200 and X-Amz-Function-Error).
                if let aws_sdk_lambda::error::SdkError::ServiceError(context) = &error {
                    if let Some(bytes) = context.raw().body().bytes() {
                        let body = parse(bytes);
                        if body.get("errorType").is_some() || body.get("errorMessage").is_some() {
                            return Ok(function_error(&body));
                        }
                    }
                }
                Err(AwsCallError::from_sdk("Invoke", &error))
            }
        }
    }

    async fn function_policy(&self, function: &str) -> Result<Option<String>, AwsCallError> {
        let result = self
            .lambda
            .get_policy()
            .function_name(function)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetPolicy", &e));
        Ok(not_found_is_none(result, &["ResourceNotFoundException"])?.and_then(|o| o.policy))
    }

    async fn schedules(&self, group: Option<&str>) -> Result<Vec<Schedule>, AwsCallError> {
        let mut schedules = Vec::new();
        let mut next = None;
        loop {
            let output = self
                .scheduler
                .list_schedules()
                .set_group_name(group.map(str::to_owned))
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| AwsCallError::from_sdk("ListSchedules", &e))?;
            for summary in output.schedules {
                let Some(name) = summary.name else { continue };
                let detail = self
                    .scheduler
                    .get_schedule()
                    .name(&name)
                    .set_group_name(summary.group_name.clone())
                    .send()
                    .await
                    .map_err(|e| AwsCallError::from_sdk("GetSchedule", &e))?;
                schedules.push(Schedule {
                    name,
                    enabled: detail.state.as_ref().map(|s| s.as_str()) == Some("ENABLED"),
                    target_input: detail.target.and_then(|t| t.input),
                });
            }
            match output.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return Ok(schedules),
            }
        }
    }
}

/// What CloudFormation says about the stack: outputs, parameters and the physical id of
/// each resource by logical id. `None` when there is no such stack.
#[derive(Debug, Clone, Default)]
pub struct StackFacts {
    pub outputs: HashMap<String, String>,
    pub parameters: HashMap<String, String>,
    pub resources: HashMap<String, (String, String)>,
}

pub async fn describe_stack(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Option<StackFacts>, AwsCallError> {
    let output = match cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
    {
        Ok(output) => output,
        Err(error) => {
            let error = AwsCallError::from_sdk("DescribeStacks", &error);
            // CloudFormation's answer for a stack that does not exist.
            if error.has_code("ValidationError") && error.message.contains("does not exist") {
                return Ok(None);
            }
            return Err(error);
        }
    };
    let Some(found) = output.stacks.unwrap_or_default().into_iter().next() else {
        return Ok(None);
    };
    let mut facts = StackFacts::default();
    for output in found.outputs.unwrap_or_default() {
        if let (Some(key), Some(value)) = (output.output_key, output.output_value) {
            facts.outputs.insert(key, value);
        }
    }
    for parameter in found.parameters.unwrap_or_default() {
        if let (Some(key), Some(value)) = (parameter.parameter_key, parameter.parameter_value) {
            facts.parameters.insert(key, value);
        }
    }
    let mut next = None;
    loop {
        let page = cloudformation
            .list_stack_resources()
            .stack_name(stack)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("ListStackResources", &e))?;
        for resource in page.stack_resource_summaries.unwrap_or_default() {
            if let (Some(logical), Some(physical)) =
                (resource.logical_resource_id, resource.physical_resource_id)
            {
                facts.resources.insert(
                    logical,
                    (resource.resource_type.unwrap_or_default(), physical),
                );
            }
        }
        match page.next_token {
            Some(token) if !token.is_empty() => next = Some(token),
            _ => return Ok(Some(facts)),
        }
    }
}
