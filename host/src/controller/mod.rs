//! `kmsync controller`: the operator on Kubernetes.
//!
//! ```text
//!                  ┌──────────── every replica ────────────┐   ┌──── the leader only ─────────┐
//!  API server ──▶ watches ─▶ reflector caches ──▶ handlers ─┼──▶ queues ─▶ workers ─▶ reconcile
//!   (ES, stores, CES,        (caches)          (watches)    │   (queue)   ES × --reconcile-count
//!    namespaces, managed                      index, memo   │             stores × 2, CES × 1
//!    Secrets; metadata of                                   │               │
//!    all Secrets, SAs)                                      │   Context: pipeline (sync), store
//!                                                           │   resolver, Events, token buckets
//!  Lease ◀── leader election (leader) ── /readyz, /healthz, /metrics (http)
//! ```
//!
//! Modules: [`settings`] (flags as values), [`queue`] and [`schedule`] (when objects run),
//! [`watches`] + [`caches`] + [`index`] (what wakes what), [`external_secret`],
//! [`secret_store`], [`cluster_external_secret`] (the reconcilers), [`target`] (the Secret
//! kmsync writes, pure), [`env`] (the pipeline's view of the cluster), [`kube_source`]
//! (credential Secrets and ServiceAccount tokens), [`leader`], [`events`], [`metrics`],
//! [`http`], [`digest_key`], [`ratelimit`].
//!
//! Life cycle: bind the HTTP listeners, start the watches (the replica becomes ready once they
//! have listed everything), then wait for the Lease. Once leading: read or create the digest
//! key, build the pipeline, start the workers. On SIGTERM: stop handing out work, let
//! in-flight reconciles finish (up to `--shutdown-timeout`), release the Lease, stop. Losing
//! the Lease stops the process with an error (the pod restarts as a standby), so two replicas
//! never write at once.

pub mod caches;
pub mod cluster_external_secret;
pub mod context;
pub mod digest_key;
pub mod env;
pub mod events;
pub mod external_secret;
pub mod http;
pub mod index;
pub mod kube_source;
pub mod leader;
pub mod metrics;
pub mod observed;
pub mod queue;
pub mod ratelimit;
pub mod schedule;
pub mod secret_store;
pub mod settings;
pub mod shutdown;
pub mod target;
pub mod watches;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::time::Instant;

pub use settings::{LeaderSettings, NamespaceScope, Settings};
pub use shutdown::Shutdown;

use crate::alibaba::{ClientConfig, EndpointPolicy};
use crate::credentials::{FactoryConfig, StsEndpointConfig};
use crate::rules::RuleEngine;
use crate::stores::{StoreResolver, StoreResolverConfig};
use crate::sync::{FetchCache, FetchCacheConfig, Pipeline, PipelineConfig};
use context::{Context, Queues, Shared, kind};
use events::EventRecorder;
use http::{Health, Servers};
use kube_source::{KubeSecrets, KubeServiceAccounts};
use leader::{LeaderElector, Role};
use metrics::Metrics;
use queue::WorkQueue;
use ratelimit::StoreBuckets;
use schedule::Timing;

/// Most characters of a rule's own error or panic message kept in conditions, Events and logs
/// (the text is the rule author's and could quote a secret value; see docs/writing-rules.md).
pub const RULE_TEXT_LIMIT: usize = 256;

