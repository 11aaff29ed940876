//! The stack's own state, as CloudFormation reports it: the teardown runs only while the
//! stack is being deleted, never because an event says so.

use crate::AwsCallError;
use std::future::Future;

/// CloudFormation's status of a stack while it is being deleted.
pub const DELETE_IN_PROGRESS: &str = "DELETE_IN_PROGRESS";

pub trait StackStatus: Send + Sync {
    /// The stack's status (`DELETE_IN_PROGRESS`, …); `None` when CloudFormation has no such
    /// stack.
    fn status(
        &self,
        stack_id: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsCallError>> + Send;
}

#[derive(Clone, Debug)]
pub struct CloudFormationStacks {
    client: aws_sdk_cloudformation::Client,
}

impl CloudFormationStacks {
    pub fn new(client: aws_sdk_cloudformation::Client) -> Self {
        Self { client }
    }
}

impl StackStatus for CloudFormationStacks {
    async fn status(&self, stack_id: &str) -> Result<Option<String>, AwsCallError> {
        // DescribeStacks answers a stack id even after the stack is deleted; an unknown one is
        // a ValidationError ("does not exist").
        match self
            .client
            .describe_stacks()
            .stack_name(stack_id)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .stacks()
                .first()
                .and_then(|stack| stack.stack_status())
                .map(|status| status.as_str().to_owned())),
            Err(error) => {
                let failure = AwsCallError::from_sdk("cloudformation:DescribeStacks", &error);
                if failure.message.contains("does not exist") {
                    Ok(None)
                } else {
                    Err(failure)
                }
            }
        }
    }
}
