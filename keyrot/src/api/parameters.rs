//! SSM parameters under a path, all pages (GetParametersByPath answers at most 10 a page).

use crate::AwsCallError;

/// (name, value) of every parameter directly under `path`.
pub async fn list_parameters(
    ssm: &aws_sdk_ssm::Client,
    path: &str,
) -> Result<Vec<(String, String)>, AwsCallError> {
    let mut parameters = Vec::new();
    let mut next = None;
    loop {
        let output = ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(false)
            .set_next_token(next)
            .send()
            .await
            .map_err(|e| AwsCallError::from_sdk("GetParametersByPath", &e))?;
        for parameter in output.parameters.unwrap_or_default() {
            if let (Some(name), Some(value)) = (parameter.name, parameter.value) {
                parameters.push((name, value));
            }
        }
        match output.next_token {
            Some(token) if !token.is_empty() => next = Some(token),
            _ => return Ok(parameters),
        }
    }
}

/// The port the client registry lists its entries through.
pub trait ParameterLister: Send + Sync {
    /// (name, value) of every parameter directly under `path`, all pages; `Err` when any page
    /// fails.
    fn list(
        &self,
        path: &str,
    ) -> impl std::future::Future<Output = Result<Vec<(String, String)>, AwsCallError>> + Send;
}

#[derive(Clone, Debug)]
pub struct SsmParameterLister {
    ssm: aws_sdk_ssm::Client,
}

impl SsmParameterLister {
    pub fn new(ssm: aws_sdk_ssm::Client) -> Self {
        Self { ssm }
    }
}

impl ParameterLister for SsmParameterLister {
    async fn list(&self, path: &str) -> Result<Vec<(String, String)>, AwsCallError> {
        list_parameters(&self.ssm, path).await
    }
}
