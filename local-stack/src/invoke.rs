//! Calls a function through the Lambda Invoke API of the emulator, as API Gateway and
//! Secrets Manager call Lambda.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Debug)]
pub enum Invocation {
    /// The function returned this payload.
    Returned(Value),
    /// The function returned an error (`errorType`, `errorMessage`).
    Failed { error_type: String, message: String },
}

#[derive(Clone)]
pub struct Invoker {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Invoker {
    pub fn new(lambda_endpoint: &str) -> Self {
        Self {
            base: lambda_endpoint.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn invoke(&self, function: &str, payload: &Value) -> Result<Invocation, String> {
        let request = hyper::Request::post(format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.base
        ))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(payload.to_string())))
        .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("invoke {function}: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("invoke {function}: {e}"))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        // The emulator answers a function error with HTTP 500 and the error document (real
        // Lambda: 200 with X-Amz-Function-Error); both carry errorType/errorMessage.
        if !status.is_success() || value.get("errorType").is_some() {
            return Ok(Invocation::Failed {
                error_type: value["errorType"].as_str().unwrap_or("Unknown").to_owned(),
                message: value["errorMessage"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(Invocation::Returned(value))
    }
}
