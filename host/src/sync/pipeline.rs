//! [`Pipeline`]: the steps of the module docs.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::cache::{FetchCache, FetchFailure, FetchKey, SourceId};
use super::digest::DigestKey;
use super::env::{ConfigMapKey, SyncEnv};
use super::error::{
    EntryRef, KeySource, PolicyDenial, RulePlace, RuleProblem, SyncError, VersionSelector,
};
use super::output::{
    CurrentState, DesiredSecret, EntryResult, RotationAction, RotationDecision, SyncOutput,
};
use crate::api::{
    DataSource, ExternalSecret, ModuleSource, Problem, ProblemKind, Provider, RuleHook, StoreKind,
    validate_external_secret,
};
use crate::fetch::FetchRequest;
use crate::kms::{SecretDataType, SecretValue as KmsValue};
use crate::rules::{
    CandidateVersion, Context, DataType, FilterInput, Hook, Item, RotateAction, RotateInput,
    RuleEngine, RuleModule, SecretInput, SecretValue, SyncedVersion, TransformInput,
};
use crate::stores::{StoreIdentity, StoreObject, StoreSelector};
use crate::value::SecretBytes;

/// Controller-wide policy of the pipeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipelineConfig {
    /// `--enable-cross-namespace-secret-store`: an ExternalSecret may name a SecretStore in
    /// another namespace. Off by default (ack-secret-manager fault #3).
    pub allow_cross_namespace_store: bool,
    /// Cut the text a rule's author controls — error and panic messages
    /// ([`SyncError::limit_rule_text`]), `rotate` reasons — to this many characters before it
    /// leaves the pipeline. The controller sets it: that text ends up in conditions, Events and logs.
    /// `None`: keep it whole (`render`, whose user reads their own data).
    pub rule_text_limit: Option<usize>,
}

/// Configs accepted by `validate_config` are remembered (by module digest and config) so the
/// hook runs once per change, not per sync; the set is cleared when it grows past this.
const MAX_VALIDATED_CONFIGS: usize = 10_000;

/// The sync pipeline (see the module docs). Share one per process; `sync` takes `&self` and
/// may run concurrently for many ExternalSecrets.
#[derive(Debug)]
pub struct Pipeline {
    engine: Arc<RuleEngine>,
    cache: Arc<FetchCache>,
    digest_key: DigestKey,
    config: PipelineConfig,
    validated: Mutex<HashSet<[u8; 32]>>,
}

/// A rule of `spec.rules`, loaded, with the hooks to run.
struct LoadedRule {
    index: usize,
    name: String,
    module: Arc<RuleModule>,
    hooks: Vec<Hook>,
    config: Value,
}

impl LoadedRule {
    fn runs(&self, hook: Hook) -> bool {
        self.hooks.contains(&hook)
    }

    fn place(&self, entry: Option<EntryRef>) -> RulePlace {
        RulePlace::User {
            index: self.index,
            name: self.name.clone(),
            entry,
        }
    }
}

/// One resolved entry: where its data comes from.
struct Resolved<'a> {
    entry: EntryRef,
    source: &'a DataSource,
    store: Option<StoreObject>,
    key: FetchKey,
}

impl Pipeline {
    /// A pipeline running rules on `engine`, reading through `cache`, digesting with
    /// `digest_key`.
    pub fn new(
        engine: Arc<RuleEngine>,
        cache: Arc<FetchCache>,
        digest_key: DigestKey,
        config: PipelineConfig,
    ) -> Self {
        Self {
            engine,
            cache,
            digest_key,
            config,
            validated: Mutex::new(HashSet::new()),
        }
    }

    /// The rule engine.
    pub fn engine(&self) -> &Arc<RuleEngine> {
        &self.engine
    }

    /// The fetch cache.
    pub fn cache(&self) -> &Arc<FetchCache> {
        &self.cache
    }

    /// The digest key.
    pub fn digest_key(&self) -> &DigestKey {
        &self.digest_key
    }

