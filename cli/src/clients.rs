//! `keyrot clients …` and `keyrot who-can-read`: the client registry (README, "Clients").
//!
//! A client is usable once its registry parameter exists: the authorizer lists the
//! parameters, then reads each client's API key secret, and API Gateway then requires the
//! client's usage key in the usage plan. So `add` creates the usage key (attached to the plan)
//! and the secret first and the parameter last, and `remove` deletes the parameter first:
//! no client is ever half-usable, and a failure rolls back what was made.

use crate::cloud::{Cloud, PlanKey};
use crate::deployment::Deployment;
use crate::error::CliError;
use crate::names;
use crate::output::{rfc3339, table, Style};
use crate::Report;
use keyrot::api::registry_source::{ClientKey, ClientSettings};
use keyrot::Sensitive;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Generated API keys: 43 letters and digits (~256 bits), as the deployment makes them.
const API_KEY_LENGTH: usize = 43;
/// Default overlap of `rotate-key`: the old key keeps working this long.
pub const DEFAULT_GRACE_SECONDS: u64 = 3600;
/// Longest overlap accepted.
pub const MAX_GRACE_SECONDS: u64 = 7 * 86_400;

fn random_alphanumeric(length: usize) -> Result<String, CliError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(length);
    while out.len() < length {
        let mut buffer = [0u8; 64];
        keyrot::random::fill(&mut buffer).ok_or_else(|| {
            CliError::refused("the system random generator failed", "run it again")
        })?;
        // Rejection sampling keeps every character equally likely.
        for byte in buffer {
            if usize::from(byte) < ALPHABET.len() * 4 && out.len() < length {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Where a new API key goes: printed once, or written to a file created with mode 0600.
pub struct KeyDestination {
    file: Option<std::fs::File>,
    path: Option<std::path::PathBuf>,
}

impl KeyDestination {
    /// Opens the file first, so a bad path fails before anything is created in AWS.
    pub fn open(path: Option<&Path>) -> Result<Self, CliError> {
        let Some(path) = path else {
            return Ok(Self {
                file: None,
                path: None,
            });
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|error| {
            CliError::Usage(format!(
                "cannot create --api-key-file {}: {error} (it must not exist yet)",
                path.display()
            ))
        })?;
        Ok(Self {
            file: Some(file),
            path: Some(path.to_owned()),
        })
    }

    /// Removes the file of a failed command.
    pub fn discard(self) {
        if let Some(path) = self.path {
            drop(self.file);
            let _ = std::fs::remove_file(path);
        }
    }

    /// Writes the key to the file, if one was asked for, before anything changes in AWS: a
    /// write that fails then leaves AWS as it was, and a key in place in AWS is never one
    /// nobody holds.
    fn stage(&mut self, key: &Sensitive) -> Result<(), CliError> {
        use std::io::Write;
        if let (Some(file), Some(path)) = (&mut self.file, &self.path) {
            file.write_all(key.expose().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|error| {
                    CliError::refused(
                        format!("writing the API key to {} failed: {error}", path.display()),
                        "nothing was changed in AWS; fix the path and run the command again",
                    )
                })?;
        }
        Ok(())
    }

    /// Once AWS holds the key: the text for the operator and whether the key was printed
    /// (without a file, it is shown once, now).
    fn finish(self, key: &Sensitive) -> (String, bool) {
        match &self.path {
            Some(path) => (
                format!("API key written to {} (mode 0600)", path.display()),
                false,
            ),
            None => (
                format!(
                    "API key (shown only this once; give it to the client now): {}",
                    key.expose()
                ),
                true,
            ),
        }
    }
}

#[derive(Debug)]
enum Made {
    ApiKey(String),
    Attached(String, String),
    Secret(String),
    Parameter(String),
}

/// Undoes what `add` made, newest first; what it could not undo.
async fn roll_back<C: Cloud>(cloud: &C, made: &[Made]) -> Vec<String> {
    let mut left = Vec::new();
    for piece in made.iter().rev() {
        let result = match piece {
            Made::Parameter(name) => cloud.delete_parameter(name).await.map(|_| ()),
            Made::Secret(name) => cloud.delete_secret_now(name).await.map(|_| ()),
            Made::ApiKey(id) => cloud.delete_api_key(id).await.map(|_| ()),
            Made::Attached(plan, id) => cloud.detach_api_key(plan, id).await.map(|_| ()),
        };
        if let Err(error) = result {
            left.push(format!("{piece:?} ({error})"));
        }
    }
    left
}

pub struct AddRequest<'a> {
    pub client: &'a str,
    pub users: Vec<String>,
    pub cidrs: Vec<String>,
    pub destination: KeyDestination,
}

pub async fn add<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    request: AddRequest<'_>,
) -> Result<Report, CliError> {
    let AddRequest {
        client,
        users,
        cidrs,
        mut destination,
    } = request;
    let api_key = Sensitive::new(random_alphanumeric(API_KEY_LENGTH)?);
    // The key file first, as for rotate-key: a client whose key nobody holds is useless.
    let result = match destination.stage(&api_key) {
        Ok(()) => add_inner(cloud, deployment, client, users, cidrs, &api_key).await,
        Err(error) => Err(error),
    };
    match result {
        Ok((json_value, text)) => {
            let (line, printed) = destination.finish(&api_key);
            let mut json_value = json_value;
            if printed {
                json_value["api_key"] = json!(api_key.expose());
            }
            Ok(Report::ok(format!("{text}{line}\n"), json_value))
        }
        Err(error) => {
            destination.discard();
            Err(error)
        }
    }
}

async fn add_inner<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
    users: Vec<String>,
    cidrs: Vec<String>,
    api_key: &Sensitive,
) -> Result<(serde_json::Value, String), CliError> {
    names::client(client)?;
    if users.is_empty() {
        return Err(CliError::Usage(
            "--users must name at least one IAM user".into(),
        ));
    }
    let names = &deployment.names;
    let parameter = names.client_parameter(client);
    let secret = names.client_secret(client);
    let Some(plan) = deployment.usage_plan_id.clone() else {
        return Err(CliError::not_found(
            "the client usage plan is unknown",
            "pass --usage-plan-id (the stack's ClientUsagePlanId output)",
        ));
    };
    let (existing_parameter, existing_secret) = tokio::join!(
        cloud.get_parameter(&parameter),
        cloud.describe_secret(&secret)
    );
    if existing_parameter?.is_some() || existing_secret?.is_some() {
        return Err(CliError::refused(
            format!("client {client} already exists (or is half-removed)"),
            format!(
                "keyrot clients show {client}; keyrot clients remove {client} clears every piece"
            ),
        ));
    }
    let usage_key = format!("keyrot-{client}-usage-{}", random_alphanumeric(20)?);
    let mut made = Vec::new();
    let steps = async {
        let key_id = cloud
            .create_api_key(&format!("keyrot-{client}"), &usage_key)
            .await?;
        made.push(Made::ApiKey(key_id.clone()));
        made.push(Made::Attached(plan.clone(), key_id.clone()));
        cloud.attach_api_key(&plan, &key_id).await?;
        let value = ClientKey {
            client_id: Some(client.to_owned()),
            api_key: api_key.expose().to_owned(),
            previous_api_key: None,
            previous_api_key_valid_until: None,
        };
        let value = Sensitive::new(serde_json::to_string(&value).unwrap_or_default());
        // Recorded before the call: a lost response may still have created it.
        made.push(Made::Secret(secret.clone()));
        cloud
            .create_secret(&secret, &value, deployment.secrets_kms_key.as_deref())
            .await?;
        // Whoever holds the API key can ask for the client's users' keys: only the readers
        // the stack names (keyrot's API-key checkers and the break-glass principal) may read
        // it, as the default client's secret (DefaultClientSecretPolicy).
        if !deployment.client_secret_readers.is_empty() {
            cloud
                .put_secret_policy(
                    &secret,
                    &keyrot::fleet::readers_only(&deployment.client_secret_readers),
                )
                .await?;
        }
        let settings = ClientSettings {
            users: users.clone(),
            cidrs: cidrs.clone(),
            usage_key: Some(usage_key.clone()),
        };
        made.push(Made::Parameter(parameter.clone()));
        cloud
            .put_parameter(
                &parameter,
                &serde_json::to_string(&settings).unwrap_or_default(),
                false,
            )
            .await?;
        Ok::<String, keyrot::AwsCallError>(key_id)
    }
    .await;
    let key_id = match steps {
        Ok(key_id) => key_id,
        Err(error) => {
            let left = roll_back(cloud, &made).await;
            let outcome = if left.is_empty() {
                "everything it had made was removed".to_owned()
            } else {
                format!(
                    "could not remove {}: run keyrot clients remove {client}",
                    left.join(", ")
                )
            };
            return Err(CliError::RolledBack {
                cause: Box::new(error.into()),
                outcome,
            });
        }
    };
    let readers = &deployment.client_secret_readers;
    let policy = if readers.is_empty() {
        "no reader policy: the stack's ClientSecretReaderArns is unknown (no stack); pass --client-secret-readers to put one".to_owned()
    } else {
        format!("readable only by {}", readers.join(", "))
    };
    let text = format!(
        "client {client} added: users {}, CIDRs {}; usage key {key_id} in plan {plan}; API key secret {secret} {policy}. The authorizer sees it within its registry cache (30 s).\n",
        users.join(","),
        if cidrs.is_empty() { "global allowlist".to_owned() } else { cidrs.join(",") },
    );
    let json_value = json!({
        "client": client,
        "users": users,
        "cidrs": cidrs,
        "usage_key_id": key_id,
        "usage_plan_id": plan,
        "secret_readers": readers,
    });
    Ok((json_value, text))
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client: String,
    pub users: Vec<String>,
    pub cidrs: Vec<String>,
    pub usage_key: Option<String>,
    pub usage_key_id: Option<String>,
    /// `None` when the usage plan is unknown.
    pub usage_key_in_plan: Option<bool>,
    pub created: Option<String>,
    pub previous_key_valid_until: Option<String>,
    pub problems: Vec<String>,
}

