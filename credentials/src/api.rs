//! What the helper needs from the keyrot API, as a trait (the HTTP implementation is in
//! `http.rs`; the refresh logic is tested against a fake), and the errors it can answer with,
//! each worded for the person reading the AWS CLI's output.

use crate::clock::Seconds;
use crate::secret::Secret;

/// A bearer token from `POST /generate-token`.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    /// `expires_in` of the response, in seconds.
    pub expires_in: u64,
}

/// An access key from `GET /active-key`.
#[derive(Debug, Clone)]
pub struct ActiveKey {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// keyrot's promise: the key is not deleted or deactivated before this.
    pub expiration: Seconds,
    /// When a newer key is expected; absent from APIs older than the key lifetime contract.
    pub refresh_after: Option<Seconds>,
    /// The response's `Date`: the server's clock when it answered, against which the two
    /// times above are read (`key_times`). `None` if absent or unparsable.
    pub server_date: Option<Seconds>,
}

pub trait KeyApi {
    fn generate_token(&self) -> Result<Token, ApiError>;
    fn active_key(&self, token: &Secret, user: &str) -> Result<ActiveKey, ApiError>;
}

/// Which call failed: a 401 or 403 means something different on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    GenerateToken,
    ActiveKey,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("keyrot API unreachable: {0}")]
    Unreachable(String),
    #[error("keyrot API did not answer within {0} s (see --timeout-seconds)")]
    Timeout(u64),
    #[error("keyrot API throttled this client (429)")]
    Throttled,
    #[error("keyrot API failed ({0})")]
    Server(u16),
    #[error("API key refused (401): check --api-key-file or KEYROT_API_KEY")]
    ApiKeyRefused,
    #[error("token refused (401) right after it was issued: check this machine's clock")]
    TokenRefused,
    #[error("source IP not allowed (403): this machine's address is not on the API's allowlist")]
    SourceIpNotAllowed,
    #[error("client may not read user {0} (403)")]
    UserNotAllowed(String),
    #[error(
        "no keyrot API route at this URL (403): --api must end with the stage, e.g. https://…/v1"
    )]
    NoSuchRoute,
    #[error("no managed key for user {0} yet (404): its first rotation has not finished")]
    NoKeyYet(String),
    #[error("user name {0:?} refused by the API (400)")]
    BadUser(String),
    #[error("unexpected answer from the keyrot API ({0})")]
    Unexpected(String),
}

impl ApiError {
    /// Worth waiting out with a cached key: the API or the way to it is down or busy. A
    /// refusal (401, 403, 404, 400) is not: serving the cache would hide a revoked client.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unreachable(_) | Self::Timeout(_) | Self::Throttled | Self::Server(_)
        )
    }

    /// The error for a non-200 `status` of `call`, with `message` the body's message field
    /// (API Gateway's own answers and api-fn's differ only there).
    pub fn from_status(call: Call, status: u16, message: &str, user: &str) -> Self {
        match (call, status) {
            (_, 429) => Self::Throttled,
            (_, 500..=599) => Self::Server(status),
            (Call::GenerateToken, 401) => Self::ApiKeyRefused,
            // The authorizer cannot tell a bad API key from a bad token on this route; the
            // caller retries once with a fresh token before concluding which.
            (Call::ActiveKey, 401) => Self::TokenRefused,
            (_, 403) if message.contains("Missing Authentication Token") => Self::NoSuchRoute,
            (Call::ActiveKey, 403) if message.contains("may not read") => {
                Self::UserNotAllowed(user.to_owned())
            }
            (_, 403) => Self::SourceIpNotAllowed,
            (Call::ActiveKey, 404) => Self::NoKeyYet(user.to_owned()),
            (Call::ActiveKey, 400) => Self::BadUser(user.to_owned()),
            _ => Self::Unexpected(format!("HTTP {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_own_messages() {
        let of = |call, status, message| ApiError::from_status(call, status, message, "bob");
        assert!(matches!(
            of(Call::GenerateToken, 401, "Unauthorized"),
            ApiError::ApiKeyRefused
        ));
        assert!(matches!(
            of(
                Call::ActiveKey,
                403,
                "this client may not read that user's key"
            ),
            ApiError::UserNotAllowed(user) if user == "bob"
        ));
        assert!(matches!(
            of(
                Call::GenerateToken,
                403,
                "User is not authorized to access this resource"
            ),
            ApiError::SourceIpNotAllowed
        ));
        assert!(matches!(
            of(Call::ActiveKey, 403, "Missing Authentication Token"),
            ApiError::NoSuchRoute
        ));
        assert!(matches!(
            of(Call::ActiveKey, 404, ""),
            ApiError::NoKeyYet(_)
        ));
        assert!(of(Call::ActiveKey, 503, "").is_transient());
        assert!(of(Call::ActiveKey, 429, "").is_transient());
        assert!(!of(Call::ActiveKey, 403, "").is_transient());
        assert!(!of(Call::GenerateToken, 401, "").is_transient());
    }

    #[test]
    fn the_messages_name_the_fix() {
        assert_eq!(
            ApiError::ApiKeyRefused.to_string(),
            "API key refused (401): check --api-key-file or KEYROT_API_KEY"
        );
        assert_eq!(
            ApiError::UserNotAllowed("bob".into()).to_string(),
            "client may not read user bob (403)"
        );
    }
}
