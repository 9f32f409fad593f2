//! Command-line interface: clap definitions and wiring only (`anyhow` is allowed here and
//! nowhere else). One file per subcommand.

mod controller;
mod emulator;
mod kms;
mod oos;
pub mod render;
pub mod rules;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// kmsync: keeps Kubernetes Secrets in step with Alibaba Cloud KMS Secrets Manager.
#[derive(Debug, Parser)]
#[command(name = "kmsync", version, about)]
pub struct Cli {
    /// Log line format (logs go to stderr; filter with RUST_LOG, default `info`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: keep Kubernetes Secrets in step with KMS (see docs/operations.md).
    // Boxed: its many flags make it much larger than the other variants.
    Controller(Box<controller::ControllerArgs>),
    /// Run a local, signature-checking KMS + STS emulator seeded from a YAML file.
    Emulator(emulator::EmulatorArgs),
    /// Call KMS directly (debugging aid).
    Kms {
        /// KMS action.
        #[command(subcommand)]
        command: kms::KmsCommand,
    },
    /// Call OOS directly (debugging aid).
    Oos {
        /// OOS action.
        #[command(subcommand)]
        command: oos::OosCommand,
    },
    /// Develop, test and inspect WebAssembly rule modules.
    Rules(rules::RulesArgs),
    /// Print the Secrets that ExternalSecret manifests would produce (no cluster needed).
    Render(render::RenderArgs),
}

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A subscriber may already be installed (tests); keep it.
    let _ = result;
}

/// Parses the process arguments, runs the command and returns the exit code (errors are
/// printed to stderr with their causes).
pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    // `render` prints manifests; its stderr carries errors and warnings only.
    let default_level = match &cli.command {
        Command::Controller(args) => args.log_level.directive(),
        Command::Render(_) => "warn",
        _ => "info",
    };
    init_tracing(cli.log_format, default_level);
    match run_command(cli.command).await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok` carries the exit code (0 success, 1 failure found by the command,
/// e.g. a failed rule test case).
async fn run_command(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Controller(args) => controller::run(*args).await.map(|()| 0),
        Command::Emulator(args) => emulator::run(args).await.map(|()| 0),
        Command::Kms { command } => kms::run(command).await.map(|()| 0),
        Command::Oos { command } => oos::run(command).await.map(|()| 0),
        Command::Rules(args) => rules::run(args).await,
        Command::Render(args) => render::run(args).await,
    }
}
