//! The one error type every AWS adapter returns: which call failed and why, secret-free.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::error::Error as StdError;

/// A failed AWS API call. The message is the SDK's error chain, which names the service
/// error code and message but never carries request bodies (and so never key material).
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
        E: ProvideErrorMetadata + StdError + 'static,
        R: std::fmt::Debug,
    {
        Self {
            operation,
            code: error.code().map(str::to_owned),
            message: DisplayErrorContext(error).to_string(),
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}
