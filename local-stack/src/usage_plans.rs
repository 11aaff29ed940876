//! API Gateway's usage-plan check, emulated on moto's API Gateway: with
//! `ApiKeySourceType: AUTHORIZER`, the `usageIdentifierKey` an authorizer returns must be the
//! value of an **enabled** API key attached to a usage plan of the stage, or API Gateway
//! refuses the request with 403 (gateway response INVALID_API_KEY, message "Forbidden")
//! before the integration runs. The local stack provisions the REST API, the usage plan and
//! the default client's key on moto as the template does, and operators add clients' keys
//! with the same `aws apigateway create-api-key` / `create-usage-plan-key` commands as on AWS.
//!
//! moto's API Gateway is reached with plain HTTP: its server picks the service from the
//! request's SigV4 credential scope and checks no signature.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Routes a request to moto's API Gateway (scope `<region>/apigateway`).
const APIGATEWAY_SCOPE: &str = "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/apigateway/aws4_request, SignedHeaders=host, Signature=0";

#[derive(Debug, thiserror::Error)]
#[error("moto API Gateway {operation}: {message}")]
pub struct UsagePlanError {
    pub operation: &'static str,
    pub message: String,
}

/// The stage's usage plan on moto.
#[derive(Clone)]
pub struct UsagePlans {
    endpoint: String,
    plan_id: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for UsagePlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsagePlans")
            .field("endpoint", &self.endpoint)
            .field("plan_id", &self.plan_id)
            .finish()
    }
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    operation: &'static str,
    method: http::Method,
    url: String,
    body: Option<Value>,
) -> Result<(u16, Value), UsagePlanError> {
    let failed = |message: String| UsagePlanError { operation, message };
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", APIGATEWAY_SCOPE)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| failed(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

fn id_of(operation: &'static str, (status, body): (u16, Value)) -> Result<String, UsagePlanError> {
    match body["id"].as_str() {
        Some(id) if (200..300).contains(&status) => Ok(id.to_owned()),
        _ => Err(UsagePlanError {
            operation,
            message: format!("HTTP {status}: {body}"),
        }),
    }
}

impl UsagePlans {
    /// Creates what the template creates: the REST API, a usage plan on its `stage`.
    pub async fn provision(endpoint: &str, stage: &str) -> Result<Self, UsagePlanError> {
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let client = Client::builder(TokioExecutor::new()).build_http();
        let api_id = id_of(
            "CreateRestApi",
            call(
                &client,
                "CreateRestApi",
                http::Method::POST,
                format!("{endpoint}/restapis"),
                Some(json!({"name": "keyrot-local"})),
            )
            .await?,
        )?;
        let plan_id = id_of(
            "CreateUsagePlan",
            call(
                &client,
                "CreateUsagePlan",
                http::Method::POST,
                format!("{endpoint}/usageplans"),
                Some(json!({
                    "name": "keyrot-local-clients",
                    "apiStages": [{"apiId": api_id, "stage": stage}],
                })),
            )
            .await?,
        )?;
        Ok(Self {
            endpoint,
            plan_id,
            client,
        })
    }

    pub fn plan_id(&self) -> &str {
        &self.plan_id
    }

    /// `aws apigateway create-api-key --enabled --value …` then `create-usage-plan-key`;
    /// returns the API key's id.
    pub async fn add_key(&self, name: &str, value: &str) -> Result<String, UsagePlanError> {
        let key_id = id_of(
            "CreateApiKey",
            call(
                &self.client,
                "CreateApiKey",
                http::Method::POST,
                format!("{}/apikeys", self.endpoint),
                Some(json!({"name": name, "value": value, "enabled": true})),
            )
            .await?,
        )?;
        id_of(
            "CreateUsagePlanKey",
            call(
                &self.client,
                "CreateUsagePlanKey",
                http::Method::POST,
                format!("{}/usageplans/{}/keys", self.endpoint, self.plan_id),
                Some(json!({"keyId": key_id, "keyType": "API_KEY"})),
            )
            .await?,
        )?;
        Ok(key_id)
    }

    /// `aws apigateway update-api-key --patch-operations op=replace,path=/enabled,value=false`.
    pub async fn disable_key(&self, key_id: &str) -> Result<(), UsagePlanError> {
        id_of(
            "UpdateApiKey",
            call(
                &self.client,
                "UpdateApiKey",
                http::Method::PATCH,
                format!("{}/apikeys/{key_id}", self.endpoint),
                Some(json!({"patchOperations": [
                    {"op": "replace", "path": "/enabled", "value": "false"}
                ]})),
            )
            .await?,
        )?;
        Ok(())
    }

    /// Whether API Gateway would let an authorized request through under the authorizer's
    /// `usageIdentifierKey`: it must be the value of an API key that is attached to the
    /// stage's usage plan and enabled; none at all is refused too (the API requires a key).
    /// The usage key is not a credential (clients never send it): a plain comparison will do.
    pub async fn admits(&self, usage_key: Option<&str>) -> Result<bool, UsagePlanError> {
        let Some(usage_key) = usage_key else {
            return Ok(false);
        };
        let (status, keys) = call(
            &self.client,
            "GetUsagePlanKeys",
            http::Method::GET,
            format!("{}/usageplans/{}/keys", self.endpoint, self.plan_id),
            None,
        )
        .await?;
        if status != 200 {
            return Err(UsagePlanError {
                operation: "GetUsagePlanKeys",
                message: format!("HTTP {status}"),
            });
        }
        let Some(key_id) = keys["item"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|key| key["value"].as_str() == Some(usage_key))
            .and_then(|key| key["id"].as_str())
        else {
            return Ok(false);
        };
        let (status, key) = call(
            &self.client,
            "GetApiKey",
            http::Method::GET,
            format!("{}/apikeys/{key_id}", self.endpoint),
            None,
        )
        .await?;
        // A deleted key is gone (404) even if the plan still lists it.
        Ok(status == 200 && key["enabled"].as_bool() == Some(true))
    }
}
