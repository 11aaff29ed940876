//! The API functions, keyrot's (Rust) and the Python baseline, measured in the same run with
//! the same events: cold starts, warm latency of each path, peak memory.

use crate::measure::{self, cold_json, is_allow, is_anything, is_deny, is_ok_response, Check};
use crate::stack::BenchStack;
use crate::stats::Summary;
use crate::subject::{Running, Spec};
use crate::{Args, BenchError};
use keyrot_integration_tests::events::{authorizer_event, proxy_event, Call};
use serde_json::{json, Value};

/// A source address outside the allowlist, for the deny path.
const OUTSIDE_IP: &str = "198.51.100.7";
const USER: &str = "alice";

/// The events of one round, built from real answers (the authorizer's context, a token).
struct Events {
    authorize_read: Value,
    authorize_read_elsewhere: Value,
    issue_token: Value,
    read_key: Value,
}

async fn events(
    stack: &BenchStack,
    authorizer: &mut Running,
    api: &mut Running,
) -> Result<Events, BenchError> {
    let token_call = Call::new("POST", "/generate-token").header("x-api-key", &stack.api_key);
    let authorize_token = authorizer_event(&token_call);
    let context = measure::once(
        "authorizer (token route)",
        authorizer,
        &authorize_token,
        is_allow,
    )
    .await?;
    let issue_token = proxy_event(&token_call, &context);
    let issued = measure::once("api (token)", api, &issue_token, is_ok_response).await?;
    let token = serde_json::from_str::<Value>(issued["body"].as_str().unwrap_or("{}"))
        .ok()
        .and_then(|body| body["token"].as_str().map(str::to_owned))
        .ok_or_else(|| BenchError::Setup("api-fn issued no token".into()))?;
    let read_call = Call::new("GET", "/active-key")
        .header("x-api-key", &stack.api_key)
        .header("Authorization", &format!("Bearer {token}"))
        .query("username", USER);
    let authorize_read = authorizer_event(&read_call);
    let context = measure::once(
        "authorizer (read route)",
        authorizer,
        &authorize_read,
        is_allow,
    )
    .await?;
    let read_key = proxy_event(&read_call, &context);
    Ok(Events {
        authorize_read,
        authorize_read_elsewhere: authorizer_event(&read_call.from_ip(OUTSIDE_IP)),
        issue_token,
        read_key,
    })
}

fn mib(kib: Option<u64>) -> Value {
    kib.map(|k| json!(k as f64 / 1024.0)).unwrap_or(Value::Null)
}

/// One function's workload: the event its cold starts answer, and its warm paths.
struct Workload<'a> {
    cold: (&'a Value, Check),
    warm: Vec<(&'static str, &'a Value, Check)>,
}

/// Cold starts of `spec`, then the warm paths on one process, then that process's peak memory.
async fn measure_function(
    label: &str,
    spec: &Spec,
    workload: &Workload<'_>,
    stack: &BenchStack,
    args: &Args,
) -> Result<Value, BenchError> {
    let (event, check) = workload.cold;
    let log = stack.log(label);
    let cold = measure::cold_starts(label, spec, event, check, args.cold_runs, &log).await?;
    let mut result = json!({ "cold": cold_json(&cold) });
    // On an error the process is killed when `running` drops.
    let mut running = Running::start(spec, &log).await?;
    for (name, event, check) in &workload.warm {
        let samples = measure::warm(
            &format!("{label} {name}"),
            &mut running,
            event,
            *check,
            args.warmup,
            args.warm_runs,
        )
        .await?;
        result[*name] = Summary::of(&samples).to_json();
    }
    result["peak_rss_mib"] = mib(running.peak_rss_kib());
    running.stop().await;
    Ok(result)
}

pub async fn measure(stack: &BenchStack, args: &Args) -> Result<Value, BenchError> {
    let mut authorizer =
        Running::start(&stack.rust("authorizer-fn"), &stack.log("fixture")).await?;
    let mut api = Running::start(&stack.rust("api-fn"), &stack.log("fixture")).await?;
    let prepared = events(stack, &mut authorizer, &mut api).await;
    authorizer.stop().await;
    api.stop().await;
    let e = prepared?;

    let empty = json!({});
    let hello = Workload {
        cold: (&empty, is_anything),
        warm: vec![("echo", &empty, is_anything)],
    };
    let authorizer = Workload {
        cold: (&e.authorize_read, is_allow),
        warm: vec![
            ("allow", &e.authorize_read, is_allow),
            ("deny", &e.authorize_read_elsewhere, is_deny),
        ],
    };
    let api = Workload {
        cold: (&e.issue_token, is_ok_response),
        warm: vec![
            ("token", &e.issue_token, is_ok_response),
            ("read", &e.read_key, is_ok_response),
        ],
    };

    let mut results = json!({});
    results["hello"] = measure_function("hello", &stack.hello(), &hello, stack, args).await?;
    let implementations = [
        ("rust", stack.rust("authorizer-fn"), stack.rust("api-fn")),
        (
            "python",
            stack.python("authorizer-fn", args, "authorizer"),
            stack.python("api-fn", args, "api"),
        ),
    ];
    for (implementation, authorizer_spec, api_spec) in &implementations {
        let label = |f: &str| format!("{implementation}-{f}");
        results[*implementation] = json!({
            "authorizer": measure_function(&label("authorizer"), authorizer_spec, &authorizer, stack, args).await?,
            "api": measure_function(&label("api"), api_spec, &api, stack, args).await?,
        });
    }
    if let Some(bundle_only) = trust_store_diagnostic(stack, args, &e.authorize_read).await? {
        results["rust"]["authorizer"]["cold_bundle_only"] = bundle_only;
    }
    Ok(results)
}

/// The system CA bundle rustls-native-certs finds first on Debian-like systems.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Diagnostic: the Rust authorizer's cold start when its trust store is the CA bundle alone.
/// By default the SDK's HTTPS client loads the bundle and every file of the certificate
/// directory (/etc/ssl/certs) at start; this run shows what that costs on this machine.
async fn trust_store_diagnostic(
    stack: &BenchStack,
    args: &Args,
    event: &Value,
) -> Result<Option<Value>, BenchError> {
    if !std::path::Path::new(CA_BUNDLE).is_file() {
        return Ok(None);
    }
    let empty_dir = args.out_dir.join("empty-cert-dir");
    std::fs::create_dir_all(&empty_dir)
        .map_err(|e| BenchError::io(format!("creating {}", empty_dir.display()), e))?;
    let mut spec = stack.rust("authorizer-fn");
    spec.env.push(("SSL_CERT_FILE".into(), CA_BUNDLE.into()));
    spec.env
        .push(("SSL_CERT_DIR".into(), empty_dir.display().to_string()));
    let label = "rust-authorizer-bundle-only";
    let samples = measure::cold_starts(
        label,
        &spec,
        event,
        is_allow,
        args.cold_runs,
        &stack.log(label),
    )
    .await?;
    Ok(Some(cold_json(&samples)))
}
