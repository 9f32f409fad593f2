//! `kmsync oos get-secret-parameter`: one `GetSecretParameter` call (with decryption), printed
//! as JSON with the value redacted unless `--show-value`.
//!
//! Credentials come from `ALIBABA_CLOUD_ACCESS_KEY_ID`, `ALIBABA_CLOUD_ACCESS_KEY_SECRET` and
//! optionally `ALIBABA_CLOUD_SECURITY_TOKEN`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::kms::{SignatureFlag, resolve_overrides};
use crate::alibaba::{
    ClientConfig, EndpointPolicy, EndpointSource, Network, RetryPolicy, RpcClient, Service,
    SignatureVersion, TlsRoots,
};
use crate::credentials::StaticCredentials;
use crate::oos::{GetSecretParameterRequest, OosClient, SecretParameter};

/// `kmsync oos ...`
#[derive(Debug, Subcommand)]
pub enum OosCommand {
    /// Fetch one encrypted parameter (decrypted) and print it as JSON (value redacted by default).
    GetSecretParameter(GetSecretParameterArgs),
}

/// Arguments of `kmsync oos get-secret-parameter`.
#[derive(Debug, Args)]
pub struct GetSecretParameterArgs {
    /// Endpoint URL or host (`https://oos.cn-hangzhou.aliyuncs.com`, `http://127.0.0.1:8443`).
    #[arg(long, required_unless_present = "region", conflicts_with = "region")]
    endpoint: Option<String>,
    /// Region id, resolved to `oos.<region>.aliyuncs.com`.
    #[arg(long)]
    region: Option<String>,
    /// With --region: use the VPC endpoint `oos-vpc.<region>.aliyuncs.com`.
    #[arg(long, requires = "region")]
    vpc: bool,
    /// PEM file of the only CA(s) to trust (e.g. the emulator's CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Signature algorithm.
    #[arg(long, value_enum, default_value_t = SignatureFlag::V3)]
    signature_version: SignatureFlag,
    /// Per-attempt request timeout, seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Attempts including retries of throttling, 5xx and connection failures.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// Resolve a host name to a fixed address, `HOST=IP:PORT` (repeatable).
    #[arg(long, value_name = "HOST=ADDR")]
    resolve: Vec<String>,
    /// Parameter name.
    #[arg(long)]
    name: String,
    /// Parameter version (1..); default the latest.
    #[arg(long)]
    parameter_version: Option<u32>,
    /// Print the value instead of a redaction marker.
    #[arg(long)]
    show_value: bool,
}

pub(super) async fn run(command: OosCommand) -> anyhow::Result<()> {
    match command {
        OosCommand::GetSecretParameter(args) => get_secret_parameter(args).await,
    }
}

/// The JSON printed for a parameter; `Value` is a redaction marker unless `show`.
fn parameter_json(p: &SecretParameter, show: bool) -> Value {
    let value = if show {
        json!(String::from_utf8_lossy(p.value.expose()))
    } else {
        json!(format!(
            "<redacted: {} bytes; use --show-value to print>",
            p.value.len()
        ))
    };
    json!({
        "RequestId": p.request_id,
        "Parameter": {
            "Name": p.name,
            "Type": p.parameter_type,
            "ParameterVersion": p.parameter_version,
            "Value": value,
            "Id": p.id,
            "KeyId": p.key_id,
            "Description": p.description,
            "CreatedDate": p.created_date,
            "UpdatedDate": p.updated_date,
            "Tags": p.tags,
        }
    })
}

async fn get_secret_parameter(args: GetSecretParameterArgs) -> anyhow::Result<()> {
    let (policy, source) = match (&args.endpoint, &args.region) {
        (Some(endpoint), _) => (
            EndpointPolicy::default()
                .trust_url(endpoint)
                .context("--endpoint")?,
            EndpointSource::Url(endpoint.clone()),
        ),
        (None, Some(region)) => (
            EndpointPolicy::default(),
            EndpointSource::Region {
                region: region.clone(),
                network: if args.vpc {
                    Network::Vpc
                } else {
                    Network::Public
                },
            },
        ),
        (None, None) => anyhow::bail!("one of --endpoint, --region is required"),
    };
    let endpoint = policy.resolve(Service::Oos, &source)?;
    let tls_roots = match &args.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --ca-file {}", path.display()))?;
            TlsRoots::pinned_pem(&pem).with_context(|| format!("--ca-file {}", path.display()))?
        }
        None => TlsRoots::WebPki,
    };
    let config = ClientConfig {
        request_timeout: Duration::from_secs(args.timeout.max(1)),
        retry: RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5),
            max_attempts: args.max_attempts.max(1),
        },
        signature: match args.signature_version {
            SignatureFlag::V3 => SignatureVersion::V3,
            SignatureFlag::V1 => SignatureVersion::V1,
        },
        tls_roots,
        resolve: resolve_overrides(&args.resolve)?,
        ..ClientConfig::default()
    };
    let credentials =
        StaticCredentials::from_env().context("reading credentials from the environment")?;
    let client = OosClient::new(RpcClient::new(config)?, endpoint, Arc::new(credentials))?;
    let request = GetSecretParameterRequest {
        name: args.name.clone(),
        parameter_version: args.parameter_version,
    };
    let parameter = client
        .get_secret_parameter(&request)
        .await
        .with_context(|| {
            format!(
                "GetSecretParameter {:?} at {}",
                args.name,
                client.endpoint()
            )
        })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&parameter_json(&parameter, args.show_value))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::SecretBytes;

    #[test]
    fn parameter_values_are_redacted_unless_asked_for() {
        let p = SecretParameter {
            request_id: Some("r".into()),
            name: "/p".into(),
            value: SecretBytes::from("hunter2-marker"),
            parameter_version: 2,
            parameter_type: Some("Secret".into()),
            id: None,
            key_id: None,
            description: None,
            created_date: None,
            updated_date: None,
            tags: Default::default(),
        };
        let redacted = parameter_json(&p, false).to_string();
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("<redacted: 14 bytes; use --show-value to print>"));
        let shown = parameter_json(&p, true);
        assert_eq!(shown["Parameter"]["Value"], "hunter2-marker");
        assert_eq!(shown["Parameter"]["ParameterVersion"], 2);
    }
}
