//! Where the moto server is, and SDK configuration that talks to it.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_types::retry::RetryConfig;
use std::time::Duration;

/// Set by `scripts/test`, which starts moto on a free port.
pub const MOTO_URL_VARIABLE: &str = "KEYROT_TEST_MOTO_URL";

pub fn moto_url() -> String {
    std::env::var(MOTO_URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{MOTO_URL_VARIABLE} is not set: run the tests with ./scripts/test, which starts moto"
        )
    })
}

/// The SDK configuration `rotation-fn` loads on AWS, pointed at `endpoint`. Retry backoff
/// starts small so throttling tests do not sleep for seconds.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIAKEYROTTEST",
            "keyrot-test-secret",
            None,
            None,
            "test",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(keyrot::aws::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await
}