/// Every client the registry or the client secrets name, with what is wrong with each.
async fn views<C: Cloud>(cloud: &C, deployment: &Deployment) -> Result<Vec<ClientView>, CliError> {
    let names = &deployment.names;
    let plan_keys = async {
        match &deployment.usage_plan_id {
            Some(plan) => cloud.plan_keys(plan).await.map(Some),
            None => Ok(None),
        }
    };
    let (parameters, secrets, plan_keys) = tokio::join!(
        cloud.list_parameters(&names.clients_path),
        cloud.list_secrets(&names.client_secret_prefix),
        plan_keys
    );
    let plan_keys: Option<Vec<PlanKey>> = plan_keys?;
    let mut secrets_by_client: BTreeMap<String, crate::cloud::SecretInfo> = BTreeMap::new();
    for secret in secrets? {
        if let Some(id) = secret
            .name
            .strip_prefix(names.client_secret_prefix.as_str())
        {
            if !id.is_empty() && !id.contains('/') {
                secrets_by_client.insert(id.to_owned(), secret);
            }
        }
    }
    let mut views = Vec::new();
    let mut seen = Vec::new();
    for (name, value) in parameters? {
        let id = name
            .strip_prefix(names.clients_path.as_str())
            .unwrap_or(&name)
            .trim_start_matches('/')
            .to_owned();
        seen.push(id.clone());
        let mut problems = Vec::new();
        let (users, cidrs, usage_key) = match ClientSettings::parse(&value) {
            Ok((settings, _)) => (settings.users, settings.cidrs, settings.usage_key),
            Err(reason) => {
                problems.push(format!(
                    "registry entry does not parse ({reason}): the authorizer skips this client"
                ));
                (Vec::new(), Vec::new(), None)
            }
        };
        let secret = secrets_by_client.get(&id);
        match secret {
            None => problems.push("no API key secret: the authorizer skips this client".into()),
            Some(s) if s.deleted.is_some() => {
                problems.push("API key secret scheduled for deletion".into())
            }
            Some(_) => {}
        }
        let key = plan_keys.as_ref().and_then(|keys| {
            keys.iter()
                .find(|k| usage_key.is_some() && k.value == usage_key)
                .cloned()
        });
        let in_plan = plan_keys.as_ref().map(|_| key.is_some());
        if in_plan == Some(false) && problems.is_empty() {
            problems
                .push("usage key not in the usage plan: API Gateway refuses it with 403".into());
        }
        views.push(ClientView {
            client: id,
            users,
            cidrs,
            usage_key,
            usage_key_id: key.map(|k| k.id),
            usage_key_in_plan: in_plan,
            created: secret.and_then(|s| s.created).map(rfc3339),
            previous_key_valid_until: None,
            problems,
        });
    }
    for (id, secret) in secrets_by_client {
        if !seen.contains(&id) {
            views.push(ClientView {
                client: id.clone(),
                users: Vec::new(),
                cidrs: Vec::new(),
                usage_key: None,
                usage_key_id: None,
                usage_key_in_plan: None,
                created: secret.created.map(rfc3339),
                previous_key_valid_until: None,
                problems: vec![format!(
                    "API key secret without a registry entry (unusable; keyrot clients remove {id} clears it)"
                )],
            });
        }
    }
    views.sort_by(|a, b| a.client.cmp(&b.client));
    Ok(views)
}

