//! CPU time of one authorizer decision with the registry and public keys already cached (as
//! in a warm authorizer-fn): API key lookup over every client, EdDSA JWT verification, CIDR
//! checks. Results feed BENCHMARKS.md through `scripts/bench`.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use criterion::{criterion_group, criterion_main, Criterion};
use keyrot::api::authorizer::{decide, AuthorizerSettings, CallerRequest, Decision};
use keyrot::api::clients::{Client, ClientRegistry};
use keyrot::api::source_ip::CidrList;
use keyrot::api::token::{TokenIssuer, TokenSettings, TokenVerifier};
use keyrot::signing_key::{key_set_of, SigningKeySecret};
use keyrot::Sensitive;
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, SystemTime};

const ISSUER: &str = "urn:keyrot:bench";
const AUDIENCE: &str = "urn:keyrot:bench:api";
/// Clients in the registry; every lookup compares the presented key with all of them.
const CLIENTS: usize = 20;

fn cidrs(list: &[&str]) -> CidrList {
    CidrList::parse_all(list.iter().copied()).expect("valid CIDRs")
}

fn registry() -> ClientRegistry {
    ClientRegistry::new(
        (0..CLIENTS)
            .map(|i| Client {
                id: format!("client-{i:02}"),
                api_key: Sensitive::new(format!("{i:02}-bench-api-key-0123456789abcdef0123456789")),
                previous_api_key: None,
                users: vec!["alice".into(), "bob".into(), format!("svc-{i}")],
                cidrs: cidrs(&["203.0.113.0/24", "2001:db8::/32"]),
                usage_key: Some(format!("usage-{i:02}")),
            })
            .collect(),
    )
}

fn event(
    method: &str,
    resource: &str,
    token: Option<&str>,
    source_ip: &str,
) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let api_key = format!(
        "{:02}-bench-api-key-0123456789abcdef0123456789",
        CLIENTS - 1
    );
    let mut headers = json!({ "x-api-key": api_key });
    if let Some(token) = token {
        headers["authorization"] = json!(format!("Bearer {token}"));
    }
    let multi: serde_json::Map<_, _> = headers
        .as_object()
        .expect("object")
        .iter()
        .map(|(k, v)| (k.clone(), json!([v])))
        .collect();
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:123456789012:api/v1/{method}{resource}"),
        "resource": resource,
        "path": resource,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi,
        "queryStringParameters": { "username": "alice" },
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "identity": { "sourceIp": source_ip }
        }
    }))
    .expect("authorizer event")
}

fn decision(c: &mut Criterion) {
    let now = SystemTime::now();
    let key = SigningKeySecret::generate(now)
        .and_then(|secret| secret.key())
        .expect("signing key");
    let key_set = key_set_of(&key.kid, &key.public_key);
    let verifier = TokenVerifier::new(&key_set, ISSUER, AUDIENCE);
    let issuer = TokenIssuer::new(
        &key.kid,
        &key.pkcs8_der,
        TokenSettings {
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            ttl: Duration::from_secs(120),
        },
    );
    let client = format!("client-{:02}", CLIENTS - 1);
    let token = issuer.issue(&client, now).expect("token").token;
    let registry = registry();
    let settings = AuthorizerSettings {
        allowed_cidrs: cidrs(&[
            "10.0.0.0/8",
            "192.168.0.0/16",
            "203.0.113.0/24",
            "2001:db8::/32",
        ]),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };

    let cases = [
        (
            "allow_read_with_jwt",
            event("GET", "/active-key", Some(&token), "203.0.113.9"),
            true,
        ),
        (
            "allow_token_issue",
            event("POST", "/generate-token", None, "203.0.113.9"),
            true,
        ),
        (
            "deny_source_ip",
            event("GET", "/active-key", Some(&token), "198.51.100.7"),
            false,
        ),
    ];
    let mut group = c.benchmark_group("authorizer_decision");
    for (name, request, allowed) in &cases {
        // A benchmark of the wrong path would measure nothing useful.
        let first = decide(
            &CallerRequest::of_authorizer_event(request),
            &registry,
            &verifier,
            &settings,
            now,
        );
        assert_eq!(
            matches!(first, Decision::Allow(_)),
            *allowed,
            "{name}: {first:?}"
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                decide(
                    &CallerRequest::of_authorizer_event(black_box(request)),
                    &registry,
                    &verifier,
                    &settings,
                    black_box(now),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
