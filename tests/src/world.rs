//! One test's world: a fresh IAM user and its managed secret on the shared moto server, the
//! rotation engine wired as `rotation-fn` wires it (through a fault proxy), direct clients for
//! setup and assertions, and the invariants every scenario must leave intact.

use crate::fault_proxy::FaultProxy;
use crate::moto::{moto_url, sdk_config};
use aws_sdk_iam::types::StatusType;
use keyrot::backoff::Backoff;
use keyrot::iam_key::{
    IamKeyRotator, IamKeySecret, IamRotationSettings, IamSdk, KeyLedger, KeyLifetime,
    StsKeyVerifier, MANAGED_TAG_PREFIX,
};
use keyrot::rotation::{
    RotationEngine, RotationError, RotationRequest, SecretsManagerStore, Stage, Step, StepOutcome,
};
use keyrot::Sensitive;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub type Engine =
    RotationEngine<SecretsManagerStore, IamKeyRotator<IamSdk, StsKeyVerifier, SecretsManagerStore>>;

pub const ROTATION_LAMBDA_ARN: &str =
    "arn:aws:lambda:us-east-1:123456789012:function:keyrot-rotation";
pub const STEPS: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

/// Backoff used by tests: the same algorithm as production, scaled down.
pub fn test_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
        max_wait: Duration::from_millis(400),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub id: String,
    pub active: bool,
}

pub struct World {
    pub user: String,
    pub user_arn: String,
    pub secret_id: String,
    pub proxy: FaultProxy,
    pub engine: Engine,
    pub iam: aws_sdk_iam::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    direct_config: aws_config::SdkConfig,
    foreign_keys: Vec<String>,
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// What Secrets Manager does on RotateSecret for a secret whose rotation is configured on
/// keyrot's function: stage a new, empty AWSPENDING version; returns its id (the token).
pub async fn start_rotation(
    secrets: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    rotate_immediately: bool,
) -> String {
    secrets
        .rotate_secret()
        .rotate_immediately(rotate_immediately)
        .secret_id(secret_id)
        .rotation_lambda_arn(ROTATION_LAMBDA_ARN)
        .rotation_rules(
            aws_sdk_secretsmanager::types::RotationRulesType::builder()
                .automatically_after_days(1)
                .build(),
        )
        .send()
        .await
        .expect("RotateSecret")
        .version_id
        .expect("version id")
}

impl World {
    /// A user and a freshly onboarded secret (`{"UserName": ...}`, rotation not yet enabled).
    pub async fn new(name: &str) -> Self {
        Self::with_backoff(name, test_backoff()).await
    }

    pub async fn with_backoff(name: &str, backoff: Backoff) -> Self {
        Self::with_settings(name, backoff, KeyLifetime::NONE, None).await
    }

    /// A world whose rotator keeps the key lifetime contract's promise for `lifetime`.
    pub async fn with_lifetime(name: &str, lifetime: KeyLifetime) -> Self {
        Self::with_settings(name, test_backoff(), lifetime, None).await
    }

    /// As `new`, for a user created with an IAM path (e.g. `/division/`): its ARN is
    /// `user/division/<name>`, the secret stays `keyrot/iam/<name>`.
    pub async fn with_user_path(name: &str, path: &str) -> Self {
        Self::with_settings(name, test_backoff(), KeyLifetime::NONE, Some(path)).await
    }

