//! Secrets Manager rotation function for keyrot: IAM access key secrets and the JWT signing
//! key secret (picked by the secret's name).

use keyrot::config::RotationConfig;
use keyrot::iam_key::{IamKeyRotator, IamRotationSettings, IamSdk, StsKeyVerifier};
use keyrot::notify::ConfiguredNotifier;
use keyrot::rotation::{handle_rotation_event, ByName, RotationEngine, SecretsManagerStore};
use keyrot::signing_key::{SigningKeyRotator, SsmPublicKeyStore};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let config = RotationConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let iam_keys = IamKeyRotator::new(
        IamSdk::new(aws_sdk_iam::Client::new(&sdk_config)),
        StsKeyVerifier::new(&sdk_config),
        IamRotationSettings {
            verify_backoff: config.verify_backoff,
            lifetime: config.lifetime,
            managed_prefix: config.managed_prefix,
        },
    );
    let signing_key = SigningKeyRotator::new(SsmPublicKeyStore::new(
        aws_sdk_ssm::Client::new(&sdk_config),
        config.public_keys_parameter,
    ));
    let engine = RotationEngine::new(
        SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk_config)),
        ByName::new(iam_keys, signing_key, config.signing_key_secret),
    );
    let notifier = ConfiguredNotifier::new(config.failure_mail, &sdk_config);
    let (engine, notifier) = (&engine, &notifier);
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle_rotation_event(engine, notifier, event).await
        },
    ))
    .await
}