fn cidrs_text(cidrs: &[String]) -> String {
    if cidrs.is_empty() {
        "(global allowlist)".into()
    } else {
        cidrs.join(",")
    }
}

pub async fn list<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    style: Style,
) -> Result<Report, CliError> {
    let views = views(cloud, deployment).await?;
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.client.clone(),
                v.users.join(","),
                cidrs_text(&v.cidrs),
                v.created.clone().unwrap_or_else(|| "-".into()),
                if v.problems.is_empty() {
                    style.good("✔ usable")
                } else {
                    style.bad(&format!("✘ {}", v.problems.join("; ")))
                },
            ]
        })
        .collect();
    let broken = views.iter().filter(|v| !v.problems.is_empty()).count();
    let mut text = table(&["CLIENT", "USERS", "CIDRS", "CREATED", "STATE"], &rows);
    text.push_str(&format!(
        "{} clients, {broken} with problems\n",
        views.len()
    ));
    let mut report = Report::ok(text, json!({ "clients": views }));
    report.attention = broken > 0;
    Ok(report)
}

pub async fn show<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
) -> Result<Report, CliError> {
    names::client(client)?;
    let views = views(cloud, deployment).await?;
    let Some(mut view) = views.into_iter().find(|v| v.client == client) else {
        return Err(CliError::not_found(
            format!("no client {client}"),
            "keyrot clients list shows the clients",
        ));
    };
    // The secret is read to check it, never shown. Its policy lets only keyrot's API-key
    // checkers and the break-glass principal read it: anyone else sees the rest.
    let secret = deployment.names.client_secret(client);
    let value = match cloud.current_value(&secret).await {
        Ok(value) => value,
        Err(error) if is_access_denied(&error) => {
            view.problems.push(format!(
                "the API key secret was not checked: {}",
                ONLY_READERS
            ));
            None
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(value) = value {
        match serde_json::from_str::<ClientKey>(value.expose()) {
            Ok(key) if key.api_key.is_empty() => view.problems.push("the API key is empty".into()),
            Ok(key) => {
                if let Some(previous) = key.previous() {
                    if previous.valid_until > SystemTime::now() {
                        view.previous_key_valid_until = Some(rfc3339(previous.valid_until));
                    }
                }
            }
            Err(_) => view
                .problems
                .push("the API key secret is not {\"ClientId\", \"ApiKey\"}".into()),
        }
    }
    let mut text = String::new();
    let line = |label: &str, value: String| format!("{label:<18}{value}\n");
    text.push_str(&line("client", view.client.clone()));
    text.push_str(&line("users", view.users.join(", ")));
    text.push_str(&line("cidrs", cidrs_text(&view.cidrs)));
    text.push_str(&line(
        "usage key",
        match (&view.usage_key, &view.usage_key_id, view.usage_key_in_plan) {
            (Some(key), Some(id), _) => format!("{key} (API key {id}, in the usage plan)"),
            (Some(key), None, Some(false)) => format!("{key} (NOT in the usage plan)"),
            (Some(key), _, _) => key.clone(),
            (None, _, _) => "-".into(),
        },
    ));
    text.push_str(&line(
        "created",
        view.created.clone().unwrap_or_else(|| "-".into()),
    ));
    if let Some(until) = &view.previous_key_valid_until {
        text.push_str(&line("previous API key", format!("accepted until {until}")));
    }
    text.push_str(&line(
        "state",
        if view.problems.is_empty() {
            "usable".into()
        } else {
            view.problems.join("; ")
        },
    ));
    let attention = !view.problems.is_empty();
    let mut report = Report::ok(text, json!(view));
    report.attention = attention;
    Ok(report)
}

pub async fn set<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
    users: Option<Vec<String>>,
    cidrs: Option<Vec<String>>,
) -> Result<Report, CliError> {
    names::client(client)?;
    if users.is_none() && cidrs.is_none() {
        return Err(CliError::Usage("give --users and/or --cidrs".into()));
    }
    let parameter = deployment.names.client_parameter(client);
    let Some(value) = cloud.get_parameter(&parameter).await? else {
        return Err(CliError::not_found(
            format!("no client {client}"),
            "keyrot clients add creates it",
        ));
    };
    let (mut settings, _) = ClientSettings::parse(&value).map_err(|reason| {
        CliError::refused(
            format!("the registry entry of {client} does not parse ({reason})"),
            format!("keyrot clients remove {client}, then add it again"),
        )
    })?;
    if let Some(users) = users {
        if users.is_empty() {
            return Err(CliError::Usage(
                "--users must name at least one IAM user".into(),
            ));
        }
        settings.users = users;
    }
    if let Some(cidrs) = cidrs {
        settings.cidrs = cidrs;
    }
    cloud
        .put_parameter(
            &parameter,
            &serde_json::to_string(&settings).unwrap_or_default(),
            true,
        )
        .await?;
    Ok(Report::ok(
        format!(
            "client {client}: users {}, CIDRs {} (the authorizer applies it within 30 s)\n",
            settings.users.join(","),
            cidrs_text(&settings.cidrs)
        ),
        json!({"client": client, "users": settings.users, "cidrs": settings.cidrs}),
    ))
}

/// Who may read a client's API key secret, for an operator refused by its policy.
const ONLY_READERS: &str = "its resource policy lets only keyrot's API-key checkers and the stack's BreakGlassPrincipalArn read it (docs/cli.md, \"Client API keys\")";

fn is_access_denied(error: &keyrot::AwsCallError) -> bool {
    error.has_code("AccessDeniedException") || error.has_code("AccessDenied")
}

pub async fn rotate_key<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
    grace: Duration,
    force: bool,
    mut destination: KeyDestination,
) -> Result<Report, CliError> {
    let rotation = match prepare_rotate_key(cloud, deployment, client, grace, force).await {
        Ok(rotation) => rotation,
        Err(error) => {
            destination.discard();
            return Err(error);
        }
    };
    // The key file first: a key written nowhere would lock the client out once the grace
    // of its previous key ends.
    if let Err(error) = destination.stage(&rotation.new_key) {
        destination.discard();
        return Err(error);
    }
    let lost_answer = match write_rotated_key(cloud, &rotation).await {
        Ok(lost_answer) => lost_answer,
        Err(error) => {
            destination.discard();
            return Err(error);
        }
    };
    let (line, printed) = destination.finish(&rotation.new_key);
    let until = rotation.previous_valid_until;
    let mut json_value = json!({
        "client": client,
        "previous_key_valid_until": rfc3339(until),
    });
    if printed {
        json_value["api_key"] = json!(rotation.new_key.expose());
    }
    let note = if lost_answer {
        "(the write's answer was lost; reading the secret back shows the new key in place) "
    } else {
        ""
    };
    json_value["fetched_keys_valid_for_at_most_seconds"] =
        json!(deployment.interval().saturating_mul(3).as_secs());
    Ok(Report::ok(
        format!(
            "client {client}: new API key in place {note}; the previous one keeps working until {} ({} from now), then is refused. IAM keys already fetched with either keep working until the Expiration each came with: at most three intervals ({}) from now.\n{line}\n",
            rfc3339(until),
            crate::output::human_duration(grace),
            crate::output::human_duration(deployment.interval().saturating_mul(3))
        ),
        json_value,
    ))
}

