//! `keyrot doctor`: checks the deployment end to end, each with ✔/✘ and the fix.

use crate::cloud::Cloud;
use crate::deployment::{function_name, Deployment, Source};
use crate::error::CliError;
use crate::output::{human_duration, Progress, Style};
use crate::Report;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, SystemTime};

/// A signing key older than this is not fresh (it rotates daily by default).
const SIGNING_KEY_MAX_AGE: Duration = Duration::from_secs(2 * 86_400 + 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Not checkable here (e.g. no scheduler on the local stack).
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
    pub fix: Option<String>,
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn skipped(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        outcome: Outcome::Skipped,
        detail: detail.into(),
        fix: None,
    }
}

fn aws_failure(name: &'static str, error: &keyrot::AwsCallError) -> Check {
    fail(
        name,
        error.to_string(),
        CliError::from(error.clone()).to_string(),
    )
}

async fn rotation_checks<C: Cloud>(cloud: &C, deployment: &Deployment) -> Vec<Check> {
    let mut checks = Vec::new();
    let secrets = match cloud.list_secrets(&deployment.names.managed_prefix).await {
        Ok(secrets) => secrets
            .into_iter()
            .filter(|s| s.deleted.is_none())
            .collect::<Vec<_>>(),
        Err(error) => return vec![aws_failure("rotation configured", &error)],
    };
    let expected = deployment.rotation_function.as_deref().map(function_name);
    let wrong: Vec<String> = secrets
        .iter()
        .filter(|s| {
            !s.rotation_enabled
                || match (expected, s.rotation_function.as_deref()) {
                    (Some(expected), Some(actual)) => function_name(actual) != expected,
                    (_, None) => true,
                    (None, Some(_)) => false,
                }
        })
        .map(|s| s.name.clone())
        .collect();
    checks.push(if secrets.is_empty() {
        skipped("rotation configured", "no managed secrets yet")
    } else if wrong.is_empty() {
        pass(
            "rotation configured",
            format!("{} managed secrets rotate with {}", secrets.len(), expected.unwrap_or("their function")),
        )
    } else {
        fail(
            "rotation configured",
            format!("{} of {} secrets have rotation disabled or on another function: {}", wrong.len(), secrets.len(), wrong.join(", ")),
            "redeploy (sam deploy), or for one secret: aws secretsmanager rotate-secret --secret-id <secret> --rotation-lambda-arn <RotationFunction arn>",
        )
    });
    checks.push(match deployment.rotation_function.as_deref() {
        Some(_) if deployment.local => skipped(
            "invoke permission",
            "the local stack invokes the function directly (no Lambda resource policy)",
        ),
        None => fail("invoke permission", "the rotation function is unknown", "pass --rotation-function, or check the stack's RotationFunction"),
        Some(function) => match cloud.function_policy(function_name(function)).await {
            Ok(Some(policy)) => {
                let document: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
                let allowed = document["Statement"].as_array().is_some_and(|statements| {
                    statements.iter().any(|s| {
                        s["Effect"] == "Allow"
                            && s["Principal"]["Service"].as_str() == Some("secretsmanager.amazonaws.com")
                            && s["Action"].as_str().is_some_and(|a| a == "lambda:InvokeFunction")
                    })
                });
                if allowed {
                    pass("invoke permission", format!("Secrets Manager may invoke {}", function_name(function)))
                } else {
                    fail(
                        "invoke permission",
                        format!("the policy of {} does not let secretsmanager.amazonaws.com invoke it", function_name(function)),
                        format!("redeploy, or: aws lambda add-permission --function-name {} --statement-id secretsmanager --action lambda:InvokeFunction --principal secretsmanager.amazonaws.com --source-account <account>", function_name(function)),
                    )
                }
            }
            Ok(None) => fail(
                "invoke permission",
                format!("{} has no resource policy: Secrets Manager cannot invoke it", function_name(function)),
                format!("redeploy, or: aws lambda add-permission --function-name {} --statement-id secretsmanager --action lambda:InvokeFunction --principal secretsmanager.amazonaws.com --source-account <account>", function_name(function)),
            ),
            Err(error) => aws_failure("invoke permission", &error),
        },
    });
    checks
}

