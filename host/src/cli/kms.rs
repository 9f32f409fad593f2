//! `kmsync kms get-secret-value`: one `GetSecretValue` call, printed as JSON with the value
//! redacted unless `--show-value`.
//!
//! Credentials come from the default chain (`docs/credentials.md`): `ALIBABA_CLOUD_ACCESS_KEY_ID`
//! / `_SECRET` / `_SECURITY_TOKEN`, then RRSA from `ALIBABA_CLOUD_ROLE_ARN` /
//! `ALIBABA_CLOUD_OIDC_PROVIDER_ARN` / `ALIBABA_CLOUD_OIDC_TOKEN_FILE`, then the profile files,
//! then (with `--enable-worker-role`) the ECS instance role — or, with `--client-key-file`, from
//! a KMS instance ClientKey (JSON file plus `--client-key-password-file`), sent to the instance
//! gateway's protobuf API (`--kms-instance kst-…` or `--endpoint https://<kst-id>.cryptoservice…`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::alibaba::{
    ClientConfig, EndpointPolicy, EndpointSource, Network, RetryPolicy, RpcClient,
    SignatureVersion, TlsRoots,
};
use crate::credentials::builder::ProviderContext;
use crate::credentials::{
    DefaultChain, DefaultChainConfig, EcsMetadataConfig, RefreshPolicy, StsEndpointConfig,
};
use crate::dkms::{ClientKey, InstanceClient, InstanceClientConfig, InstanceTrust};
use crate::kms::{GetSecretValueRequest, KmsClient, SecretDataType, SecretValue};
use crate::value::{SecretBytes, SecretString};

/// `kmsync kms ...`
#[derive(Debug, Subcommand)]
pub enum KmsCommand {
    /// Fetch one secret version and print it as JSON (value redacted by default).
    GetSecretValue(GetSecretValueArgs),
}

/// Signature algorithm flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SignatureFlag {
    /// ACS3-HMAC-SHA256 (default of current SDKs).
    V3,
    /// RPC signature 1.0 (HMAC-SHA1).
    V1,
}

/// Where to send the call and how.
#[derive(Debug, Args)]
pub struct ConnectionArgs {
    /// Endpoint URL or host (`https://kms.cn-hangzhou.aliyuncs.com`, `http://127.0.0.1:8443`).
    #[arg(long, required_unless_present_any = ["region", "kms_instance"], conflicts_with_all = ["region", "kms_instance"])]
    endpoint: Option<String>,
    /// Region id, resolved to `kms.<region>.aliyuncs.com`.
    #[arg(long)]
    region: Option<String>,
    /// With --region: use the VPC endpoint `kms-vpc.<region>.aliyuncs.com`.
    #[arg(long, requires = "region")]
    vpc: bool,
    /// KMS instance id (`kst-...`), resolved to `<id>.cryptoservice.kms.aliyuncs.com`.
    #[arg(long, conflicts_with = "region")]
    kms_instance: Option<String>,
    /// PEM file of the only CA(s) to trust (a KMS instance CA, the emulator's CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Signature algorithm.
    #[arg(long, value_enum, default_value_t = SignatureFlag::V3)]
    signature_version: SignatureFlag,
    /// Per-attempt request timeout, seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Resolve a host name to a fixed address, `HOST=IP:PORT` (repeatable), e.g. a KMS
    /// instance host to a local emulator so that TLS still checks the instance name.
    #[arg(long, value_name = "HOST=ADDR")]
    resolve: Vec<String>,
    /// Attempts including retries of throttling, 5xx and connection failures.
    #[arg(long, default_value_t = 3)]
    max_attempts: u32,
    /// STS endpoint URL or host for RRSA and role profiles (default: `ALIBABA_CLOUD_STS_REGION`
    /// and `ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED`, else `sts.aliyuncs.com`); it shares --ca-file.
    #[arg(long)]
    sts_endpoint: Option<String>,
    /// Let the default chain use the ECS instance role (metadata server).
    #[arg(long)]
    enable_worker_role: bool,
    /// Base URL of the ECS metadata server (default `http://100.100.100.200`).
    #[arg(long, requires = "enable_worker_role")]
    metadata_url: Option<String>,
}

/// Arguments of `kmsync kms get-secret-value`.
#[derive(Debug, Args)]
pub struct GetSecretValueArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Secret name or ARN.
    #[arg(long)]
    secret_name: String,
    /// Version stage (default ACSCurrent).
    #[arg(long, conflicts_with = "version_id")]
    version_stage: Option<String>,
    /// Version id.
    #[arg(long)]
    version_id: Option<String>,
    /// Also fetch ExtendedConfig (managed secrets).
    #[arg(long)]
    fetch_extended_config: bool,
    /// Print the secret value (text as is, binary as base64) instead of a redaction marker.
    #[arg(long)]
    show_value: bool,
    #[command(flatten)]
    client_key: ClientKeyArgs,
}

