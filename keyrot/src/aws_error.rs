//! The one error type every AWS adapter returns: which call failed and why, secret-free.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// A failed AWS API call, described by the service's error code and message, or by the kind
/// of transport failure. Raw responses are never included: a response that failed to parse
/// may be a secret value.
#[derive(Debug, Clone, thiserror::Error)]
#[error("AWS {operation} failed: {message}")]
pub struct AwsCallError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
}

impl AwsCallError {
    /// Keeps the service error code for callers that branch on it
    /// (NoSuchEntity, ResourceNotFoundException, InvalidClientTokenId, ...).
    pub fn from_sdk<E, R>(operation: &'static str, error: &SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata,
    {
        let message = match error {
            SdkError::ServiceError(_) => format!(
                "{}: {}",
                error.code().unwrap_or("UnknownError"),
                error.message().unwrap_or("no message")
            ),
            SdkError::TimeoutError(_) => "the request timed out".to_owned(),
            SdkError::DispatchFailure(failure) => match failure.as_connector_error() {
                Some(connector) => format!("dispatch failure: {}", DisplayErrorContext(connector)),
                None => "dispatch failure".to_owned(),
            },
            SdkError::ResponseError(_) => "the response could not be read".to_owned(),
            SdkError::ConstructionFailure(_) => "the request could not be built".to_owned(),
            _ => "unknown failure".to_owned(),
        };
        Self {
            operation,
            code: error.code().map(str::to_owned),
            message,
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}