async fn schedule_check<C: Cloud>(cloud: &C, deployment: &Deployment) -> Check {
    const NAME: &str = "schedules enabled";
    let Some(group) = deployment.schedule_group.as_deref() else {
        return skipped(
            NAME,
            "no schedule group in this deployment (the local stack has its own scheduler)",
        );
    };
    match cloud.schedules(Some(group)).await {
        Ok(schedules) if schedules.is_empty() => fail(
            NAME,
            format!("schedule group {group} has no schedules"),
            "redeploy (sam deploy)",
        ),
        Ok(schedules) => {
            let disabled: Vec<&str> = schedules
                .iter()
                .filter(|s| !s.enabled)
                .map(|s| s.name.as_str())
                .collect();
            if disabled.is_empty() {
                pass(NAME, format!("{} schedules enabled in {group}; refused ticks land in RotationTickDeadLetterQueue (its alarm reports them)", schedules.len()))
            } else {
                fail(
                    NAME,
                    format!("{} of {} schedules disabled: {}", disabled.len(), schedules.len(), disabled.join(", ")),
                    format!("aws scheduler update-schedule … --state ENABLED (or redeploy); group {group}"),
                )
            }
        }
        Err(error) => aws_failure(NAME, &error),
    }
}

async fn signing_key_check<C: Cloud>(cloud: &C, deployment: &Deployment) -> Check {
    const NAME: &str = "signing key fresh, JWKS published";
    let names = &deployment.names;
    let (info, value, jwks) = tokio::join!(
        cloud.describe_secret(&names.signing_key_secret),
        cloud.current_value(&names.signing_key_secret),
        cloud.get_parameter(&names.public_keys_parameter)
    );
    let info = match info {
        Ok(Some(info)) => info,
        Ok(None) => {
            return fail(
                NAME,
                format!("no signing key secret {}", names.signing_key_secret),
                "redeploy: the stack creates and rotates it",
            )
        }
        Err(error) => return aws_failure(NAME, &error),
    };
    // Only the key id is taken from the value; the private key is never kept or shown.
    let kid = match value {
        Ok(Some(value)) => serde_json::from_str::<serde_json::Value>(value.expose())
            .ok()
            .and_then(|v| v["Kid"].as_str().map(str::to_owned)),
        Ok(None) => None,
        Err(error) => return aws_failure(NAME, &error),
    };
    let Some(kid) = kid else {
        return fail(
            NAME,
            "the signing key has no current Kid (never rotated?)",
            format!(
                "aws secretsmanager rotate-secret --secret-id {}",
                names.signing_key_secret
            ),
        );
    };
    let published = match jwks {
        Ok(Some(jwks)) => serde_json::from_str::<serde_json::Value>(&jwks)
            .ok()
            .and_then(|v| v["keys"].as_array().cloned())
            .is_some_and(|keys| keys.iter().any(|k| k["kid"].as_str() == Some(kid.as_str()))),
        Ok(None) => false,
        Err(error) => return aws_failure(NAME, &error),
    };
    if !published {
        return fail(
            NAME,
            format!(
                "the current signing key {kid} is not in {}: tokens it signs are refused",
                names.public_keys_parameter
            ),
            format!(
                "aws secretsmanager rotate-secret --secret-id {} (setSecret publishes it)",
                names.signing_key_secret
            ),
        );
    }
    let age = info
        .last_rotated
        .or(info.created)
        .and_then(|t| SystemTime::now().duration_since(t).ok());
    match age {
        Some(age) if age > SIGNING_KEY_MAX_AGE => fail(
            NAME,
            format!("signing key {kid} last rotated {} ago", human_duration(age)),
            "check its rotation schedule and the rotation function's logs",
        ),
        _ => pass(
            NAME,
            format!(
                "key {kid}{} is published",
                age.map(|a| format!(", rotated {} ago,", human_duration(a)))
                    .unwrap_or_default()
            ),
        ),
    }
}

