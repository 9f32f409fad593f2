//! `kmsync render -f PATH...`: the Secrets that ExternalSecrets would produce, without a
//! cluster. Reads manifests (files, directories recursively, `-` for stdin), runs the same sync
//! pipeline as the controller, prints `v1 Secret` manifests (YAML, or a JSON `List`), values
//! redacted unless `--show-values`. See `docs/render.md`.
//!
//! Exit codes: 0 every ExternalSecret rendered; 1 at least one failed (each reported on one
//! stderr line naming the object and field; the others are still printed) or the input could
//! not be read; 2 usage errors (clap).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use serde_json::{Map, Value, json};

use crate::alibaba::EndpointPolicy;
use crate::api::{
    ClusterExternalSecret, ExternalSecret, Manifest, parse_go_duration, parse_manifests,
};
use crate::credentials::{FactoryConfig, MemorySecrets, StsEndpointConfig};
use crate::emulator::{Emulator, EmulatorHandle, Seed};
use crate::rules::{RuleEngine, RuleLimits};
use crate::stores::{Redirect, StoreObject, StoreResolver, StoreResolverConfig};
use crate::sync::{
    DigestKey, FetchCache, FetchCacheConfig, MemoryEnv, Pipeline, PipelineConfig, SyncError,
    SyncOutput,
};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Multi-document YAML, one `v1 Secret` per document.
    Yaml,
    /// One JSON `v1 List` holding the Secrets.
    Json,
}

/// Arguments of `kmsync render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Manifest file or directory (recursively: *.yaml, *.yml, *.json), or `-` for stdin.
    /// Repeatable. ExternalSecrets, SecretStores, ClusterSecretStores, ClusterExternalSecrets,
    /// and the Secrets (credentials), ConfigMaps (rule modules) and Namespaces (labels) they
    /// use.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Print the Secret values (base64 in `data`, as the API server stores them) instead of
    /// `<redacted: N bytes>`.
    #[arg(long)]
    pub show_values: bool,
    /// Start the embedded emulator seeded from this file and send every call (KMS, KMS
    /// instance, OOS, STS) to it, over HTTPS with a CA made for this run.
    #[arg(long, value_name = "SEED")]
    pub emulator: Option<PathBuf>,
    /// Namespace of objects that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Region of the KMS, OOS and STS endpoints (as the controller's flag).
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID")]
    pub region: Option<String>,
    /// Default KMS endpoint, host or https URL (as the controller's flag).
    #[arg(long)]
    pub kms_endpoint: Option<String>,
    /// Comma-separated endpoint URLs allowed besides Alibaba Cloud hosts (plain http only to
    /// loopback).
    #[arg(long, value_delimiter = ',')]
    pub allowed_endpoints: Vec<String>,
    /// Let an ExternalSecret name a SecretStore in another namespace.
    #[arg(long)]
    pub enable_cross_namespace_secret_store: bool,
    /// Let a SecretStore name credential Secrets in another namespace.
    #[arg(long)]
    pub enable_cross_namespace_auth_ref: bool,
    /// Let the ambient credentials use the ECS instance role (metadata server).
    #[arg(long)]
    pub enable_worker_role: bool,
    /// File holding the HMAC key of data digests (raw bytes, at least 16; the `key` of the
    /// controller's digest-key Secret gives the controller's digests). Unset: a random key for
    /// this run, and digests are not printed.
    #[arg(long, value_name = "FILE")]
    pub digest_key_file: Option<PathBuf>,
    /// Wall-clock limit of one rule call (Go duration).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub rule_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

/// Everything read from the inputs.
#[derive(Default)]
struct Inputs {
    external_secrets: Vec<ExternalSecret>,
    cluster_external_secrets: Vec<ClusterExternalSecret>,
    stores: Vec<StoreObject>,
    secrets: Vec<Secret>,
    config_maps: Vec<ConfigMap>,
    namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// `kind namespace/name` -> where it was defined (duplicates are refused).
    seen: HashMap<String, String>,
    /// Namespaces named by any namespaced object.
    mentioned: BTreeSet<String>,
}

