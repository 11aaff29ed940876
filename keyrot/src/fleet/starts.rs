//! Rotations the run starts, in flight together: Secrets Manager answers RotateSecret as soon
//! as the rotation is under way, but a slow answer (or an emulator that runs the whole
//! rotation inside the call) must not hold up the next secret's slot. The pacer decides when
//! each starts; this only bounds how many calls are outstanding.

use super::ports::{FleetSecrets, RotationStart};
use super::report::RunReport;
use crate::AwsCallError;
use tokio::task::JoinSet;
use tracing::{info, Instrument, Span};

const MAX_IN_FLIGHT: usize = 16;

struct Answer {
    secret: String,
    result: Result<RotationStart, AwsCallError>,
}

pub(super) struct Starts<S> {
    secrets: S,
    in_flight: JoinSet<Answer>,
}

impl<S: FleetSecrets + Clone + 'static> Starts<S> {
    pub fn new(secrets: S) -> Self {
        Self {
            secrets,
            in_flight: JoinSet::new(),
        }
    }

    /// RotateSecret on a managed secret (its slot has come), with the stack's rotation
    /// configuration.
    pub async fn rotate(&mut self, secret: String, function_arn: String, report: &mut RunReport) {
        self.make_room(report).await;
        let secrets = self.secrets.clone();
        self.in_flight.spawn(
            async move {
                let result = secrets.rotate(&secret, &function_arn).await;
                Answer { secret, result }
            }
            .instrument(Span::current()),
        );
    }

    /// RotateSecret configuring the rotation function (the last step of onboarding).
    pub async fn enable(&mut self, secret: String, function_arn: String, report: &mut RunReport) {
        self.make_room(report).await;
        let secrets = self.secrets.clone();
        self.in_flight.spawn(
            async move {
                let result = secrets.enable_rotation(&secret, &function_arn).await;
                Answer { secret, result }
            }
            .instrument(Span::current()),
        );
    }

    async fn make_room(&mut self, report: &mut RunReport) {
        while let Some(answer) = self.in_flight.try_join_next() {
            record(answer, report);
        }
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            match self.in_flight.join_next().await {
                Some(answer) => record(answer, report),
                None => break,
            }
        }
    }

    /// Waits for every answer.
    pub async fn finish(mut self, report: &mut RunReport) {
        while let Some(answer) = self.in_flight.join_next().await {
            record(answer, report);
        }
    }
}

fn record(answer: Result<Answer, tokio::task::JoinError>, report: &mut RunReport) {
    let Ok(Answer { secret, result }) = answer else {
        report.errors += 1;
        return;
    };
    match result {
        Ok(RotationStart::Started) => {
            report.rotations_started += 1;
            info!(decision = "rotation_started", secret = %secret, "rotation started");
        }
        Ok(RotationStart::InProgress) => {
            report.rotations_refused += 1;
            info!(
                decision = "rotation_refused_in_progress",
                secret = %secret,
                "a rotation is in progress; it covers this slot"
            );
        }
        Err(error) => report.failed(&secret, &error),
    }
}