pub async fn doctor<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    _concurrency: usize,
    json: bool,
    style: Style,
) -> Result<Report, CliError> {
    let progress = Progress::new("doctor", 4, json);
    let mut checks = vec![match deployment.source {
        Source::Stack => pass(
            "deployment",
            format!("stack {}", deployment.stack.as_deref().unwrap_or("?")),
        ),
        Source::FixedNames if deployment.local => pass(
            "deployment",
            "no stack: the local stack, by keyrot's fixed names",
        ),
        Source::FixedNames => pass("deployment", "no stack: keyrot's fixed names"),
    }];
    let (rotation, schedules, signing, clients) = tokio::join!(
        rotation_checks(cloud, deployment),
        schedule_check(cloud, deployment),
        signing_key_check(cloud, deployment),
        crate::clients::list(cloud, deployment, Style { color: false })
    );
    progress.tick(4);
    progress.finish();
    checks.extend(rotation);
    checks.push(schedules);
    checks.push(skipped(
        "alarms",
        match &deployment.stack {
            Some(stack) => format!("not read by this build: aws cloudwatch describe-alarms --alarm-name-prefix {stack} --state-value ALARM"),
            None => "the local stack has no alarms".to_owned(),
        },
    ));
    checks.push(signing);
    match clients {
        Ok(report) => {
            let views = report.json["clients"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let broken: Vec<String> = views
                .iter()
                .filter(|v| {
                    v["problems"].as_array().is_some_and(|p| {
                        p.iter()
                            .any(|p| p.as_str().is_some_and(|p| !p.contains("usage plan")))
                    })
                })
                .map(|v| v["client"].as_str().unwrap_or("?").to_owned())
                .collect();
            checks.push(if broken.is_empty() {
                pass("clients parse", format!("{} clients", views.len()))
            } else {
                fail(
                    "clients parse",
                    format!("unusable: {}", broken.join(", ")),
                    "keyrot clients show <name> says why; keyrot clients remove + add fixes it",
                )
            });
            let outside: Vec<String> = views
                .iter()
                .filter(|v| v["usage_key_in_plan"] == json!(false))
                .map(|v| v["client"].as_str().unwrap_or("?").to_owned())
                .collect();
            checks.push(if deployment.usage_plan_id.is_none() {
                fail(
                    "usage keys in the usage plan",
                    "the usage plan is unknown",
                    "pass --usage-plan-id (the stack's ClientUsagePlanId)",
                )
            } else if outside.is_empty() {
                pass(
                    "usage keys in the usage plan",
                    format!(
                        "every client's usage key is in plan {}",
                        deployment.usage_plan_id.as_deref().unwrap_or("?")
                    ),
                )
            } else {
                fail(
                    "usage keys in the usage plan",
                    format!(
                        "not in the plan (API Gateway answers 403): {}",
                        outside.join(", ")
                    ),
                    "keyrot clients remove <name> and add it again",
                )
            });
        }
        Err(error) => checks.push(fail("clients parse", error.to_string(), "see the error")),
    }
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Fail).count();
    let mut text = String::new();
    for check in &checks {
        let mark = match check.outcome {
            Outcome::Pass => style.good("✔"),
            Outcome::Fail => style.bad("✘"),
            Outcome::Skipped => style.warn("–"),
        };
        text.push_str(&format!("{mark} {}: {}\n", check.name, check.detail));
        if let Some(fix) = &check.fix {
            text.push_str(&format!("    fix: {fix}\n"));
        }
    }
    text.push_str(&style.bold(&format!("{} checks, {failed} failed\n", checks.len())));
    let mut report = Report::ok(text, json!({"checks": checks, "failed": failed}));
    report.attention = failed > 0;
    Ok(report)
}
