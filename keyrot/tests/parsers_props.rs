//! Property tests of the parsers that take hostile input (issue 12, item 8): the authorizer's
//! header, source IP and token handling, and the rotation event parser; since the security
//! issue also user registry entries, custom-resource response URLs and recorded revokes. Each property holds
//! for every generated input: no panic, and nothing is let in that should not be. The same
//! entry points are fuzzed by the targets in fuzz/ (see fuzz/README.md).

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use keyrot::api::authorizer::{decide, AuthorizerSettings, CallerRequest, Decision};
use keyrot::api::clients::{Client, ClientRegistry};
use keyrot::api::source_ip::{parse_source_ip, CidrList};
use keyrot::api::token::{TokenIssuer, TokenSettings, TokenVerifier};
use keyrot::rotation::RotationRequest;
use keyrot::signing_key::{key_set_of, SigningKeySecret};
use keyrot::Sensitive;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

const ISSUER: &str = "urn:keyrot:props";
const AUDIENCE: &str = "urn:keyrot:props:api";
const API_KEY: &str = "props-api-key-0123456789abcdef0123456789abc";
const CLIENT: &str = "client-a";

struct Fixture {
    registry: ClientRegistry,
    verifier: TokenVerifier,
    settings: AuthorizerSettings,
    token: String,
    now: SystemTime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = SystemTime::now();
        let key = SigningKeySecret::generate(now)
            .and_then(|secret| secret.key())
            .expect("signing key");
        let key_set = key_set_of(&key.kid, &key.public_key);
        let issuer = TokenIssuer::new(
            &key.kid,
            &key.pkcs8_der,
            TokenSettings {
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
                ttl: Duration::from_secs(120),
            },
        );
        Fixture {
            registry: ClientRegistry::new(vec![Client {
                id: CLIENT.into(),
                api_key: Sensitive::new(API_KEY),
                previous_api_key: None,
                users: vec!["alice".into()],
                cidrs: CidrList::default(),
                usage_key: Some("usage-client-a".into()),
            }]),
            verifier: TokenVerifier::new(&key_set, ISSUER, AUDIENCE),
            settings: AuthorizerSettings {
                allowed_cidrs: CidrList::parse_all(["0.0.0.0/0", "::/0"]).expect("cidrs"),
                issuer: ISSUER.into(),
                audience: AUDIENCE.into(),
            },
            token: issuer.issue(CLIENT, now).expect("token").token,
            now,
        }
    })
}

/// An authorizer event; `headers` as (name, value) pairs, repeated names allowed.
fn event(
    method: &str,
    resource: &str,
    headers: &[(String, String)],
    source_ip: &str,
) -> Option<ApiGatewayCustomAuthorizerRequestTypeRequest> {
    let mut single = serde_json::Map::new();
    let mut multi: serde_json::Map<String, Value> = serde_json::Map::new();
    for (name, value) in headers {
        single.insert(name.clone(), json!(value));
        if let Value::Array(values) = multi.entry(name.clone()).or_insert_with(|| json!([])) {
            values.push(json!(value));
        }
    }
    // Inputs the HTTP layer could never deliver (invalid header names or values) are not
    // events API Gateway sends: skip them rather than test serde.
    serde_json::from_value(json!({
        "type": "REQUEST",
        "methodArn": format!("arn:aws:execute-api:us-east-1:123456789012:api/v1/{method}{resource}"),
        "resource": resource,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": { "resourcePath": resource, "httpMethod": method, "identity": { "sourceIp": source_ip } }
    }))
    .ok()
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-api-key".to_owned()),
        Just("authorization".to_owned()),
        Just("X-Api-Key".to_owned()),
        Just("x-forwarded-for".to_owned()),
        "[a-z-]{1,12}",
    ]
}

fn header_value() -> impl Strategy<Value = String> {
    let f = fixture();
    prop_oneof![
        Just(API_KEY.to_owned()),
        Just(format!("Bearer {}", f.token)),
        Just(format!("bearer  {} ", f.token)),
        Just(format!("Bearer {}x", f.token)),
        "Bearer [A-Za-z0-9._-]{0,80}",
        "[ -~]{0,200}",
        any::<String>(),
    ]
}

fn source_ip() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("203.0.113.7".to_owned()),
        Just("::ffff:203.0.113.7".to_owned()),
        "[0-9.:a-f]{0,45}",
        any::<String>(),
    ]
}

