//! AWS SDK configuration, loaded once per cold start. Region, credentials and endpoint come
//! from the standard environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...), which is how tests
//! and the local stack point the functions at moto.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_types::retry::RetryConfig;

/// Attempts per call for throttling and transient errors (standard retry mode with jittered
/// exponential backoff); non-idempotent calls opt out of retries individually.
pub const MAX_ATTEMPTS: u32 = 5;

pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
        .load()
        .await
}
