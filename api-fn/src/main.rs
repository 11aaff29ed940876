//! keyrot's API behind the authorizer: `POST /generate-token`, `GET /active-key`.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use keyrot::api::config::api_settings_from_env;
use keyrot::api::endpoints::ApiService;
use keyrot::api::secret_reader::SecretsManagerReader;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyrot::logging::init();
    let settings = api_settings_from_env()?;
    let sdk_config = keyrot::aws::load_sdk_config().await;
    let service = ApiService::new(
        settings,
        SecretsManagerReader::new(aws_sdk_secretsmanager::Client::new(&sdk_config)),
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
