//! Secrets Manager rotation function for keyrot: IAM access key secrets and the JWT signing
//! key secret (picked by the secret's name), and the operator's emergency revoke. Deployed a
//! second time with the fleet's role and settings, the same binary is the fleet function: the
//! reconcile schedule's runs and the stack's teardown.

pub mod responder;

use keyrot::config::RotationConfig;
use keyrot::fleet::{
    handle_fleet_event, is_fleet_event, CloudFormationStacks, Fleet, FleetConfig, SsmRegistry,
    StackPorts,
};
use keyrot::iam_key::{IamKeyRotator, IamRotationSettings, IamSdk, StsKeyVerifier};
use keyrot::notify::ConfiguredNotifier;
use keyrot::revoke::{
    handle_revoke_event, RevokeRequest, Revoker, SecretsManagerRevokeRequests, SsmClientDirectory,
};
use keyrot::rotation::{handle_rotation_event, ByName, RotationEngine, SecretsManagerStore};
use keyrot::signing_key::{SigningKeyRotator, SsmPublicKeyStore};
use lambda_runtime::{run, service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

/// Serves the function's invocations until the runtime stops it: tracing, configuration
/// (parsed once; a bad value stops the function with its name), clients, then the handlers.
pub async fn serve() -> Result<(), Error> {
    keyrot::logging::init();
    let config = RotationConfig::from_env()?;
    let fleet_config = FleetConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let iam = aws_sdk_iam::Client::new(&sdk_config);
    let ssm = aws_sdk_ssm::Client::new(&sdk_config);
    let store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk_config));
    let iam_keys = IamKeyRotator::new(
        IamSdk::new(iam.clone()),
        StsKeyVerifier::new(&sdk_config),
        store.clone(),
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
    )
    .with_version_retention(config.version_retention)
    .with_version_limit(config.version_limit);
    let fleet = fleet_config.map(|fleet_config| Fleet {
        registry: SsmRegistry::new(ssm.clone(), fleet_config.users_path.clone()),
        secrets: store.clone(),
        iam: IamSdk::new(iam.clone()),
        config: fleet_config,
    });
    let responder = responder::HttpsResponder::default();
    let stacks = CloudFormationStacks::new(aws_sdk_cloudformation::Client::new(&sdk_config));
    let revoker = Revoker {
        store: store.clone(),
        iam: IamSdk::new(iam),
        starter: store,
        clients: SsmClientDirectory::new(ssm, config.clients_parameter_path),
        authority: SecretsManagerRevokeRequests::new(
            aws_sdk_secretsmanager::Client::new(&sdk_config),
            config.revoke_requests_secret,
        ),
        managed_prefix: config.managed_prefix,
    };
    let notifier = ConfiguredNotifier::new(config.failure_mail, &sdk_config);
    let (engine, revoker, notifier) = (&engine, &revoker, &notifier);
    let (fleet, responder, stacks) = (fleet.as_ref(), &responder, &stacks);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if is_fleet_event(&event.payload) {
            // Boxed: the fleet's future is deep enough to overflow the compiler's layout
            // query inside the runtime's service future otherwise.
            let stack = StackPorts { responder, stacks };
            Box::pin(handle_fleet_event(fleet, stack, event))
                .await
                .map_err(Diagnostic::from)
        } else if RevokeRequest::is_revoke(&event.payload) {
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