/// A new API key for a client, not written yet.
struct KeyRotation {
    secret: String,
    value: Sensitive,
    new_key: Sensitive,
    previous_valid_until: SystemTime,
}

async fn prepare_rotate_key<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
    grace: Duration,
    force: bool,
) -> Result<KeyRotation, CliError> {
    names::client(client)?;
    if grace.as_secs() > MAX_GRACE_SECONDS {
        return Err(CliError::Usage(format!(
            "--grace-seconds is at most {MAX_GRACE_SECONDS} (7 days)"
        )));
    }
    let secret = deployment.names.client_secret(client);
    let value = match cloud.current_value(&secret).await {
        Ok(value) => value,
        Err(error) if is_access_denied(&error) => {
            return Err(CliError::refused(
                format!("cannot read the API key secret of {client} ({secret}): {ONLY_READERS}"),
                "run keyrot clients rotate-key as the break-glass principal; nothing was changed",
            ));
        }
        Err(error) => return Err(error.into()),
    };
    let Some(value) = value else {
        return Err(CliError::not_found(
            format!("no API key secret for client {client} ({secret})"),
            "keyrot clients add creates the client",
        ));
    };
    let current: ClientKey = serde_json::from_str(value.expose()).map_err(|_| {
        CliError::refused(
            format!("the API key secret of {client} is not {{\"ClientId\", \"ApiKey\"}}"),
            format!("keyrot clients remove {client}, then add it again"),
        )
    })?;
    let now = SystemTime::now();
    if let Some(previous) = current.previous() {
        if previous.valid_until > now && !force {
            return Err(CliError::refused(
                format!(
                    "the key before the last rotate-key is still accepted until {}",
                    rfc3339(previous.valid_until)
                ),
                "wait until then, or pass --force to end its grace now",
            ));
        }
    }
    let until = now + grace;
    let new_key = Sensitive::new(random_alphanumeric(API_KEY_LENGTH)?);
    let value = ClientKey {
        client_id: Some(client.to_owned()),
        api_key: new_key.expose().to_owned(),
        previous_api_key: Some(current.api_key),
        previous_api_key_valid_until: Some(rfc3339(until)),
    };
    Ok(KeyRotation {
        secret,
        value: Sensitive::new(serde_json::to_string(&value).unwrap_or_default()),
        new_key,
        previous_valid_until: until,
    })
}

