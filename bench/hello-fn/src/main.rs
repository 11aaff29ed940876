//! Hello world on the Lambda Runtime API, with keyrot's runtime setup (current-thread tokio,
//! release profile) and nothing else: the floor keyrot's cold starts are compared against.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({ "hello": event.payload }))
    }))
    .await
}
