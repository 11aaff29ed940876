//! Secrets Manager rotation function for keyrot's IAM access key secrets.

use keyrot::config::RotationConfig;
use keyrot::iam_key::{IamKeyRotator, IamSdk, StsKeyVerifier};
use keyrot::rotation::{handle_rotation_event, RotationEngine, SecretsManagerStore};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let config = RotationConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let engine = RotationEngine::new(
        SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk_config)),
        IamKeyRotator::new(
            IamSdk::new(aws_sdk_iam::Client::new(&sdk_config)),
            StsKeyVerifier::new(&sdk_config),
            config.verify_backoff,
        ),
    );
    let engine = &engine;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle_rotation_event(engine, event).await
        },
    ))
    .await
}
