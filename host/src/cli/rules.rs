//! `kmsync rules ...`: tools for rule authors — run a hook, run a case file, inspect a module,
//! list the built-ins, build an input envelope from a sample secret, benchmark.
//!
//! MODULE arguments are `builtin:NAME` or a path to a `.wasm` (or `.wat`) file.
//! Exit codes: 0 success, 1 the rule failed / a case failed, 2 the command could not run.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::rules::cases::{self, load_module};
use crate::rules::envelope::{self, SampleContext, SampleSecret};
use crate::rules::{
    CallStats, DataType, FilterInput, Hook, RotateInput, RuleEngine, RuleLimits, RuleModule,
    SecretValue, TransformInput, builtin, read_metadata,
};

/// `kmsync rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// The `kmsync rules` subcommands.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Run one hook of a module on an input envelope; prints the output (stdout), guest logs,
    /// time and peak memory (stderr).
    Run(RunArgs),
    /// Run case files (tables of inputs with expected outputs or errors); exit 1 on a mismatch.
    Test(TestArgs),
    /// Show a module's metadata, hooks, imports, exports and ABI checks.
    Inspect(InspectArgs),
    /// List the built-in rules.
    List,
    /// Print a realistic input envelope for a hook, built from a sample secret.
    Envelope(Box<EnvelopeArgs>),
    /// Benchmark: cold compile, cache hit, and per-call time of rules on 1 KiB and 30 KiB
    /// secrets (run a release build; pin to one core with `taskset -c 0`).
    Bench(BenchArgs),
}

/// Limits for the commands that run rules.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Deadline of one call, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub deadline_ms: u64,
    /// Memory cap of one call, in MiB.
    #[arg(long, default_value_t = 32)]
    pub memory_mib: u64,
}

impl LimitArgs {
    fn engine(&self) -> anyhow::Result<RuleEngine> {
        let deadline = Duration::from_millis(self.deadline_ms);
        let limits = RuleLimits {
            deadline,
            epoch_tick: RuleLimits::default().epoch_tick.min(deadline),
            memory_bytes: self.memory_mib << 20,
            ..RuleLimits::default()
        };
        Ok(RuleEngine::new(limits)?)
    }
}

fn parse_hook(s: &str) -> Result<Hook, String> {
    Hook::from_name(s)
        .ok_or_else(|| format!("unknown hook {s:?} (transform, filter, rotate, validate_config)"))
}

/// `kmsync rules run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The module: `builtin:NAME` or a .wasm / .wat path.
    pub module: String,
    /// The hook to call.
    #[arg(long, value_parser = parse_hook)]
    pub hook: Hook,
    /// The input envelope (JSON); `-` reads stdin. See `kmsync rules envelope`.
    #[arg(long)]
    pub input: PathBuf,
    /// A config (JSON or YAML) that replaces the envelope's `config`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `kmsync rules test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Case files (YAML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Module to test instead of the files' `module:` (`builtin:NAME` or a path).
    #[arg(long)]
    pub module: Option<String>,
    /// Limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// `kmsync rules inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The module: `builtin:NAME` or a .wasm / .wat path.
    pub module: String,
}

