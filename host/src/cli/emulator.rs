//! `kmsync emulator --seed FILE [--listen ADDR] [--tls] [--ca-out PATH] [--admin-listen ADDR]
//! [--metadata-listen ADDR]`
//!
//! When both listeners are up it prints exactly one line to stdout and flushes it:
//!
//! ```text
//! kmsync emulator ready kms=<url> admin=<url>
//! ```
//! e.g. `kmsync emulator ready kms=https://127.0.0.1:8443/ admin=http://127.0.0.1:8444/`,
//! followed by ` metadata=<url>` with `--metadata-listen`.
//! It then serves until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::emulator::{Emulator, Seed};

/// Arguments of `kmsync emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// Seed YAML (access keys, roles, secrets; see docs/emulator.md).
    #[arg(long)]
    seed: PathBuf,
    /// Address of the KMS/STS listener.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Address of the admin listener (counters, faults, rotation).
    #[arg(long, default_value = "127.0.0.1:0")]
    admin_listen: SocketAddr,
    /// Serve HTTPS with a generated CA and certificate for 127.0.0.1, ::1 and localhost.
    #[arg(long)]
    tls: bool,
    /// Write the CA certificate (PEM) here, for clients to pin (needs --tls).
    #[arg(long, requires = "tls")]
    ca_out: Option<PathBuf>,
    /// Also serve the ECS instance metadata endpoints (plain HTTP) on this address; the ready
    /// line then ends with ` metadata=<url>`.
    #[arg(long)]
    metadata_listen: Option<SocketAddr>,
}

pub(super) async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let seed = Seed::from_file(&args.seed)
        .with_context(|| format!("loading seed {}", args.seed.display()))?;
    if !args.admin_listen.ip().is_loopback() {
        tracing::warn!(addr = %args.admin_listen, "the admin API has no authentication; it is listening beyond loopback");
    }
    let handle = Emulator::builder(seed)
        .listen(args.listen)
        .admin_listen(args.admin_listen)
        .tls(args.tls)
        .metadata_listen(args.metadata_listen)
        .start()
        .await
        .context("starting the emulator")?;
    if let (Some(path), Some(pem)) = (&args.ca_out, handle.ca_pem()) {
        std::fs::write(path, pem)
            .with_context(|| format!("writing CA certificate to {}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        write!(
            out,
            "kmsync emulator ready kms={} admin={}",
            handle.kms_url(),
            handle.admin_url()
        )?;
        if let Some(url) = handle.metadata_url() {
            write!(out, " metadata={url}")?;
        }
        writeln!(out)?;
        out.flush()?;
    }
    tracing::info!(kms = %handle.kms_url(), admin = %handle.admin_url(), tls = args.tls, "emulator serving");
    wait_for_signal().await?;
    tracing::info!("emulator shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}
