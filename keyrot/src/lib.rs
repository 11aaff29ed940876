//! keyrot's shared library: the Secrets Manager rotation engine, the secret kinds it rotates,
//! the AWS adapters behind narrow traits, configuration and logging.

pub mod aws;
pub mod aws_error;
pub mod backoff;
pub mod config;
pub mod iam_key;
pub mod json_error;
pub mod logging;
pub mod rotation;
pub mod sensitive;

pub use aws_error::AwsCallError;
pub use sensitive::Sensitive;