/// `kmsync rules envelope`.
#[derive(Debug, Args)]
pub struct EnvelopeArgs {
    /// The hook whose input to build.
    #[arg(long, value_parser = parse_hook, default_value = "transform")]
    pub hook: Hook,
    /// File holding the secret value as KMS returns it (text, usually JSON); `-` reads stdin.
    #[arg(long, conflicts_with = "secret_binary")]
    pub secret_json: Option<PathBuf>,
    /// File holding a binary secret value (sent base64-encoded, dataType `binary`).
    #[arg(long)]
    pub secret_binary: Option<PathBuf>,
    /// KMS secret name (default: the entry's `key` with --external-secret-file, else the file
    /// name without extension).
    #[arg(long)]
    pub secret_name: Option<String>,
    /// KMS SecretType (`Generic`, `Rds`, `RAMCredentials`, ...).
    #[arg(long, default_value = "Generic")]
    pub secret_type: String,
    /// KMS VersionId (default: the entry's `versionId` with --external-secret-file, else
    /// `v2`).
    #[arg(long)]
    pub version_id: Option<String>,
    /// KMS VersionStages (repeat for several).
    #[arg(long = "version-stage", default_values_t = ["ACSCurrent".to_string()])]
    pub version_stages: Vec<String>,
    /// KMS CreateTime (RFC 3339).
    #[arg(long, default_value = "2026-01-01T00:00:00Z")]
    pub create_time: String,
    /// Namespace of the ExternalSecret (with --external-secret-file: of one that names
    /// none).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Name of the ExternalSecret (with --external-secret-file: which one, when the file holds
    /// several). Default `sample`.
    #[arg(long)]
    pub external_secret: Option<String>,
    /// The spec entry's Secret key name (`spec.data[].name`).
    #[arg(long, conflicts_with = "external_secret_file")]
    pub item_name: Option<String>,
    /// The rule's config (JSON or YAML file).
    #[arg(long, conflicts_with = "rule")]
    pub config: Option<PathBuf>,
    /// Build the context (namespace, name, labels, annotations, item) from this ExternalSecret
    /// manifest (YAML or JSON; `-` reads stdin), as the sync pipeline would; the secret name
    /// and version come from the entry, and `config` from `--rule`, else from the entry's
    /// built-in rule (`jmesPath` -> jmespath, `dataProcess` -> extract).
    #[arg(long, value_name = "FILE")]
    pub external_secret_file: Option<PathBuf>,
    /// With --external-secret-file: the entry the call is about, `data[N]` or
    /// `dataProcess[N]` (also written `spec.data[N]`, `spec.dataProcess[N].extract`).
    /// Default: the first entry.
    #[arg(long, requires = "external_secret_file", value_name = "ENTRY")]
    pub item: Option<String>,
    /// With --external-secret-file: take `config` from this rule of `spec.rules`, by index or
    /// name.
    #[arg(long, requires = "external_secret_file", value_name = "INDEX|NAME")]
    pub rule: Option<String>,
}

/// `kmsync rules bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Modules to measure instead of the built-ins (`builtin:NAME` or a path; repeat). A module
    /// whose metadata name is a built-in's gets that built-in's inputs (e.g. to compare builds);
    /// others need `--input` and `--hook`.
    #[arg(long = "module")]
    pub modules: Vec<String>,
    /// Input envelope for `--module` modules (see `kmsync rules envelope`).
    #[arg(long, requires = "hook")]
    pub input: Option<PathBuf>,
    /// Hook to call with `--input`.
    #[arg(long, value_parser = parse_hook)]
    pub hook: Option<Hook>,
    /// Calls measured per rule and size.
    #[arg(long, default_value_t = 2000)]
    pub iterations: u32,
    /// Unmeasured calls first.
    #[arg(long, default_value_t = 200)]
    pub warmup: u32,
}