    async fn with_settings(
        name: &str,
        backoff: Backoff,
        lifetime: KeyLifetime,
        path: Option<&str>,
    ) -> Self {
        let moto = moto_url();
        let direct_config = sdk_config(&moto).await;
        let proxy = FaultProxy::start(&moto).await;
        let engine_config = sdk_config(proxy.url()).await;
        let engine = RotationEngine::new(
            SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&engine_config)),
            IamKeyRotator::new(
                IamSdk::new(aws_sdk_iam::Client::new(&engine_config)),
                StsKeyVerifier::new(&engine_config),
                SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&engine_config)),
                IamRotationSettings {
                    verify_backoff: backoff,
                    lifetime,
                    managed_prefix: "keyrot/iam/".into(),
                },
            ),
        );
        let unique = format!(
            "{}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::SeqCst),
            name
        );
        let user = format!("kr-{unique}");
        let secret_id = format!("keyrot/iam/{user}");
        let iam = aws_sdk_iam::Client::new(&direct_config);
        let secrets = aws_sdk_secretsmanager::Client::new(&direct_config);
        let user_arn = iam
            .create_user()
            .user_name(&user)
            .set_path(path.map(str::to_owned))
            .send()
            .await
            .expect("create user")
            .user
            .expect("user")
            .arn;
        // Enrolled, as the fleet enrols a registry user.
        iam.tag_user()
            .user_name(&user)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key(keyrot::iam_key::MANAGED_USER_TAG)
                    .value("keyrot/iam/")
                    .build()
                    .expect("tag"),
            )
            .send()
            .await
            .expect("enrol user");
        secrets
            .create_secret()
            .name(&secret_id)
            .secret_string(serde_json::json!({ "UserName": user }).to_string())
            .send()
            .await
            .expect("create secret");
        Self {
            user,
            user_arn,
            secret_id,
            proxy,
            engine,
            iam,
            secrets,
            direct_config,
            foreign_keys: Vec::new(),
        }
    }

    /// The engine refusing rotations up front once the secret keeps `limit` versions.
    pub fn with_version_limit(self, limit: usize) -> Self {
        Self {
            engine: self.engine.with_version_limit(limit),
            ..self
        }
    }

    /// What Secrets Manager does on RotateSecret: enable rotation and stage a new, empty
    /// AWSPENDING version. Returns its id, the token of the rotation.
    pub async fn start_rotation(&self) -> String {
        self.start_rotation_with(true).await
    }

    /// RotateSecret with `RotateImmediately` as given (false: Secrets Manager runs only
    /// testSecret).
    pub async fn start_rotation_with(&self, rotate_immediately: bool) -> String {
        start_rotation(&self.secrets, &self.secret_id, rotate_immediately).await
    }

    pub fn request(&self, step: Step, token: &str) -> RotationRequest {
        RotationRequest {
            step,
            secret_id: self.secret_id.clone(),
            token: token.to_owned(),
        }
    }

    pub async fn step(&self, step: Step, token: &str) -> Result<StepOutcome, RotationError> {
        self.engine.run(&self.request(step, token)).await
    }

    /// The four steps in order, stopping at the first failure, as Secrets Manager runs them.
    pub async fn run_steps(&self, token: &str) -> Result<(), RotationError> {
        for step in STEPS {
            self.step(step, token).await?;
        }
        Ok(())
    }

    /// A complete rotation that must succeed; returns its token.
    pub async fn rotate(&self) -> String {
        let token = self.start_rotation().await;
        if let Err(error) = self.run_steps(&token).await {
            panic!("rotation of {} failed: {error}", self.secret_id);
        }
        token
    }

    /// A key the operator made by hand (keyrot did not create it).
    pub async fn add_foreign_key(&mut self) -> String {
        let id = self
            .iam
            .create_access_key()
            .user_name(&self.user)
            .send()
            .await
            .expect("create foreign key")
            .access_key
            .expect("key")
            .access_key_id;
        self.foreign_keys.push(id.clone());
        id
    }

    /// The operator deleted their keys; stop expecting them.
    pub fn forget_foreign_keys(&mut self) {
        self.foreign_keys.clear();
    }

    pub async fn keys(&self) -> Vec<KeyState> {
        let mut keys: Vec<KeyState> = self
            .iam
            .list_access_keys()
            .user_name(&self.user)
            .send()
            .await
            .expect("list keys")
            .access_key_metadata
            .into_iter()
            .map(|key| KeyState {
                id: key.access_key_id.expect("key id"),
                active: key.status == Some(StatusType::Active),
            })
            .collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    pub async fn key_ids(&self) -> HashSet<String> {
        self.keys().await.into_iter().map(|k| k.id).collect()
    }

    pub async fn tags(&self) -> HashMap<String, String> {
        self.iam
            .list_user_tags()
            .user_name(&self.user)
            .send()
            .await
            .expect("list tags")
            .tags
            .into_iter()
            .map(|tag| (tag.key, tag.value))
            .collect()
    }

    /// Version id → labels.
    pub async fn versions(&self) -> HashMap<String, Vec<String>> {
        let mut versions = self
            .secrets
            .describe_secret()
            .secret_id(&self.secret_id)
            .send()
            .await
            .expect("describe")
            .version_ids_to_stages
            .unwrap_or_default();
        for stages in versions.values_mut() {
            stages.sort();
        }
        versions
    }

    /// What an operator does to abandon a rotation that will not finish: take AWSPENDING off
    /// its version, so that RotateSecret is accepted again (AWS refuses it while a rotation
    /// is in progress).
    pub async fn abandon_rotation(&self) {
        let Some(pending) = self.pending_without_current().await.pop() else {
            return;
        };
        self.secrets
            .update_secret_version_stage()
            .secret_id(&self.secret_id)
            .version_stage(Stage::Pending.label())
            .remove_from_version_id(pending)
            .send()
            .await
            .expect("remove AWSPENDING");
    }

    /// Versions whose AWSPENDING makes Secrets Manager refuse the next RotateSecret (on the
    /// AWSCURRENT version it does not: the rotation is complete).
    pub async fn pending_without_current(&self) -> Vec<String> {
        self.versions()
            .await
            .into_iter()
            .filter(|(_, stages)| {
                stages.iter().any(|s| s == "AWSPENDING")
                    && !stages.iter().any(|s| s == "AWSCURRENT")
            })
            .map(|(id, _)| id)
            .collect()
    }

    pub async fn version_with(&self, stage: Stage) -> Option<String> {
        self.versions()
            .await
            .into_iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage.label()))
            .map(|(id, _)| id)
    }

    /// The value at `stage` (explicitly asked for, never the default version).
    pub async fn value(&self, stage: Stage) -> Option<IamKeySecret> {
        let output = self
            .secrets
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage.label())
            .send()
            .await
            .ok()?;
        let text = output.secret_string?;
        Some(
            IamKeySecret::parse(&Sensitive::new(text), &self.secret_id, stage.label())
                .expect("stored value parses"),
        )
    }

    pub async fn value_of_version(&self, version: &str) -> Option<IamKeySecret> {
        let output = self
            .secrets
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_id(version)
            .send()
            .await
            .ok()?;
        let text = output.secret_string?;
        IamKeySecret::parse(&Sensitive::new(text), &self.secret_id, "version").ok()
    }

    /// Who STS (on moto, directly) says this key is.
    pub async fn caller_arn(&self, value: &IamKeySecret) -> String {
        let (id, secret) = value.key().expect("value holds a key");
        let credentials =
            aws_credential_types::Credentials::new(id, secret.expose(), None, None, "assert");
        let config = aws_sdk_sts::config::Builder::from(&self.direct_config)
            .credentials_provider(credentials)
            .build();
        aws_sdk_sts::Client::from_conf(config)
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity")
            .arn
            .expect("arn")
    }

    /// The invariants that hold after any scenario, failed or not:
    /// 1. at most IAM's two keys;
    /// 2. AWSCURRENT (if it holds a key) names a key that exists, is active and
    ///    authenticates as the user;
    /// 3. every key the operator made still exists and is active;
    /// 4. no key beyond AWSCURRENT, AWSPREVIOUS, the one new key of `open_rotation` and the
    ///    operator's keys exists, and no version keeps AWSPENDING unless a rotation is open.
    pub async fn assert_invariants(&self, open_rotation: Option<&str>) {
        let keys = self.keys().await;
        let ids: HashSet<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        assert!(
            keys.len() <= 2,
            "user {} has {} keys: {keys:?}",
            self.user,
            keys.len()
        );

        let mut allowed: HashSet<String> = self.foreign_keys.iter().cloned().collect();
        if let Some(current) = self.value(Stage::Current).await {
            if let Some((current_id, _)) = current.key() {
                let state = keys.iter().find(|k| k.id == current_id);
                assert!(
                    state.is_some_and(|k| k.active),
                    "AWSCURRENT key {current_id} is missing or inactive: {keys:?}"
                );
                assert_eq!(
                    self.caller_arn(&current).await,
                    self.user_arn,
                    "AWSCURRENT key must authenticate as the user"
                );
                allowed.insert(current_id.to_owned());
            }
        }
        if let Some(previous) = self.value(Stage::Previous).await {
            if let Some((id, _)) = previous.key() {
                allowed.insert(id.to_owned());
            }
        }
        // Keys superseded earlier whose promise to clients still runs (after a carry-forward
        // they are no longer AWSPREVIOUS).
        allowed.extend(self.promised_keys().await);
        for foreign in &self.foreign_keys {
            let state = keys.iter().find(|k| &k.id == foreign);
            assert!(
                state.is_some_and(|k| k.active),
                "operator key {foreign} was deleted or deactivated: {keys:?}"
            );
        }
        match open_rotation {
            Some(token) => {
                // The rotation's own new key, stored as pending or (after a failed
                // PutSecretValue) only marked; the retry replaces the latter.
                let own: Vec<String> = self
                    .tags()
                    .await
                    .into_iter()
                    .filter(|(key, value)| {
                        ids.contains(key.as_str()) && crate::world::marks_version(value, token)
                    })
                    .map(|(key, _)| key)
                    .collect();
                assert!(
                    own.len() <= 1,
                    "more than one key for rotation {token}: {own:?}"
                );
                allowed.extend(own);
            }
            None => {
                let stuck = self.pending_without_current().await;
                assert!(stuck.is_empty(), "AWSPENDING left on versions {stuck:?}");
            }
        }
        let unexpected: Vec<&&str> = ids.iter().filter(|id| !allowed.contains(**id)).collect();
        assert!(
            unexpected.is_empty(),
            "keys {unexpected:?} are neither AWSCURRENT, AWSPREVIOUS, pending nor the operator's"
        );
        let marks_for_missing_keys: Vec<String> = self
            .tags()
            .await
            .into_iter()
            .filter(|(key, value)| {
                value.starts_with(MANAGED_TAG_PREFIX) && !ids.contains(key.as_str())
            })
            .map(|(key, _)| key)
            .collect();
        // Marks of deleted keys are dropped at the next createSecret; never more than the
        // one AWSPREVIOUS key can leave.
        assert!(
            marks_for_missing_keys.len() <= 1,
            "stale key marks: {marks_for_missing_keys:?}"
        );
    }

    /// Keys keyrot keeps for this secret because a promise to clients has not run out yet.
    pub async fn promised_keys(&self) -> Vec<String> {
        let tags: Vec<(String, String)> = self.tags().await.into_iter().collect();
        let ledger = KeyLedger::from_tags(&tags);
        let now = std::time::SystemTime::now();
        tags.iter()
            .filter(|(id, _)| {
                ledger
                    .mark_for(id, &self.secret_id)
                    .and_then(|mark| mark.until)
                    .is_some_and(|until| until > now)
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// After a completed rotation: AWSPREVIOUS (if any) still exists and is active.
    pub async fn assert_previous_still_works(&self) {
        let Some(previous) = self.value(Stage::Previous).await else {
            return;
        };
        let Some((id, _)) = previous.key() else {
            return;
        };
        let keys = self.keys().await;
        assert!(
            keys.iter().any(|k| k.id == id && k.active),
            "AWSPREVIOUS key {id} must stay active until the next rotation: {keys:?}"
        );
        assert_eq!(self.caller_arn(&previous).await, self.user_arn);
    }
}

/// Whether a managed-key mark (an IAM tag value) names rotation `token`, whatever follows it
/// (` interval=`, ` until=`).
pub fn marks_version(mark: &str, token: &str) -> bool {
    mark.split(' ')
        .any(|word| word == format!("version={token}"))
}
