//! The protocol on an in-memory store and a recording rotator: no network needed.

use super::*;
use crate::{AwsCallError, Sensitive};
use std::collections::HashMap;
use std::sync::Mutex;

/// version → (labels, value)
type Versions = HashMap<String, (Vec<String>, Option<String>)>;

#[derive(Default)]
struct MemoryStore {
    enabled: bool,
    versions: Mutex<Versions>,
}

impl MemoryStore {
    fn with(enabled: bool, versions: &[(&str, &[&str], Option<&str>)]) -> Self {
        let versions = versions
            .iter()
            .map(|(id, labels, value)| {
                (
                    id.to_string(),
                    (
                        labels.iter().map(|l| l.to_string()).collect(),
                        value.map(str::to_owned),
                    ),
                )
            })
            .collect();
        Self {
            enabled,
            versions: Mutex::new(versions),
        }
    }

    fn labels(&self, version: &str) -> Vec<String> {
        let mut labels = self.versions.lock().unwrap()[version].0.clone();
        labels.sort();
        labels
    }
}

impl SecretStore for MemoryStore {
    async fn describe(&self, _: &str) -> Result<SecretDescription, AwsCallError> {
        Ok(SecretDescription {
            arn: "arn:secret".into(),
            name: "keyrot/test".into(),
            rotation_enabled: self.enabled,
            last_rotated: None,
            versions: self
                .versions
                .lock()
                .unwrap()
                .iter()
                .map(|(id, (labels, _))| (id.clone(), labels.clone()))
                .collect(),
        })
    }

    async fn get_value(
        &self,
        _: &str,
        version_id: Option<&str>,
        stage: Stage,
    ) -> Result<Option<Sensitive>, AwsCallError> {
        let versions = self.versions.lock().unwrap();
        Ok(versions
            .iter()
            .find(|(id, (labels, _))| {
                version_id.is_none_or(|v| v == id.as_str())
                    && labels.iter().any(|l| l == stage.label())
            })
            .and_then(|(_, (_, value))| value.clone().map(Sensitive::new)))
    }

    async fn put_pending(
        &self,
        _: &str,
        token: &str,
        value: &Sensitive,
    ) -> Result<(), AwsCallError> {
        let mut versions = self.versions.lock().unwrap();
        let entry = versions.entry(token.into()).or_default();
        entry.1 = Some(value.expose().to_owned());
        Ok(())
    }

    async fn count_kept_versions(
        &self,
        _: &str,
        _: std::time::SystemTime,
    ) -> Result<usize, AwsCallError> {
        Ok(self.versions.lock().unwrap().len())
    }

    async fn move_stage(
        &self,
        _: &str,
        stage: Stage,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> Result<(), AwsCallError> {
        let mut versions = self.versions.lock().unwrap();
        if let Some(from) = remove_from {
            versions
                .get_mut(from)
                .unwrap()
                .0
                .retain(|l| l != stage.label());
            if stage == Stage::Current {
                for (labels, _) in versions.values_mut() {
                    labels.retain(|l| l != "AWSPREVIOUS");
                }
                versions.get_mut(from).unwrap().0.push("AWSPREVIOUS".into());
            }
        }
        if let Some(to) = move_to {
            let labels = &mut versions.get_mut(to).unwrap().0;
            labels.retain(|l| l != "AWSPREVIOUS");
            labels.push(stage.label().into());
        }
        Ok(())
    }
}

#[derive(Default)]
struct RecordingRotator {
    calls: Mutex<Vec<String>>,
}

impl Rotator for RecordingRotator {
    fn kind(&self) -> &'static str {
        "test"
    }
    async fn create(
        &self,
        _: &SecretRef,
        token: &str,
        current: &Sensitive,
        _previous: Option<&Sensitive>,
    ) -> Result<Sensitive, RotationError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("create {}", current.expose()));
        Ok(Sensitive::new(format!("value-{token}")))
    }
    async fn set(
        &self,
        _: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> Result<(), RotationError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("set {} {}", current.expose(), pending.expose()));
        Ok(())
    }
    async fn test(&self, _: &SecretRef, value: &Sensitive) -> Result<(), RotationError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("test {}", value.expose()));
        Ok(())
    }
    async fn finished(
        &self,
        _: &SecretRef,
        token: &str,
        promoted: &Sensitive,
        superseded: Option<&Sensitive>,
    ) -> Result<(), RotationError> {
        self.calls.lock().unwrap().push(format!(
            "finished {token} {} after {}",
            promoted.expose(),
            superseded.map_or("none", Sensitive::expose)
        ));
        Ok(())
    }
}

