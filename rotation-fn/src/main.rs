//! Secrets Manager rotation function for keyrot: IAM access key secrets and the JWT signing
//! key secret (picked by the secret's name), and the operator's emergency revoke.

use keyrot::config::RotationConfig;
use keyrot::iam_key::{IamKeyRotator, IamRotationSettings, IamSdk, StsKeyVerifier};
use keyrot::notify::ConfiguredNotifier;
use keyrot::revoke::{handle_revoke_event, RevokeRequest, Revoker, SsmClientDirectory};
use keyrot::rotation::{handle_rotation_event, ByName, RotationEngine, SecretsManagerStore};
use keyrot::signing_key::{SigningKeyRotator, SsmPublicKeyStore};
use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let config = RotationConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&sdk_config);
    let ssm = aws_sdk_ssm::Client::new(&sdk_config);
    let store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk_config));
    let iam_keys = IamKeyRotator::new(
        IamSdk::new(iam.clone()),
        StsKeyVerifier::new(&sdk_config),
        IamRotationSettings {
            verify_backoff: config.verify_backoff,
            lifetime: config.lifetime,
            managed_prefix: config.managed_prefix.clone(),
        },
    );
    let signing_key = SigningKeyRotator::new(SsmPublicKeyStore::new(
        ssm.clone(),
        config.public_keys_parameter,
    ));
    let engine = RotationEngine::new(
        store.clone(),
        ByName::new(iam_keys, signing_key, config.signing_key_secret),
    );
    let revoker = Revoker {
        store: store.clone(),
        iam: IamSdk::new(iam),
        starter: store,
        clients: SsmClientDirectory::new(ssm, config.clients_parameter_path),
        managed_prefix: config.managed_prefix,
    };
    let notifier = ConfiguredNotifier::new(config.failure_mail, &sdk_config);
    let (engine, revoker, notifier) = (&engine, &revoker, &notifier);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if RevokeRequest::is_revoke(&event.payload) {
            handle_revoke_event(revoker, notifier, event)
                .await
                .map_err(Diagnostic::from)
        } else {
            handle_rotation_event(engine, notifier, event)
                .await
                .map(|()| Value::Null)
                .map_err(Diagnostic::from)
        }
    }))
    .await
}