/// PutSecretValue of the new key. When its answer is an error, the secret is read back: a
/// write whose answer was lost has still put the new key in place (then `Ok(true)`), and
/// the key handed over must stay; otherwise nothing changed.
async fn write_rotated_key<C: Cloud>(cloud: &C, rotation: &KeyRotation) -> Result<bool, CliError> {
    let Err(error) = cloud
        .put_secret_value(&rotation.secret, &rotation.value)
        .await
    else {
        return Ok(false);
    };
    let in_place = cloud
        .current_value(&rotation.secret)
        .await
        .ok()
        .flatten()
        .and_then(|value| serde_json::from_str::<ClientKey>(value.expose()).ok())
        .is_some_and(|key| key.api_key == rotation.new_key.expose());
    if in_place {
        return Ok(true);
    }
    Err(CliError::refused(
        format!("writing the new API key failed: {error}"),
        "nothing was changed: the current API key keeps working; run the command again",
    ))
}

/// The usage keys (their values) that other clients' registry entries name.
async fn usage_keys_of_others<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
) -> Result<Vec<String>, CliError> {
    let own = deployment.names.client_parameter(client);
    Ok(cloud
        .list_parameters(&deployment.names.clients_path)
        .await?
        .into_iter()
        .filter(|(name, _)| *name != own)
        .filter_map(|(_, value)| ClientSettings::parse(&value).ok())
        .filter_map(|(settings, _)| settings.usage_key)
        .collect())
}