/// Runs `kmsync render`; returns the exit code.
pub async fn run(args: RenderArgs) -> anyhow::Result<i32> {
    let inputs = read_inputs(&args)?;
    let external_secrets = expand(&inputs, &args.namespace);
    if external_secrets.is_empty() {
        bail!("no ExternalSecret or ClusterExternalSecret found in the input");
    }

    let emulator = match &args.emulator {
        Some(seed) => Some(start_emulator(seed).await?),
        None => None,
    };
    let (digest_key, show_digests) = match &args.digest_key_file {
        Some(path) => (DigestKey::from_file(path)?, true),
        None => {
            eprintln!(
                "note: no --digest-key-file: data digests use a random key for this run, so they are not printed"
            );
            (DigestKey::random(), false)
        }
    };

    let secrets = Arc::new(MemorySecrets::new());
    for s in &inputs.secrets {
        secrets.insert_secret(s, &args.namespace);
    }
    let resolver = Arc::new(resolver(&args, secrets, emulator.as_ref())?);
    let mut env = MemoryEnv::new(resolver);
    for store in &inputs.stores {
        env.insert_store(store.clone());
    }
    for (name, labels) in &inputs.namespaces {
        env.insert_namespace(name, labels.clone());
    }
    for cm in &inputs.config_maps {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (k, v) in cm.data.iter().flatten() {
            keys.push((k.clone(), v.as_bytes().to_vec()));
        }
        for (k, v) in cm.binary_data.iter().flatten() {
            keys.push((k.clone(), v.0.clone()));
        }
        env.insert_config_map(
            cm.metadata.namespace.as_deref().unwrap_or(&args.namespace),
            cm.metadata.name.as_deref().unwrap_or_default(),
            keys,
        );
    }

    let deadline = args.rule_timeout.max(Duration::from_millis(1));
    let limits = RuleLimits {
        deadline,
        epoch_tick: RuleLimits::default().epoch_tick.min(deadline),
        ..RuleLimits::default()
    };
    let pipeline = Pipeline::new(
        Arc::new(RuleEngine::new(limits)?),
        Arc::new(FetchCache::new(FetchCacheConfig::default())),
        digest_key,
        PipelineConfig {
            allow_cross_namespace_store: args.enable_cross_namespace_secret_store,
            // The user's own data, on their terminal: rule messages are shown whole.
            rule_text_limit: None,
        },
    );

    let results = futures::future::join_all(
        external_secrets
            .iter()
            .map(|es| pipeline.sync(es, &env, None)),
    )
    .await;
    drop(emulator);

    let mut rendered: Vec<(&ExternalSecret, SyncOutput)> = Vec::new();
    let mut failures: Vec<(String, String)> = Vec::new();
    for (es, result) in external_secrets.iter().zip(results) {
        match result {
            Ok(out) => rendered.push((es, out)),
            Err(e) => failures.push((object_name(es), one_line(&e))),
        }
    }
    // Two ExternalSecrets writing one Secret would fight over it in a cluster.
    rendered.sort_by(|(a, x), (b, y)| {
        (&x.secret.namespace, &x.secret.name, object_name(a)).cmp(&(
            &y.secret.namespace,
            &y.secret.name,
            object_name(b),
        ))
    });
    let mut owners: HashMap<(String, String), String> = HashMap::new();
    rendered.retain(|(es, out)| {
        let target = (out.secret.namespace.clone(), out.secret.name.clone());
        match owners.get(&target) {
            Some(first) => {
                failures.push((
                    object_name(es),
                    format!(
                        "spec.target.name: Secret {}/{} is also written by {first}",
                        target.0, target.1
                    ),
                ));
                false
            }
            None => {
                owners.insert(target, object_name(es));
                true
            }
        }
    });

    print!(
        "{}",
        match args.output {
            OutputFormat::Yaml => yaml_output(&rendered, args.show_values, show_digests)?,
            OutputFormat::Json => json_output(&rendered, args.show_values)?,
        }
    );
    failures.sort();
    for (object, message) in &failures {
        eprintln!("error: {object}: {message}");
    }
    Ok(if failures.is_empty() { 0 } else { 1 })
}

fn object_name(es: &ExternalSecret) -> String {
    format!(
        "ExternalSecret {}/{}",
        es.metadata.namespace.as_deref().unwrap_or_default(),
        es.metadata.name.as_deref().unwrap_or("<unnamed>")
    )
}

/// The error and its causes on one line.
fn one_line(e: &SyncError) -> String {
    e.message().replace('\n', " ")
}

