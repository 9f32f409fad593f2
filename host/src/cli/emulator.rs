//! `kmsync emulator --seed FILE [--listen ADDR] [--tls] [--ca-out PATH] [--admin-listen ADDR]
//! [--write-client-key KEYID=PATH ...] [--metadata-listen ADDR]`
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
    /// Write the ClientKey of a seeded KMS instance key that the emulator generated (one
    /// without `certificate_pem`): the JSON to PATH and its password to PATH.password
    /// (repeatable; files are created with mode 0600).
    #[arg(long, value_name = "KEYID=PATH")]
    write_client_key: Vec<String>,
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
    for spec in &args.write_client_key {
        let (key_id, path) = spec
            .split_once('=')
            .with_context(|| format!("--write-client-key {spec:?}: expected KEYID=PATH"))?;
        let key = handle.client_key(key_id).with_context(|| {
            format!(
                "--write-client-key: {key_id:?} is not a seeded client key the emulator generated (seed it under client_keys without certificate_pem)"
            )
        })?;
        let path = PathBuf::from(path);
        let mut password_path = path.clone().into_os_string();
        password_path.push(".password");
        write_private(&path, key.json.expose())?;
        write_private(&PathBuf::from(password_path), key.password.expose())?;
    }
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

/// Writes a file readable by its owner only.
fn write_private(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
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
