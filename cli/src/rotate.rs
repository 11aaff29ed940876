//! `keyrot rotate USER` (a routine rotation within the key lifetime contract) and
//! `keyrot revoke USER --key … --reason …` (the emergency revoke).

use crate::cloud::{Cloud, Invocation};
use crate::deployment::{function_name, Deployment};
use crate::error::CliError;
use crate::names;
use crate::Report;
use keyrot::iam_key::IamKeySecret;
use keyrot::revoke::RevokeRequest;
use serde_json::json;
use std::time::{Duration, Instant};

fn current_key_id(value: Option<keyrot::Sensitive>, secret: &str) -> Option<String> {
    current_key(value, secret).and_then(|v| v.access_key_id)
}

fn current_key(value: Option<keyrot::Sensitive>, secret: &str) -> Option<IamKeySecret> {
    value.and_then(|v| IamKeySecret::parse(&v, secret, "AWSCURRENT").ok())
}

/// The slot a routine rotation acts on: the one holding no key or the older key (the one
/// whose turn comes next); slot A while the user has no second slot.
async fn slot_to_rotate<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
) -> Result<String, CliError> {
    let [a, b] = deployment.names.user_secrets(user);
    if cloud
        .describe_secret(&b)
        .await?
        .is_none_or(|info| info.deleted.is_some())
    {
        return Ok(a);
    }
    let created =
        |value: Option<IamKeySecret>| value.and_then(|v| v.key().and_then(|_| v.created()));
    let key_a = created(current_key(cloud.current_value(&a).await?, &a));
    let key_b = created(current_key(cloud.current_value(&b).await?, &b));
    Ok(match (key_a, key_b) {
        (Some(a_created), Some(b_created)) if b_created < a_created => b,
        (Some(_), None) => b,
        _ => a,
    })
}

/// The slot whose key `key` is: the one holding it as AWSCURRENT, else the one whose mark on
/// the user names it, else slot A (the rotation function then says why it refuses).
async fn slot_of_key<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
    key: &str,
) -> Result<String, CliError> {
    let [a, b] = deployment.names.user_secrets(user);
    for secret in [&a, &b] {
        if current_key_id(cloud.current_value(secret).await?, secret).as_deref() == Some(key) {
            return Ok(secret.clone());
        }
    }
    let ledger = keyrot::iam_key::KeyLedger::from_tags_and_keys(
        &cloud.list_user_tags(user).await?,
        &cloud.list_access_keys(user).await?,
    );
    Ok(if ledger.mark_for(key, &b).is_some() {
        b
    } else {
        a
    })
}

pub async fn rotate<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
    wait: Option<Duration>,
) -> Result<Report, CliError> {
    names::user(user)?;
    let secret = slot_to_rotate(cloud, deployment, user).await?;
    let Some(info) = cloud.describe_secret(&secret).await? else {
        return Err(CliError::not_found(
            format!("{user} is not managed (no secret {secret})"),
            format!("keyrot users add {user}"),
        ));
    };
    if info.deleted.is_some() {
        return Err(CliError::refused(
            format!("{secret} is scheduled for deletion ({user} is being offboarded)"),
            format!("keyrot users add {user} to keep managing it"),
        ));
    }
    if !info.rotation_enabled {
        return Err(CliError::refused(
            format!("rotation is not configured on {secret} yet"),
            "wait for the reconciler's next run (a minute), then retry",
        ));
    }
    if let Some((version, _)) = info.versions.iter().find(|(_, stages)| {
        stages.iter().any(|s| s == "AWSPENDING") && !stages.iter().any(|s| s == "AWSCURRENT")
    }) {
        return Err(CliError::refused(
            format!("a rotation of {secret} is in progress or stuck (AWSPENDING on {version})"),
            format!("keyrot status {user} says since when; README, \"Recovering a rotation that failed midway\""),
        ));
    }
    let before = current_key_id(cloud.current_value(&secret).await?, &secret);
    let version = cloud.rotate_secret(&secret).await?;
    let mut result =
        json!({"user": user, "secret": secret, "version_id": version, "previous_key": before});
    let Some(wait) = wait else {
        result["completed"] = json!(null);
        return Ok(Report::ok(
            format!("rotation of {secret} started (version {version}); keyrot status {user} shows when it completes\n"),
            result,
        ));
    };
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let info = cloud.describe_secret(&secret).await?;
        let stages = info
            .as_ref()
            .and_then(|i| i.versions.get(&version).cloned())
            .unwrap_or_default();
        if stages.iter().any(|s| s == "AWSCURRENT") {
            let after = current_key_id(cloud.current_value(&secret).await?, &secret);
            result["completed"] = json!(true);
            result["access_key_id"] = json!(after);
            let carried = after.is_some() && after == before;
            result["carried_forward"] = json!(carried);
            let text = if carried {
                format!(
                    "rotation of {secret} completed (version {version}) and carried its key {} forward: that key is still promised to clients, or still the user's newest (key lifetime contract); a new key comes at the slot's next tick\n",
                    after.unwrap_or_default()
                )
            } else {
                format!(
                    "rotation of {secret} completed (version {version}): new key {}; the previous key {} stays valid until the Expiration it was handed out with\n",
                    after.unwrap_or_else(|| "-".into()),
                    before.unwrap_or_else(|| "-".into())
                )
            };
            return Ok(Report::ok(text, result));
        }
        if !stages.iter().any(|s| s == "AWSPENDING") {
            return Err(CliError::refused(
                format!("the rotation of {secret} (version {version}) ended without completing"),
                format!("keyrot status {user}; the rotation function's logs give the error code"),
            ));
        }
        if started.elapsed() >= wait {
            result["completed"] = json!(false);
            let mut report = Report::ok(
                format!("rotation of {secret} (version {version}) has not completed after {}s; keyrot status {user} follows it\n", wait.as_secs()),
                result,
            );
            report.attention = true;
            return Ok(report);
        }
    }
}

