//! What the local stack prints once it is ready: where things are and commands to try, which
//! work verbatim in another terminal opened in the checkout.

use crate::options::Options;
use crate::processes::{Addresses, LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};
use crate::provision::Provisioned;
use std::path::Path;

pub fn print(options: &Options, stack: &Addresses, api_url: &str, provisioned: &Provisioned) {
    let aws = format!("aws --endpoint-url {}", stack.aws_endpoint);
    let first_secret = provisioned
        .secret_ids
        .first()
        .map(String::as_str)
        .unwrap_or("keyrot/iam/alice");
    let first_user = options.users.first().map(String::as_str).unwrap_or("alice");
    println!(
        "\
keyrot is running locally (Ctrl-C stops everything).
  API:                   {api_url}
  default client API key: {api_key}
  AWS endpoint (moto):   {endpoint}
  managed secrets:       {secrets}
  client usage plan:     {plan} (keyrot clients add puts a new client's usage key in it)
  rotation interval:     {interval} s
  logs:                  {logs}/

Try the API (in another terminal):
  export API={api_url} KEY={api_key}
  TOKEN=$(curl -s -X POST \"$API/generate-token\" -H \"x-api-key: $KEY\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"token\"])')
  curl -s \"$API/active-key?username={first_user}\" -H \"x-api-key: $KEY\" -H \"Authorization: Bearer $TOKEN\"

Try AWS (in another terminal, from this directory):
  source .venv/bin/activate
  export AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}
  {aws} secretsmanager rotate-secret --secret-id {first_secret}
  {aws} iam list-access-keys --user-name {first_user}

Try the operator CLI (cargo build -p keyrot-cli; in another terminal):
  export AWS_ENDPOINT_URL={endpoint} AWS_ENDPOINT_URL_LAMBDA={lambda} AWS_REGION={region} AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret}
  target/debug/keyrot status
  target/debug/keyrot clients add ci --users {first_user}
",
        api_key = provisioned.api_key,
        endpoint = stack.aws_endpoint,
        lambda = stack.lambda_endpoint,
        secrets = provisioned.secret_ids.join(", "),
        plan = provisioned.usage_plans.plan_id(),
        interval = options.interval().as_secs(),
        logs = stack.state_dir.display(),
        key = LOCAL_ACCESS_KEY_ID,
        secret = LOCAL_SECRET_ACCESS_KEY,
        region = LOCAL_REGION,
    );
}

/// The same facts as JSON, for scripts and tests; readable by the owner only.
pub fn write_ready_file(
    path: &Path,
    stack: &Addresses,
    api_url: &str,
    provisioned: &Provisioned,
) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    file.mode(0o600);
    let mut file = file.open(path)?;
    let ready = serde_json::json!({
        "api_url": api_url,
        "api_key": provisioned.api_key,
        "aws_endpoint": stack.aws_endpoint,
        "lambda_endpoint": stack.lambda_endpoint,
        "secret_ids": provisioned.secret_ids,
        "usage_plan_id": provisioned.usage_plans.plan_id(),
        "logs": stack.state_dir,
    });
    file.write_all(ready.to_string().as_bytes())
}
