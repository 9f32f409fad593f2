//! `kmsync controller`: the operator. Flags are the contract in `docs/operations.md` (the Helm
//! chart renders them; `tests/chart/test_flags_contract.py` feeds rendered command lines to
//! this parser). Wiring only: the work happens in [`crate::controller`].
//!
//! Every flag takes `--flag=value`; booleans also take a bare `--flag`. Durations are Go
//! durations (`100ms`, `5s`, `2m`, `1h30m`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Args, ValueEnum};

use crate::controller::{LeaderSettings, NamespaceScope, Settings};
use crate::rules::RuleLimits;

/// Log levels of `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// The default.
    Info,
    /// Verbose.
    Debug,
    /// Very verbose.
    Trace,
}

impl LogLevel {
    /// The `tracing` filter directive: this level for kmsync; libraries (HTTP, TLS, kube) at
    /// most `info`, so `debug` shows kmsync's decisions rather than every socket.
    pub fn directive(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "info,kmsync=debug",
            Self::Trace => "info,kmsync=trace",
        }
    }
}

/// The only backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// KMS Secrets Manager and OOS encrypted parameters.
    #[value(name = "alicloud-kms")]
    AlicloudKms,
}

fn go_duration(s: &str) -> Result<Duration, String> {
    crate::api::parse_go_duration(s).map_err(|e| e.to_string())
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    let d = go_duration(s)?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

/// A memory size: whole bytes, or with `Ki`, `Mi`, `Gi` (as the chart's schema allows).
fn memory_size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => {
            return Err(format!(
                "{s:?}: expected a number with an optional Ki, Mi or Gi suffix"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: expected a number with an optional Ki, Mi or Gi suffix"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n && *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

fn bounded_count(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// Arguments of `kmsync controller` (see `docs/operations.md`).
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Region of the KMS, OOS and STS endpoints, e.g. cn-hangzhou.
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID")]
    region: Option<String>,
    /// Default KMS endpoint (host or https:// URL); unset: the region's public endpoint.
    #[arg(long)]
    kms_endpoint: Option<String>,
    /// The only backend (KMS Secrets Manager and OOS).
    #[arg(long, value_enum, default_value_t = Backend::AlicloudKms)]
    backend: Backend,
    /// How often remote data is re-read; spec.rotationInterval overrides it per ExternalSecret.
    #[arg(long, default_value = "120s", value_parser = positive_duration)]
    polling_interval: Duration,
    /// No periodic re-reads: an ExternalSecret syncs when it is created or changed.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    disable_polling: bool,
    /// Base delay before a failed object is retried; the backoff grows from it (capped).
    #[arg(long, default_value = "5s", value_parser = positive_duration)]
    reconcile_period: Duration,
    /// Objects reconciled concurrently.
    #[arg(long, default_value = "1", value_parser = bounded_count)]
    reconcile_count: usize,
    /// KMS secret reads in flight at once, across all stores.
    #[arg(long, default_value = "10", value_parser = bounded_count)]
    max_concurrent_kms_secret_pulls: usize,
    /// OOS parameter reads in flight at once, across all stores.
    #[arg(long, default_value = "10", value_parser = bounded_count)]
    max_concurrent_oos_secret_pulls: usize,
    /// Comma-separated namespaces to watch; unset: the whole cluster.
    #[arg(long, env = "WATCH_NAMESPACE", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Comma-separated namespaces never watched.
    #[arg(long, value_delimiter = ',')]
    exclude_namespaces: Vec<String>,
    /// Let an ExternalSecret name a SecretStore in another namespace.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    enable_cross_namespace_secret_store: bool,
    /// Let a SecretStore name credential Secrets or ServiceAccounts in another namespace.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    enable_cross_namespace_auth_ref: bool,
    /// Use the node's ECS RAM role (instance metadata) as the last credential.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    enable_worker_role: bool,
    /// Per-ServiceAccount RRSA for serviceAccountRef (ServiceAccount annotation + TokenRequest).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    enable_service_account_token: bool,
    /// Comma-separated endpoint URLs allowed besides Alibaba Cloud hosts (plain http only to
    /// loopback).
    #[arg(long, value_delimiter = ',')]
    allowed_endpoints: Vec<String>,
    /// Comma-separated files a store's oidcTokenFilePath may name (absolute paths), besides the
    /// default token files ($ALIBABA_CLOUD_OIDC_TOKEN_FILE,
    /// /var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token,
    /// /var/run/secrets/tokens/ack-secret-manager), which are always allowed.
    #[arg(long, value_delimiter = ',')]
    allowed_oidc_token_paths: Vec<std::path::PathBuf>,
    /// Requests per second to KMS per store (token bucket).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    kms_qps: u32,
    /// Elect one active replica through a Lease.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    leader_elect: bool,
    /// Namespace of the Lease [default: $POD_NAMESPACE].
    #[arg(long)]
    leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "kmsync-leader")]
    leader_election_id: String,
    /// Address of /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_bind_address: SocketAddr,
    /// Address of /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8081")]
    health_probe_bind_address: SocketAddr,
    /// Log level (logs never contain secret values; RUST_LOG, when set, wins).
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Wall-clock limit of one rule call.
    #[arg(long, default_value = "100ms", value_parser = positive_duration)]
    rule_timeout: Duration,
    /// Linear-memory limit of one rule instance (bytes, or with Ki, Mi, Gi).
    #[arg(long, default_value = "32Mi", value_parser = memory_size)]
    rule_memory_limit: u64,
    /// Rule calls running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    rule_max_concurrency: u32,
    /// Let rules' log lines (kmsync::log_*) into the controller's log. Off: they are dropped,
    /// because a rule's author writes them and they could quote the secret values the rule
    /// reads. Turn it on while debugging a rule you trust.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    rule_logs: bool,
    /// Secret in the controller's namespace holding the per-installation HMAC key of
    /// change-detection digests (created if missing).
    #[arg(long, default_value = "kmsync-digest-key")]
    digest_key_secret: String,

    // Hidden flags: tests, benchmarks and private endpoints. Not part of the chart contract.
    /// Fetch every remote key for every object (no fetch cache): the scale benchmark's
    /// baseline.
    #[arg(long, hide = true, action = ArgAction::Set, num_args = 0..=1, default_value_t = false, default_missing_value = "true")]
    disable_fetch_cache: bool,
    /// Send every cloud call (KMS, KMS instance, OOS, STS) to this origin after the endpoint
    /// policy approved the real one (a local emulator).
    #[arg(long, hide = true)]
    redirect_endpoint: Option<String>,
    /// PEM file of the only CA to trust for --redirect-endpoint.
    #[arg(long, hide = true, requires = "redirect_endpoint")]
    redirect_ca_file: Option<std::path::PathBuf>,
    /// OIDC provider ARN for serviceAccountRef stores that name none.
    #[arg(long, hide = true, env = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN")]
    rrsa_oidc_provider_arn: Option<String>,
    /// Lease duration of leader election.
    #[arg(long, hide = true, default_value = "15s", value_parser = positive_duration)]
    leader_election_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops reconciling.
    #[arg(long, hide = true, default_value = "10s", value_parser = positive_duration)]
    leader_election_renew_deadline: Duration,
    /// How often the Lease is renewed or retried.
    #[arg(long, hide = true, default_value = "2s", value_parser = positive_duration)]
    leader_election_retry_period: Duration,
    /// Per-attempt timeout of cloud calls.
    #[arg(long, hide = true, default_value = "10s", value_parser = positive_duration)]
    request_timeout: Duration,
    /// Attempts per cloud call, retries of throttling, 5xx and connection failures included
    /// (1 disables retries).
    #[arg(long, hide = true, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=20))]
    request_attempts: u32,
    /// How long in-flight syncs may run after SIGTERM.
    #[arg(long, hide = true, default_value = "25s", value_parser = positive_duration)]
    shutdown_timeout: Duration,
}

impl ControllerArgs {
    /// Checks the arguments together and turns them into [`Settings`].
    ///
    /// # Errors
    /// Inconsistent flags or a missing `$POD_NAMESPACE` where one is needed.
    pub fn settings(self) -> anyhow::Result<Settings> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let pod_namespace = env("POD_NAMESPACE");
        let namespaces = NamespaceScope::new(self.watch_namespaces, self.exclude_namespaces)
            .map_err(anyhow::Error::msg)?;
        let leader = if self.leader_elect {
            let namespace = self
                .leader_election_namespace
                .clone()
                .or_else(|| pod_namespace.clone())
                .context(
                    "--leader-elect needs --leader-election-namespace or $POD_NAMESPACE (the chart sets both)",
                )?;
            if self.leader_election_renew_deadline >= self.leader_election_lease_duration {
                anyhow::bail!(
                    "the leader election renew deadline must be shorter than the lease duration"
                );
            }
            if self.leader_election_retry_period >= self.leader_election_renew_deadline {
                anyhow::bail!(
                    "the leader election retry period must be shorter than the renew deadline"
                );
            }
            Some(LeaderSettings {
                namespace,
                name: self.leader_election_id.clone(),
                identity: env("POD_NAME").unwrap_or_else(default_identity),
                lease_duration: self.leader_election_lease_duration,
                renew_deadline: self.leader_election_renew_deadline,
                retry_period: self.leader_election_retry_period,
            })
        } else {
            None
        };
        let rule_limits = RuleLimits {
            deadline: self.rule_timeout,
            epoch_tick: (self.rule_timeout / 10)
                .clamp(Duration::from_millis(1), Duration::from_millis(10)),
            memory_bytes: self.rule_memory_limit,
            max_concurrent_calls: self.rule_max_concurrency,
            log_to_host: self.rule_logs,
            ..RuleLimits::default()
        };
        rule_limits.check().map_err(|e| {
            anyhow::anyhow!("rule limits (--rule-timeout, --rule-memory-limit): {e}")
        })?;
        for url in &self.allowed_endpoints {
            crate::alibaba::EndpointPolicy::default()
                .trust_url(url)
                .with_context(|| format!("--allowed-endpoints {url:?}"))?;
        }
        let allowed_oidc_token_paths: Vec<std::path::PathBuf> = self
            .allowed_oidc_token_paths
            .into_iter()
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if let Some(relative) = allowed_oidc_token_paths.iter().find(|p| !p.is_absolute()) {
            anyhow::bail!(
                "--allowed-oidc-token-paths {:?}: token file paths must be absolute",
                relative.display().to_string()
            );
        }
        let redirect = match self.redirect_endpoint.filter(|e| !e.is_empty()) {
            None => None,
            Some(url) => {
                let ca = match &self.redirect_ca_file {
                    Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                        format!("reading --redirect-ca-file {}", path.display())
                    })?),
                    None => None,
                };
                Some(crate::stores::Redirect::new(url, ca.as_deref()))
            }
        };
        Ok(Settings {
            region: self.region.filter(|r| !r.is_empty()),
            kms_endpoint: self.kms_endpoint.filter(|e| !e.is_empty()),
            polling_interval: self.polling_interval,
            disable_polling: self.disable_polling,
            reconcile_period: self.reconcile_period,
            reconcile_count: self.reconcile_count,
            max_concurrent_kms_pulls: self.max_concurrent_kms_secret_pulls,
            max_concurrent_oos_pulls: self.max_concurrent_oos_secret_pulls,
            namespaces,
            cross_namespace_secret_store: self.enable_cross_namespace_secret_store,
            cross_namespace_auth_ref: self.enable_cross_namespace_auth_ref,
            enable_worker_role: self.enable_worker_role,
            enable_service_account_token: self.enable_service_account_token,
            allowed_endpoints: self
                .allowed_endpoints
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect(),
            allowed_oidc_token_paths,
            kms_qps: self.kms_qps,
            leader,
            metrics_addr: self.metrics_bind_address,
            health_addr: self.health_probe_bind_address,
            rule_limits,
            digest_key_secret: self.digest_key_secret,
            pod_namespace: pod_namespace.unwrap_or_else(|| "default".to_owned()),
            disable_fetch_cache: self.disable_fetch_cache,
            redirect,
            rrsa_oidc_provider_arn: self.rrsa_oidc_provider_arn.filter(|a| !a.is_empty()),
            request_timeout: self.request_timeout,
            request_attempts: self.request_attempts,
            shutdown_timeout: self.shutdown_timeout,
        })
    }
}