async fn start_emulator(seed_path: &Path) -> anyhow::Result<EmulatorHandle> {
    let seed = Seed::from_file(seed_path)
        .with_context(|| format!("--emulator: loading seed {}", seed_path.display()))?;
    Emulator::builder(seed)
        .tls(true)
        .start()
        .await
        .context("--emulator: starting the emulator")
}

fn resolver(
    args: &RenderArgs,
    secrets: Arc<MemorySecrets>,
    emulator: Option<&EmulatorHandle>,
) -> anyhow::Result<StoreResolver> {
    let mut policy = EndpointPolicy::default();
    for url in &args.allowed_endpoints {
        policy = policy
            .trust_url(url)
            .with_context(|| format!("--allowed-endpoints {url:?}"))?;
    }
    let config = StoreResolverConfig {
        region: args.region.clone().filter(|r| !r.is_empty()),
        kms_endpoint: args.kms_endpoint.clone(),
        policy,
        credentials: FactoryConfig {
            sts: StsEndpointConfig {
                region: args.region.clone().filter(|r| !r.is_empty()),
                ..StsEndpointConfig::default()
            }
            .or(&StsEndpointConfig::from_env()),
            enable_worker_role: args.enable_worker_role,
            allow_cross_namespace_auth_ref: args.enable_cross_namespace_auth_ref,
            ..FactoryConfig::default()
        },
        redirect: emulator.map(|e| Redirect::new(e.kms_url().as_str(), e.ca_pem())),
        ..StoreResolverConfig::default()
    };
    Ok(StoreResolver::builder(config, secrets).build()?)
}

/// Reads every input, in order; directories recursively in path order.
fn read_inputs(args: &RenderArgs) -> anyhow::Result<Inputs> {
    let mut inputs = Inputs::default();
    for path in &args.files {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            add_document(&mut inputs, "<stdin>", &text, &args.namespace)?;
        } else if path.is_dir() {
            let mut files = Vec::new();
            walk(path, &mut files)
                .with_context(|| format!("reading directory {}", path.display()))?;
            files.sort();
            // The --emulator seed may sit next to the manifests (as in the quickstart); it is
            // not a manifest.
            let seed = args.emulator.as_deref().and_then(|s| s.canonicalize().ok());
            for file in files {
                if seed.is_some() && file.canonicalize().ok() == seed {
                    continue;
                }
                add_file(&mut inputs, &file, &args.namespace)?;
            }
        } else {
            add_file(&mut inputs, path, &args.namespace)?;
        }
    }
    Ok(inputs)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn add_file(inputs: &mut Inputs, path: &Path, default_ns: &str) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    add_document(inputs, &path.display().to_string(), &text, default_ns)
}

fn add_document(
    inputs: &mut Inputs,
    origin: &str,
    text: &str,
    default_ns: &str,
) -> anyhow::Result<()> {
    let manifests = parse_manifests(text).with_context(|| origin.to_owned())?;
    for m in manifests {
        let namespaced = !matches!(
            &m,
            Manifest::ClusterSecretStore(_) | Manifest::ClusterExternalSecret(_)
        ) && !matches!(&m, Manifest::Other { kind, .. } if kind == "Namespace");
        let namespace = namespaced.then(|| m.namespace().unwrap_or(default_ns).to_owned());
        let id = format!(
            "{} {}{}",
            m.kind(),
            namespace
                .as_deref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            m.name().unwrap_or("<unnamed>")
        );
        if let Some(first) = inputs.seen.get(&id) {
            bail!("{origin}: {id} is defined twice (first in {first})");
        }
        inputs.seen.insert(id.clone(), origin.to_owned());
        if let Some(ns) = &namespace {
            inputs.mentioned.insert(ns.clone());
        }
        match m {
            Manifest::ExternalSecret(mut es) => {
                es.metadata.namespace = namespace;
                inputs.external_secrets.push(*es);
            }
            Manifest::SecretStore(mut s) => {
                s.metadata.namespace = namespace;
                inputs.stores.push(StoreObject::from(*s));
            }
            Manifest::ClusterSecretStore(s) => inputs.stores.push(StoreObject::from(*s)),
            Manifest::ClusterExternalSecret(c) => inputs.cluster_external_secrets.push(*c),
            Manifest::Other {
                api_version,
                kind,
                object,
            } if api_version == "v1" => match kind.as_str() {
                "Secret" => {
                    let mut s: Secret = serde_json::from_value(object)
                        .with_context(|| format!("{origin}: {id}"))?;
                    s.metadata.namespace = namespace;
                    inputs.secrets.push(s);
                }
                "ConfigMap" => {
                    let mut c: ConfigMap = serde_json::from_value(object)
                        .with_context(|| format!("{origin}: {id}"))?;
                    c.metadata.namespace = namespace;
                    inputs.config_maps.push(c);
                }
                "Namespace" => {
                    let n: Namespace = serde_json::from_value(object)
                        .with_context(|| format!("{origin}: {id}"))?;
                    inputs.namespaces.insert(
                        n.metadata.name.clone().unwrap_or_default(),
                        n.metadata.labels.clone().unwrap_or_default(),
                    );
                }
                _ => {}
            },
            Manifest::Other { .. } => {}
        }
    }
    Ok(())
}

