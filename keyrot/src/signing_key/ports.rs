//! Where the public keys are published: an SSM parameter holding the JWKS.

use crate::AwsCallError;
use std::future::Future;

pub trait PublicKeyStore: Send + Sync {
    /// The published JWKS text; `None` when nothing is published yet.
    fn read(&self) -> impl Future<Output = Result<Option<String>, AwsCallError>> + Send;
    fn write(&self, jwks: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

#[derive(Clone, Debug)]
pub struct SsmPublicKeyStore {
    client: aws_sdk_ssm::Client,
    parameter: String,
}

impl SsmPublicKeyStore {
    pub fn new(client: aws_sdk_ssm::Client, parameter: impl Into<String>) -> Self {
        Self {
            client,
            parameter: parameter.into(),
        }
    }
}

impl PublicKeyStore for SsmPublicKeyStore {
    async fn read(&self) -> Result<Option<String>, AwsCallError> {
        match self
            .client
            .get_parameter()
            .name(&self.parameter)
            .send()
            .await
        {
            Ok(output) => Ok(output.parameter.and_then(|p| p.value)),
            Err(error) => {
                let error = AwsCallError::from_sdk("GetParameter", &error);
                if error.has_code("ParameterNotFound") {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }

    async fn write(&self, jwks: &str) -> Result<(), AwsCallError> {
        self.client
            .put_parameter()
            .name(&self.parameter)
            .value(jwks)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("PutParameter", &e))?;
        Ok(())
    }
}