fn request(step: Step, token: &str) -> RotationRequest {
    RotationRequest {
        step,
        secret_id: "keyrot/test".into(),
        token: token.into(),
    }
}

fn engine(store: MemoryStore) -> RotationEngine<MemoryStore, RecordingRotator> {
    RotationEngine::new(store, RecordingRotator::default())
}

#[tokio::test]
async fn runs_the_four_steps_and_moves_the_labels() {
    let engine = engine(MemoryStore::with(
        true,
        &[
            ("v1", &["AWSCURRENT"], Some("old")),
            ("v2", &["AWSPENDING"], None),
        ],
    ));
    let outcomes = [
        engine.run(&request(Step::Create, "v2")).await.unwrap(),
        engine.run(&request(Step::Create, "v2")).await.unwrap(),
        engine.run(&request(Step::Set, "v2")).await.unwrap(),
        engine.run(&request(Step::Test, "v2")).await.unwrap(),
        engine.run(&request(Step::Finish, "v2")).await.unwrap(),
        engine.run(&request(Step::Finish, "v2")).await.unwrap(),
    ];
    assert_eq!(
        outcomes,
        [
            StepOutcome::Created,
            StepOutcome::PendingAlreadyCreated,
            StepOutcome::Set,
            StepOutcome::Tested,
            StepOutcome::Finished,
            StepOutcome::AlreadyCurrent,
        ]
    );
    let store = &engine.store;
    assert_eq!(store.labels("v2"), vec!["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(store.labels("v1"), vec!["AWSPREVIOUS"]);
    assert_eq!(
        *engine.rotator().calls.lock().unwrap(),
        vec![
            "create old",
            "set old value-v2",
            "test value-v2",
            // The superseded value reaches the rotator on the first run and on the retry.
            "finished v2 value-v2 after old",
            "finished v2 value-v2 after old",
        ]
    );
}

#[tokio::test]
async fn entry_checks_come_in_protocol_order() {
    let disabled = engine(MemoryStore::with(
        false,
        &[("v1", &["AWSCURRENT"], Some("x"))],
    ));
    assert!(matches!(
        disabled.run(&request(Step::Create, "nope")).await,
        Err(RotationError::RotationDisabled { .. })
    ));
    let enabled = engine(MemoryStore::with(
        true,
        &[
            ("v1", &["AWSCURRENT"], Some("x")),
            ("v0", &["AWSPREVIOUS"], Some("y")),
        ],
    ));
    assert!(matches!(
        enabled.run(&request(Step::Create, "nope")).await,
        Err(RotationError::UnknownVersion { .. })
    ));
    assert_eq!(
        enabled.run(&request(Step::Create, "v1")).await.unwrap(),
        StepOutcome::AlreadyCurrent
    );
    assert!(matches!(
        enabled.run(&request(Step::Set, "v0")).await,
        Err(RotationError::NotPending { .. })
    ));
    assert!(enabled.rotator().calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn finish_refuses_a_pending_version_without_value() {
    let engine = engine(MemoryStore::with(
        true,
        &[
            ("v1", &["AWSCURRENT"], Some("old")),
            ("v2", &["AWSPENDING"], None),
        ],
    ));
    assert!(matches!(
        engine.run(&request(Step::Finish, "v2")).await,
        Err(RotationError::MissingValue { .. })
    ));
    assert_eq!(engine.store.labels("v1"), vec!["AWSCURRENT"]);
}

#[tokio::test]
async fn test_without_pending_value_tests_awscurrent() {
    let engine = engine(MemoryStore::with(
        true,
        &[
            ("v1", &["AWSCURRENT"], Some("old")),
            ("v2", &["AWSPENDING"], None),
        ],
    ));
    engine.run(&request(Step::Test, "v2")).await.unwrap();
    assert_eq!(*engine.rotator().calls.lock().unwrap(), vec!["test old"]);
}
