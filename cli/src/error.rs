//! The CLI's errors: one line each, with the AWS error code when AWS refused, and what to do.

use keyrot::AwsCallError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An AWS call failed.
    #[error("{error} [{code}] — {fix}", code = error.code.as_deref().unwrap_or("no error code"), fix = aws_fix(error))]
    Aws { error: AwsCallError },
    /// The command line or its values are wrong.
    #[error("{0}")]
    Usage(String),
    /// Something named does not exist.
    #[error("{what} — {fix}")]
    NotFound { what: String, fix: String },
    /// The operation would break something, or the deployment refused it.
    #[error("{what} — {fix}")]
    Refused { what: String, fix: String },
    /// `clients add` failed; `rolled_back` says what was undone, `left` what could not be.
    #[error("{cause}; {outcome}")]
    RolledBack {
        cause: Box<CliError>,
        outcome: String,
    },
}

impl From<AwsCallError> for CliError {
    fn from(error: AwsCallError) -> Self {
        Self::Aws { error }
    }
}

impl CliError {
    pub fn not_found(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::NotFound {
            what: what.into(),
            fix: fix.into(),
        }
    }

    pub fn refused(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Refused {
            what: what.into(),
            fix: fix.into(),
        }
    }

    /// The stable identifier shown in `--json` errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Aws { .. } => "aws_error",
            Self::Usage(_) => "usage",
            Self::NotFound { .. } => "not_found",
            Self::Refused { .. } => "refused",
            Self::RolledBack { .. } => "rolled_back",
        }
    }

    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Self::Aws { error } => error.code.as_deref(),
            Self::RolledBack { cause, .. } => cause.aws_code(),
            _ => None,
        }
    }
}

/// What to do about a failed call, by its error code.
fn aws_fix(error: &AwsCallError) -> String {
    let code = error.code.as_deref().unwrap_or("");
    if code.contains("AccessDenied")
        || code == "UnauthorizedOperation"
        || code == "AuthorizationError"
    {
        return format!(
            "the caller may not call {}: check who you are (aws sts get-caller-identity) and grant it",
            error.operation
        );
    }
    match code {
        "ExpiredToken" | "ExpiredTokenException" | "InvalidClientTokenId" | "UnrecognizedClientException" | "InvalidSignatureException" | "SignatureDoesNotMatch" => {
            "the AWS credentials are invalid or expired: refresh them (aws sso login, or new keys)".into()
        }
        "Throttling" | "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            "AWS throttled the call after retries: wait a minute and run it again".into()
        }
        "InvalidRequestException" => "Secrets Manager refused it in the secret's current state: run keyrot status for that user".into(),
        "LimitExceededException" | "LimitExceeded" => "an AWS quota was reached: see the message, free some room or ask for a higher quota".into(),
        "" if error.message.starts_with("dispatch failure") => {
            "AWS could not be reached: check the network, AWS_REGION and AWS_ENDPOINT_URL".into()
        }
        "" if error.message.contains("timed out") => "AWS did not answer in time: check the network and run it again".into(),
        _ => "run keyrot doctor to check the deployment".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_errors_are_one_line_with_code_and_fix() {
        let error = CliError::from(AwsCallError {
            operation: "PutParameter",
            code: Some("AccessDeniedException".into()),
            message: "AccessDeniedException: not allowed".into(),
        });
        let line = error.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("[AccessDeniedException]"), "{line}");
        assert!(line.contains("may not call PutParameter"), "{line}");
        assert_eq!(error.aws_code(), Some("AccessDeniedException"));
        let offline = CliError::from(AwsCallError {
            operation: "ListSecrets",
            code: None,
            message: "dispatch failure: connection refused".into(),
        });
        assert!(
            offline.to_string().contains("AWS_ENDPOINT_URL"),
            "{offline}"
        );
    }
}
