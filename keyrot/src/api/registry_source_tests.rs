//! The registry load on in-memory ports: who gets in, who is skipped, and how many calls.

use super::clients::ClientRegistry;
use super::parameters::ParameterLister;
use super::registry_source::{ClientSource, RegistrySource};
use super::secret_batch::{SecretBatch, SecretBatchReader, SecretError, MAX_SECRETS_PER_CALL};
use crate::{AwsCallError, Sensitive};
use std::collections::HashMap;
use std::sync::Mutex;

const PATH: &str = "/kr/clients/";
const PREFIX: &str = "kr/clients/";

fn call_error(operation: &'static str, code: &str) -> AwsCallError {
    AwsCallError {
        operation,
        code: Some(code.into()),
        message: format!("{code}: injected"),
    }
}

#[derive(Default)]
struct MemoryParameters {
    entries: Vec<(String, String)>,
    fail: bool,
}

impl ParameterLister for MemoryParameters {
    async fn list(&self, path: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        assert_eq!(path, PATH);
        if self.fail {
            return Err(call_error("GetParametersByPath", "ThrottlingException"));
        }
        Ok(self.entries.clone())
    }
}

/// Secrets by name: a value, or the per-secret error Secrets Manager would report.
#[derive(Default)]
struct MemorySecrets {
    secrets: HashMap<String, Result<String, &'static str>>,
    /// 1-based calls that fail as a whole.
    failing_calls: Vec<usize>,
    /// Report errors by ARN instead of by the requested name.
    errors_by_arn: bool,
    calls: Mutex<Vec<Vec<String>>>,
}

impl SecretBatchReader for MemorySecrets {
    async fn read_current(&self, names: &[String]) -> Result<SecretBatch, AwsCallError> {
        let call = {
            let mut calls = self.calls.lock().map_err(|_| call_error("x", "poisoned"))?;
            calls.push(names.to_vec());
            calls.len()
        };
        if names.len() > MAX_SECRETS_PER_CALL {
            return Err(call_error("BatchGetSecretValue", "ValidationException"));
        }
        if self.failing_calls.contains(&call) {
            return Err(call_error("BatchGetSecretValue", "ThrottlingException"));
        }
        let mut batch = SecretBatch::default();
        for name in names {
            let code = match self.secrets.get(name) {
                Some(Ok(value)) => {
                    batch.values.push((name.clone(), Sensitive::new(value)));
                    continue;
                }
                Some(Err(code)) => *code,
                None => "ResourceNotFoundException",
            };
            let secret_id = if self.errors_by_arn {
                format!("arn:aws:secretsmanager:eu-west-1:123456789012:secret:{name}-AbCdEf")
            } else {
                name.clone()
            };
            batch.errors.push(SecretError {
                secret_id,
                code: code.into(),
                message: "injected".into(),
            });
        }
        Ok(batch)
    }
}

impl MemorySecrets {
    fn call_sizes(&self) -> Vec<usize> {
        self.calls
            .lock()
            .map(|calls| calls.iter().map(Vec::len).collect())
            .unwrap_or_default()
    }
}