pub async fn remove<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    client: &str,
) -> Result<Report, CliError> {
    names::client(client)?;
    let names = &deployment.names;
    let parameter = names.client_parameter(client);
    let secret = names.client_secret(client);
    // The usage key's id, from the entry, before the entry goes.
    let usage_key = cloud
        .get_parameter(&parameter)
        .await?
        .and_then(|value| ClientSettings::parse(&value).ok())
        .and_then(|(settings, _)| settings.usage_key);
    let key_name = format!("keyrot-{client}");
    // A usage key another client's entry also names (an operator may have shared one) stays:
    // removing it would cut that client off too.
    let shared = usage_keys_of_others(cloud, deployment, client).await?;
    let (key_ids, kept_shared): (Vec<_>, Vec<_>) = match &deployment.usage_plan_id {
        Some(plan) => cloud
            .plan_keys(plan)
            .await?
            .into_iter()
            .filter(|k| {
                (usage_key.is_some() && k.value == usage_key)
                    || k.name.as_deref() == Some(key_name.as_str())
            })
            .partition(|k| k.value.as_ref().is_none_or(|value| !shared.contains(value))),
        None => (Vec::new(), Vec::new()),
    };
    let key_ids: Vec<String> = key_ids.into_iter().map(|k| k.id).collect();
    // First the entry: from then on the authorizer refuses the client.
    let parameter_removed = cloud.delete_parameter(&parameter).await?;
    let mut keys_removed = 0;
    for id in &key_ids {
        if let Some(plan) = &deployment.usage_plan_id {
            cloud.detach_api_key(plan, id).await?;
        }
        if cloud.delete_api_key(id).await? {
            keys_removed += 1;
        }
    }
    // Looked up first: a forced deletion of a missing secret is not an error everywhere.
    let secret_removed = match cloud.describe_secret(&secret).await? {
        Some(_) => cloud.delete_secret_now(&secret).await?,
        None => false,
    };
    if !parameter_removed && keys_removed == 0 && !secret_removed {
        return Err(CliError::not_found(
            format!("no client {client}"),
            "keyrot clients list shows the clients",
        ));
    }
    let said = |done: bool| if done { "removed" } else { "absent" };
    let mut text = format!(
        "client {client} removed: registry entry {}, usage key {}, API key secret {}. The authorizer refuses it within its registry cache (30 s).\n",
        said(parameter_removed),
        if keys_removed > 0 { "removed" } else if !kept_shared.is_empty() { "kept (another client's entry names it too)" } else if deployment.usage_plan_id.is_none() { "unknown (no usage plan found)" } else { "absent" },
        said(secret_removed),
    );
    // What removing a client does not undo (docs/rotation.md, the lifetime contract).
    text.push_str(&format!(
        "IAM keys it already fetched keep working until the Expiration each came with: at most three intervals ({}) from now. To cut one short: keyrot revoke USER --key KEY.\n",
        crate::output::human_duration(deployment.interval().saturating_mul(3))
    ));
    Ok(Report::ok(
        text,
        json!({
            "client": client,
            "parameter_removed": parameter_removed,
            "usage_keys_removed": keys_removed,
            "usage_keys_kept_shared": kept_shared.len(),
            "secret_removed": secret_removed,
            "fetched_keys_valid_for_at_most_seconds": deployment.interval().saturating_mul(3).as_secs(),
        }),
    ))
}