/// Runs `kmsync rules ...`; returns the exit code.
pub async fn run(args: RulesArgs) -> anyhow::Result<i32> {
    match args.command {
        RulesCommand::Run(a) => run_hook(a).await,
        RulesCommand::Test(a) => test(a).await,
        RulesCommand::Inspect(a) => inspect(a).await,
        RulesCommand::List => list(),
        RulesCommand::Envelope(a) => envelope_cmd(*a),
        RulesCommand::Bench(a) => bench(a).await,
    }
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading stdin")?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn read_config(path: &Path) -> anyhow::Result<Value> {
    let text = String::from_utf8(read_input(path)?)
        .with_context(|| format!("{} is not UTF-8", path.display()))?;
    serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not JSON or YAML", path.display()))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

fn print_stats(stats: &CallStats) {
    for line in &stats.logs {
        eprintln!("log [{}] {}", line.level.as_str(), line.message);
    }
    if stats.dropped_logs > 0 {
        eprintln!(
            "log: {} more lines dropped (per-call cap)",
            stats.dropped_logs
        );
    }
    eprintln!(
        "time: {:.3} ms   peak memory: {}   input: {} bytes   output: {} bytes",
        stats.duration.as_secs_f64() * 1e3,
        mib(stats.peak_memory_bytes),
        stats.input_bytes,
        stats.output_bytes
    );
}

async fn run_hook(a: RunArgs) -> anyhow::Result<i32> {
    let engine = a.limits.engine()?;
    let started = Instant::now();
    let module = load_module(&engine, &a.module, Path::new(".")).await?;
    eprintln!(
        "loaded {} {} in {:.1} ms",
        module.name(),
        module.metadata().version,
        started.elapsed().as_secs_f64() * 1e3
    );
    let mut input: Value = serde_json::from_slice(&read_input(&a.input)?)
        .with_context(|| format!("{} is not JSON", a.input.display()))?;
    if let Some(config) = &a.config {
        let config = read_config(config)?;
        match input.as_object_mut() {
            Some(obj) => {
                obj.insert("config".into(), config);
            }
            None => bail!("the input envelope is not a JSON object"),
        }
    }
    let raw = module.call_json(a.hook, &input).await;
    print_stats(&raw.stats);
    match raw.result {
        Ok(out) => {
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        Err(e) => {
            eprintln!("error ({}): {e}", e.metric_label());
            Ok(1)
        }
    }
}

async fn test(a: TestArgs) -> anyhow::Result<i32> {
    let engine = a.limits.engine()?;
    let (mut passed, mut failed) = (0, 0);
    for file in &a.files {
        let report = cases::run_file(&engine, file, a.module.as_deref()).await?;
        println!("{} ({})", file.display(), report.module);
        for o in &report.outcomes {
            let ms = o.stats.duration.as_secs_f64() * 1e3;
            if o.passed {
                println!("  ok    {} [{}, {ms:.2} ms]", o.name, o.hook);
            } else {
                println!("  FAIL  {} [{}]", o.name, o.hook);
                for line in o.detail.as_deref().unwrap_or("").lines() {
                    println!("        {line}");
                }
            }
        }
        passed += report.passed();
        failed += report.failed();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 { 0 } else { 1 })
}

async fn inspect(a: InspectArgs) -> anyhow::Result<i32> {
    let engine = RuleEngine::new(RuleLimits::default())?;
    let loaded = load_module(&engine, &a.module, Path::new(".")).await;
    let module = match loaded {
        Ok(m) => m,
        Err(cases::CaseError::Load { source, .. }) => {
            println!("module:      {}", a.module);
            if let Some(wasm) = source_bytes(&a.module)
                && let Ok(meta) = read_metadata(&wasm)
            {
                println!("name:        {}", meta.name);
                println!("version:     {}", meta.version);
                println!("abi:         {}", meta.abi);
            }
            println!("status:      refused: {source}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    };
    print_module(&module);
    Ok(0)
}

/// The wasm bytes of a module spec, when it can be read (for `inspect` of refused modules).
fn source_bytes(spec: &str) -> Option<Vec<u8>> {
    if let Some(name) = spec.strip_prefix("builtin:") {
        return builtin::wasm(name).map(<[u8]>::to_vec);
    }
    let bytes = std::fs::read(spec).ok()?;
    if spec.ends_with(".wat") {
        return wat::parse_bytes(&bytes).ok().map(|b| b.into_owned());
    }
    Some(bytes)
}

fn print_module(m: &RuleModule) {
    let meta = m.metadata();
    let info = m.info();
    println!("name:        {}", meta.name);
    println!("version:     {}", meta.version);
    println!("abi:         {} (marker kmsync_abi_v1)", meta.abi);
    println!("description: {}", meta.description);
    println!("sha256:      {}", m.sha256_hex());
    println!("size:        {} bytes", info.size_bytes);
    println!("memory:      {} initial", mib(info.initial_memory_bytes));
    let hooks: Vec<_> = meta.hooks.iter().map(|h| h.export_name()).collect();
    println!("hooks:       {}", hooks.join(", "));
    println!(
        "imports:     {}",
        if info.imports.is_empty() {
            "(none)".into()
        } else {
            info.imports.join(", ")
        }
    );
    let exports: Vec<_> = info
        .exports
        .iter()
        .map(|(n, k)| format!("{n} ({k})"))
        .collect();
    println!("exports:     {}", exports.join(", "));
    println!("status:      accepted (ABI checks passed)");
    if !meta.config_schema.is_null() {
        println!(
            "config schema:\n{}",
            serde_json::to_string_pretty(&meta.config_schema).unwrap_or_default()
        );
    }
}

fn list() -> anyhow::Result<i32> {
    println!(
        "{:<30} {:<8} {:<26} {:>7}  description",
        "name", "version", "hooks", "size"
    );
    for name in builtin::names() {
        let wasm = builtin::wasm(name).unwrap_or_default();
        let meta = read_metadata(wasm)?;
        let hooks: Vec<_> = meta.hooks.iter().map(|h| h.export_name()).collect();
        println!(
            "{:<30} {:<8} {:<26} {:>4} KB  {}",
            format!("builtin:{name}"),
            meta.version,
            hooks.join(","),
            wasm.len() / 1000,
            meta.description
        );
    }
    Ok(0)
}

fn envelope_cmd(a: EnvelopeArgs) -> anyhow::Result<i32> {
    let (path, data, data_type) = match (&a.secret_json, &a.secret_binary) {
        (Some(p), _) => {
            let text = String::from_utf8(read_input(p)?).with_context(|| {
                format!("{} is not UTF-8 text; use --secret-binary", p.display())
            })?;
            (p.clone(), text, DataType::Text)
        }
        (None, Some(p)) => (
            p.clone(),
            base64::engine::general_purpose::STANDARD.encode(read_input(p)?),
            DataType::Binary,
        ),
        (None, None) => bail!("give --secret-json FILE or --secret-binary FILE"),
    };
    let from_file = match &a.external_secret_file {
        Some(file) => Some(external_secret_entry(&a, file)?),
        None => None,
    };
    let file_stem = || {
        path.file_stem()
            .filter(|_| path != Path::new("-"))
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sample".into())
    };
    let name = a
        .secret_name
        .clone()
        .or_else(|| from_file.as_ref().map(|f| f.key.clone()))
        .unwrap_or_else(file_stem);
    let version_id = a
        .version_id
        .clone()
        .or_else(|| from_file.as_ref().and_then(|f| f.version_id.clone()))
        .unwrap_or_else(|| "v2".into());
    let secret = SampleSecret {
        name,
        secret_type: a.secret_type.clone(),
        data_type,
        data: SecretValue::new(data),
        version_id,
        version_stages: a.version_stages.clone(),
        create_time: a.create_time.clone(),
    };
    let ctx = SampleContext {
        namespace: a.namespace.clone(),
        external_secret: a.external_secret.clone().unwrap_or_else(|| "sample".into()),
        item_name: a.item_name.clone(),
        ..SampleContext::default()
    };
    let config = match (&a.config, &from_file) {
        (Some(p), _) => read_config(p)?,
        (None, Some(f)) => f.config.clone(),
        (None, None) => Value::Null,
    };
    let mut doc = envelope::build(a.hook, &secret, &ctx, config);
    if let (Some(f), Some(obj)) = (&from_file, doc.as_object_mut())
        && obj.contains_key("context")
    {
        obj.insert("context".into(), serde_json::to_value(&f.context)?);
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(0)
}

/// What `--external-secret-file` contributes to an envelope.
struct EntryEnvelope {
    context: crate::rules::Context,
    key: String,
    version_id: Option<String>,
    config: Value,
}

/// Parses `data[N]` / `dataProcess[N]` (optionally `spec.` before and `.extract` after).
fn parse_item(item: &str) -> Option<crate::sync::EntryRef> {
    let rest = item.trim().strip_prefix("spec.").unwrap_or(item.trim());
    let rest = rest.strip_suffix(".extract").unwrap_or(rest);
    let (field, index) = rest.strip_suffix(']')?.split_once('[')?;
    let index: usize = index.parse().ok()?;
    match field {
        "data" => Some(crate::sync::EntryRef::data(index)),
        "dataProcess" => Some(crate::sync::EntryRef::data_process(index)),
        _ => None,
    }
}

fn external_secret_entry(a: &EnvelopeArgs, file: &Path) -> anyhow::Result<EntryEnvelope> {
    let text = String::from_utf8(read_input(file)?)
        .with_context(|| format!("{} is not UTF-8", file.display()))?;
    let manifests = crate::api::parse_manifests(&text)
        .with_context(|| format!("--external-secret-file {}", file.display()))?;
    let mut found: Vec<crate::api::ExternalSecret> = manifests
        .into_iter()
        .filter_map(|m| match m {
            crate::api::Manifest::ExternalSecret(es) => Some(*es),
            _ => None,
        })
        .filter(|es| {
            a.external_secret
                .as_deref()
                .is_none_or(|n| es.metadata.name.as_deref() == Some(n))
        })
        .collect();
    let mut es = match found.len() {
        1 => found.remove(0),
        0 => bail!(
            "--external-secret-file {}: no ExternalSecret{}",
            file.display(),
            a.external_secret
                .as_deref()
                .map(|n| format!(" named {n:?}"))
                .unwrap_or_default()
        ),
        n => bail!(
            "--external-secret-file {}: {n} ExternalSecrets; pick one with --external-secret NAME",
            file.display()
        ),
    };
    if es.metadata.namespace.as_deref().is_none_or(str::is_empty) {
        es.metadata.namespace = Some(a.namespace.clone());
    }
    let object = format!(
        "ExternalSecret {}/{}",
        es.metadata.namespace.as_deref().unwrap_or_default(),
        es.metadata.name.as_deref().unwrap_or_default()
    );
    let entries = crate::sync::entries(&es);
    let entry = match &a.item {
        Some(item) => parse_item(item)
            .with_context(|| format!("--item {item:?}: expected data[N] or dataProcess[N]"))?,
        None => entries
            .first()
            .map(|(e, _)| *e)
            .with_context(|| format!("{object} has no spec.data or spec.dataProcess entry"))?,
    };
    let (_, source) = entries
        .iter()
        .find(|(e, _)| *e == entry)
        .with_context(|| format!("{object} has no {entry}"))?;
    let context = crate::sync::rule_context(&es, entry)
        .with_context(|| format!("{object} has no {entry}"))?;
    let config = match &a.rule {
        Some(which) => {
            let rules = es.spec.rules();
            let (index, rule) = match which.parse::<usize>() {
                Ok(i) => rules.get(i).map(|r| (i, r)),
                Err(_) => rules
                    .iter()
                    .enumerate()
                    .find(|(_, r)| r.display_name() == *which),
            }
            .with_context(|| format!("{object} has no spec.rules entry {which:?}"))?;
            eprintln!(
                "config: spec.rules[{index}] ({}) of {object}",
                rule.display_name()
            );
            rule.config.clone().unwrap_or(Value::Null)
        }
        None => match crate::sync::compat_rule(&es, entry) {
            Some((name, config)) => {
                eprintln!("config: the built-in {name} rule's, from {entry} of {object}");
                config
            }
            None => Value::Null,
        },
    };
    Ok(EntryEnvelope {
        context,
        key: source.key.clone(),
        version_id: source.version_id().map(str::to_owned),
        config,
    })
}

/// A JSON object of about `bytes` bytes with the fields the benchmark configs use.
fn sample_json(bytes: usize) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), json!("tom"));
    obj.insert(
        "friends".into(),
        json!([{"name": "lily"}, {"name": "mark"}]),
    );
    obj.insert("db".into(), json!({"host": "pg.internal", "port": 5432}));
    obj.insert("AccountName".into(), json!("app"));
    obj.insert("AccountPassword".into(), json!("pA55w0rd-example"));
    let mut i = 0;
    while Value::Object(obj.clone()).to_string().len() < bytes {
        obj.insert(
            format!("field_{i:04}"),
            json!(format!("{:032x}", (i as u128 + 1) * 0x9e37_79b9_7f4a_7c15)),
        );
        i += 1;
    }
    Value::Object(obj).to_string()
}

struct Timing {
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
}

fn summarize(mut samples: Vec<f64>) -> Timing {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Timing {
        min: samples[0],
        mean: samples.iter().sum::<f64>() / samples.len() as f64,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
    }
}

enum BenchInput {
    Transform(TransformInput),
    Filter(FilterInput),
    Rotate(RotateInput),
    Raw(Hook, Value),
}

fn bench_input(rule: &str, size: usize) -> anyhow::Result<BenchInput> {
    let mut secret = SampleSecret::text(sample_json(size));
    let ctx = SampleContext::default();
    let (hook, config) = match rule {
        "jmespath" => (
            Hook::Transform,
            json!({"jmesPath": [
                {"path": "name", "objectAlias": "name"},
                {"path": "friends[0].name", "objectAlias": "friendname"},
                {"path": "db.host", "objectAlias": "host"}
            ]}),
        ),
        "extract" => (
            Hook::Transform,
            json!({"replaceRule": [
                {"source": "^field_(\\d+)$", "target": "F$1"},
                {"source": "^n.*e$", "target": "username"}
            ]}),
        ),
        "managed-credentials" => {
            secret.secret_type = "Rds".into();
            (Hook::Transform, Value::Null)
        }
        "filter" => (
            Hook::Filter,
            json!({"include": ["^field_0", "^Account"], "exclude": ["7$"]}),
        ),
        "rotate-default" => (
            Hook::Rotate,
            json!({"requireStage": "ACSCurrent", "minAgeMinutes": 30, "windows": ["* 0-6 * * *"]}),
        ),
        "empty" => (Hook::Transform, Value::Null),
        other => bail!("no benchmark input for {other}"),
    };
    let doc = envelope::build(hook, &secret, &ctx, config);
    Ok(match hook {
        Hook::Transform => BenchInput::Transform(serde_json::from_value(doc)?),
        Hook::Filter => BenchInput::Filter(serde_json::from_value(doc)?),
        _ => BenchInput::Rotate(serde_json::from_value(doc)?),
    })
}

/// One typed call, as the sync pipeline makes it.
async fn call_once(module: &RuleModule, input: &BenchInput) -> anyhow::Result<()> {
    match input {
        BenchInput::Transform(i) => drop(module.transform(i).await?),
        BenchInput::Filter(i) => drop(module.filter(i).await?),
        BenchInput::Rotate(i) => drop(module.rotate(i).await?),
        BenchInput::Raw(hook, doc) => drop(module.call_json(*hook, doc).await.result?),
    }
    Ok(())
}

impl BenchInput {
    fn hook(&self) -> Hook {
        match self {
            BenchInput::Transform(_) => Hook::Transform,
            BenchInput::Filter(_) => Hook::Filter,
            BenchInput::Rotate(_) => Hook::Rotate,
            BenchInput::Raw(h, _) => *h,
        }
    }

    fn doc(&self) -> anyhow::Result<Value> {
        Ok(match self {
            BenchInput::Transform(i) => serde_json::to_value(i)?,
            BenchInput::Filter(i) => serde_json::to_value(i)?,
            BenchInput::Rotate(i) => serde_json::to_value(i)?,
            BenchInput::Raw(_, doc) => doc.clone(),
        })
    }
}

/// The smallest ABI v1 module: every call's fixed cost (Store, instantiation, alloc, copy).
const EMPTY_RULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "kmsync_abi_v1"))
  (func (export "kmsync_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "transform") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 18)))
  (data (i32.const 16) "{\"ok\":{\"data\":{}}}")
  (@custom "kmsync.metadata" "{\"name\":\"empty\",\"version\":\"0\",\"abi\":\"1.0\",\"hooks\":[\"transform\"]}"))"#;

async fn bench(a: BenchArgs) -> anyhow::Result<i32> {
    anyhow::ensure!(a.iterations > 0, "--iterations must be at least 1");
    let profile = if cfg!(debug_assertions) {
        "debug (numbers are not representative)"
    } else {
        "release"
    };
    println!(
        "kmsync rules bench — {profile} build, {} iterations per row",
        a.iterations
    );
    println!(
        "cpus available: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // (label, bytes, benchmark input name)
    let mut modules: Vec<(String, Vec<u8>, String)> = Vec::new();
    if a.modules.is_empty() {
        for n in builtin::names() {
            let wasm = builtin::wasm(n).unwrap_or_default().to_vec();
            modules.push((n.to_owned(), wasm, n.to_owned()));
        }
        modules.push(("empty".into(), wat::parse_str(EMPTY_RULE)?, "empty".into()));
    } else {
        for spec in &a.modules {
            let wasm = source_bytes(spec).with_context(|| format!("reading module {spec}"))?;
            let name = read_metadata(&wasm)?.name;
            let label = spec.rsplit('/').next().unwrap_or(spec).to_owned();
            modules.push((label, wasm, name));
        }
    }
    let custom_input = match (&a.input, a.hook) {
        (Some(path), Some(hook)) => {
            Some((hook, serde_json::from_slice::<Value>(&read_input(path)?)?))
        }
        _ => None,
    };

    println!("\n## Load: cold compile (fresh engine) and cache hits");
    println!(
        "{:<22} {:>8} {:>14} {:>18} {:>20}",
        "rule", "size", "cold compile", "load(bytes) hit", "builtin()/get() hit"
    );
    let engine = RuleEngine::new(RuleLimits::default())?;
    for (name, wasm, _) in &modules {
        let cold_engine = RuleEngine::new(RuleLimits::default())?;
        let t = Instant::now();
        cold_engine.load(wasm).await?;
        let cold = t.elapsed();
        let module = engine.load(wasm).await?;
        let n = 1000;
        let t = Instant::now();
        for _ in 0..n {
            engine.load(wasm).await?;
        }
        let hashed = t.elapsed() / n;
        // The pipeline's path: built-ins by name, bundle modules by digest (no hashing).
        let digest = module.sha256();
        let t = Instant::now();
        for _ in 0..n {
            if builtin::wasm(name).is_some() {
                engine.builtin(name).await?;
            } else if engine.get(&digest).is_none() {
                bail!("{name} fell out of the cache");
            }
        }
        let by_name = t.elapsed() / n;
        println!(
            "{:<22} {:>5} KB {:>11.1} ms {:>15.1} µs {:>17.2} µs",
            name,
            wasm.len() / 1000,
            cold.as_secs_f64() * 1e3,
            hashed.as_secs_f64() * 1e6,
            by_name.as_secs_f64() * 1e6
        );
    }

    println!("\n## Calls on a cached module (µs per call)");
    println!("end to end = the async typed call the sync pipeline makes (wall clock);");
    println!(
        "in-thread  = Store + instantiate + hook + copy on the blocking thread (p50, wall / CPU)"
    );
    println!(
        "{:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>20}",
        "rule", "secret", "min", "p50", "mean", "p90", "p99", "in-thread p50 wall/cpu"
    );
    for (name, wasm, kind) in &modules {
        let module: Arc<RuleModule> = engine.load(wasm).await?;
        let sizes: &[usize] = match (kind.as_str(), &custom_input) {
            (_, Some(_)) | ("rotate-default" | "empty", _) => &[1024],
            _ => &[1024, 30 * 1024],
        };
        for &size in sizes {
            let input = match &custom_input {
                Some((hook, doc)) => BenchInput::Raw(*hook, doc.clone()),
                None => bench_input(kind, size)?,
            };
            for _ in 0..a.warmup {
                call_once(&module, &input).await?;
            }
            let mut samples = Vec::with_capacity(a.iterations as usize);
            for _ in 0..a.iterations {
                let t = Instant::now();
                call_once(&module, &input).await?;
                samples.push(t.elapsed().as_secs_f64() * 1e6);
            }
            // In-thread time (Store + instantiate + hook + copy), without the hop to the
            // blocking pool: from the call's own stats.
            let doc = input.doc()?;
            let hook = input.hook();
            let (mut inner, mut cpu) = (Vec::new(), Vec::new());
            for _ in 0..a.iterations.min(500) {
                let raw = module.call_json(hook, &doc).await;
                raw.result?;
                inner.push(raw.stats.duration.as_secs_f64() * 1e6);
                cpu.push(raw.stats.cpu_time.as_secs_f64() * 1e6);
            }
            let t = summarize(samples);
            let inner = summarize(inner);
            let cpu = summarize(cpu);
            let label = if matches!(hook, Hook::Rotate) || kind == "empty" || custom_input.is_some()
            {
                "-".to_owned()
            } else {
                format!("{} KiB", size / 1024)
            };
            println!(
                "{:<22} {:>7} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>12.1} / {:>7.1}",
                name, label, t.min, t.p50, t.mean, t.p90, t.p99, inner.p50, cpu.p50
            );
        }
    }
    Ok(0)
}