/// The ExternalSecrets to render: those given, plus one per ClusterExternalSecret and
/// namespace it selects (among the Namespaces given and the namespaces other objects are in),
/// sorted by namespace and name.
fn expand(inputs: &Inputs, default_ns: &str) -> Vec<ExternalSecret> {
    let mut out = inputs.external_secrets.clone();
    let mut namespaces: BTreeSet<String> = inputs.namespaces.keys().cloned().collect();
    namespaces.extend(inputs.mentioned.iter().cloned());
    namespaces.insert(default_ns.to_owned());
    for ces in &inputs.cluster_external_secrets {
        for ns in &namespaces {
            let labels = inputs.namespaces.get(ns).cloned().unwrap_or_default();
            if !ces.spec.selects_namespace(ns, &labels) {
                continue;
            }
            let mut es = ExternalSecret::new(
                ces.external_secret_name(),
                ces.spec.external_secret_spec.clone(),
            );
            es.metadata.namespace = Some(ns.clone());
            if let Some(meta) = &ces.spec.external_secret_metadata {
                es.metadata.labels.clone_from(&meta.labels);
                es.metadata.annotations.clone_from(&meta.annotations);
            }
            out.push(es);
        }
    }
    out.sort_by_key(object_name);
    out
}

/// The `v1 Secret` of a result as JSON, values base64 or redacted.
fn secret_json(out: &SyncOutput, show_values: bool) -> Value {
    let s = &out.secret;
    let data: Map<String, Value> = s
        .data
        .iter()
        .map(|(k, v)| {
            let value = if show_values {
                base64::engine::general_purpose::STANDARD.encode(v.expose())
            } else {
                format!("<redacted: {} bytes>", v.len())
            };
            (k.clone(), Value::String(value))
        })
        .collect();
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(s.name));
    metadata.insert("namespace".into(), json!(s.namespace));
    if !s.labels.is_empty() {
        metadata.insert("labels".into(), json!(s.labels));
    }
    if !s.annotations.is_empty() {
        metadata.insert("annotations".into(), json!(s.annotations));
    }
    let mut secret = Map::new();
    secret.insert("apiVersion".into(), json!("v1"));
    secret.insert("kind".into(), json!("Secret"));
    secret.insert("metadata".into(), Value::Object(metadata));
    secret.insert("type".into(), json!(s.type_));
    secret.insert("data".into(), Value::Object(data));
    if s.immutable {
        secret.insert("immutable".into(), json!(true));
    }
    Value::Object(secret)
}

fn yaml_output(
    rendered: &[(&ExternalSecret, SyncOutput)],
    show_values: bool,
    show_digests: bool,
) -> anyhow::Result<String> {
    let mut text = String::new();
    for (es, out) in rendered {
        text.push_str("---\n");
        let read: Vec<String> = out
            .entries
            .iter()
            .map(|e| format!("{}@{}", e.key, e.version_id))
            .collect();
        text.push_str(&format!(
            "# {}: read {}\n",
            object_name(es),
            read.join(", ")
        ));
        if show_digests {
            text.push_str(&format!("# data digest: {}\n", out.digest));
        }
        if !show_values {
            text.push_str("# values redacted; run with --show-values to print them\n");
        }
        text.push_str(&serde_yaml_ng::to_string(&secret_json(out, show_values))?);
    }
    Ok(text)
}

fn json_output(
    rendered: &[(&ExternalSecret, SyncOutput)],
    show_values: bool,
) -> anyhow::Result<String> {
    let items: Vec<Value> = rendered
        .iter()
        .map(|(_, out)| secret_json(out, show_values))
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    Ok(format!("{}\n", serde_json::to_string_pretty(&list)?))
}