pub async fn who_can_read<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    user: &str,
) -> Result<Report, CliError> {
    names::user(user)?;
    let views = views(cloud, deployment).await?;
    let readers: Vec<&ClientView> = views
        .iter()
        .filter(|v| v.users.iter().any(|u| u == user))
        .collect();
    let rows: Vec<Vec<String>> = readers
        .iter()
        .map(|v| {
            vec![
                v.client.clone(),
                cidrs_text(&v.cidrs),
                if v.problems.is_empty() {
                    "usable".into()
                } else {
                    v.problems.join("; ")
                },
            ]
        })
        .collect();
    let mut text = table(&["CLIENT", "CIDRS", "STATE"], &rows);
    text.push_str(&format!("{} clients may read {user}\n", readers.len()));
    let unreadable = views
        .iter()
        .filter(|v| v.problems.iter().any(|p| p.contains("does not parse")))
        .count();
    if unreadable > 0 {
        text.push_str(&format!(
            "{unreadable} registry entries do not parse and are not counted (keyrot clients list)\n"
        ));
    }
    Ok(Report::ok(
        text,
        json!({"user": user, "clients": readers.iter().map(|v| json!({"client": v.client, "cidrs": v.cidrs, "usable": v.problems.is_empty()})).collect::<Vec<_>>()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_alphanumeric_and_fresh() {
        let a = random_alphanumeric(API_KEY_LENGTH).expect("random");
        assert_eq!(a.len(), 43);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_alphanumeric(API_KEY_LENGTH).expect("random"));
    }
}
