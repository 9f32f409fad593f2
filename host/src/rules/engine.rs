//! [`RuleEngine`]: one wasmtime `Engine` (pooling allocator, epoch interruption), the epoch
//! ticker, the call semaphore, and the module cache keyed by sha256.
//!
//! ```text
//! load(bytes) --sha256--> cache hit? --yes--> Arc<RuleModule>
//!                             | no (one compile per digest, even when asked concurrently)
//!                             v
//!            header + metadata checks -> Module::from_binary (blocking thread)
//!            -> ABI checks -> Linker::instantiate_pre -> Arc<RuleModule> (cached, LRU-bounded)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kmsync_guest_sdk::Hook;
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingAllocationConfig,
};

use super::builtin::{self, BUILTINS};
use super::call::{CallContext, CallState, LogBudget, define_host_functions};
use super::limits::{PAGE, RuleLimits};
use super::load::{self, LoadError};
use super::module::RuleModule;

/// Why the engine could not be created.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `RuleLimits::check` failed.
    #[error("invalid rule limits: {detail}")]
    InvalidLimits {
        /// Which field and why.
        detail: String,
    },
    /// Not called inside a tokio runtime (the epoch ticker is a tokio task).
    #[error("RuleEngine::new must be called inside a tokio runtime")]
    NoRuntime,
    /// Wasmtime refused the configuration (e.g. the host can not reserve pooled memory).
    #[error("the WebAssembly engine could not be created: {detail}")]
    Wasmtime {
        /// Wasmtime's message.
        detail: String,
    },
}

/// Bytes of each pooled linear memory kept resident between calls (reset with `memset`, or
/// only the dirty pages where Linux's `PAGEMAP_SCAN` is available) instead of being returned to
/// the kernel: fresh instances then take no page faults on memory a previous call touched.
const KEEP_RESIDENT: usize = 4 << 20;

/// State shared by the engine and every module it loaded (modules keep it alive, so the
/// ticker runs as long as any module can still be called).
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) limits: RuleLimits,
    pub(crate) observer: std::sync::OnceLock<CallObserver>,
    ticker: tokio::task::JoinHandle<()>,
}

/// Told about every hook call a module of the engine makes: the hook, the error (if any) and
/// what the call used. For metrics; it must not block.
pub type CallObserver = Arc<
    dyn Fn(kmsync_guest_sdk::abi::Hook, Option<&super::CallError>, &super::CallStats) + Send + Sync,
>;

impl Drop for Shared {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

type Slot = Arc<OnceCell<Result<Arc<RuleModule>, LoadError>>>;

struct CacheEntry {
    slot: Slot,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<[u8; 32], CacheEntry>,
    clock: u64,
}

/// The rule host. Cheap to clone (all clones share one engine and cache).
///
/// ```no_run
/// # async fn demo(input: kmsync::rules::TransformInput) -> anyhow::Result<()> {
/// use kmsync::rules::{RuleEngine, RuleLimits};
/// let engine = RuleEngine::new(RuleLimits::default())?;
/// let rule = engine.builtin("jmespath").await?;
/// let result = rule.transform(&input).await?; // key -> SecretBytes
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RuleEngine {
    shared: Arc<Shared>,
    cache: Arc<Mutex<Cache>>,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine")
            .field("limits", &self.shared.limits)
            .field("cached_modules", &self.cached_modules())
            .finish()
    }
}