/// ClientKey mode: the KMS instance gateway (protobuf API, RSA-signed requests).
#[derive(Debug, Args)]
pub struct ClientKeyArgs {
    /// ClientKey JSON file (`{"KeyId": ..., "PrivateKeyData": ...}`); switches to the KMS
    /// instance gateway API.
    #[arg(
        long,
        requires = "client_key_password_file",
        conflicts_with = "signature_version"
    )]
    client_key_file: Option<PathBuf>,
    /// File holding the ClientKey password (used as is, without its final newline).
    #[arg(long, requires = "client_key_file")]
    client_key_password_file: Option<PathBuf>,
    /// With --client-key-file: do not verify the gateway's TLS certificate (dangerous).
    #[arg(long, requires = "client_key_file", conflicts_with = "ca_file")]
    ignore_ssl: bool,
}

pub(super) async fn run(command: KmsCommand) -> anyhow::Result<()> {
    match command {
        KmsCommand::GetSecretValue(args) => get_secret_value(args).await,
    }
}

/// Parses `--resolve HOST=IP:PORT` values.
pub(super) fn resolve_overrides(values: &[String]) -> anyhow::Result<Vec<(String, SocketAddr)>> {
    values
        .iter()
        .map(|v| {
            let (host, addr) = v
                .split_once('=')
                .with_context(|| format!("--resolve {v:?}: expected HOST=IP:PORT"))?;
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--resolve {v:?}: {addr:?} is not IP:PORT"))?;
            Ok((host.to_owned(), addr))
        })
        .collect()
}

fn endpoint_of(c: &ConnectionArgs) -> anyhow::Result<crate::alibaba::Endpoint> {
    let (policy, source) = match (&c.endpoint, &c.region, &c.kms_instance) {
        (Some(endpoint), _, _) => (
            // The person running the CLI is the administrator: their endpoint is trusted.
            EndpointPolicy::default()
                .trust_url(endpoint)
                .context("--endpoint")?,
            EndpointSource::Url(endpoint.clone()),
        ),
        (None, Some(region), _) => (
            EndpointPolicy::default(),
            EndpointSource::Region {
                region: region.clone(),
                network: if c.vpc { Network::Vpc } else { Network::Public },
            },
        ),
        (None, None, Some(id)) => (
            EndpointPolicy::default(),
            EndpointSource::KmsInstance {
                instance_id: id.clone(),
            },
        ),
        (None, None, None) => {
            anyhow::bail!("one of --endpoint, --region, --kms-instance is required")
        }
    };
    Ok(policy.resolve(crate::alibaba::Service::Kms, &source)?)
}

fn instance_client(c: &ConnectionArgs, k: &ClientKeyArgs) -> anyhow::Result<InstanceClient> {
    let (Some(key_file), Some(password_file)) = (&k.client_key_file, &k.client_key_password_file)
    else {
        anyhow::bail!("--client-key-file needs --client-key-password-file");
    };
    let content = SecretBytes::new(
        std::fs::read(key_file)
            .with_context(|| format!("reading --client-key-file {}", key_file.display()))?,
    );
    let mut password = std::fs::read_to_string(password_file).with_context(|| {
        format!(
            "reading --client-key-password-file {}",
            password_file.display()
        )
    })?;
    if password.ends_with('\n') {
        password.pop();
        if password.ends_with('\r') {
            password.pop();
        }
    }
    let password = SecretString::new(password);
    let key = ClientKey::from_json(&content, &password)
        .with_context(|| format!("loading client key {}", key_file.display()))?;
    let trust = match (&c.ca_file, k.ignore_ssl) {
        (_, true) => InstanceTrust::InsecureSkipVerify,
        (Some(path), false) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --ca-file {}", path.display()))?;
            InstanceTrust::pinned_pem(&pem)
                .with_context(|| format!("--ca-file {}", path.display()))?
        }
        (None, false) => {
            anyhow::bail!(
                "--client-key-file needs --ca-file with the instance's regional CA (or --ignore-ssl)"
            )
        }
    };
    let mut config = InstanceClientConfig::new(trust);
    config.request_timeout = Duration::from_secs(c.timeout.max(1));
    config.retry = RetryPolicy {
        base: Duration::from_millis(500),
        cap: Duration::from_secs(5),
        max_attempts: c.max_attempts.max(1),
    };
    config.resolve = resolve_overrides(&c.resolve)?;
    let client = InstanceClient::new(endpoint_of(c)?, Arc::new(key), config)?;
    for w in client.warnings() {
        eprintln!("warning: {}: {}", w.reason, w.message);
    }
    Ok(client)
}

