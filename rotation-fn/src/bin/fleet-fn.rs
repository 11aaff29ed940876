//! The rotation function's program under the fleet function's name, for the local Lambda
//! emulator, which serves functions by binary name; the deployment runs `rotation-fn` for
//! both (template.yaml, FleetFunction).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the handlers' future is too deep to lay out inline in main's.
    Box::pin(rotation_fn::serve()).await
}
