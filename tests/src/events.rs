//! The events API Gateway sends for keyrot's two routes, as JSON: the REQUEST authorizer's and
//! the proxy integration's (carrying the authorizer's context). Used by the API tests and by
//! the benchmark harness.

use serde_json::{json, Map, Value};

pub const ACCOUNT: &str = "123456789012";
pub const API_ID: &str = "abcdef1234";

#[derive(Debug, Clone, Default)]
pub struct Call {
    pub method: &'static str,
    pub resource: &'static str,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub source_ip: String,
}

impl Call {
    pub fn new(method: &'static str, resource: &'static str) -> Self {
        Self {
            method,
            resource,
            source_ip: "127.0.0.1".into(),
            ..Self::default()
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.source_ip = ip.to_owned();
        self
    }
}

fn single_and_multi(pairs: impl Iterator<Item = (String, String)>) -> (Value, Value) {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in pairs {
        single.insert(name.clone(), json!(value));
        match multi.entry(name).or_insert_with(|| json!([])) {
            Value::Array(values) => values.push(json!(value)),
            other => *other = json!([value]),
        }
    }
    (Value::Object(single), Value::Object(multi))
}

fn common(call: &Call) -> Value {
    let (headers, multi_headers) = single_and_multi(call.headers.iter().cloned());
    let (query, multi_query) = single_and_multi(call.query.iter().cloned());
    json!({
        "resource": call.resource,
        "path": call.resource,
        "httpMethod": call.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "path": format!("/v1{}", call.resource),
            "accountId": ACCOUNT,
            "resourceId": "bench1",
            "stage": "v1",
            "requestId": "req-1",
            "identity": { "sourceIp": call.source_ip },
            "resourcePath": call.resource,
            "httpMethod": call.method,
            "apiId": API_ID
        }
    })
}

/// The ARN API Gateway names the invoked method with.
pub fn method_arn(method: &str, resource: &str) -> String {
    format!("arn:aws:execute-api:us-east-1:{ACCOUNT}:{API_ID}/v1/{method}{resource}")
}

pub fn authorizer_event(call: &Call) -> Value {
    let mut event = common(call);
    event["type"] = json!("REQUEST");
    event["methodArn"] = json!(method_arn(call.method, call.resource));
    event
}

/// The proxy event for `call` after the authorizer answered `authorizer_response`.
pub fn proxy_event(call: &Call, authorizer_response: &Value) -> Value {
    let mut event = common(call);
    let mut context = authorizer_response["context"].clone();
    context["principalId"] = authorizer_response["principalId"].clone();
    event["requestContext"]["authorizer"] = context;
    event["body"] = Value::Null;
    event["isBase64Encoded"] = json!(false);
    event
}

/// The policy effect of an authorizer response (`Allow`, `Deny`), if it is one.
pub fn effect(authorizer_response: &Value) -> Option<&str> {
    authorizer_response["policyDocument"]["Statement"][0]["Effect"].as_str()
}
