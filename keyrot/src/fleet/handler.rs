//! The fleet function's entry point: the reconcile schedule's event, and the teardown custom
//! resource's.

use super::custom_resource::{self, CustomResourceResponder, Request};
use super::ports::{FleetSecrets, Registry};
use super::stack::{StackStatus, DELETE_IN_PROGRESS};
use super::Fleet;
use crate::iam_key::IamKeys;
use crate::AwsCallError;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;
use tracing::{error, info, info_span, warn, Instrument};

/// The reconcile schedule's input.
pub const RECONCILE_ACTION: &str = "Reconcile";
/// What the teardown leaves itself to answer CloudFormation before the function times out.
const ANSWER_RESERVE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("this function is not the fleet function (KEYROT_ROTATION_FUNCTION_ARN is not set)")]
    NotFleetFunction,
    #[error("could not read the user registry, so nothing was changed: {0}")]
    Registry(AwsCallError),
    #[error("could not list the managed secrets, so nothing was changed: {0}")]
    Listing(AwsCallError),
    #[error("malformed custom resource event: {0}")]
    MalformedEvent(String),
    #[error("could not answer CloudFormation: {0}")]
    Respond(String),
    #[error("refused a custom-resource event that is not this stack's own ({0}); nothing was done and nothing answered")]
    NotThisStack(&'static str),
    #[error("could not read the stack's status, so nothing was torn down: {0}")]
    StackUnreadable(AwsCallError),
}

impl FleetError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFleetFunction => "NotFleetFunction",
            Self::Registry(_) => "RegistryUnreadable",
            Self::Listing(_) => "SecretsUnlisted",
            Self::MalformedEvent(_) => "MalformedEvent",
            Self::Respond(_) => "CustomResourceResponseFailed",
            Self::NotThisStack(_) => "CustomResourceRefused",
            Self::StackUnreadable(_) => "StackUnreadable",
        }
    }
}

impl From<FleetError> for lambda_runtime::Diagnostic {
    fn from(error: FleetError) -> Self {
        Self {
            error_type: format!("keyrot.fleet.{}", error.code()),
            error_message: error.to_string(),
        }
    }
}

pub fn is_fleet_event(event: &Value) -> bool {
    event.get("Action").and_then(Value::as_str) == Some(RECONCILE_ACTION)
        || custom_resource::is_custom_resource(event)
}

/// CloudFormation, as the teardown custom resource needs it: where answers go, and the
/// stack's status.
pub struct StackPorts<'p, C, T> {
    pub responder: &'p C,
    pub stacks: &'p T,
}

pub async fn handle_fleet_event<R, S, I, C, T>(
    fleet: Option<&Fleet<R, S, I>>,
    stack: StackPorts<'_, C, T>,
    event: LambdaEvent<Value>,
) -> Result<Value, FleetError>
where
    R: Registry,
    S: FleetSecrets + Clone + 'static,
    I: IamKeys + super::ports::UserPolicies,
    C: CustomResourceResponder,
    T: StackStatus,
{
    let span = info_span!("fleet", request_id = %event.context.request_id);
    async {
        let result = run(fleet, stack, event).await;
        if let Err(failure) = &result {
            error!(error_code = failure.code(), error = %failure, "fleet run failed");
        }
        result
    }
    .instrument(span)
    .await
}

async fn run<R, S, I, C, T>(
    fleet: Option<&Fleet<R, S, I>>,
    stack: StackPorts<'_, C, T>,
    event: LambdaEvent<Value>,
) -> Result<Value, FleetError>
where
    R: Registry,
    S: FleetSecrets + Clone + 'static,
    I: IamKeys + super::ports::UserPolicies,
    C: CustomResourceResponder,
    T: StackStatus,
{
    let fleet = fleet.ok_or(FleetError::NotFleetFunction)?;
    if !custom_resource::is_custom_resource(&event.payload) {
        let report = fleet.reconcile().await?;
        report.publish();
        return Ok(serde_json::to_value(&report).unwrap_or_default());
    }
    let request = custom_resource::parse(event.payload)
        .map_err(|e| FleetError::MalformedEvent(e.to_string()))?;
    let ids = match &request {
        Request::Keep(ids) | Request::Delete(ids) => ids,
    };
    if let Some(reason) = custom_resource::refusal(ids, fleet.config.stack_id.as_deref()) {
        // Not CloudFormation's event for this stack: no teardown, and no request to a URL the
        // sender chose.
        warn!(
            decision = "custom_resource_refused",
            reason,
            logical_resource_id = %ids.logical_resource_id,
            "custom-resource event refused"
        );
        return Err(FleetError::NotThisStack(reason));
    }
    let (ids, success, reason) = match request {
        Request::Keep(ids) => {
            // The deployed settings' capacity, as the stack's UsersPerInterval output.
            let users = fleet
                .config
                .budgets
                .users_per_interval(fleet.config.interval);
            info!(decision = "capacity_reported", users_per_interval = users);
            stack
                .responder
                .respond(
                    &ids.response_url,
                    &custom_resource::response_with_data(
                        &ids,
                        true,
                        "nothing to do until the stack is deleted",
                        &[(USERS_PER_INTERVAL, users.to_string())],
                    ),
                )
                .await
                .map_err(FleetError::Respond)?;
            return Ok(Value::Null);
        }
        Request::Delete(ids) => {
            let status = stack
                .stacks
                .status(&ids.stack_id)
                .await
                .map_err(FleetError::StackUnreadable)?;
            if status.as_deref() != Some(DELETE_IN_PROGRESS) {
                // CloudFormation also sends Delete when an update replaces or removes the
                // resource: the stack lives on, and so do its keys.
                info!(
                    decision = "teardown_skipped",
                    stack_status = status.as_deref().unwrap_or("none"),
                    "the stack is not being deleted; nothing torn down"
                );
                let reason = "the stack is not being deleted: nothing torn down".to_owned();
                stack
                    .responder
                    .respond(
                        &ids.response_url,
                        &custom_resource::response(&ids, true, &reason),
                    )
                    .await
                    .map_err(FleetError::Respond)?;
                return Ok(Value::Null);
            }
            let deadline = Instant::now() + remaining(event.context.deadline);
            let report = fleet.teardown(deadline).await;
            let reason = if report.complete {
                format!(
                    "deleted {} secrets, {} keys, {} registry entries; left {} secrets keyrot did not make: {:?}",
                    report.secrets_deleted.len(),
                    report.keys_deleted,
                    report.registry_entries_deleted.len(),
                    report.secrets_left.len(),
                    report.secrets_left
                )
            } else {
                format!(
                    "teardown incomplete ({} errors, e.g. {:?}); delete the stack again to continue",
                    report.errors.len(),
                    report.errors.first()
                )
            };
            (ids, report.complete, reason)
        }
    };
    stack
        .responder
        .respond(
            &ids.response_url,
            &custom_resource::response(&ids, success, &reason),
        )
        .await
        .map_err(FleetError::Respond)?;
    Ok(Value::Null)
}

/// The teardown resource's attribute with the users the budgets rotate in one interval.
pub const USERS_PER_INTERVAL: &str = "UsersPerInterval";

/// Time left before the invocation's deadline (epoch milliseconds), less the answer reserve.
fn remaining(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    Duration::from_millis(deadline_ms.saturating_sub(now_ms)).saturating_sub(ANSWER_RESERVE)
}