    /// The policy settings.
    pub fn config(&self) -> PipelineConfig {
        self.config
    }

    /// Syncs `es` now: the desired Secret, or why there is none. `current` is what the
    /// existing Secret holds (`None` when there is no Secret yet).
    ///
    /// # Errors
    /// [`SyncError`]; see [`SyncError::reason`]. A failure never yields a partial Secret.
    pub async fn sync(
        &self,
        es: &ExternalSecret,
        env: &dyn SyncEnv,
        current: Option<&CurrentState>,
    ) -> Result<SyncOutput, SyncError> {
        self.sync_at(es, env, current, Utc::now()).await
    }

    /// [`sync`](Self::sync) with the clock given (`now` is what rotate hooks see).
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub async fn sync_at(
        &self,
        es: &ExternalSecret,
        env: &dyn SyncEnv,
        current: Option<&CurrentState>,
        now: DateTime<Utc>,
    ) -> Result<SyncOutput, SyncError> {
        self.sync_inner(es, env, current, now)
            .await
            .map_err(|mut e| {
                if let Some(max) = self.config.rule_text_limit {
                    e.limit_rule_text(max);
                }
                e
            })
    }

    async fn sync_inner(
        &self,
        es: &ExternalSecret,
        env: &dyn SyncEnv,
        current: Option<&CurrentState>,
        now: DateTime<Utc>,
    ) -> Result<SyncOutput, SyncError> {
        check_spec(es)?;
        let namespace = es.metadata.namespace.as_deref().unwrap_or_default();
        let provider = es.spec.provider();
        let rules = self.load_rules(es, namespace, env).await?;
        let wants_extended = rules.iter().any(|r| r.runs(Hook::Transform));

        // Resolve every entry and apply the policies before any remote call.
        let mut resolved = Vec::new();
        let mut stores: HashMap<(StoreKind, Option<String>, String), StoreObject> = HashMap::new();
        let mut labels = None;
        for (entry, source) in entries(es) {
            let store = self
                .resolve_store(es, entry, source, env, &mut stores, &mut labels)
                .await?;
            let key = FetchKey {
                source: match &store {
                    Some(s) => SourceId::Store(s.identity()),
                    None => SourceId::Ambient,
                },
                provider: provider.into(),
                endpoint: source.kms_endpoint().map(str::to_owned),
                secret_name: source.key.clone(),
                version_id: source.version_id().map(str::to_owned),
                version_stage: source.version_stage().map(str::to_owned),
                fetch_extended_config: wants_extended && provider == Provider::Kms,
            };
            resolved.push(Resolved {
                entry,
                source,
                store,
                key,
            });
        }

        // Fetch everything (concurrently, through the shared cache); any failure fails all.
        let fetches = resolved.iter().map(|r| {
            let selector = match &r.store {
                Some(s) => StoreSelector::Store(s),
                None => StoreSelector::Ambient(provider),
            };
            let request = FetchRequest {
                secret_name: r.key.secret_name.clone(),
                version_stage: r.key.version_stage.clone(),
                version_id: r.key.version_id.clone(),
                fetch_extended_config: r.key.fetch_extended_config,
            };
            let endpoint = r.key.endpoint.clone();
            self.cache.get_or_fetch(&r.key, move || async move {
                let fetcher = env
                    .fetcher(selector, provider, endpoint.as_deref())
                    .await
                    .map_err(FetchFailure::Unavailable)?;
                fetcher.fetch(&request).await.map_err(FetchFailure::Fetch)
            })
        });
        let results = futures::future::join_all(fetches).await;
        let mut values = Vec::with_capacity(results.len());
        let mut oldest_read: Option<tokio::time::Instant> = None;
        for (r, result) in resolved.iter().zip(results) {
            let fetched = result.map_err(|failure| fetch_error(r, failure))?;
            oldest_read = Some(oldest_read.map_or(fetched.read_at, |o| o.min(fetched.read_at)));
            values.push(fetched.value);
        }

        // Map every entry to Secret keys.
        let mut data: BTreeMap<String, (SecretBytes, KeySource)> = BTreeMap::new();
        let mut claim = |key: String, value: SecretBytes, by: KeySource| match data.get(&key) {
            Some((_, first)) => Err(SyncError::KeyConflict {
                key,
                first: Box::new(first.clone()),
                second: Box::new(by),
            }),
            None => {
                data.insert(key, (value, by));
                Ok(())
            }
        };
        let transforms: Vec<&LoadedRule> =
            rules.iter().filter(|r| r.runs(Hook::Transform)).collect();
        for (r, value) in resolved.iter().zip(&values) {
            let context = context_for(es, r.entry, r.source);
            if let Some((name, config)) = compat_rule(es, r.entry) {
                let out = self
                    .compat_transform(name, config, r, value, context)
                    .await?;
                for (k, v) in out {
                    claim(k, v, KeySource::Entry(r.entry))?;
                }
            } else if !transforms.is_empty() {
                for rule in &transforms {
                    let input = TransformInput {
                        secret: secret_input(value).map_err(|p| SyncError::RuleError {
                            place: rule.place(Some(r.entry)),
                            rule: rule.name.clone(),
                            secret: Some(r.source.key.clone()),
                            problem: Box::new(p),
                        })?,
                        context: context.clone(),
                        config: rule.config.clone(),
                    };
                    let out =
                        rule.module
                            .transform(&input)
                            .await
                            .map_err(|e| SyncError::RuleError {
                                place: rule.place(Some(r.entry)),
                                rule: rule.name.clone(),
                                secret: Some(r.source.key.clone()),
                                problem: Box::new(RuleProblem::Call(e)),
                            })?;
                    for (k, v) in out.data {
                        claim(
                            k,
                            v,
                            KeySource::Rule {
                                rule: rule.index,
                                name: rule.name.clone(),
                                entry: r.entry,
                            },
                        )?;
                    }
                }
            } else {
                // Validation made sure the key is a valid Secret key.
                let key = r.source.secret_key().unwrap_or(&r.source.key).to_owned();
                claim(key, value.data.clone(), KeySource::Entry(r.entry))?;
            }
        }

        // Filters see key names only.
        let first_context = resolved
            .first()
            .map(|r| context_for(es, r.entry, r.source))
            .unwrap_or_default();
        for rule in rules.iter().filter(|r| r.runs(Hook::Filter)) {
            let input = FilterInput {
                keys: data.keys().cloned().collect(),
                context: first_context.clone(),
                config: rule.config.clone(),
            };
            let kept = rule
                .module
                .filter(&input)
                .await
                .map_err(|e| SyncError::RuleError {
                    place: rule.place(None),
                    rule: rule.name.clone(),
                    secret: None,
                    problem: Box::new(RuleProblem::Call(e)),
                })?;
            let keep: BTreeSet<String> = kept.keep.into_iter().collect();
            data.retain(|k, _| keep.contains(k));
        }

        let mut by_entry: HashMap<EntryRef, Vec<String>> = HashMap::new();
        for (k, (_, by)) in &data {
            let entry = match by {
                KeySource::Entry(e) | KeySource::Rule { entry: e, .. } => *e,
            };
            by_entry.entry(entry).or_default().push(k.clone());
        }
        let secret_data: BTreeMap<String, SecretBytes> =
            data.into_iter().map(|(k, (v, _))| (k, v)).collect();
        let digest = self.digest_key.digest(&secret_data);
        let entry_results: Vec<EntryResult> = resolved
            .iter()
            .zip(&values)
            .map(|(r, v)| EntryResult {
                entry: r.entry,
                key: r.source.key.clone(),
                version_id: v.version_id.clone(),
                version_stages: v.version_stages.clone(),
                create_time: v.create_time.clone(),
                secret_keys: by_entry.remove(&r.entry).unwrap_or_default(),
            })
            .collect();
        let version = entry_results
            .iter()
            .map(|e| e.version_id.as_str())
            .collect::<Vec<_>>()
            .join(",");

        let rotation = self
            .rotation(
                &rules,
                current,
                &entry_results,
                &digest,
                &version,
                now,
                first_context,
            )
            .await?;

        let template = es.spec.target.as_ref().and_then(|t| t.template.as_ref());
        let metadata = template.and_then(|t| t.metadata.as_ref());
        Ok(SyncOutput {
            secret: DesiredSecret {
                namespace: namespace.to_owned(),
                name: es.target_name().to_owned(),
                type_: es.spec.secret_type().to_owned(),
                data: secret_data,
                labels: metadata.and_then(|m| m.labels.clone()).unwrap_or_default(),
                annotations: metadata
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default(),
                immutable: es.spec.immutable(),
            },
            digest,
            version,
            entries: entry_results,
            rotation,
            data_age: oldest_read.map_or(Duration::ZERO, |at| at.elapsed()),
        })
    }

