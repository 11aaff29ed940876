//! The API on moto: managed users with rotated keys, a rotated signing key published as a
//! JWKS, a client registry, and the authorizer and api-fn services wired as their binaries
//! wire them. `call` plays API Gateway: authorizer first (401 on "Unauthorized", 403 on a
//! Deny), then api-fn with the authorizer's context.

pub use crate::events::Call;
use crate::events::{authorizer_event, proxy_event};
use crate::moto::{moto_url, sdk_config};
use crate::world::{start_rotation, test_backoff};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayProxyRequest,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::iam::IamPolicyEffect;
use keyrot::api::authorizer::AuthorizerSettings;
use keyrot::api::authorizer_service::{AuthorizerError, AuthorizerService};
use keyrot::api::caller_check::CallerCheck;
use keyrot::api::endpoints::{ApiService, ApiSettings};
use keyrot::api::registry_source::AwsClientSource;
use keyrot::api::secret_reader::SecretsManagerReader;
use keyrot::api::source_ip::CidrList;
use keyrot::api::token::TokenSettings;
use keyrot::iam_key::{IamKeyRotator, IamRotationSettings, IamSdk, KeyLifetime, StsKeyVerifier};
use keyrot::rotation::{ByName, RotationEngine, RotationRequest, SecretsManagerStore, Step};
use keyrot::signing_key::{SigningKeyRotator, SigningKeySecret, SsmPublicKeyStore};
use keyrot::Sensitive;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub type Engine = RotationEngine<
    SecretsManagerStore,
    ByName<
        IamKeyRotator<IamSdk, StsKeyVerifier, SecretsManagerStore>,
        SigningKeyRotator<SsmPublicKeyStore>,
    >,
>;

pub type Authorizer = AuthorizerService<AwsClientSource, SsmPublicKeyStore>;
pub type Api = ApiService<SecretsManagerReader, AwsClientSource, SsmPublicKeyStore>;

/// What authorizer-fn and api-fn both check callers with. `names`: client parameter path,
/// client secret prefix, public keys parameter; `token`: issuer and audience.
fn caller_parts(
    ssm: &aws_sdk_ssm::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    names: [&str; 3],
    token: [&str; 2],
) -> (AuthorizerSettings, AwsClientSource, SsmPublicKeyStore) {
    let [clients_path, client_secret_prefix, public_keys_parameter] = names;
    (
        AuthorizerSettings {
            allowed_cidrs: CidrList::parse_comma_separated(ALLOWED_CIDRS).expect("cidrs"),
            issuer: token[0].to_owned(),
            audience: token[1].to_owned(),
        },
        AwsClientSource::new(
            ssm.clone(),
            secrets.clone(),
            clients_path,
            client_secret_prefix,
        ),
        SsmPublicKeyStore::new(ssm.clone(), public_keys_parameter),
    )
}

/// The authorizer service as authorizer-fn wires it.
fn authorizer_service(
    ssm: &aws_sdk_ssm::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    names: [&str; 3],
    token: [&str; 2],
    cache_ttl: Duration,
) -> Authorizer {
    let (settings, clients, public_keys) = caller_parts(ssm, secrets, names, token);
    AuthorizerService::new(settings, clients, public_keys, cache_ttl)
}

/// api-fn's own check of the caller, as api-fn wires it (the authorizer's settings); every
/// call sees the registry and keys as they are now.
fn caller_check(
    ssm: &aws_sdk_ssm::Client,
    secrets: &aws_sdk_secretsmanager::Client,
    names: [&str; 3],
    token: [&str; 2],
) -> CallerCheck<AwsClientSource, SsmPublicKeyStore> {
    let (settings, clients, public_keys) = caller_parts(ssm, secrets, names, token);
    CallerCheck::new(settings, clients, public_keys, Duration::ZERO)
}

pub const ALLOWED_CIDRS: &str = "127.0.0.0/8, 10.0.0.0/8, 2001:db8:1:2::/64";

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub api_key: String,
    pub users: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: i64,
    pub body: Value,
    pub headers: HashMap<String, String>,
}

pub struct ApiWorld {
    pub users: Vec<String>,
    pub clients: Vec<TestClient>,
    pub managed_prefix: String,
    pub clients_path: String,
    pub client_secret_prefix: String,
    pub signing_secret: String,
    pub public_keys_parameter: String,
    pub issuer: String,
    pub audience: String,
    pub engine: Engine,
    pub authorizer: Authorizer,
    pub api: Api,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub iam: aws_sdk_iam::Client,
}

