//! What the authorizer targets share: one client, one signing key, a verifier for it.

use keyrot::api::authorizer::AuthorizerSettings;
use keyrot::api::clients::{Client, ClientRegistry};
use keyrot::api::source_ip::CidrList;
use keyrot::api::token::{TokenIssuer, TokenSettings, TokenVerifier};
use keyrot::signing_key::{parse_key_set_text, SigningKeySecret};
use keyrot::Sensitive;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

pub const API_KEY: &str = "fuzz-api-key-0123456789abcdef0123456789abcd";

// Each target uses some of the fields.
#[allow(dead_code)]
pub struct Fixture {
    pub registry: ClientRegistry,
    pub verifier: TokenVerifier,
    pub settings: AuthorizerSettings,
    pub token: String,
    pub now: SystemTime,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let now = SystemTime::now();
        let key = SigningKeySecret::generate(now)
            .and_then(|secret| secret.key())
            .expect("signing key");
        let jwks = serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": key.public_key, "kid": key.kid, "alg": "EdDSA", "use": "sig" }] });
        let key_set = parse_key_set_text(Some(&jwks.to_string())).expect("key set");
        let settings = TokenSettings {
            issuer: "urn:keyrot:fuzz".into(),
            audience: "urn:keyrot:fuzz:api".into(),
            ttl: Duration::from_secs(120),
        };
        let token = TokenIssuer::new(&key.kid, &key.pkcs8_der, settings.clone())
            .issue("client-a", now)
            .expect("token")
            .token;
        Fixture {
            registry: ClientRegistry::new(vec![Client {
                id: "client-a".into(),
                api_key: Sensitive::new(API_KEY),
                previous_api_key: None,
                users: vec!["alice".into()],
                cidrs: CidrList::parse_all(["10.1.0.0/16"]).expect("cidrs"),
                usage_key: Some("usage-client-a".into()),
            }]),
            verifier: TokenVerifier::new(&key_set, &settings.issuer, &settings.audience),
            settings: AuthorizerSettings {
                allowed_cidrs: CidrList::parse_all(["0.0.0.0/0", "::/0"]).expect("cidrs"),
                issuer: settings.issuer,
                audience: settings.audience,
            },
            token,
            now,
        }
    })
}