    /// The store an entry reads through (`None`: ambient credentials), after the policies.
    async fn resolve_store(
        &self,
        es: &ExternalSecret,
        entry: EntryRef,
        source: &DataSource,
        env: &dyn SyncEnv,
        stores: &mut HashMap<(StoreKind, Option<String>, String), StoreObject>,
        labels: &mut Option<BTreeMap<String, String>>,
    ) -> Result<Option<StoreObject>, SyncError> {
        let Some(sref) = &source.secret_store_ref else {
            return Ok(None);
        };
        let namespace = es.metadata.namespace.as_deref().unwrap_or_default();
        let kind = sref.kind();
        let store_ns = sref.store_namespace(namespace).map(str::to_owned);
        let wanted = StoreIdentity {
            kind,
            namespace: store_ns.clone(),
            name: sref.name.clone(),
            uid: None,
            generation: None,
        };
        // Refuse before looking: another namespace's stores are not even probed.
        if kind == StoreKind::SecretStore
            && store_ns.as_deref() != Some(namespace)
            && !self.config.allow_cross_namespace_store
        {
            return Err(SyncError::PolicyDenied {
                entry,
                denial: Box::new(PolicyDenial::CrossNamespaceStore {
                    store: wanted,
                    namespace: namespace.to_owned(),
                }),
            });
        }
        let cache_key = (kind, store_ns.clone(), sref.name.clone());
        let store = match stores.get(&cache_key) {
            Some(s) => s.clone(),
            None => {
                let found = env
                    .store(kind, store_ns.as_deref(), &sref.name)
                    .await
                    .map_err(|source| SyncError::Lookup {
                        what: format!("{entry}.secretStoreRef ({wanted})"),
                        source,
                    })?
                    .ok_or_else(|| SyncError::StoreNotFound {
                        entry,
                        store: Box::new(wanted.clone()),
                    })?;
                stores.insert(cache_key, found.clone());
                found
            }
        };
        if let Some(cluster) = store.as_cluster() {
            if labels.is_none() {
                *labels = Some(
                    env.namespace_labels(namespace)
                        .await
                        .map_err(|source| SyncError::Lookup {
                            what: format!("namespace {namespace}"),
                            source,
                        })?
                        .unwrap_or_default(),
                );
            }
            let ns_labels = labels.as_ref().cloned().unwrap_or_default();
            if !cluster.spec.namespace_allowed(namespace, &ns_labels) {
                return Err(SyncError::PolicyDenied {
                    entry,
                    denial: Box::new(PolicyDenial::NamespaceNotAllowed {
                        store: store.identity(),
                        namespace: namespace.to_owned(),
                    }),
                });
            }
            if !cluster.spec.key_allowed(namespace, &source.key) {
                return Err(SyncError::PolicyDenied {
                    entry,
                    denial: Box::new(PolicyDenial::KeyNotAllowed {
                        store: store.identity(),
                        namespace: namespace.to_owned(),
                        key: source.key.clone(),
                    }),
                });
            }
        }
        store
            .check_provider(es.spec.provider())
            .map_err(|source| SyncError::StoreInvalid {
                entry,
                store: Box::new(store.identity()),
                source,
            })?;
        Ok(Some(store))
    }