impl ApiWorld {
    pub async fn new(name: &str) -> Self {
        let config = sdk_config(&moto_url()).await;
        let unique = format!(
            "{}-{}-{name}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::SeqCst)
        );
        let base = format!("kr-api/{unique}");
        let managed_prefix = format!("{base}/iam/");
        let signing_secret = format!("{base}/signing-key");
        let public_keys_parameter = format!("/{base}/public-keys");
        let clients_path = format!("/{base}/clients/");
        let client_secret_prefix = format!("{base}/clients/");
        let issuer = format!("urn:keyrot:test:{unique}");
        let audience = format!("urn:keyrot:test:{unique}:api");
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        let ssm = aws_sdk_ssm::Client::new(&config);
        let iam = aws_sdk_iam::Client::new(&config);

        let engine = RotationEngine::new(
            SecretsManagerStore::new(secrets.clone()),
            ByName::new(
                IamKeyRotator::new(
                    IamSdk::new(iam.clone()),
                    StsKeyVerifier::new(&config),
                    SecretsManagerStore::new(secrets.clone()),
                    IamRotationSettings {
                        verify_backoff: test_backoff(),
                        lifetime: KeyLifetime::NONE,
                        managed_prefix: managed_prefix.clone(),
                    },
                ),
                SigningKeyRotator::new(SsmPublicKeyStore::new(ssm.clone(), &public_keys_parameter)),
                &signing_secret,
            ),
        );
        let authorizer = authorizer_service(
            &ssm,
            &secrets,
            [&clients_path, &client_secret_prefix, &public_keys_parameter],
            [&issuer, &audience],
            Duration::ZERO, // every call sees the registry and keys as they are now
        );
        let api = ApiService::new(
            ApiSettings {
                token: TokenSettings {
                    issuer: issuer.clone(),
                    audience: audience.clone(),
                    ttl: Duration::from_secs(120),
                },
                managed_secret_prefix: managed_prefix.clone(),
                signing_key_secret: signing_secret.clone(),
                rotation_interval: Duration::from_secs(600),
                signing_key_cache_ttl: Duration::ZERO,
            },
            SecretsManagerReader::new(secrets.clone()),
            caller_check(
                &ssm,
                &secrets,
                [&clients_path, &client_secret_prefix, &public_keys_parameter],
                [&issuer, &audience],
            ),
        );
        let users: Vec<String> = ["alice", "bob"]
            .iter()
            .map(|u| format!("{u}-{unique}"))
            .collect();
        let mut world = Self {
            users: users.clone(),
            clients: Vec::new(),
            managed_prefix,
            clients_path: clients_path.clone(),
            client_secret_prefix: client_secret_prefix.clone(),
            signing_secret: signing_secret.clone(),
            public_keys_parameter,
            issuer,
            audience,
            engine,
            authorizer,
            api,
            secrets,
            ssm,
            iam,
        };
        for user in &users {
            world
                .iam
                .create_user()
                .user_name(user)
                .send()
                .await
                .expect("user");
            world
                .iam
                .tag_user()
                .user_name(user)
                .tags(
                    aws_sdk_iam::types::Tag::builder()
                        .key(keyrot::iam_key::MANAGED_USER_TAG)
                        .value(&world.managed_prefix)
                        .build()
                        .expect("tag"),
                )
                .send()
                .await
                .expect("enrol user");
            let id = format!("{}{user}", world.managed_prefix);
            world.create_secret(&id, json!({ "UserName": user })).await;
            world.rotate(&id).await;
        }
        world.create_secret(&signing_secret, json!({})).await;
        world.rotate(&signing_secret).await;
        for (id, users, cidrs) in [
            ("client-a", vec![users[0].clone()], vec![]),
            ("client-b", vec![users[1].clone()], vec![]),
            (
                "client-narrow",
                vec![users[0].clone()],
                vec!["10.1.0.0/16".to_owned()],
            ),
        ] {
            world.add_client(id, users, cidrs).await;
        }
        world
    }