/// Why the controller stopped or a reconcile failed. Messages name objects and actions, never
/// values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An HTTP listener could not start.
    #[error(transparent)]
    Http(#[from] http::HttpError),
    /// The rule engine could not start.
    #[error("the rule engine could not start")]
    RuleEngine(#[source] crate::rules::EngineError),
    /// The store resolver could not be built (redirect, CA bundle, STS endpoint).
    #[error("the store resolver could not be built")]
    Resolver(#[source] Box<crate::stores::StoreError>),
    /// A Kubernetes API call failed.
    #[error("{action} {object} failed")]
    Api {
        /// What was being done, e.g. `writing the status of`.
        action: &'static str,
        /// The object, e.g. `ExternalSecret team-a/app`.
        object: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The finalizer could not be added or removed.
    #[error("updating the finalizer of {object} failed")]
    Finalizer {
        /// The object.
        object: String,
        /// The helper's error.
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
    /// The digest-key Secret exists without `data.key` (kmsync never overwrites it).
    #[error(
        "the digest key {secret} has no data.key (kmsync never overwrites it; fix or delete it)"
    )]
    DigestKeyMissing {
        /// `Secret namespace/name`.
        secret: String,
    },
    /// The digest-key Secret's `data.key` is unusable.
    #[error(
        "the digest key {secret} cannot be used (kmsync never overwrites it; fix or delete it)"
    )]
    DigestKey {
        /// `Secret namespace/name`.
        secret: String,
        /// Why.
        #[source]
        source: crate::sync::DigestKeyError,
    },
    /// The digest-key Secret vanished between being created and read.
    #[error("the digest key {secret} was created and deleted again while being read")]
    DigestKeyRace {
        /// `Secret namespace/name`.
        secret: String,
    },
    /// This replica lost the Lease.
    #[error("leadership was lost; stopping so that only one replica writes")]
    LostLeadership,
    /// A JSON patch could not be built (a bug).
    #[error("building a JSON patch for {object} failed")]
    Patch {
        /// The object.
        object: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Bounded label for metrics: the variant name.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::RuleEngine(_) => "rule_engine",
            Self::Resolver(_) => "resolver",
            Self::Api { .. } => "api",
            Self::Finalizer { .. } => "finalizer",
            Self::DigestKeyMissing { .. } | Self::DigestKey { .. } | Self::DigestKeyRace { .. } => {
                "digest_key"
            }
            Self::LostLeadership => "lost_leadership",
            Self::Patch { .. } => "patch",
        }
    }
}