    /// Runs a built-in compatibility rule on one entry's value.
    async fn compat_transform(
        &self,
        name: &'static str,
        config: Value,
        r: &Resolved<'_>,
        value: &KmsValue,
        context: Context,
    ) -> Result<BTreeMap<String, SecretBytes>, SyncError> {
        let fail = |source| SyncError::RuleError {
            place: RulePlace::Compat(r.entry),
            rule: name.to_owned(),
            secret: Some(r.source.key.clone()),
            problem: Box::new(source),
        };
        let module = self
            .engine
            .builtin(name)
            .await
            .map_err(|e| fail(RuleProblem::Load(e)))?;
        let input = TransformInput {
            secret: secret_input(value).map_err(fail)?,
            context,
            config,
        };
        let out = module
            .transform(&input)
            .await
            .map_err(|e| fail(RuleProblem::Call(e)))?;
        Ok(out.data)
    }

    /// Loads `spec.rules` (modules, hooks, configs checked).
    async fn load_rules(
        &self,
        es: &ExternalSecret,
        namespace: &str,
        env: &dyn SyncEnv,
    ) -> Result<Vec<LoadedRule>, SyncError> {
        let mut out = Vec::new();
        for (index, rule) in es.spec.rules().iter().enumerate() {
            let name = rule.display_name();
            let fail = |source| SyncError::RuleError {
                place: RulePlace::User {
                    index,
                    name: name.clone(),
                    entry: None,
                },
                rule: name.clone(),
                secret: None,
                problem: Box::new(source),
            };
            let module = match rule.module.source() {
                Some(ModuleSource::Builtin(b)) => self
                    .engine
                    .builtin(b)
                    .await
                    .map_err(|e| fail(RuleProblem::Load(e)))?,
                Some(ModuleSource::ConfigMap {
                    name: cm,
                    key,
                    sha256,
                }) => self
                    .config_map_module(namespace, cm, key, sha256, env)
                    .await
                    .map_err(|e| match e {
                        ModuleError::Problem(p) => fail(p),
                        ModuleError::Lookup(source) => SyncError::Lookup {
                            what: format!(
                                "spec.rules[{index}].module.configMap (ConfigMap {namespace}/{cm})"
                            ),
                            source,
                        },
                    })?,
                // Validation reports modules with neither or both sources.
                None => continue,
            };
            let hooks = match rule.hooks() {
                Some(list) => {
                    let mut hooks = Vec::new();
                    for h in list {
                        let hook = match h {
                            RuleHook::Transform => Hook::Transform,
                            RuleHook::Filter => Hook::Filter,
                            RuleHook::Rotate => Hook::Rotate,
                        };
                        if !module.implements(hook) {
                            return Err(fail(RuleProblem::HookNotExported {
                                hook: hook.export_name(),
                                module: module.name().to_owned(),
                            }));
                        }
                        hooks.push(hook);
                    }
                    hooks
                }
                None => [Hook::Transform, Hook::Filter, Hook::Rotate]
                    .into_iter()
                    .filter(|h| module.implements(*h))
                    .collect(),
            };
            let config = rule.config.clone().unwrap_or(Value::Null);
            self.validate_config(&module, &config)
                .await
                .map_err(|e| fail(RuleProblem::Config(e)))?;
            out.push(LoadedRule {
                index,
                name,
                module,
                hooks,
                config,
            });
        }
        Ok(out)
    }

