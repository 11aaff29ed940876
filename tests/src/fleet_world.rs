//! One fleet test's world on the shared moto server: its own secret prefix and registry path
//! (so concurrent tests never see each other's secrets), the fleet wired as the fleet function
//! wires it (through a fault proxy), and a stand-in for what Secrets Manager does after
//! RotateSecret: running the four steps of each rotation the fleet started through the real
//! rotation engine.

use crate::fault_proxy::FaultProxy;
use crate::moto::{moto_url, sdk_config};
use crate::world::{test_backoff, STEPS};
use keyrot::fleet::{Budgets, Fleet, FleetConfig, RunReport, SsmRegistry};
use keyrot::iam_key::{
    IamKeyRotator, IamKeySecret, IamRotationSettings, IamSdk, KeyLifetime, StsKeyVerifier,
};
use keyrot::rotation::{RotationEngine, RotationRequest, SecretsManagerStore};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub type FleetUnderTest = Fleet<SsmRegistry, SecretsManagerStore, IamSdk>;
type Engine =
    RotationEngine<SecretsManagerStore, IamKeyRotator<IamSdk, StsKeyVerifier, SecretsManagerStore>>;

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

pub struct FleetWorld {
    pub tag: String,
    pub prefix: String,
    pub users_path: String,
    pub proxy: FaultProxy,
    pub fleet: FleetUnderTest,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    engine: Engine,
}

impl FleetWorld {
    /// A fleet rotating every `interval`, keeping offboarded keys `grace` beyond it.
    pub async fn new(name: &str, interval: Duration, grace: Duration) -> Self {
        Self::on(&moto_url(), name, interval, grace).await
    }

