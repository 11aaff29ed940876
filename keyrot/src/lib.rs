//! keyrot's shared library: the Secrets Manager rotation engine, the secret kinds it rotates,
//! the AWS adapters behind narrow traits, configuration and logging.

pub mod api;
pub mod aws;
pub mod aws_error;
pub mod backoff;
pub mod cache;
pub mod config;
pub mod fleet;
pub mod iam_key;
pub mod json_error;
pub mod key_slots;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod random;
pub mod revoke;
pub mod rotation;
pub mod sensitive;
pub mod signing_key;
pub mod time;

pub use aws_error::AwsCallError;
pub use sensitive::Sensitive;