    async fn config_map_module(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        sha256: &str,
        env: &dyn SyncEnv,
    ) -> Result<Arc<RuleModule>, ModuleError> {
        // A module is content-addressed: one already compiled under the pinned digest is
        // exactly the pinned module, whatever the ConfigMap holds now.
        if let Some(pinned) = hex::decode(sha256)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            && let Some(cached) = self.engine.get(&pinned)
        {
            return cached.map_err(|e| ModuleError::Problem(RuleProblem::Load(e)));
        }
        let bytes = match env
            .config_map_key(namespace, name, key)
            .await
            .map_err(ModuleError::Lookup)?
        {
            ConfigMapKey::Found(b) => b,
            ConfigMapKey::NoConfigMap => {
                return Err(ModuleError::Problem(RuleProblem::ConfigMapNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                }));
            }
            ConfigMapKey::NoKey => {
                return Err(ModuleError::Problem(RuleProblem::ConfigMapKeyNotFound {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    key: key.to_owned(),
                }));
            }
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(ModuleError::Problem(RuleProblem::DigestMismatch {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                key: key.to_owned(),
                expected: sha256.to_owned(),
                actual,
            }));
        }
        self.engine
            .load(&bytes)
            .await
            .map_err(|e| ModuleError::Problem(RuleProblem::Load(e)))
    }

    async fn validate_config(
        &self,
        module: &RuleModule,
        config: &Value,
    ) -> Result<(), crate::rules::CallError> {
        let mut h = Sha256::new();
        h.update(module.sha256());
        h.update(config.to_string().as_bytes());
        let id: [u8; 32] = h.finalize().into();
        let seen = |set: &mut HashSet<[u8; 32]>| set.contains(&id);
        if seen(&mut self.lock_validated()) {
            return Ok(());
        }
        module.validate_config(config).await?;
        let mut set = self.lock_validated();
        if set.len() >= MAX_VALIDATED_CONFIGS {
            set.clear();
        }
        set.insert(id);
        Ok(())
    }

    fn lock_validated(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.validated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rotation decision (see the module docs).
    #[allow(clippy::too_many_arguments)]
    async fn rotation(
        &self,
        rules: &[LoadedRule],
        current: Option<&CurrentState>,
        entries: &[EntryResult],
        digest: &str,
        version: &str,
        now: DateTime<Utc>,
        context: Context,
    ) -> Result<RotationDecision, SyncError> {
        if let Some(cur) = current
            && cur.digest.as_deref() == Some(digest)
        {
            return Ok(RotationDecision {
                action: RotationAction::Unchanged,
                reason: "data unchanged".into(),
                requeue_after: None,
                restart: false,
                decided_by: None,
            });
        }
        let rotators: Vec<&LoadedRule> = rules.iter().filter(|r| r.runs(Hook::Rotate)).collect();
        if rotators.is_empty() {
            let reason = match current {
                None => "initial sync: the Secret does not exist yet",
                Some(c) if c.digest.is_none() => "the Secret records no digest of its data",
                Some(_) => "data changed",
            };
            return Ok(RotationDecision {
                action: RotationAction::Sync,
                reason: reason.into(),
                requeue_after: None,
                restart: false,
                decided_by: None,
            });
        }
        let candidate = candidate(entries, digest, version);
        let current = current.map(|c| SyncedVersion {
            version_id: c.version.clone().unwrap_or_default(),
            digest: c.digest.clone().unwrap_or_default(),
            synced_at: c
                .synced_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default(),
        });
        let mut restart = false;
        let mut requeue: Option<Duration> = None;
        let mut reasons = Vec::new();
        for rule in rotators {
            let input = RotateInput {
                current: current.clone(),
                candidate: candidate.clone(),
                now: now.to_rfc3339_opts(SecondsFormat::Secs, true),
                context: context.clone(),
                config: rule.config.clone(),
            };
            let d = rule
                .module
                .rotate(&input)
                .await
                .map_err(|e| SyncError::RuleError {
                    place: rule.place(None),
                    rule: rule.name.clone(),
                    secret: None,
                    problem: Box::new(RuleProblem::Call(e)),
                })?;
            let after = d.requeue_after.map(Duration::from_secs);
            // The reason is the rule author's text, shown in status and Events.
            let mut d = d;
            if let Some(max) = self.config.rule_text_limit {
                crate::rules::cut_chars(&mut d.reason, max);
            }
            let decided_by = format!("spec.rules[{}] ({})", rule.index, rule.name);
            match d.action {
                RotateAction::Sync => {
                    restart |= d.restart;
                    requeue = match (requeue, after) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    reasons.push(format!("{decided_by}: {}", d.reason));
                }
                action => {
                    return Ok(RotationDecision {
                        action: if action == RotateAction::Skip {
                            RotationAction::Skip
                        } else {
                            RotationAction::Defer
                        },
                        reason: d.reason,
                        requeue_after: after,
                        restart: false,
                        decided_by: Some(decided_by),
                    });
                }
            }
        }
        Ok(RotationDecision {
            action: RotationAction::Sync,
            reason: reasons.join("; "),
            requeue_after: requeue,
            restart,
            decided_by: None,
        })
    }
}

