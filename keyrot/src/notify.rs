//! Failure mail: when a sender address is configured, each failed rotation step is mailed to
//! the admin through SES. The mail names the secret, step, error code and what to do; it never
//! carries key material (rotation errors never contain any).

use std::future::Future;
use tracing::{info, warn};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReport {
    pub secret_name: String,
    pub step: String,
    pub error_code: String,
    pub message: String,
}

/// A message for the admin. Never carries key material.
pub trait Mail: Send + Sync {
    fn subject(&self) -> String;
    fn body(&self) -> String;
}

impl Mail for FailureReport {
    fn subject(&self) -> String {
        format!(
            "keyrot: rotation of {} failed at {}",
            self.secret_name, self.step
        )
    }

    fn body(&self) -> String {
        format!(
            "The rotation of secret {secret} failed at step {step} ({code}).\n\n{message}\n\n\
             AWSCURRENT is unchanged, so clients keep working. Secrets Manager retries the \
             rotation; if the cause lasts, see \"Recovering a rotation that failed midway\" in \
             keyrot's README.\n",
            secret = self.secret_name,
            step = self.step,
            code = self.error_code,
            message = self.message,
        )
    }
}

pub trait FailureNotifier: Send + Sync {
    /// Best effort: a failure to notify is logged, never turned into a rotation failure.
    fn notify<M: Mail>(&self, mail: &M) -> impl Future<Output = ()> + Send;
}

/// No sender configured: nothing is mailed.
pub struct NoNotifier;

impl FailureNotifier for NoNotifier {
    async fn notify<M: Mail>(&self, _mail: &M) {}
}

pub struct SesNotifier {
    client: aws_sdk_sesv2::Client,
    sender: String,
    recipient: String,
}

impl SesNotifier {
    pub fn new(
        client: aws_sdk_sesv2::Client,
        sender: impl Into<String>,
        recipient: impl Into<String>,
    ) -> Self {
        Self {
            client,
            sender: sender.into(),
            recipient: recipient.into(),
        }
    }
}

impl FailureNotifier for SesNotifier {
    async fn notify<M: Mail>(&self, report: &M) {
        use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
        let content = |text: String| Content::builder().data(text).charset("UTF-8").build();
        let (Ok(subject), Ok(body)) = (content(report.subject()), content(report.body())) else {
            warn!(
                decision = "mail_not_sent",
                reason = "could not build the message"
            );
            return;
        };
        let message = Message::builder()
            .subject(subject)
            .body(Body::builder().text(body).build())
            .build();
        let result = self
            .client
            .send_email()
            .from_email_address(&self.sender)
            .destination(Destination::builder().to_addresses(&self.recipient).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await;
        match result {
            Ok(_) => {
                info!(decision = "mail_sent", subject = %report.subject())
            }
            Err(error) => {
                let error = crate::AwsCallError::from_sdk("SendEmail", &error);
                warn!(decision = "mail_not_sent", error = %error);
            }
        }
    }
}

/// The notifier the configuration asks for.
pub enum ConfiguredNotifier {
    Off,
    Ses(SesNotifier),
}

impl ConfiguredNotifier {
    pub fn new(failure_mail: Option<(String, String)>, sdk_config: &aws_config::SdkConfig) -> Self {
        match failure_mail {
            Some((sender, admin)) => Self::Ses(SesNotifier::new(
                aws_sdk_sesv2::Client::new(sdk_config),
                sender,
                admin,
            )),
            None => Self::Off,
        }
    }
}

impl FailureNotifier for ConfiguredNotifier {
    async fn notify<M: Mail>(&self, report: &M) {
        if let Self::Ses(ses) = self {
            ses.notify(report).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_names_the_failure_and_the_way_out() {
        let report = FailureReport {
            secret_name: "keyrot/iam/alice".into(),
            step: "createSecret".into(),
            error_code: "NoFreeKeySlot".into(),
            message: "IAM user alice has no free access key slot".into(),
        };
        assert!(report.subject().contains("keyrot/iam/alice"));
        let body = report.body();
        assert!(body.contains("NoFreeKeySlot") && body.contains("AWSCURRENT is unchanged"));
    }
}
