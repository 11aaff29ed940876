//! The stack's teardown hook: CloudFormation invokes the fleet function for the
//! `FleetTeardown` custom resource and waits for an answer PUT to a pre-signed URL.

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest, CloudFormationCustomResourceResponse,
    CloudFormationCustomResourceResponseStatus,
};
use serde_json::Value;
use std::future::Future;

/// The physical id of the teardown resource: one per stack, stable across updates.
pub const PHYSICAL_ID: &str = "keyrot-fleet-teardown";

pub trait CustomResourceResponder: Send + Sync {
    /// PUTs the response document to the request's pre-signed URL.
    fn respond(&self, url: &str, body: &str) -> impl Future<Output = Result<(), String>> + Send;
}

/// What CloudFormation asks for.
pub enum Request {
    /// Create or Update: nothing to do but answer.
    Keep(Ids),
    Delete(Ids),
}

pub struct Ids {
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
}

pub fn is_custom_resource(event: &Value) -> bool {
    event.get("RequestType").is_some() && event.get("ResponseURL").is_some()
}

pub fn parse(event: Value) -> Result<Request, serde_json::Error> {
    let request: CloudFormationCustomResourceRequest = serde_json::from_value(event)?;
    Ok(match request {
        CloudFormationCustomResourceRequest::Create(r) => Request::Keep(Ids {
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
        }),
        CloudFormationCustomResourceRequest::Update(r) => Request::Keep(Ids {
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
        }),
        CloudFormationCustomResourceRequest::Delete(r) => Request::Delete(Ids {
            response_url: r.response_url,
            stack_id: r.stack_id,
            request_id: r.request_id,
            logical_resource_id: r.logical_resource_id,
        }),
        _ => Request::Keep(Ids {
            response_url: String::new(),
            stack_id: String::new(),
            request_id: String::new(),
            logical_resource_id: String::new(),
        }),
    })
}

/// The response document; CloudFormation shows `reason` to the operator (kept under its
/// 4 KB response limit).
pub fn response(ids: &Ids, success: bool, reason: &str) -> String {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = if success {
        CloudFormationCustomResourceResponseStatus::Success
    } else {
        CloudFormationCustomResourceResponseStatus::Failed
    };
    let mut reason = reason.to_owned();
    if reason.len() > 1024 {
        let mut cut = 1024;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    response.reason = Some(reason);
    response.physical_resource_id = PHYSICAL_ID.to_owned();
    response.stack_id = ids.stack_id.clone();
    response.request_id = ids.request_id.clone();
    response.logical_resource_id = ids.logical_resource_id.clone();
    serde_json::to_string(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str) -> Value {
        json!({
            "RequestType": kind, "ServiceToken": "arn", "ResponseURL": "https://example.invalid/r",
            "StackId": "stack", "RequestId": "req", "ResourceType": "Custom::KeyrotFleetTeardown",
            "LogicalResourceId": "FleetTeardown", "PhysicalResourceId": PHYSICAL_ID,
            "ResourceProperties": {}, "OldResourceProperties": {}
        })
    }

    #[test]
    fn only_delete_tears_down() {
        assert!(is_custom_resource(&event("Delete")));
        assert!(matches!(
            parse(event("Delete")).unwrap(),
            Request::Delete(_)
        ));
        assert!(matches!(parse(event("Create")).unwrap(), Request::Keep(_)));
        assert!(matches!(parse(event("Update")).unwrap(), Request::Keep(_)));
        assert!(parse(json!({"RequestType": "Explode", "ResponseURL": "x"})).is_err());
    }

    #[test]
    fn the_response_names_the_request_and_keeps_one_physical_id() {
        let Request::Delete(ids) = parse(event("Delete")).unwrap() else {
            panic!("a delete")
        };
        let body: Value = serde_json::from_str(&response(&ids, false, &"x".repeat(5000))).unwrap();
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(body["RequestId"], "req");
        assert_eq!(body["PhysicalResourceId"], PHYSICAL_ID);
        assert_eq!(body["Reason"].as_str().unwrap().len(), 1024);
    }
}