/// Store-resolver settings from the controller's flags.
fn resolver_config(settings: &Settings) -> Result<StoreResolverConfig, Error> {
    // Tenants write kmsEndpoint: a loopback URL would reach this pod's own ports and sidecars,
    // so only an administrator can allow one (--allowed-endpoints, exact origin).
    let mut policy = EndpointPolicy::default().allow_loopback(false);
    for url in &settings.allowed_endpoints {
        policy = policy.trust_url(url).map_err(|e| {
            Error::Resolver(Box::new(crate::stores::StoreError::Endpoint {
                field: "--allowed-endpoints".into(),
                value: url.clone(),
                source: Box::new(e),
            }))
        })?;
    }
    let mut default_token_files = FactoryConfig::default().default_token_files;
    if let Ok(file) = std::env::var("ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        && !file.is_empty()
    {
        default_token_files.insert(0, file.into());
    }
    Ok(StoreResolverConfig {
        region: settings.region.clone(),
        kms_endpoint: settings.kms_endpoint.clone(),
        policy,
        client: ClientConfig {
            request_timeout: settings.request_timeout,
            retry: crate::alibaba::RetryPolicy {
                max_attempts: settings.request_attempts,
                ..crate::alibaba::RetryPolicy::default()
            },
            ..ClientConfig::default()
        },
        credentials: FactoryConfig {
            sts: StsEndpointConfig {
                region: settings.region.clone(),
                ..StsEndpointConfig::default()
            }
            .or(&StsEndpointConfig::from_env()),
            enable_worker_role: settings.enable_worker_role,
            allow_cross_namespace_auth_ref: settings.cross_namespace_auth_ref,
            default_oidc_provider_arn: settings.rrsa_oidc_provider_arn.clone(),
            default_token_files,
            // Stores (tenants, in namespaced ones) name token files: only the defaults and
            // what the administrator listed, never any file this process can read.
            allowed_token_files: Some(settings.allowed_oidc_token_paths.clone()),
            ..FactoryConfig::default()
        },
        redirect: settings.redirect.clone(),
    })
}

/// Waits until `role` is [`Role::Leader`] (`Ok(true)`), [`Role::Lost`] (`Err`), or `shutdown`
/// (`Ok(false)`).
async fn wait_for_leadership(
    role: &mut watch::Receiver<Role>,
    shutdown: &Shutdown,
) -> Result<bool, Error> {
    tokio::select! {
        () = shutdown.wait() => Ok(false),
        r = role.wait_for(|r| *r != Role::Standby) => match r.map(|r| *r) {
            Ok(Role::Leader) => Ok(true),
            _ => Err(Error::LostLeadership),
        },
    }
}

/// Builds what the leader needs: digest key (read or created), rule engine, fetch cache,
/// pipeline, store resolver.
async fn lead(
    client: &kube::Client,
    shared: &Arc<Shared>,
    service_accounts: Option<Arc<KubeServiceAccounts>>,
    instance: String,
) -> Result<Context, Error> {
    let settings = &shared.settings;
    let digest_key =
        digest_key::ensure(client, &settings.pod_namespace, &settings.digest_key_secret).await?;
    let engine = Arc::new(RuleEngine::new(settings.rule_limits).map_err(Error::RuleEngine)?);
    let metrics = shared.metrics.clone();
    engine.set_call_observer(Arc::new(move |hook, error, stats| {
        metrics.rule_call(
            hook.export_name(),
            error.map_or("ok", |e| e.metric_label()),
            stats.duration,
        );
    }));
    // A zero max age turns caching and coalescing off (`--disable-fetch-cache`); the pull
    // limits apply either way.
    let cache = Arc::new(FetchCache::new(FetchCacheConfig {
        max_age: if settings.disable_fetch_cache {
            Duration::ZERO
        } else {
            settings.polling_interval
        },
        max_concurrent_kms: settings.max_concurrent_kms_pulls,
        max_concurrent_oos: settings.max_concurrent_oos_pulls,
    }));
    let _ = shared.fetch_cache.set(cache.clone());
    let pipeline = Pipeline::new(
        engine,
        cache,
        digest_key,
        PipelineConfig {
            allow_cross_namespace_store: settings.cross_namespace_secret_store,
            rule_text_limit: Some(RULE_TEXT_LIMIT),
        },
    );
    let mut builder = StoreResolver::builder(resolver_config(settings)?, shared.secrets.clone());
    if let Some(sa) = service_accounts {
        builder = builder.service_accounts(sa);
    }
    let resolver = Arc::new(builder.build().map_err(|e| Error::Resolver(Box::new(e)))?);
    let buckets = Arc::new(StoreBuckets::new(settings.kms_qps));
    let env = env::KubeEnv::new(
        client.clone(),
        shared.caches.clone(),
        resolver.clone(),
        buckets.clone(),
        shared.metrics.clone(),
    );
    Ok(Context {
        shared: shared.clone(),
        client: client.clone(),
        pipeline,
        resolver,
        env,
        events: EventRecorder::new(client.clone(), instance, shared.metrics.clone()),
        buckets,
    })
}

/// Schedules `key` after a reconcile: `next` (if any), the error backoff for `Err`.
fn reschedule<K: Clone + Eq + std::hash::Hash + Ord>(
    queue: &WorkQueue<K>,
    key: &K,
    next: Option<Duration>,
) {
    if let Some(after) = next {
        queue.at(key.clone(), Instant::now() + after);
    }
}

async fn external_secret_worker(ctx: Arc<Context>) {
    let shared = &ctx.shared;
    while let Some(key) = shared.queues.external_secrets.next().await {
        let started = Instant::now();
        let ns = key.namespace.clone().unwrap_or_default();
        match shared.caches.external_secret(&ns, &key.name) {
            None => shared.forget_memo(&key),
            Some(es) => {
                let span = tracing::info_span!("reconcile", externalsecret = %key);
                let next = match tracing::Instrument::instrument(
                    external_secret::reconcile(&ctx, es),
                    span,
                )
                .await
                {
                    Ok(report) => {
                        shared.metrics.sync(
                            kind::EXTERNAL_SECRET,
                            report.result,
                            started.elapsed(),
                            report.ok,
                        );
                        report.next
                    }
                    Err(e) => {
                        let failures = shared.with_memo(&key, |m| {
                            m.failures = m.failures.saturating_add(1);
                            m.failures
                        });
                        tracing::warn!(externalsecret = %key, error = %crate::credentials::error_chain(&e), "reconcile failed");
                        shared.metrics.sync(
                            kind::EXTERNAL_SECRET,
                            e.metric_label(),
                            started.elapsed(),
                            false,
                        );
                        Some(shared.timing.backoff(&key, failures))
                    }
                };
                reschedule(&shared.queues.external_secrets, &key, next);
            }
        }
        shared.queues.external_secrets.done(&key);
    }
}

async fn store_worker(ctx: Arc<Context>) {
    let shared = &ctx.shared;
    while let Some(key) = shared.queues.stores.next().await {
        let started = Instant::now();
        let next = match secret_store::reconcile(&ctx, &key).await {
            Ok(report) => {
                shared
                    .metrics
                    .sync(kind::STORE, report.result, started.elapsed(), report.ok);
                report.next
            }
            Err(e) => {
                let failures = shared.with_store_memo(&key, |m| {
                    m.failures = m.failures.saturating_add(1);
                    m.failures
                });
                tracing::warn!(store = %key.label(), error = %crate::credentials::error_chain(&e), "reconcile failed");
                shared
                    .metrics
                    .sync(kind::STORE, e.metric_label(), started.elapsed(), false);
                Some(shared.timing.backoff(&key, failures))
            }
        };
        reschedule(&shared.queues.stores, &key, next);
        shared.queues.stores.done(&key);
    }
}

async fn cluster_external_secret_worker(ctx: Arc<Context>) {
    let shared = &ctx.shared;
    while let Some(key) = shared.queues.cluster_external_secrets.next().await {
        let started = Instant::now();
        let next = match cluster_external_secret::reconcile(&ctx, &key).await {
            Ok(report) => {
                shared.metrics.sync(
                    kind::CLUSTER_EXTERNAL_SECRET,
                    report.result,
                    started.elapsed(),
                    report.ok,
                );
                report.next
            }
            Err(e) => {
                let failures = shared.with_ces_memo(&key, |m| {
                    m.1 = m.1.saturating_add(1);
                    m.1
                });
                tracing::warn!(clusterexternalsecret = %key, error = %crate::credentials::error_chain(&e), "reconcile failed");
                shared.metrics.sync(
                    kind::CLUSTER_EXTERNAL_SECRET,
                    e.metric_label(),
                    started.elapsed(),
                    false,
                );
                Some(shared.timing.backoff(&key, failures))
            }
        };
        reschedule(&shared.queues.cluster_external_secrets, &key, next);
        shared.queues.cluster_external_secrets.done(&key);
    }
}

/// Runs the controller until `shutdown` (see the module docs). Returns an error when it could
/// not start or lost the Lease.
///
/// # Errors
/// [`Error`].
pub async fn run(
    client: kube::Client,
    settings: Settings,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let health = Arc::new(Health::default());
    let servers = Servers::bind(settings.metrics_addr, settings.health_addr).await?;
    let (metrics_addr, health_addr) = servers.addrs();
    tracing::info!(
        metrics = %metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
        health = %health_addr.map(|a| a.to_string()).unwrap_or_default(),
        watch_namespaces = ?settings.namespaces.watch,
        leader_election = settings.leader.is_some(),
        "kmsync controller starting"
    );
    let http_stop = Shutdown::new();
    let http_task = servers.serve(Arc::new(registry), health.clone(), http_stop.clone());

    let (caches, feeds) = watches::prepare(&client, &settings);
    let secrets = Arc::new(KubeSecrets::new(client.clone()));
    let service_accounts = settings
        .enable_service_account_token
        .then(|| Arc::new(KubeServiceAccounts::new(client.clone())));
    let timing = Timing {
        polling_interval: settings.polling_interval,
        disable_polling: settings.disable_polling,
        reconcile_period: settings.reconcile_period,
    };
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        timing,
        metrics: metrics.clone(),
        caches: Arc::new(caches),
        index: Default::default(),
        queues: Queues::default(),
        memo: Default::default(),
        store_memo: Default::default(),
        ces_memo: Default::default(),
        secrets,
        health: health.clone(),
        fetch_cache: std::sync::OnceLock::new(),
        exported_cache: Default::default(),
    });
    let watch_stop = Shutdown::new();
    let watch_tasks = feeds.spawn(shared.clone(), watch_stop.clone());
    let gauges = {
        let shared = shared.clone();
        let stop = watch_stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    () = stop.wait() => break,
                    _ = tick.tick() => shared.export_queue_metrics(),
                }
            }
        })
    };

    let instance = settings
        .leader
        .as_ref()
        .map(|l| l.identity.clone())
        .or_else(|| std::env::var("POD_NAME").ok())
        .unwrap_or_else(|| "kmsync".to_owned());
    let elector_stop = Shutdown::new();
    // Without leader election this replica always leads; the sender lives as long as `run`.
    let (_always_leader, always_leader_rx) = watch::channel(Role::Leader);
    let (mut role, elector_task) = match &settings.leader {
        Some(leader) => {
            let (rx, task) =
                LeaderElector::new(client.clone(), leader.clone()).spawn(elector_stop.clone());
            (rx, Some(task))
        }
        None => (always_leader_rx, None),
    };

    let outcome = async {
        if !wait_for_leadership(&mut role, &shutdown).await? {
            return Ok(None);
        }
        // Decisions need full caches: a store or Secret not listed yet is not a missing one.
        while !health.is_ready() {
            tokio::select! {
                () = shutdown.wait() => return Ok(None),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        metrics.leader.set(1);
        tracing::info!("leading: starting the workers");
        let ctx = loop {
            match lead(&client, &shared, service_accounts.clone(), instance.clone()).await {
                Ok(ctx) => break Arc::new(ctx),
                Err(e @ Error::Api { .. }) => {
                    tracing::warn!(error = %crate::credentials::error_chain(&e), "could not start leading; retrying");
                    tokio::select! {
                        () = shutdown.wait() => return Ok(None),
                        () = tokio::time::sleep(settings.reconcile_period) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let mut workers = Vec::new();
        for _ in 0..settings.reconcile_count {
            workers.push(tokio::spawn(external_secret_worker(ctx.clone())));
        }
        for _ in 0..2 {
            workers.push(tokio::spawn(store_worker(ctx.clone())));
        }
        workers.push(tokio::spawn(cluster_external_secret_worker(ctx.clone())));
        let lost = tokio::select! {
            () = shutdown.wait() => false,
            _ = role.wait_for(|r| *r == Role::Lost) => true,
        };
        Ok(Some((workers, lost)))
    }
    .await;

    // Drain: no new work; in-flight reconciles finish (bounded), then release the Lease.
    shared.queues.close();
    let mut result = Ok(());
    match outcome {
        Ok(Some((workers, lost))) => {
            let drained = tokio::time::timeout(
                settings.shutdown_timeout,
                futures::future::join_all(workers),
            )
            .await;
            if drained.is_err() {
                tracing::warn!(timeout = ?settings.shutdown_timeout, "in-flight reconciles did not finish in time");
            }
            if lost {
                result = Err(Error::LostLeadership);
            }
        }
        Ok(None) => {}
        Err(e) => result = Err(e),
    }
    elector_stop.trigger();
    if let Some(task) = elector_task {
        let _ = task.await;
    }
    metrics.leader.set(0);
    watch_stop.trigger();
    for t in watch_tasks {
        let _ = t.await;
    }
    let _ = gauges.await;
    http_stop.trigger();
    let _ = http_task.await;
    tracing::info!("kmsync controller stopped");
    result
}
