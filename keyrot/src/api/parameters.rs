//! SSM parameters under a path, all pages.

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