    /// As [`FleetWorld::new`], on the moto server at `moto` (one with settings of its own).
    pub async fn on(moto: &str, name: &str, interval: Duration, grace: Duration) -> Self {
        let n = SEQUENCE.fetch_add(1, Ordering::SeqCst);
        let tag = format!("f{}{n}{name}", std::process::id() % 10_000);
        let prefix = format!("keyrot/{tag}/");
        let users_path = format!("/keyrot-test/{tag}/users/");
        let direct = sdk_config(moto).await;
        let proxy = FaultProxy::start(moto).await;
        let through_proxy = sdk_config(proxy.url()).await;
        let fleet = Fleet {
            registry: SsmRegistry::new(
                aws_sdk_ssm::Client::new(&through_proxy),
                users_path.clone(),
            ),
            secrets: SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&through_proxy)),
            iam: IamSdk::new(aws_sdk_iam::Client::new(&through_proxy)),
            config: FleetConfig {
                rotation_function_arn: crate::world::ROTATION_LAMBDA_ARN.into(),
                managed_prefix: prefix.clone(),
                users_path: users_path.clone(),
                seed_users: Vec::new(),
                secret_readers: vec!["arn:aws:iam::123456789012:role/keyrot-api".into()],
                kms_key_id: None,
                interval,
                budgets: Budgets {
                    iam_writes_per_second: 1000,
                    secrets_writes_per_second: 1000,
                    rotate_secret_per_second: 1000,
                },
                run_time: Duration::from_secs(1),
                offboard_grace: grace,
                stack_id: Some(STACK_ID.to_owned()),
                eligible_user_path: "/".into(),
                session_deny_policy_arn: None,
            },
        };
        // The rotation function's calls go through the proxy too: its counts are the
        // account's, as AWS meters them.
        let engine = RotationEngine::new(
            SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&through_proxy)),
            IamKeyRotator::new(
                IamSdk::new(aws_sdk_iam::Client::new(&through_proxy)),
                StsKeyVerifier::new(&through_proxy),
                SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&through_proxy)),
                IamRotationSettings {
                    verify_backoff: test_backoff(),
                    lifetime: KeyLifetime {
                        interval,
                        max_wait: Duration::from_millis(200),
                    },
                    managed_prefix: prefix.clone(),
                },
            ),
        );
        Self {
            tag,
            prefix,
            users_path,
            proxy,
            fleet,
            iam: aws_sdk_iam::Client::new(&direct),
            secrets: aws_sdk_secretsmanager::Client::new(&direct),
            ssm: aws_sdk_ssm::Client::new(&direct),
            engine,
        }
    }

    /// The rotation function counting versions kept for `retention` and refusing rotations
    /// at `limit` of them (as the local stack configures it for compressed time).
    pub fn with_version_rules(self, retention: Duration, limit: usize) -> Self {
        Self {
            engine: self
                .engine
                .with_version_retention(retention)
                .with_version_limit(limit),
            ..self
        }
    }

    /// One rotation step through the world's engine (scoped to its prefix).
    pub async fn run_step(
        &self,
        request: RotationRequest,
    ) -> Result<keyrot::rotation::StepOutcome, keyrot::rotation::RotationError> {
        self.engine.run(&request).await
    }

    /// One reconcile run, without completing the rotations it started.
    pub async fn reconcile_only(&self) -> RunReport {
        self.fleet.reconcile().await.expect("reconcile")
    }

    /// Registry entries left under the world's path.
    pub async fn registry_entries(&self) -> Vec<String> {
        keyrot::api::parameters::list_parameters(&self.ssm, &self.users_path)
            .await
            .expect("registry")
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Stack deletion as CloudFormation drives it: the teardown custom resource's Delete
    /// event to the fleet's handler while the stack is being deleted; returns the response
    /// document and the URL it went to.
    pub async fn teardown_through_custom_resource(&self) -> (serde_json::Value, String) {
        let (result, sent) = self
            .custom_resource_event(teardown_event(), &StackBeingDeleted)
            .await;
        result.expect("teardown answered");
        let (url, body) = sent.expect("a response was sent");
        (serde_json::from_str(&body).expect("JSON response"), url)
    }

    /// `event` to the fleet's handler, with `stacks` reporting the stack's status; the
    /// handler's result and the answer it sent (URL, body), if any.
    pub async fn custom_resource_event<T: keyrot::fleet::StackStatus>(
        &self,
        event: serde_json::Value,
        stacks: &T,
    ) -> (
        Result<serde_json::Value, keyrot::fleet::FleetError>,
        Option<(String, String)>,
    ) {
        let responder = CapturingResponder::default();
        let mut context = lambda_runtime::Context::default();
        context.request_id = "teardown-test".into();
        context.deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64
            + 600_000;
        let result = keyrot::fleet::handle_fleet_event(
            Some(&self.fleet),
            keyrot::fleet::StackPorts {
                responder: &responder,
                stacks,
            },
            lambda_runtime::LambdaEvent::new(event, context),
        )
        .await;
        let sent = responder.sent.lock().expect("lock").clone();
        (result, sent)
    }

    /// A key the operator made by hand (keyrot did not create it); its id.
    pub async fn add_hand_made_key(&self, user: &str) -> String {
        self.iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .expect("hand-made key")
            .access_key
            .expect("key")
            .access_key_id
    }

    pub fn user(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    pub fn secret_of(&self, user: &str) -> String {
        format!("{}{user}", self.prefix)
    }

    /// Creates the IAM users 0..count (not enrolled).
    pub async fn create_users(&self, count: usize) -> Vec<String> {
        let mut users = Vec::with_capacity(count);
        for i in 0..count {
            let user = self.user(i);
            self.iam
                .create_user()
                .user_name(&user)
                .send()
                .await
                .expect("create user");
            users.push(user);
        }
        users
    }

    /// The one onboarding action: the user's registry entry (what `keyrot users add` writes).
    pub async fn enrol(&self, user: &str) {
        self.ssm
            .put_parameter()
            .name(format!("{}{user}", self.users_path))
            .value(serde_json::json!({ "UserName": user }).to_string())
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .expect("registry entry");
    }

    pub async fn unenrol(&self, user: &str) {
        self.ssm
            .delete_parameter()
            .name(format!("{}{user}", self.users_path))
            .send()
            .await
            .expect("delete registry entry");
    }

    /// One reconcile run, then the rotations it started, run to completion.
    pub async fn reconcile(&self) -> RunReport {
        let report = self.fleet.reconcile().await.expect("reconcile");
        self.complete_rotations().await;
        report
    }

    /// Runs the four steps of every rotation in progress under the prefix, as Secrets Manager
    /// would after RotateSecret; returns how many it completed.
    pub async fn complete_rotations(&self) -> usize {
        let mut completed = 0;
        for (name, versions) in self.versions_by_secret().await {
            let pending = versions.iter().find(|(_, stages)| {
                stages.iter().any(|s| s == "AWSPENDING")
                    && !stages.iter().any(|s| s == "AWSCURRENT")
            });
            let Some((token, _)) = pending else { continue };
            for step in STEPS {
                let request = RotationRequest {
                    step,
                    secret_id: name.clone(),
                    token: token.clone(),
                };
                if let Err(error) = self.engine.run(&request).await {
                    panic!("rotation of {name} failed at {}: {error}", step.as_str());
                }
            }
            completed += 1;
        }
        completed
    }

    /// As [`FleetWorld::complete_rotations`], with up to `limit` rotations at once (as Lambda
    /// runs them); returns how many it completed and the most that ran at once.
    pub async fn complete_rotations_concurrently(&self, limit: usize) -> (usize, usize) {
        use std::sync::atomic::AtomicUsize;
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let pending: Vec<(String, String)> = self
            .versions_by_secret()
            .await
            .into_iter()
            .filter_map(|(name, versions)| {
                versions
                    .into_iter()
                    .find(|(_, stages)| {
                        stages.iter().any(|s| s == "AWSPENDING")
                            && !stages.iter().any(|s| s == "AWSCURRENT")
                    })
                    .map(|(token, _)| (name, token))
            })
            .collect();
        let count = pending.len();
        let semaphore = tokio::sync::Semaphore::new(limit.max(1));
        let rotations = pending.into_iter().map(|(name, token)| {
            let (semaphore, running, peak) = (&semaphore, &running, &peak);
            async move {
                let _permit = semaphore.acquire().await.expect("semaphore");
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for step in STEPS {
                    let request = RotationRequest {
                        step,
                        secret_id: name.clone(),
                        token: token.clone(),
                    };
                    if let Err(error) = self.engine.run(&request).await {
                        panic!("rotation of {name} failed at {}: {error}", step.as_str());
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            }
        });
        futures_join_all(rotations).await;
        (count, peak.load(Ordering::SeqCst))
    }

    /// Version id → stages, for every live secret under the prefix.
    pub async fn versions_by_secret(&self) -> HashMap<String, HashMap<String, Vec<String>>> {
        let mut all = HashMap::new();
        let mut next = None;
        loop {
            let page = self
                .secrets
                .list_secrets()
                .filters(
                    aws_sdk_secretsmanager::types::Filter::builder()
                        .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
                        .values(&self.prefix)
                        .build(),
                )
                .max_results(100)
                .set_next_token(next)
                .send()
                .await
                .expect("list secrets");
            for entry in page.secret_list.unwrap_or_default() {
                if let Some(name) = entry.name.filter(|n| n.starts_with(&self.prefix)) {
                    all.insert(name, entry.secret_versions_to_stages.unwrap_or_default());
                }
            }
            match page.next_token {
                Some(token) if !token.is_empty() => next = Some(token),
                _ => return all,
            }
        }
    }

    /// How many versions each live secret has (each rotation adds one).
    pub async fn version_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for name in self.versions_by_secret().await.into_keys() {
            let versions = self
                .secrets
                .list_secret_version_ids()
                .secret_id(&name)
                .include_deprecated(true)
                .send()
                .await
                .expect("versions")
                .versions
                .unwrap_or_default()
                .len();
            counts.insert(name, versions);
        }
        counts
    }

    pub async fn current(&self, user: &str) -> Option<IamKeySecret> {
        let value = self
            .secrets
            .get_secret_value()
            .secret_id(self.secret_of(user))
            .version_stage("AWSCURRENT")
            .send()
            .await
            .ok()?
            .secret_string?;
        IamKeySecret::parse(&keyrot::Sensitive::new(value), "test", "AWSCURRENT").ok()
    }

    /// The AWSCURRENT value of one of the user's slot secrets.
    pub async fn slot_value(
        &self,
        user: &str,
        slot: keyrot::key_slots::Slot,
    ) -> Option<IamKeySecret> {
        let name = keyrot::key_slots::secret_name(&self.prefix, user, slot);
        let value = self
            .secrets
            .get_secret_value()
            .secret_id(&name)
            .version_stage("AWSCURRENT")
            .send()
            .await
            .ok()?
            .secret_string?;
        IamKeySecret::parse(&keyrot::Sensitive::new(value), &name, "AWSCURRENT").ok()
    }

    pub async fn key_ids(&self, user: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .iam
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .expect("keys")
            .access_key_metadata
            .into_iter()
            .filter_map(|key| key.access_key_id)
            .collect();
        ids.sort();
        ids
    }

    pub async fn tags(&self, user: &str) -> HashMap<String, String> {
        self.iam
            .list_user_tags()
            .user_name(user)
            .send()
            .await
            .expect("tags")
            .tags
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect()
    }

    /// Keys on `user` that carry a keyrot mark (made by keyrot): under a slot's tag key or
    /// the key id.
    pub async fn keyrot_keys(&self, user: &str) -> Vec<String> {
        use keyrot::iam_key::IamKeys;
        let tags: Vec<(String, String)> = self.tags(user).await.into_iter().collect();
        let keys = keyrot::iam_key::IamSdk::new(self.iam.clone())
            .list_access_keys(user)
            .await
            .expect("ListAccessKeys");
        let ledger = keyrot::iam_key::KeyLedger::from_tags_and_keys(&tags, &keys);
        self.key_ids(user)
            .await
            .into_iter()
            .filter(|id| ledger.is_marked(id))
            .collect()
    }

    /// The operator deletes a key by hand.
    pub async fn delete_key(&self, user: &str, key_id: &str) {
        self.iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
            .expect("DeleteAccessKey");
    }

    /// Someone with iam:TagUser on the user writes a tag.
    pub async fn tag(&self, user: &str, key: &str, value: &str) {
        let tag = aws_sdk_iam::types::Tag::builder()
            .key(key)
            .value(value)
            .build()
            .expect("tag");
        self.iam
            .tag_user()
            .user_name(user)
            .tags(tag)
            .send()
            .await
            .expect("TagUser");
    }
}

/// The stack every fleet world belongs to.
pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/keyrot/1";
pub const RESPONSE_URL: &str =
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/cfn-response";

/// The Delete event CloudFormation sends the teardown resource of [`STACK_ID`].
pub fn teardown_event() -> serde_json::Value {
    serde_json::json!({
        "RequestType": "Delete",
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:keyrot-fleet",
        "ResponseURL": RESPONSE_URL,
        "StackId": STACK_ID,
        "RequestId": "request-1",
        "ResourceType": "Custom::KeyrotFleetTeardown",
        "LogicalResourceId": "FleetTeardown",
        "PhysicalResourceId": "keyrot-fleet-teardown",
        "ResourceProperties": {}
    })
}

/// CloudFormation's answer while the stack is being deleted. moto deletes a stack at once, so
/// it never reports `DELETE_IN_PROGRESS`; the negative cases use moto's real answers.
pub struct StackBeingDeleted;

impl keyrot::fleet::StackStatus for StackBeingDeleted {
    async fn status(&self, _stack_id: &str) -> Result<Option<String>, keyrot::AwsCallError> {
        Ok(Some(keyrot::fleet::DELETE_IN_PROGRESS.to_owned()))
    }
}

/// Keeps the custom resource response instead of PUTting it to S3.
#[derive(Default)]
struct CapturingResponder {
    sent: std::sync::Mutex<Option<(String, String)>>,
}

impl keyrot::fleet::CustomResourceResponder for CapturingResponder {
    async fn respond(&self, url: &str, body: &str) -> Result<(), String> {
        *self.sent.lock().map_err(|e| e.to_string())? = Some((url.to_owned(), body.to_owned()));
        Ok(())
    }
}

/// Runs the futures together on this task.
async fn futures_join_all<F: std::future::Future<Output = ()>>(
    futures: impl IntoIterator<Item = F>,
) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|future| future.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
