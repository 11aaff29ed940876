//! The local stand-in for the EventBridge Scheduler schedules: RotateSecret on every managed
//! secret at the rotation interval. Failures are reported and retried next interval, as the
//! deployed schedule (without retries) does.

use crate::provision::Aws;
use crate::LocalError;
use std::time::Duration;

pub async fn rotate_every(
    aws: &Aws,
    secret_ids: &[String],
    interval: Duration,
) -> Result<(), LocalError> {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticks.tick().await; // the first tick is immediate; provisioning just rotated
    loop {
        ticks.tick().await;
        for secret_id in secret_ids {
            match aws
                .secrets
                .rotate_secret()
                .secret_id(secret_id)
                .send()
                .await
            {
                Ok(output) => println!(
                    "scheduled rotation of {secret_id}: new version {}",
                    output.version_id.unwrap_or_default()
                ),
                Err(error) => eprintln!(
                    "scheduled rotation of {secret_id} failed: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(error)
                ),
            }
        }
    }
}
