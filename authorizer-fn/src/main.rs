//! API Gateway REQUEST authorizer for keyrot: source IP, API key and JWT.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use keyrot::api::authorizer_service::AuthorizerService;
use keyrot::api::config::AuthorizerConfig;
use keyrot::api::registry_source::AwsClientSource;
use keyrot::signing_key::SsmPublicKeyStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let config = AuthorizerConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk_config);
    let service = AuthorizerService::new(
        config.settings,
        AwsClientSource::new(
            ssm.clone(),
            aws_sdk_secretsmanager::Client::new(&sdk_config),
            config.clients_parameter_path,
            config.client_secret_prefix,
        ),
        SsmPublicKeyStore::new(ssm, config.public_keys_parameter),
        config.cache_ttl,
    );
    let service = &service;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            service.handle(event).await
        },
    ))
    .await
}