pub struct RevokeOptions<'a> {
    pub user: &'a str,
    pub key: &'a str,
    pub reason: &'a str,
    pub yes: bool,
}

/// Asks on the terminal; `Err` without one.
fn confirm(user: &str, key: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "no terminal to confirm on: pass --yes to revoke".into(),
        ));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(
        stderr,
        "Revoke {key} of {user} now? It is deleted at once: clients holding it fail before the Expiration they were given.\nType the user name ({user}) to confirm: "
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::Usage(format!("cannot read the confirmation: {e}")))?;
    Ok(answer.trim() == user)
}

pub async fn revoke<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    options: RevokeOptions<'_>,
) -> Result<Report, CliError> {
    let RevokeOptions {
        user,
        key,
        reason,
        yes,
    } = options;
    names::user(user)?;
    let secret = slot_of_key(cloud, deployment, user, key).await?;
    let payload = json!({"Action": keyrot::revoke::ACTION, "SecretId": secret, "AccessKeyId": key, "Reason": reason});
    RevokeRequest::parse(payload.clone()).map_err(|e| CliError::Usage(e.to_string()))?;
    let Some(function) = deployment.rotation_function.clone() else {
        return Err(CliError::not_found(
            "the rotation function is unknown",
            "pass --rotation-function (the stack's RotationFunction)",
        ));
    };
    if !yes && !confirm(user, key)? {
        return Err(CliError::refused("not confirmed", "nothing was revoked"));
    }
    // The rotation function revokes only what an operator recorded here, where only the
    // stack's RevokePrincipalArns may write (the event alone proves nothing).
    let record = keyrot::revoke::RecordedRevoke {
        secret_id: secret.clone(),
        access_key_id: key.to_owned(),
    };
    let record = serde_json::to_string(&record).map_err(|e| CliError::Usage(e.to_string()))?;
    let requests = &deployment.names.revoke_requests_secret;
    if let Err(error) = cloud
        .put_secret_value(requests, &keyrot::Sensitive::new(record))
        .await
    {
        return Err(CliError::refused(
            format!("could not record the revoke request in {requests}: {error}"),
            "run keyrot revoke as one of the stack's RevokePrincipalArns (docs/deploy.md, \"Who may revoke\")",
        ));
    }
    match cloud.invoke(function_name(&function), &payload).await? {
        Invocation::Returned(done) => {
            let clients: Vec<String> = done["Clients"]
                .as_array()
                .map(|c| {
                    c.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let clients_text = if done["Clients"].is_null() {
                "unknown (the function could not read the client registry)".to_owned()
            } else if clients.is_empty() {
                "none".to_owned()
            } else {
                clients.join(", ")
            };
            let rotation = match (
                done["RotationVersion"].as_str(),
                done["RotationError"].as_str(),
            ) {
                (Some(version), _) => {
                    format!("a rotation started to replace it (version {version})")
                }
                (None, Some(error)) => format!("no rotation could start: {error}"),
                _ => "no rotation was needed".to_owned(),
            };
            let text = format!(
                "revoked {key} of {user}: it was {}the key being handed out; {rotation}.\nclients that may hold it and must fetch again: {clients_text}\n",
                if done["WasCurrent"].as_bool() == Some(true) { "" } else { "not " }
            );
            Ok(Report::ok(
                text,
                json!({"user": user, "access_key_id": key, "result": done}),
            ))
        }
        Invocation::FunctionError {
            error_type,
            message,
        } => Err(CliError::refused(
            format!("the rotation function refused the revoke [{error_type}]: {message}"),
            "only keys keyrot made for this user qualify; keyrot status shows its keys",
        )),
    }
}
