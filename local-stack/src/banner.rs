//! What the local stack prints once it is ready: where things are and commands to try.

use crate::options::Options;
use crate::processes::{Addresses, LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY};

pub fn print(options: &Options, stack: &Addresses, secret_ids: &[String]) {
    let aws = format!("aws --endpoint-url {}", stack.aws_endpoint);
    let first_secret = secret_ids
        .first()
        .map(String::as_str)
        .unwrap_or("keyrot/iam/alice");
    let first_user = options.users.first().map(String::as_str).unwrap_or("alice");
    println!(
        "\
keyrot is running locally (Ctrl-C stops everything).
  AWS endpoint (moto):   {endpoint}
  managed secrets:       {secrets}
  rotation interval:     {interval} s
  logs:                  {logs}/

Try it (in another terminal, from this directory):
  source .venv/bin/activate
  export AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={region}
  {aws} secretsmanager get-secret-value --secret-id {first_secret} --version-stage AWSCURRENT --query SecretString --output text
  {aws} secretsmanager rotate-secret --secret-id {first_secret}
  {aws} iam list-access-keys --user-name {first_user}
",
        endpoint = stack.aws_endpoint,
        secrets = secret_ids.join(", "),
        interval = options.interval().as_secs(),
        logs = stack.state_dir.display(),
        key = LOCAL_ACCESS_KEY_ID,
        secret = LOCAL_SECRET_ACCESS_KEY,
        region = LOCAL_REGION,
    );
}