/// `n` good clients `c000`, `c001`, ... with key `key-<id>`.
fn registry(n: usize) -> (MemoryParameters, MemorySecrets) {
    let mut parameters = MemoryParameters::default();
    let mut secrets = MemorySecrets::default();
    for i in 0..n {
        let id = format!("c{i:03}");
        parameters
            .entries
            .push((format!("{PATH}{id}"), r#"{"users":["alice"]}"#.into()));
        secrets.secrets.insert(
            format!("{PREFIX}{id}"),
            Ok(format!(r#"{{"ClientId":"{id}","ApiKey":"key-{id}"}}"#)),
        );
    }
    (parameters, secrets)
}

async fn load(
    parameters: MemoryParameters,
    secrets: &MemorySecrets,
) -> Result<ClientRegistry, AwsCallError> {
    RegistrySource::with_ports(parameters, secrets, PATH, PREFIX)
        .load()
        .await
        .map(ClientRegistry::new)
}

impl<T: SecretBatchReader> SecretBatchReader for &T {
    async fn read_current(&self, names: &[String]) -> Result<SecretBatch, AwsCallError> {
        (**self).read_current(names).await
    }
}

#[tokio::test]
async fn two_hundred_clients_take_ten_calls_and_only_the_broken_ones_are_skipped() {
    let (mut parameters, mut secrets) = registry(200);
    // Broken: an entry that does not parse (its secret is fine), a secret scheduled for
    // deletion, one denied, one that fails to decrypt, one missing, one without ApiKey.
    parameters.entries[0].1 = "{not json".into();
    let broken = [
        ("c001", Err("InvalidRequestException")),
        ("c002", Err("AccessDeniedException")),
        ("c003", Err("DecryptionFailure")),
        ("c005", Ok(r#"{"ClientId":"c005"}"#.to_owned())),
    ];
    for (id, secret) in broken.clone() {
        secrets.secrets.insert(format!("{PREFIX}{id}"), secret);
    }
    secrets.secrets.remove(&format!("{PREFIX}c004"));

    let registry = load(parameters, &secrets).await.expect("loads");

    assert_eq!(registry.len(), 200 - 6);
    for i in 6..200 {
        let id = format!("c{i:03}");
        let client = registry.find_by_api_key(&format!("key-{id}"), std::time::SystemTime::now());
        assert_eq!(client.map(|c| c.id.as_str()), Some(id.as_str()));
    }
    for id in ["c000", "c001", "c002", "c003", "c004", "c005"] {
        assert!(registry.find_by_id(id).is_none(), "{id} is skipped");
        assert!(registry
            .find_by_api_key(&format!("key-{id}"), std::time::SystemTime::now())
            .is_none());
    }
    // 199 entries parse: ceil(199 / 20) = 10 calls, none above the limit.
    let sizes = secrets.call_sizes();
    assert_eq!(sizes.len(), 10, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n <= MAX_SECRETS_PER_CALL));
    assert_eq!(sizes.iter().sum::<usize>(), 199);
}

#[tokio::test]
async fn calls_are_ceil_of_parsed_entries_over_twenty() {
    for (n, calls) in [(0, 0), (1, 1), (20, 1), (21, 2), (40, 2), (41, 3)] {
        let (parameters, secrets) = registry(n);
        let registry = load(parameters, &secrets).await.expect("loads");
        assert_eq!(registry.len(), n);
        assert_eq!(secrets.call_sizes().len(), calls, "{n} clients");
    }
}

#[tokio::test]
async fn a_failed_batch_call_skips_its_clients_only() {
    let (parameters, mut secrets) = registry(50);
    secrets.failing_calls = vec![2];
    let registry = load(parameters, &secrets).await.expect("loads");
    // Calls are issued in order: the second holds c020..c039.
    assert_eq!(registry.len(), 30);
    assert!(registry.find_by_id("c019").is_some());
    assert!(registry.find_by_id("c020").is_none());
    assert!(registry.find_by_id("c039").is_none());
    assert!(registry.find_by_id("c040").is_some());
}

#[tokio::test]
async fn errors_named_by_arn_still_skip_the_right_client() {
    let (parameters, mut secrets) = registry(3);
    secrets.errors_by_arn = true;
    secrets
        .secrets
        .insert(format!("{PREFIX}c001"), Err("InvalidRequestException"));
    let registry = load(parameters, &secrets).await.expect("loads");
    assert_eq!(registry.len(), 2);
    assert!(registry.find_by_id("c001").is_none());
}

#[tokio::test]
async fn a_failed_listing_fails_the_load_and_reads_no_secret() {
    let (mut parameters, secrets) = registry(3);
    parameters.fail = true;
    assert!(load(parameters, &secrets).await.is_err());
    assert!(secrets.call_sizes().is_empty());
}

#[tokio::test]
async fn a_value_for_another_name_lets_nobody_in() {
    // A batch answer must be matched by name: a value returned under an unrequested name is
    // never some requested client's key.
    struct Confused;
    impl SecretBatchReader for Confused {
        async fn read_current(&self, _: &[String]) -> Result<SecretBatch, AwsCallError> {
            Ok(SecretBatch {
                values: vec![(
                    format!("{PREFIX}other"),
                    Sensitive::new(r#"{"ApiKey":"stray"}"#),
                )],
                errors: Vec::new(),
            })
        }
    }
    let (parameters, _) = registry(2);
    let registry = RegistrySource::with_ports(parameters, Confused, PATH, PREFIX)
        .load()
        .await
        .map(ClientRegistry::new)
        .expect("loads");
    assert!(registry.is_empty());
    assert!(registry
        .find_by_api_key("stray", std::time::SystemTime::now())
        .is_none());
}