enum ModuleError {
    Problem(RuleProblem),
    Lookup(super::env::EnvError),
}

/// Validation, the Go-template refusal, and "reads nothing".
fn check_spec(es: &ExternalSecret) -> Result<(), SyncError> {
    let mut problems = match validate_external_secret(es) {
        Ok(()) => Vec::new(),
        Err(invalid) => invalid.problems,
    };
    if es
        .metadata
        .namespace
        .as_deref()
        .is_none_or(|n| n.is_empty())
    {
        problems.insert(
            0,
            Problem {
                path: "metadata.namespace".into(),
                kind: ProblemKind::Required,
            },
        );
    }
    if let Some(template) = es.spec.target.as_ref().and_then(|t| t.template.as_ref()) {
        let unsupported = |field: &str| SyncError::Unsupported {
            field: format!("spec.target.template.{field}"),
            what: "Go-template rendering (ack-secret-manager v0.6)",
            hint: "remove it and use spec.data, spec.dataProcess or spec.rules (a transform rule) to shape the Secret",
        };
        if template.data.as_ref().is_some_and(|d| !d.is_empty()) {
            return Err(unsupported("data"));
        }
        if template
            .template_from
            .as_ref()
            .is_some_and(|t| !t.is_empty())
        {
            return Err(unsupported("templateFrom"));
        }
    }
    if problems.is_empty() && entries(es).is_empty() {
        problems.push(Problem {
            path: "spec".into(),
            kind: ProblemKind::NoData,
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SyncError::InvalidSpec { problems })
    }
}

fn fetch_error(r: &Resolved<'_>, failure: Arc<FetchFailure>) -> SyncError {
    let version = VersionSelector {
        version_id: r.key.version_id.clone(),
        version_stage: r.key.version_stage.clone(),
    };
    match failure.as_ref() {
        FetchFailure::Unavailable(_) => SyncError::StoreNotReady {
            entry: r.entry,
            store: match &r.store {
                Some(s) => s.identity().to_string(),
                None => "the ambient credentials".to_owned(),
            },
            source: failure,
        },
        FetchFailure::Fetch(e) if e.is_not_found() => SyncError::SecretNotFound {
            entry: r.entry,
            key: r.source.key.clone(),
            version,
            source: failure,
        },
        FetchFailure::Fetch(_) => SyncError::FetchFailed {
            entry: r.entry,
            key: r.source.key.clone(),
            version,
            source: failure,
        },
    }
}

/// The version a rotate hook is asked about, aggregated over the entries: the version label,
/// the stages every entry's version carries, the newest create time.
fn candidate(entries: &[EntryResult], digest: &str, version: &str) -> CandidateVersion {
    let mut stages: Option<BTreeSet<&str>> = None;
    for e in entries {
        let these: BTreeSet<&str> = e.version_stages.iter().map(String::as_str).collect();
        stages = Some(match stages {
            None => these,
            Some(s) => s.intersection(&these).copied().collect(),
        });
    }
    CandidateVersion {
        version_id: version.to_owned(),
        version_stages: stages
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect(),
        digest: digest.to_owned(),
        create_time: entries.iter().filter_map(|e| e.create_time.clone()).max(),
    }
}

/// The rule-ABI view of a fetched value: text as is, binary as base64.
fn secret_input(v: &KmsValue) -> Result<SecretInput, RuleProblem> {
    let (data_type, data) = match v.data_type {
        SecretDataType::Text => (
            DataType::Text,
            String::from_utf8(v.data.expose().to_vec()).map_err(|_| RuleProblem::NotUtf8 {
                secret: v.secret_name.clone(),
            })?,
        ),
        SecretDataType::Binary => (
            DataType::Binary,
            base64::engine::general_purpose::STANDARD.encode(v.data.expose()),
        ),
    };
    Ok(SecretInput {
        name: v.secret_name.clone(),
        secret_type: v.secret_type.as_str().to_owned(),
        data_type,
        data: SecretValue::new(data),
        version_id: v.version_id.clone(),
        version_stages: v.version_stages.clone(),
        create_time: v.create_time.clone(),
        extended_config: v
            .extended_config
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok()),
    })
}

