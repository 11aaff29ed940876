//! keyrot's API behind the authorizer: `POST /generate-token`, `GET /active-key`. It checks
//! the caller's credentials itself, with the authorizer's configuration and registry.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use keyrot::api::caller_check::CallerCheck;
use keyrot::api::config::{api_settings_from_env, AuthorizerConfig};
use keyrot::api::endpoints::ApiService;
use keyrot::api::registry_source::AwsClientSource;
use keyrot::api::secret_reader::SecretsManagerReader;
use keyrot::signing_key::SsmPublicKeyStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let settings = api_settings_from_env()?;
    let caller = AuthorizerConfig::from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk_config);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config);
    let service = ApiService::new(
        settings,
        SecretsManagerReader::new(secrets.clone()),
        CallerCheck::new(
            caller.settings,
            AwsClientSource::new(
                ssm.clone(),
                secrets,
                caller.clients_parameter_path,
                caller.client_secret_prefix,
            ),
            SsmPublicKeyStore::new(ssm, caller.public_keys_parameter),
            caller.cache_ttl,
        ),
    );
    let service = &service;
    run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            let request_id = event.context.request_id.clone();
            Ok::<ApiGatewayProxyResponse, Error>(service.handle(event.payload, &request_id).await)
        },
    ))
    .await
}