impl RuleEngine {
    /// Creates the engine and starts its epoch ticker (a tokio task, so this must run inside a
    /// tokio runtime). The pooling allocator reserves `max_concurrent_calls` instance slots.
    ///
    /// Errors: [`EngineError::InvalidLimits`], [`EngineError::NoRuntime`],
    /// [`EngineError::Wasmtime`].
    pub fn new(limits: RuleLimits) -> Result<Self, EngineError> {
        limits
            .check()
            .map_err(|detail| EngineError::InvalidLimits { detail })?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?;

        let slots = limits.max_concurrent_calls;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(slots)
            .total_memories(slots)
            .total_tables(slots)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            // The limiter enforces the cap with a typed error; the pool slot is one page
            // larger so growth past the cap reaches the limiter.
            .max_memory_size((limits.memory_cap() + PAGE) as usize)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let wasmtime_err = |e: wasmtime::Error| EngineError::Wasmtime {
            detail: e.to_string(),
        };
        let engine = Engine::new(&config).map_err(wasmtime_err)?;
        let mut linker = Linker::new(&engine);
        define_host_functions(&mut linker).map_err(wasmtime_err)?;

        let weak = engine.weak();
        let tick = limits.epoch_tick;
        let ticker = handle.spawn(async move {
            let mut interval = tokio::time::interval(tick);
            // Burst would fire missed ticks back to back and stop calls early.
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                linker,
                permits: Arc::new(Semaphore::new(slots as usize)),
                limits,
                observer: std::sync::OnceLock::new(),
                ticker,
            }),
            cache: Arc::new(Mutex::new(Cache::default())),
        })
    }

    /// Sets the observer of every hook call (metrics); only the first one set is kept.
    /// Returns false when one was already set.
    pub fn set_call_observer(&self, observer: CallObserver) -> bool {
        self.shared.observer.set(observer).is_ok()
    }

    /// The limits this engine enforces.
    pub fn limits(&self) -> &RuleLimits {
        &self.shared.limits
    }

    /// Modules (and load failures) currently cached.
    pub fn cached_modules(&self) -> usize {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// Loads a rule module from its wasm bytes (binary format only). The result — module or
    /// error — is cached by sha256: the same bytes compile once, even when loaded concurrently.
    ///
    /// Errors: a [`LoadError`] naming the first check that failed.
    pub async fn load(&self, wasm: &[u8]) -> Result<Arc<RuleModule>, LoadError> {
        load::check_header(wasm, &self.shared.limits)?;
        let digest: [u8; 32] = Sha256::digest(wasm).into();
        self.load_digest(wasm, digest).await
    }

    /// The cached module (or cached load failure) whose wasm has this sha256, if any — e.g.
    /// for rule bundles that name modules by digest. `None` when it was never loaded or has
    /// been evicted; then call [`RuleEngine::load`] with the bytes.
    pub fn get(&self, sha256: &[u8; 32]) -> Option<Result<Arc<RuleModule>, LoadError>> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.get_mut(sha256)?;
        entry.last_used = now;
        entry.slot.get().cloned()
    }

    /// `load` with a digest the caller vouches for (built-ins: computed once from the
    /// embedded bytes).
    async fn load_digest(
        &self,
        wasm: &[u8],
        digest: [u8; 32],
    ) -> Result<Arc<RuleModule>, LoadError> {
        let slot = self.slot(digest);
        let shared = self.shared.clone();
        let result = slot
            .get_or_init(|| async move {
                let bytes = wasm.to_vec();
                match tokio::task::spawn_blocking(move || compile(&shared, &bytes, digest)).await {
                    Ok(r) => r.map(Arc::new),
                    Err(e) => Err(LoadError::Invalid {
                        detail: format!("the compiler thread failed: {e}"),
                    }),
                }
            })
            .await
            .clone();
        self.evict();
        result
    }

    /// The built-in rule `name` (see [`builtin::names`]), loaded through the same cache.
    ///
    /// Errors: [`LoadError::UnknownBuiltin`].
    pub async fn builtin(&self, name: &str) -> Result<Arc<RuleModule>, LoadError> {
        let (wasm, digest) =
            builtin::wasm_and_digest(name).ok_or_else(|| LoadError::UnknownBuiltin {
                name: name.into(),
                known: builtin::names().collect::<Vec<_>>().join(", "),
            })?;
        self.load_digest(wasm, digest).await
    }

    /// Compiles every built-in rule (e.g. at startup, so the first sync does not wait).
    pub async fn preload_builtins(&self) -> Result<(), LoadError> {
        let loads = BUILTINS.iter().map(|(name, _)| self.builtin(name));
        for r in futures::future::join_all(loads).await {
            r?;
        }
        Ok(())
    }

    fn slot(&self, digest: [u8; 32]) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.entry(digest).or_insert_with(|| CacheEntry {
            slot: Arc::new(OnceCell::new()),
            last_used: now,
        });
        entry.last_used = now;
        entry.slot.clone()
    }

    /// Drops least recently used, finished entries while over `max_cached_modules`.
    fn evict(&self) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        while cache.entries.len() > self.shared.limits.max_cached_modules {
            let victim = cache
                .entries
                .iter()
                .filter(|(_, e)| e.slot.initialized())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    cache.entries.remove(&k);
                }
                None => break,
            }
        }
    }
}

/// Validates and compiles (blocking: cranelift runs here).
fn compile(shared: &Arc<Shared>, wasm: &[u8], digest: [u8; 32]) -> Result<RuleModule, LoadError> {
    let metadata = load::read_metadata(wasm)?;
    load::check_declared_memory(wasm, &shared.limits)?;
    let module = Module::from_binary(&shared.engine, wasm).map_err(|e| LoadError::Invalid {
        detail: format!("{e:#}"),
    })?;
    let info = load::check_module(&module, &metadata, wasm.len() as u64, &shared.limits)?;
    let pre = shared
        .linker
        .instantiate_pre(&module)
        .map_err(|e| LoadError::Link {
            detail: e.to_string(),
        })?;
    let export = |name: &str| {
        module
            .get_export_index(name)
            .ok_or_else(|| LoadError::MissingExport { name: name.into() })
    };
    let hooks = metadata
        .hooks
        .iter()
        .map(|h| Ok((*h, export(h.export_name())?)))
        .collect::<Result<_, LoadError>>()?;
    let name: Arc<str> = Arc::from(metadata.name.as_str());
    let ctx = CallContext {
        engine: shared.engine.clone(),
        pre,
        memory: export(kmsync_guest_sdk::abi::MEMORY_EXPORT)?,
        alloc: export(kmsync_guest_sdk::abi::ALLOC_EXPORT)?,
        limits: shared.limits,
        rule: name.clone(),
        budget: Arc::new(LogBudget::new(shared.limits.log_lines_per_second)),
    };
    tracing::debug!(
        rule = %name,
        sha256 = %hex::encode(digest),
        hooks = ?metadata.hooks.iter().map(|h: &Hook| h.export_name()).collect::<Vec<_>>(),
        "rule module compiled"
    );
    Ok(RuleModule {
        name,
        sha256: digest,
        metadata,
        info,
        ctx,
        hooks,
        shared: shared.clone(),
    })
}