fn context_for(es: &ExternalSecret, entry: EntryRef, source: &DataSource) -> Context {
    Context {
        namespace: es.metadata.namespace.clone().unwrap_or_default(),
        external_secret: es.metadata.name.clone().unwrap_or_default(),
        labels: es.metadata.labels.clone().unwrap_or_default(),
        annotations: es.metadata.annotations.clone().unwrap_or_default(),
        item: Item {
            field: entry.field_name().to_owned(),
            index: u32::try_from(entry.index).unwrap_or(u32::MAX),
            key: source.key.clone(),
            name: match entry.field {
                super::error::EntryField::Data => source.secret_key().map(str::to_owned),
                super::error::EntryField::DataProcess => None,
            },
        },
    }
}

/// The entries of `es` in spec order: `spec.data[]`, then `spec.dataProcess[].extract` (a
/// `dataProcess` item without `extract` is skipped; validation reports it).
pub fn entries(es: &ExternalSecret) -> Vec<(EntryRef, &DataSource)> {
    let data = es
        .spec
        .data()
        .iter()
        .enumerate()
        .map(|(i, d)| (EntryRef::data(i), d));
    let process = es
        .spec
        .data_process()
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.extract.as_ref().map(|d| (EntryRef::data_process(i), d)));
    data.chain(process).collect()
}

