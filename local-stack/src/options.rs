//! Command-line options of the local stack.

use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "keyrot-local",
    about = "Runs keyrot locally against moto (offline AWS)."
)]
pub struct Options {
    /// IAM users to create and manage, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "alice,bob")]
    pub users: Vec<String>,
    /// Users the default client may read, comma-separated (as the template's
    /// DefaultClientUsers).
    #[arg(long, value_delimiter = ',', default_value = "alice,bob")]
    pub client_users: Vec<String>,

    /// Rotation interval in minutes (as the template's RotationIntervalMinutes).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub interval_minutes: u64,

    /// Demo mode: rotation interval in seconds, overriding --interval-minutes.
    #[arg(long, value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub interval_seconds: Option<u64>,

    /// Also start a rotation once per window of this many seconds, at a random offset inside
    /// it, as Secrets Manager's native rotation windows do on AWS out of phase with the tick.
    #[arg(long, value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub native_window_seconds: Option<u64>,

    /// IAM write budget of the fleet, per second (as the template's IamWritesPerSecond).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub iam_writes_per_second: u64,

    /// Secrets Manager write budget of the fleet, per second (SecretsWritesPerSecond).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub secrets_writes_per_second: u64,

    /// Refuse PutSecretValue once a secret holds this many versions younger than 24 hours (or
    /// labelled), as AWS's version retention does; default: no limit. The 24 hours scale with
    /// a compressed interval, as every other time does (`version_retention`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=10000))]
    pub max_versions: Option<u32>,

    /// STS refuses a new access key for this many seconds, as AWS does while it propagates
    /// (typically 5–15 s); default: accepted at once, as moto does. With a delay, rotation-fn
    /// waits for STS as deployed (the template's KEYROT_VERIFY_* settings).
    #[arg(long, default_value_t = 0.0, value_parser = parse_delay_seconds)]
    pub sts_acceptance_delay_seconds: f64,

    /// Port of the AWS endpoint (moto); 0 picks a free one.
    #[arg(long, default_value_t = 4566)]
    pub aws_port: u16,

    /// Port of the Lambda Runtime/Invoke API emulator; 0 picks a free one.
    #[arg(long, default_value_t = 9000)]
    pub lambda_port: u16,

    /// Port of the local API gateway; 0 picks a free one.
    #[arg(long, default_value_t = 3000)]
    pub api_port: u16,

    /// Source CIDRs allowed to call the API (as the template's AllowedCidrs).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1/32,::1/128")]
    pub allowed_cidrs: Vec<String>,

    /// Token lifetime in seconds (as the template's TokenTtlSeconds).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(10..=900))]
    pub token_ttl_seconds: u64,

    /// Per-client steady request rate per second (as the template's ClientRateLimit).
    #[arg(long, default_value_t = 5.0)]
    pub throttle_rate: f64,

    /// Per-client burst (as the template's ClientBurstLimit).
    #[arg(long, default_value_t = 10)]
    pub throttle_burst: u32,

    /// Write the endpoints and the default client's API key as JSON to this file once ready
    /// (for scripts and tests; mode 0600).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,

    /// The keyrot checkout (where .venv, tools/ and target/ are).
    #[arg(long, env = "KEYROT_ROOT", default_value = ".")]
    pub root: PathBuf,

    /// Where logs go (default: <root>/target/keyrot/local).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,

    /// AWS endpoint the functions call instead of moto's own: a test puts a fault proxy in
    /// front of moto here (started with --aws-port, so that the proxy knows where moto is).
    #[arg(long)]
    pub functions_aws_endpoint: Option<String>,

    /// On SIGHUP, deploy again: read the changed settings from this JSON file (today
    /// `{"interval_seconds": N}`) and restart the functions with them, as a stack update
    /// that changes RotationIntervalMinutes does. The reconcile schedule keeps its period.
    #[arg(long)]
    pub deploy_file: Option<PathBuf>,

    /// Use the Lambda Invoke API at this URL instead of starting cargo-lambda and the function
    /// binaries (the benchmark harness hosts the functions itself).
    #[arg(long)]
    pub external_lambda: Option<String>,
    /// Directory of the function binaries.
    #[arg(long, env = "KEYROT_BIN_DIR", default_value = "target/debug")]
    pub bin_dir: PathBuf,
}

fn parse_delay_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.0..=600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds from 0 to 600")),
    }
}

/// The settings a redeploy may change (`--deploy-file`).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Deploy {
    interval_seconds: u64,
}

impl Options {
    /// These options with the changes in `--deploy-file`; a clear error naming the file for
    /// anything unreadable or out of range.
    pub fn redeployed(&self) -> Result<Options, String> {
        let Some(path) = &self.deploy_file else {
            return Err("no --deploy-file was given".into());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("deploy file {}: {error}", path.display()))?;
        let deploy: Deploy = serde_json::from_str(&text)
            .map_err(|error| format!("deploy file {}: {error}", path.display()))?;
        if !(5..=86_400).contains(&deploy.interval_seconds) {
            return Err(format!(
                "deploy file {}: interval_seconds must be 5 to 86400, not {}",
                path.display(),
                deploy.interval_seconds
            ));
        }
        Ok(Options {
            interval_seconds: Some(deploy.interval_seconds),
            ..self.clone()
        })
    }

