//! The authorizer's decision over a request whose API key, Authorization header, source IP
//! and route come from the input (lines: key, authorization, source IP, then one byte for
//! the route). Must never panic, and must never allow a request without the valid key.
#![no_main]

#[path = "common.rs"]
mod common;

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use keyrot::api::authorizer::{decide, CallerRequest, Decision};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let f = common::fixture();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let api_key = parts.next().unwrap_or_default();
    // A leading '*' stands for the real values, so the fuzzer reaches the token checks.
    let api_key = if api_key == "*" { common::API_KEY } else { api_key };
    let authorization = parts.next().unwrap_or_default().replace('*', &f.token);
    let source_ip = parts.next().unwrap_or_default();
    let (method, resource) = match parts.next().and_then(|r| r.bytes().next()).unwrap_or(0) % 3 {
        0 => ("GET", "/active-key"),
        1 => ("POST", "/generate-token"),
        _ => ("DELETE", "/active-key"),
    };
    let event = json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:123456789012:api/v1/{method}{resource}"),
        "resource": resource,
        "httpMethod": method,
        "headers": { "x-api-key": api_key, "authorization": authorization },
        "multiValueHeaders": { "x-api-key": [api_key], "authorization": [authorization] },
        "requestContext": { "resourcePath": resource, "httpMethod": method, "identity": { "sourceIp": source_ip } }
    });
    // Header values the HTTP layer would refuse never reach the authorizer.
    let Ok(request) = serde_json::from_value::<ApiGatewayCustomAuthorizerRequestTypeRequest>(event) else {
        return;
    };
    if let Decision::Allow(_) = decide(&CallerRequest::of_authorizer_event(&request), &f.registry, &f.verifier, &f.settings, f.now) {
        assert_eq!(api_key, common::API_KEY);
    }
});