/// `User-Agent` of the controller's Kubernetes requests.
pub const USER_AGENT: &str = concat!("kmsync-controller/", env!("CARGO_PKG_VERSION"));

/// Host name and process id, when `$POD_NAME` is not set.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kmsync".to_owned());
    format!("{host}-{}", std::process::id())
}

pub(super) async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    let mut config = kube::Config::infer()
        .await
        .context("finding the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    // Audit logs (and the e2e tests) tell the controller's requests, and which replica made
    // them, by this.
    let identity = std::env::var("POD_NAME").unwrap_or_default();
    let agent = format!("{USER_AGENT} ({identity})");
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&agent)
            .unwrap_or_else(|_| http::HeaderValue::from_static(USER_AGENT)),
    ));
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let shutdown = crate::controller::Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = wait_for_signal().await {
            tracing::error!(error = %e, "signal handler failed; shutting down");
        }
        tracing::info!("shutdown requested");
        trigger.trigger();
    });
    crate::controller::run(client, settings, shutdown)
        .await
        .context("controller failed")?;
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(args: &[&str]) -> Result<ControllerArgs, clap::Error> {
        Wrapper::try_parse_from(std::iter::once("controller").chain(args.iter().copied()))
            .map(|w| w.args)
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let s = parse(&[]).unwrap().settings().unwrap();
        assert_eq!(s.polling_interval, Duration::from_secs(120));
        assert_eq!(s.reconcile_period, Duration::from_secs(5));
        assert_eq!(s.reconcile_count, 1);
        assert_eq!(s.max_concurrent_kms_pulls, 10);
        assert_eq!(s.kms_qps, 100);
        assert!(s.leader.is_none());
        assert_eq!(s.metrics_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(s.health_addr, "0.0.0.0:8081".parse().unwrap());
        assert_eq!(s.rule_limits.deadline, Duration::from_millis(100));
        assert_eq!(s.rule_limits.memory_bytes, 32 << 20);
        assert_eq!(s.rule_limits.max_concurrent_calls, 4);
        // Rules' log lines stay out of the controller's log unless asked for.
        assert!(!s.rule_limits.log_to_host);
        assert!(
            parse(&["--rule-logs"])
                .unwrap()
                .settings()
                .unwrap()
                .rule_limits
                .log_to_host
        );
        assert_eq!(s.digest_key_secret, "kmsync-digest-key");
        assert!(
            !s.disable_polling && !s.cross_namespace_secret_store && !s.cross_namespace_auth_ref
        );
    }

    #[test]
    fn booleans_take_a_bare_flag_or_an_explicit_value() {
        let s = parse(&["--disable-polling", "--enable-worker-role=false"])
            .unwrap()
            .settings()
            .unwrap();
        assert!(s.disable_polling);
        assert!(!s.enable_worker_role);
        assert!(parse(&["--disable-polling=maybe"]).is_err());
        let s = parse(&["--enable-cross-namespace-secret-store=true"])
            .unwrap()
            .settings()
            .unwrap();
        assert!(s.cross_namespace_secret_store);
    }

    #[test]
    fn durations_sizes_and_lists_parse_like_the_chart_renders_them() {
        let s = parse(&[
            "--polling-interval=1h30m",
            "--rule-timeout=250ms",
            "--rule-memory-limit=64Mi",
            "--watch-namespaces=team-b,team-a",
            "--exclude-namespaces=kube-system",
            "--allowed-endpoints=https://kms-proxy.internal:8443,http://127.0.0.1:9000",
        ])
        .unwrap()
        .settings()
        .unwrap();
        assert_eq!(s.polling_interval, Duration::from_secs(5400));
        assert_eq!(s.rule_limits.deadline, Duration::from_millis(250));
        assert_eq!(s.rule_limits.memory_bytes, 64 << 20);
        assert_eq!(s.namespaces.watch, ["team-a", "team-b"]);
        assert_eq!(s.allowed_endpoints.len(), 2);
        assert!(parse(&["--reconcile-count=many"]).is_err());
        assert!(parse(&["--reconcile-count=0"]).is_err());
        assert!(parse(&["--rule-memory-limit=32MB"]).is_err());
        assert!(parse(&["--polling-interval=0s"]).is_err());
        assert!(parse(&["--backend=vault"]).is_err());
    }

    #[test]
    fn plain_http_to_a_remote_host_is_not_an_allowed_endpoint() {
        let err = parse(&["--allowed-endpoints=http://kms.example.com"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("--allowed-endpoints"),
            "{err:#}"
        );
    }

    #[test]
    fn allowed_oidc_token_paths_are_a_list_of_absolute_paths() {
        let s = parse(&[]).unwrap().settings().unwrap();
        assert!(s.allowed_oidc_token_paths.is_empty());
        let s = parse(&["--allowed-oidc-token-paths=/var/run/secrets/tokens/a,/tokens/b"])
            .unwrap()
            .settings()
            .unwrap();
        assert_eq!(
            s.allowed_oidc_token_paths,
            [
                std::path::PathBuf::from("/var/run/secrets/tokens/a"),
                "/tokens/b".into()
            ]
        );
        let err = parse(&["--allowed-oidc-token-paths=tokens/a"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(err.to_string().contains("must be absolute"), "{err}");
    }

    #[test]
    fn overlapping_namespace_lists_are_refused() {
        let err = parse(&["--watch-namespaces=a", "--exclude-namespaces=a"])
            .unwrap()
            .settings()
            .unwrap_err();
        assert!(err.to_string().contains("both watched"), "{err}");
    }

    #[test]
    fn leader_election_uses_the_flags_and_checks_its_timings() {
        let s = parse(&[
            "--leader-elect",
            "--leader-election-namespace=kmsync-system",
            "--leader-election-id=lock",
        ])
        .unwrap()
        .settings()
        .unwrap();
        let leader = s.leader.unwrap();
        assert_eq!(
            (leader.namespace.as_str(), leader.name.as_str()),
            ("kmsync-system", "lock")
        );
        assert_eq!(leader.lease_duration, Duration::from_secs(15));
        let err = parse(&[
            "--leader-elect",
            "--leader-election-namespace=x",
            "--leader-election-renew-deadline=20s",
        ])
        .unwrap()
        .settings()
        .unwrap_err();
        assert!(err.to_string().contains("renew deadline"), "{err}");
    }

    #[test]
    fn memory_sizes_refuse_overflow_and_zero() {
        assert_eq!(memory_size("1024"), Ok(1024));
        assert_eq!(memory_size("2Gi"), Ok(2 << 30));
        assert!(memory_size("0").is_err());
        assert!(memory_size("99999999999999Gi").is_err());
        assert!(memory_size("Mi").is_err());
    }
}