fn client(c: &ConnectionArgs) -> anyhow::Result<KmsClient> {
    let endpoint = endpoint_of(c)?;
    let tls_roots = match &c.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading --ca-file {}", path.display()))?;
            TlsRoots::pinned_pem(&pem).with_context(|| format!("--ca-file {}", path.display()))?
        }
        None => TlsRoots::WebPki,
    };
    let config = ClientConfig {
        request_timeout: Duration::from_secs(c.timeout.max(1)),
        retry: RetryPolicy {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(5),
            max_attempts: c.max_attempts.max(1),
        },
        signature: match c.signature_version {
            SignatureFlag::V3 => SignatureVersion::V3,
            SignatureFlag::V1 => SignatureVersion::V1,
        },
        tls_roots,
        resolve: resolve_overrides(&c.resolve)?,
        ..ClientConfig::default()
    };
    // A pinned CA (--ca-file) is for the KMS endpoint; STS gets it only when it is pointed at
    // the same kind of endpoint with --sts-endpoint, else the public roots.
    let sts_rpc = RpcClient::new(ClientConfig {
        tls_roots: if c.sts_endpoint.is_some() {
            config.tls_roots.clone()
        } else {
            TlsRoots::WebPki
        },
        ..config.clone()
    })?;
    let rpc = RpcClient::new(config)?;
    let mut sts_policy = EndpointPolicy::default();
    if let Some(url) = &c.sts_endpoint {
        sts_policy = sts_policy.trust_url(url).context("--sts-endpoint")?;
    }
    let sts = StsEndpointConfig {
        url: c.sts_endpoint.clone(),
        ..StsEndpointConfig::default()
    }
    .or(&StsEndpointConfig::from_env());
    let mut metadata = EcsMetadataConfig::from_lookup(|k| std::env::var(k).ok());
    if let Some(url) = &c.metadata_url {
        metadata.base_url.clone_from(url);
    }
    let ctx = ProviderContext {
        rpc: sts_rpc,
        policy: sts_policy,
        sts,
        refresh: RefreshPolicy::default(),
        metadata,
    };
    let chain = DefaultChain::new(
        &DefaultChainConfig::from_process_env(c.enable_worker_role),
        ctx,
    );
    Ok(KmsClient::new(rpc, endpoint, Arc::new(chain))?)
}

/// The JSON printed for a secret value; `SecretData` is a redaction marker unless `show`.
fn secret_value_json(v: &SecretValue, show: bool) -> Value {
    let data = if show {
        match v.data_type {
            SecretDataType::Text => json!(String::from_utf8_lossy(v.data.expose())),
            SecretDataType::Binary => {
                json!(base64::engine::general_purpose::STANDARD.encode(v.data.expose()))
            }
        }
    } else {
        json!(format!(
            "<redacted: {} bytes; use --show-value to print>",
            v.data.len()
        ))
    };
    let mut out = json!({
        "RequestId": v.request_id,
        "SecretName": v.secret_name,
        "SecretType": v.secret_type.as_str(),
        "SecretDataType": v.data_type.as_str(),
        "SecretData": data,
        "VersionId": v.version_id,
        "VersionStages": v.version_stages,
        "CreateTime": v.create_time,
    });
    let optional = [
        ("ExtendedConfig", &v.extended_config),
        ("AutomaticRotation", &v.automatic_rotation),
        ("RotationInterval", &v.rotation_interval),
        ("LastRotationDate", &v.last_rotation_date),
        ("NextRotationDate", &v.next_rotation_date),
    ];
    if let Value::Object(map) = &mut out {
        for (name, value) in optional {
            if let Some(value) = value {
                map.insert(name.to_owned(), json!(value));
            }
        }
    }
    out
}

async fn get_secret_value(args: GetSecretValueArgs) -> anyhow::Result<()> {
    let mut request = GetSecretValueRequest::new(args.secret_name.clone())
        .fetch_extended_config(args.fetch_extended_config);
    request.version_stage = args.version_stage;
    request.version_id = args.version_id;
    let value = if args.client_key.client_key_file.is_some() {
        let client = instance_client(&args.connection, &args.client_key)?;
        client.get_secret_value(&request).await.with_context(|| {
            format!(
                "GetSecretValue {:?} at {} with client key {}",
                args.secret_name,
                client.endpoint(),
                client.key_id()
            )
        })?
    } else {
        let client = client(&args.connection)?;
        client.get_secret_value(&request).await.with_context(|| {
            format!(
                "GetSecretValue {:?} at {}",
                args.secret_name,
                client.endpoint()
            )
        })?
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&secret_value_json(&value, args.show_value))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kms::SecretType;
    use crate::value::SecretBytes;

    fn value(data_type: SecretDataType, data: &[u8]) -> SecretValue {
        SecretValue {
            request_id: Some("r".into()),
            secret_name: "s".into(),
            secret_type: SecretType::Generic,
            data_type,
            data: SecretBytes::new(data.to_vec()),
            version_id: "v1".into(),
            version_stages: vec!["ACSCurrent".into()],
            create_time: None,
            extended_config: None,
            automatic_rotation: None,
            rotation_interval: None,
            last_rotation_date: None,
            next_rotation_date: None,
        }
    }

    #[test]
    fn values_are_redacted_unless_asked_for() {
        let v = value(SecretDataType::Text, b"hunter2-marker");
        let redacted = secret_value_json(&v, false).to_string();
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(redacted.contains("<redacted: 14 bytes; use --show-value to print>"));
        assert_eq!(secret_value_json(&v, true)["SecretData"], "hunter2-marker");
        let b = value(SecretDataType::Binary, &[0, 1, 255]);
        assert_eq!(secret_value_json(&b, true)["SecretData"], "AAH/");
        assert_eq!(secret_value_json(&b, true)["SecretDataType"], "binary");
    }
}