/// A valid token with one character replaced (never the same character).
fn tampered_token() -> impl Strategy<Value = String> {
    let token = fixture().token.clone();
    let len = token.len();
    (0..len, prop::char::range('-', 'z')).prop_filter_map("same token", move |(at, c)| {
        let mut bytes: Vec<char> = token.chars().collect();
        if bytes[at] == c {
            return None;
        }
        bytes[at] = c;
        Some(bytes.into_iter().collect())
    })
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=N for a longer run.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Any headers, route and source address: a decision, never a panic, and an Allow only
    /// with the one valid API key, exactly once, and (to read a key) exactly the valid token.
    #[test]
    fn decide_never_panics_and_allows_only_valid_credentials(
        headers in prop::collection::vec((header_name(), header_value()), 0..5),
        route in prop_oneof![Just(("GET", "/active-key")), Just(("POST", "/generate-token")), Just(("GET", "/x"))],
        ip in source_ip(),
    ) {
        let f = fixture();
        let Some(request) = event(route.0, route.1, &headers, &ip) else { return Ok(()); };
        let decision = decide(&CallerRequest::of_authorizer_event(&request), &f.registry, &f.verifier, &f.settings, f.now);
        if let Decision::Allow(allowed) = decision {
            let values = |name: &str| headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
            prop_assert_eq!(allowed.client_id.as_str(), CLIENT);
            prop_assert_eq!(values("x-api-key"), vec![API_KEY]);
            prop_assert!(parse_source_ip(&ip).is_some());
            if route.1 == "/active-key" {
                let authorization = values("authorization");
                prop_assert_eq!(authorization.len(), 1);
                let token = authorization[0].trim().split_once(' ').map(|(_, t)| t.trim());
                prop_assert_eq!(token, Some(f.token.as_str()));
            }
        }
    }

    /// Arbitrary text as a token: refused (or, for the real token, accepted), never a panic.
    #[test]
    fn verify_never_panics_on_arbitrary_text(text in prop_oneof!["[A-Za-z0-9._-]{0,400}", any::<String>()]) {
        let f = fixture();
        let verdict = f.verifier.verify(&text, f.now);
        prop_assert_eq!(verdict.is_ok(), text == f.token);
    }

    /// One changed character anywhere in a valid token: refused.
    #[test]
    fn a_tampered_token_is_refused(token in tampered_token()) {
        let f = fixture();
        prop_assert!(f.verifier.verify(&token, f.now).is_err());
    }

    /// Tokens with arbitrary claims under a forged header: refused, never a panic (huge
    /// numbers included: no arithmetic on claims may overflow).
    #[test]
    fn forged_tokens_with_arbitrary_claims_are_refused(
        alg in prop_oneof![Just("EdDSA".to_owned()), Just("none".to_owned()), Just("HS256".to_owned()), "[A-Z0-9]{0,6}"],
        exp in any::<u64>(), nbf in any::<u64>(), iat in any::<u64>(),
        kid in "[a-z0-9]{0,20}",
        signature in "[A-Za-z0-9_-]{0,90}",
    ) {
        use base64::Engine;
        let f = fixture();
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": CLIENT, "exp": exp, "nbf": nbf, "iat": iat, "jti": "x"});
        let token = format!("{}.{}.{signature}", b64(&header), b64(&claims));
        prop_assert!(f.verifier.verify(&token, f.now).is_err());
    }

    /// Any source IP text: parsed or refused, never a panic; an IPv4-mapped IPv6 address
    /// always counts as its IPv4 address.
    #[test]
    fn source_ips_parse_or_are_refused(text in any::<String>(), a in any::<[u8; 4]>()) {
        let _ = parse_source_ip(&text);
        let v4 = std::net::Ipv4Addr::from(a);
        prop_assert_eq!(parse_source_ip(&format!("::ffff:{v4}")), Some(std::net::IpAddr::V4(v4)));
    }

    /// Any JSON as a rotation event: a request or an error, never a panic; a well-formed
    /// event round-trips its fields.
    #[test]
    fn rotation_events_parse_or_are_refused(
        step in prop_oneof![Just("createSecret".to_owned()), Just("setSecret".to_owned()), Just("testSecret".to_owned()), Just("finishSecret".to_owned()), any::<String>()],
        secret_id in any::<String>(),
        token in any::<String>(),
        extra in any::<String>(),
        shape in 0u8..4,
    ) {
        let event = match shape {
            0 => json!({"Step": step, "SecretId": secret_id, "ClientRequestToken": token, "RotationToken": extra}),
            1 => json!({"Step": step, "SecretId": secret_id}),
            2 => json!([step, secret_id, token]),
            _ => json!({"Step": 7, "SecretId": {"x": extra}, "ClientRequestToken": null}),
        };
        let parsed = RotationRequest::from_event(event);
        let well_formed = shape == 0
            && ["createSecret", "setSecret", "testSecret", "finishSecret"].contains(&step.as_str())
            && !secret_id.is_empty()
            && !token.is_empty();
        prop_assert_eq!(parsed.is_ok(), well_formed);
        if let Ok(request) = parsed {
            prop_assert_eq!(request.step.as_str(), step.as_str());
            prop_assert_eq!(request.secret_id, secret_id);
            prop_assert_eq!(request.token, token);
        }
    }

    /// Any registry parameter: a user only when its value names the parameter's own last path
    /// segment, a valid IAM user name; never a panic (anything else is held, not released).
    #[test]
    fn registry_entries_name_their_own_user_or_none(
        segment in prop_oneof!["[A-Za-z0-9+=,.@_-]{1,64}", any::<String>()],
        named in prop_oneof!["[A-Za-z0-9+=,.@_-]{1,64}", any::<String>()],
        same in any::<bool>(),
        raw in any::<String>(),
        shape in 0u8..3,
    ) {
        let path = "/keyrot/users/";
        let named = if same { segment.clone() } else { named };
        let value = match shape {
            0 => json!({"UserName": named}).to_string(),
            1 => json!({"UserName": [named]}).to_string(),
            _ => raw,
        };
        let name = format!("{path}{segment}");
        if let Some(user) = keyrot::fleet::entry_user(path, &name, &value) {
            prop_assert_eq!(&user, &segment);
            let parsed: Value = serde_json::from_str(&value).expect("accepted values are JSON");
            prop_assert_eq!(parsed["UserName"].as_str(), Some(segment.as_str()));
            prop_assert!(keyrot::api::endpoints::is_valid_user_name(&user));
        }
    }

    /// Any text as a custom resource's ResponseURL: accepted only on CloudFormation's response
    /// buckets over HTTPS, never a panic.
    #[test]
    fn response_urls_are_cloudformations_buckets_or_refused(
        text in prop_oneof![
            any::<String>(),
            "https://cloudformation-custom-resource-response-[a-z0-9]{0,12}\\.[a-z0-9.@:-]{0,40}/[ -~]{0,20}",
        ],
    ) {
        if keyrot::fleet::is_cloudformation_response_url(&text) {
            prop_assert!(text.starts_with("https://cloudformation-custom-resource-response-"));
            let host = text["https://".len()..].split('/').next().unwrap_or("");
            prop_assert!(!host.contains('@') && !host.contains(':'), "{}", host);
            prop_assert!(host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"), "{}", host);
        }
    }

    /// Any recorded revoke text: it authorises a revoke only when it names exactly that secret
    /// and key and is recent; never a panic.
    #[test]
    fn recorded_revokes_authorise_only_their_own_request(
        text in prop_oneof![any::<String>(), "\\{\"SecretId\":\"[a-z/]{0,12}\",\"AccessKeyId\":\"[A-Z0-9]{0,20}\"\\}"],
        secret in "[a-z/]{0,12}",
        key in "[A-Z0-9]{0,20}",
        age_seconds in 0u64..2000,
    ) {
        use keyrot::revoke::{revoke_refusal, RecordedRevoke, RecordedVersion, RevokeRequest, REQUEST_VALIDITY};
        let now = SystemTime::now();
        let recorded = RecordedVersion {
            request: serde_json::from_str::<RecordedRevoke>(&text).ok(),
            version_id: "v".into(),
            created: now.checked_sub(Duration::from_secs(age_seconds)),
        };
        let request = RevokeRequest {
            action: "RevokeKey".into(),
            secret_id: secret.clone(),
            access_key_id: key.clone(),
            reason: "leaked".into(),
        };
        let allowed = revoke_refusal(Some(&recorded), &request, now).is_none();
        let exact = recorded.request.as_ref().is_some_and(|r| r.secret_id == secret && r.access_key_id == key);
        prop_assert_eq!(allowed, exact && Duration::from_secs(age_seconds) <= REQUEST_VALIDITY);
    }
}