/// The built-in compatibility rule an entry runs and its config: `("jmespath",
/// {"jmesPath": [...]})` for a `data[]` entry with `jmesPath`, `("extract", {"replaceRule":
/// [...]})` (or `null` without rules) for a `dataProcess` entry, `None` for a plain entry or
/// one `es` does not have.
pub fn compat_rule(es: &ExternalSecret, entry: EntryRef) -> Option<(&'static str, Value)> {
    match entry.field {
        super::error::EntryField::Data => {
            let d = es.spec.data().get(entry.index)?;
            let items = d.jmes_path();
            if items.is_empty() {
                return None;
            }
            let paths: Vec<Value> = items
                .iter()
                .map(|j| json!({"path": j.path, "objectAlias": j.object_alias}))
                .collect();
            Some(("jmespath", json!({ "jmesPath": paths })))
        }
        super::error::EntryField::DataProcess => {
            let p = es.spec.data_process().get(entry.index)?;
            p.extract.as_ref()?;
            let rules = p.replace_rule.as_deref().unwrap_or_default();
            let config = if rules.is_empty() {
                Value::Null
            } else {
                json!({"replaceRule": rules
                    .iter()
                    .map(|r| json!({"source": r.source, "target": r.target}))
                    .collect::<Vec<_>>()})
            };
            Some(("extract", config))
        }
    }
}

/// The rule-ABI `context` of a call about `entry` of `es` (namespace, name, labels,
/// annotations, item); `None` when `es` has no such entry.
pub fn rule_context(es: &ExternalSecret, entry: EntryRef) -> Option<Context> {
    let source = entries(es)
        .into_iter()
        .find(|(e, _)| *e == entry)
        .map(|(_, s)| s)?;
    Some(context_for(es, entry, source))
}
