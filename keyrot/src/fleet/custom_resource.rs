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
/// The teardown resource's logical id in template.yaml.
pub const LOGICAL_ID: &str = "FleetTeardown";
/// CloudFormation's response buckets: `cloudformation-custom-resource-response-<region>`.
const RESPONSE_BUCKET_PREFIX: &str = "cloudformation-custom-resource-response-";

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

/// Why a custom-resource event is not this stack's own, from CloudFormation. Anyone who may
/// invoke the function can send one, so an event is served only when it names this stack and
/// its teardown resource and answers to CloudFormation's response buckets: never a URL of the
/// caller's choosing.
pub fn refusal(ids: &Ids, stack_id: Option<&str>) -> Option<&'static str> {
    let Some(stack_id) = stack_id else {
        return Some("no_stack_configured");
    };
    if ids.stack_id != stack_id {
        return Some("another_stack");
    }
    if ids.logical_resource_id != LOGICAL_ID {
        return Some("another_resource");
    }
    if !is_cloudformation_response_url(&ids.response_url) {
        return Some("response_url_not_cloudformations");
    }
    None
}

/// An HTTPS URL on a CloudFormation response bucket, addressed as S3 virtual-hosted URLs are
/// (`<bucket>.s3.amazonaws.com`, `<bucket>.s3.<region>.amazonaws.com`,
/// `<bucket>.s3-<region>.amazonaws.com`, and `.amazonaws.com.cn` in China), with no port or
/// user info.
pub fn is_cloudformation_response_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    if uri.scheme_str() != Some("https")
        || authority.port().is_some()
        || authority.as_str().contains('@')
    {
        return false;
    }
    let host = authority.host().to_ascii_lowercase();
    let Some(rest) = host.strip_prefix(RESPONSE_BUCKET_PREFIX) else {
        return false;
    };
    let Some((bucket_region, endpoint)) = rest.split_once('.') else {
        return false;
    };
    let label = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let Some(s3) = endpoint
        .strip_suffix(".amazonaws.com")
        .or_else(|| endpoint.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    label(bucket_region)
        && (s3 == "s3"
            || s3.strip_prefix("s3.").is_some_and(label)
            || s3.strip_prefix("s3-").is_some_and(label))
}

/// The response document; CloudFormation shows `reason` to the operator (kept under its
/// 4 KB response limit).
pub fn response(ids: &Ids, success: bool, reason: &str) -> String {
    response_with_data(ids, success, reason, &[])
}

/// The response document with attributes the template reads with `Fn::GetAtt`.
pub fn response_with_data(
    ids: &Ids,
    success: bool,
    reason: &str,
    data: &[(&str, String)],
) -> String {
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
    response.data = data
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    serde_json::to_string(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const STACK: &str = "arn:aws:cloudformation:eu-west-1:123456789012:stack/keyrot/1";
    const URL: &str = "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/x?X-Amz-Signature=s";

    fn event(kind: &str) -> Value {
        json!({
            "RequestType": kind, "ServiceToken": "arn", "ResponseURL": URL,
            "StackId": STACK, "RequestId": "req", "ResourceType": "Custom::KeyrotFleetTeardown",
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

    fn ids(stack_id: &str, logical_id: &str, url: &str) -> Ids {
        Ids {
            response_url: url.into(),
            stack_id: stack_id.into(),
            request_id: "req".into(),
            logical_resource_id: logical_id.into(),
        }
    }

    #[test]
    fn only_this_stacks_teardown_resource_answering_to_cloudformation_is_served() {
        let Request::Delete(real) = parse(event("Delete")).unwrap() else {
            panic!("a delete")
        };
        assert_eq!(refusal(&real, Some(STACK)), None);
        assert_eq!(refusal(&real, None), Some("no_stack_configured"));
        let other_stack = "arn:aws:cloudformation:eu-west-1:123456789012:stack/other/2";
        assert_eq!(
            refusal(&ids(other_stack, LOGICAL_ID, URL), Some(STACK)),
            Some("another_stack")
        );
        assert_eq!(
            refusal(&ids(STACK, "Other", URL), Some(STACK)),
            Some("another_resource")
        );
        assert_eq!(
            refusal(
                &ids(STACK, LOGICAL_ID, "https://attacker.example/r"),
                Some(STACK)
            ),
            Some("response_url_not_cloudformations")
        );
    }

    #[test]
    fn response_urls_must_be_cloudformations_buckets_over_https() {
        for good in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?b=c",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-euwest1.s3-eu-west-1.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/a",
        ] {
            assert!(is_cloudformation_response_url(good), "{good}");
        }
        for bad in [
            "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com:8443/a",
            "https://x@cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.attacker.example/a",
            "https://cloudformation-custom-resource-response-useast1.attacker.example/a",
            "https://my-bucket.s3.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-.s3.amazonaws.com/a",
            "https://cloudformation-custom-resource-response-useast1.evil.amazonaws.com/a",
            "not a url",
            "",
        ] {
            assert!(!is_cloudformation_response_url(bad), "{bad}");
        }
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