    pub fn interval(&self) -> Duration {
        match self.interval_seconds {
            Some(seconds) => Duration::from_secs(seconds),
            None => Duration::from_secs(self.interval_minutes * 60),
        }
    }

    /// AWS's 24-hour version retention in the stack's time: compressed as the interval is
    /// against the default 10 minutes, so that a compressed run reaches the version quota
    /// after as many rotations as AWS would.
    pub fn version_retention(&self) -> Duration {
        const DEFAULT_INTERVAL_SECONDS: u64 = 600;
        let day = keyrot::rotation::VERSION_RETENTION.as_secs();
        Duration::from_secs(
            (day.saturating_mul(self.interval().as_secs()) / DEFAULT_INTERVAL_SECONDS)
                .clamp(1, day),
        )
    }

    /// How long after a failed rotation step Secrets Manager reattempts the rotation, which
    /// AWS does not document: half an interval here, so that a failed tick is retried before
    /// the other slot's next tick.
    pub fn rotation_retry(&self) -> Duration {
        self.interval() / 2
    }

    /// How often the local schedule runs the fleet's reconcile: every minute, as deployed,
    /// scaled with a compressed interval (a tenth of it, 1–60 s), so that each secret still
    /// rotates at its own offset.
    pub fn reconcile_period(&self) -> Duration {
        Duration::from_secs((self.interval().as_secs() / 10).clamp(1, 60))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.root.join("target").join("keyrot").join("local"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's default for `parameter`, as text.
    fn template_default(template: &serde_yaml::Value, parameter: &str) -> String {
        match &template["Parameters"][parameter]["Default"] {
            serde_yaml::Value::String(text) => text.clone(),
            serde_yaml::Value::Number(number) => number.to_string(),
            other => panic!("{parameter} has no scalar default: {other:?}"),
        }
    }

    /// The local stack runs what a default deployment runs: same users, interval, token
    /// lifetime and per-client throttle (CIDRs differ on purpose: loopback here).
    #[test]
    fn the_version_retention_scales_with_the_interval() {
        let default = Options::parse_from(["keyrot-local"]);
        assert_eq!(default.version_retention(), Duration::from_secs(86_400));
        let compressed = Options::parse_from(["keyrot-local", "--interval-seconds", "20"]);
        // 20 s stands for 10 minutes: 30 times faster, so 24 h become 48 minutes.
        assert_eq!(compressed.version_retention(), Duration::from_secs(2_880));
    }

    #[test]
    fn the_sts_delay_is_a_bounded_number_of_seconds() {
        let delayed = Options::parse_from(["keyrot-local", "--sts-acceptance-delay-seconds", "15"]);
        assert_eq!(delayed.sts_acceptance_delay_seconds, 15.0);
        for bad in ["-1", "NaN", "inf", "soon", "601"] {
            let flag = format!("--sts-acceptance-delay-seconds={bad}");
            let error = Options::try_parse_from(["keyrot-local", flag.as_str()]).expect_err(bad);
            assert!(
                error.to_string().contains("seconds from 0 to 600"),
                "{error}"
            );
        }
    }

    #[test]
    fn a_deploy_file_changes_the_interval_or_is_refused_naming_itself() {
        let dir = std::env::temp_dir().join(format!("keyrot-deploy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("deploy.json");
        let options = Options::parse_from([
            "keyrot-local",
            "--interval-seconds",
            "8",
            "--deploy-file",
            file.to_str().expect("utf-8"),
        ]);
        std::fs::write(&file, r#"{"interval_seconds": 5}"#).expect("write");
        let deployed = options.redeployed().expect("deployed");
        assert_eq!(deployed.interval(), Duration::from_secs(5));
        for bad in [
            r#"{"interval_seconds": 4}"#,
            r#"{"interval_seconds": "5"}"#,
            r#"{"interval": 5}"#,
            "not json",
        ] {
            std::fs::write(&file, bad).expect("write");
            let error = options.redeployed().expect_err(bad);
            assert!(error.contains("deploy.json"), "{error}");
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Options::parse_from(["keyrot-local"]).redeployed().is_err());
    }

    #[test]
    fn defaults_match_the_template() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"))
                .expect("template.yaml");
        let template: serde_yaml::Value = serde_yaml::from_str(&text).expect("template parses");
        let options = Options::parse_from(["keyrot-local"]);
        // A deployment enrols nobody by default (real users named alice or bob must not be
        // enrolled by accident); the local stack seeds its two demo users on purpose.
        assert_eq!(template_default(&template, "ManagedUsers"), "");
        assert_eq!(options.users, ["alice", "bob"]);
        assert_eq!(
            options.client_users.join(","),
            template_default(&template, "DefaultClientUsers")
        );
        assert_eq!(
            options.interval_minutes.to_string(),
            template_default(&template, "RotationIntervalMinutes")
        );
        assert_eq!(
            options.token_ttl_seconds.to_string(),
            template_default(&template, "TokenTtlSeconds")
        );
        assert_eq!(
            options.throttle_rate.to_string(),
            template_default(&template, "ClientRateLimit")
        );
        assert_eq!(
            options.throttle_burst.to_string(),
            template_default(&template, "ClientBurstLimit")
        );
    }
}