    /// Registers a client (parameter and API key secret), as an operator does.
    pub async fn add_client(&mut self, id: &str, users: Vec<String>, cidrs: Vec<String>) {
        let api_key = keyrot::random::random_hex(24).expect("random");
        self.ssm
            .put_parameter()
            .name(format!("{}{id}", self.clients_path))
            .value(json!({ "users": users, "cidrs": cidrs, "usage_key": format!("usage-{id}-0123456789") }).to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .expect("client parameter");
        self.create_secret(
            &format!("{}{id}", self.client_secret_prefix),
            json!({ "ClientId": id, "ApiKey": api_key }),
        )
        .await;
        self.clients.push(TestClient {
            id: id.to_owned(),
            api_key,
            users,
        });
    }

    /// Another authorizer instance on this world's registry and keys, caching them for `ttl`
    /// as a deployed instance does.
    pub fn authorizer_with_cache(&self, ttl: Duration) -> Authorizer {
        authorizer_service(
            &self.ssm,
            &self.secrets,
            [
                &self.clients_path,
                &self.client_secret_prefix,
                &self.public_keys_parameter,
            ],
            [&self.issuer, &self.audience],
            ttl,
        )
    }

    /// Another authorizer instance on this world's registry and keys whose AWS calls go to
    /// `endpoint` (a counting or fault proxy in front of moto), caching them for `ttl`.
    pub async fn authorizer_through(&self, endpoint: &str, ttl: Duration) -> Authorizer {
        let config = sdk_config(endpoint).await;
        authorizer_service(
            &aws_sdk_ssm::Client::new(&config),
            &aws_sdk_secretsmanager::Client::new(&config),
            [
                &self.clients_path,
                &self.client_secret_prefix,
                &self.public_keys_parameter,
            ],
            [&self.issuer, &self.audience],
            ttl,
        )
    }

    async fn create_secret(&self, id: &str, value: Value) {
        self.secrets
            .create_secret()
            .name(id)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("create secret");
    }

    /// A complete rotation of `secret_id` through the engine, as Secrets Manager drives it.
    pub async fn rotate(&self, secret_id: &str) {
        let token = start_rotation(&self.secrets, secret_id, true).await;
        for step in [Step::Create, Step::Set, Step::Test, Step::Finish] {
            let request = RotationRequest {
                step,
                secret_id: secret_id.to_owned(),
                token: token.clone(),
            };
            self.engine
                .run(&request)
                .await
                .unwrap_or_else(|e| panic!("{step} of {secret_id}: {e}"));
        }
    }

    pub fn client(&self, id: &str) -> &TestClient {
        self.clients.iter().find(|c| c.id == id).expect("client")
    }

    /// The signing key now AWSCURRENT.
    pub async fn current_signing_key(&self) -> SigningKeySecret {
        let text = self
            .secrets
            .get_secret_value()
            .secret_id(&self.signing_secret)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .expect("signing key")
            .secret_string
            .expect("value");
        SigningKeySecret::parse(&Sensitive::new(text), &self.signing_secret, "AWSCURRENT")
            .expect("parses")
    }

    /// One request through API Gateway's flow.
    pub async fn call(&self, call: Call) -> Reply {
        self.call_through(&self.authorizer, call).await
    }

    /// One request through API Gateway's flow, with this authorizer instance.
    pub async fn call_through(&self, authorizer: &Authorizer, call: Call) -> Reply {
        let method_arn = crate::events::method_arn(call.method, call.resource);
        let authorizer_event = authorizer_event(&call);
        let request: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_value(authorizer_event.clone()).expect("authorizer event");
        let mut context = Context::default();
        context.request_id = "authorizer-invocation".into();
        let decision = match authorizer.handle(LambdaEvent::new(request, context)).await {
            Err(AuthorizerError::Unauthorized) => return gateway_reply(401, "unauthorized"),
            Err(AuthorizerError::Unavailable(_)) => {
                return gateway_reply(500, "authorizer_failure")
            }
            Ok(response) => response,
        };
        let statement = &decision.policy_document.statement[0];
        if statement.effect != IamPolicyEffect::Allow || statement.resource != vec![method_arn] {
            return gateway_reply(403, "forbidden");
        }
        let decision = serde_json::to_value(&decision).expect("authorizer response");
        let proxy_event = proxy_event(&call, &decision);
        self.invoke_api(proxy_event).await
    }

    /// api-fn invoked with `event` as it stands, as anyone allowed `lambda:InvokeFunction`
    /// can, past API Gateway and its authorizer.
    pub async fn invoke_api(&self, event: Value) -> Reply {
        let request: ApiGatewayProxyRequest = serde_json::from_value(event).expect("proxy event");
        let response = self.api.handle(request, "api-invocation").await;
        let body = match response.body {
            Some(Body::Text(text)) => serde_json::from_str(&text).expect("JSON body"),
            _ => Value::Null,
        };
        Reply {
            status: response.status_code,
            body,
            headers: response
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                .collect(),
        }
    }

    /// `POST /generate-token` for a client; returns the token.
    pub async fn token_for(&self, client: &str) -> String {
        let reply = self
            .call(
                Call::new("POST", "/generate-token")
                    .header("x-api-key", &self.client(client).api_key),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["token"].as_str().expect("token").to_owned()
    }

    pub fn active_key_call(&self, client: &str, token: &str, user: &str) -> Call {
        Call::new("GET", "/active-key")
            .header("x-api-key", &self.client(client).api_key)
            .header("Authorization", &format!("Bearer {token}"))
            .query("username", user)
    }
}

fn gateway_reply(status: i64, error: &str) -> Reply {
    Reply {
        status,
        body: json!({ "error": error }),
        headers: HashMap::new(),
    }
}
