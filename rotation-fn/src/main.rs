//! The rotation function (and, deployed with the fleet's settings, the fleet function).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Boxed: the handlers' future is too deep to lay out inline in main's.
    Box::pin(rotation_fn::serve()).await
}
