//! Command-line interface (clap). Every setting is a flag with an environment variable
//! behind it; the API key alone is never a flag, so `ps` cannot show it.

use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Use it from ~/.aws/config (copy, then fix the URL, the user and the key file's path):

  [profile keyrot-alice]
  credential_process = keyrot-credentials --api https://abc123.execute-api.eu-west-1.amazonaws.com/v1 --user alice --api-key-file /home/me/.config/keyrot/api-key

and run `aws sts get-caller-identity --profile keyrot-alice`, or set AWS_PROFILE=keyrot-alice.
The API key file holds the client API key alone (chmod 600). Instead of the file, the
KEYROT_API_KEY environment variable may hold the key; the key is never a flag.

Each mode, with --api, --user and the key as above:
  keyrot-credentials [credential-process]     the credential_process JSON on stdout
  keyrot-credentials exec -- CMD ARGS         CMD with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY set
  keyrot-credentials write --profile NAME     keeps [NAME] of ~/.aws/credentials up to date (--watch)
  eval \"$(keyrot-credentials env)\"            export lines for a shell

The key and token are cached (mode 0600) under ~/.cache/keyrot or --cache-dir, a directory
that must be yours and mode 0700: the API is called only when keyrot expects a newer key, so a
repeated call costs one file read.";

#[derive(Debug, Parser)]
#[command(
    name = "keyrot-credentials",
    version,
    about = "Serves the current keyrot IAM access key to AWS SDKs and tools.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// The keyrot API's stage URL (required); https, or http to a loopback address.
    #[arg(long, env = "KEYROT_API_URL", global = true, value_name = "URL")]
    pub api: Option<String>,

    /// The IAM user whose key to serve (required).
    #[arg(long, env = "KEYROT_USER", global = true, value_name = "NAME")]
    pub user: Option<String>,

    /// File holding the client API key; it must not be readable by group or others.
    /// Without it, the KEYROT_API_KEY environment variable.
    #[arg(long, env = "KEYROT_API_KEY_FILE", global = true, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    /// Cache directory [default: $XDG_CACHE_HOME/keyrot or ~/.cache/keyrot].
    #[arg(long, env = "KEYROT_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Longest wait for one API request, in seconds (connecting, TLS, answer).
    #[arg(
        long,
        env = "KEYROT_TIMEOUT_SECONDS",
        global = true,
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub timeout_seconds: u64,

    #[command(subcommand)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Print the AWS process-credentials JSON (the default mode).
    CredentialProcess,

    /// Run a command with the key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, without any
    /// KEYROT_* variable or session token. The command keeps the key it started with: for runs
    /// longer than a rotation interval, use the credential_process profile instead.
    Exec {
        /// The command and its arguments, after `--`.
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<OsString>,
    },

    /// Write the key into one profile of a shared credentials file (atomically, mode 0600),
    /// leaving the rest of the file as it is.
    Write {
        /// The profile (section) to keep up to date, e.g. keyrot-alice.
        #[arg(long, value_name = "NAME")]
        profile: String,

        /// The credentials file [default: ~/.aws/credentials].
        #[arg(long, env = "AWS_SHARED_CREDENTIALS_FILE", value_name = "PATH")]
        file: Option<PathBuf>,

        /// Keep running, rewriting the profile whenever keyrot hands out a newer key.
        #[arg(long)]
        watch: bool,
    },

    /// Print `export` lines for a shell: eval "$(keyrot-credentials env …)".
    Env,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_go_before_or_after_the_mode_and_exec_takes_the_rest() {
        let cli = Cli::parse_from([
            "keyrot-credentials",
            "exec",
            "--user",
            "alice",
            "--",
            "aws",
            "--version",
        ]);
        assert_eq!(cli.user.as_deref(), Some("alice"));
        match cli.mode {
            Some(Mode::Exec { command }) => assert_eq!(command, ["aws", "--version"]),
            other => panic!("{other:?}"),
        }
        let cli = Cli::parse_from(["keyrot-credentials", "--user", "bob"]);
        assert!(cli.mode.is_none());
    }

    #[test]
    fn there_is_no_api_key_flag() {
        assert!(Cli::try_parse_from(["keyrot-credentials", "--api-key", "x"]).is_err());
    }
}
