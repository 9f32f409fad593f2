//! The WebAssembly rule host (rule ABI v1, `docs/rules-abi.md`).
//!
//! Rule modules decide what lands in a Secret: `transform` (KMS secret -> Secret data),
//! `filter` (which keys stay), `rotate` (roll a new version out now or later) and
//! `validate_config`. They run sandboxed: no WASI, imports only from `kmsync` (`log`,
//! `panic`), a fresh instance per call, a deadline, a memory cap, an output cap, and a bound on
//! concurrent calls. A broken module fails only the calls that use it.
//!
//! ```text
//! RuleEngine::new(limits)            one wasmtime Engine (pooling, epoch interruption),
//!    |                               epoch ticker task, call semaphore, module cache
//!    |-- load(wasm) / builtin(name) -> Arc<RuleModule>   (compiled once per sha256)
//!                                          |
//!          transform / filter / rotate / validate_config (async; runs on a blocking thread)
//!                                          |
//!                       Result<typed output, CallError>  (timeout, OOM, panic, rule error, ...)
//! ```
//!
//! The JSON shapes are the guest SDK's types, re-exported here (one definition for both sides).

pub mod builtin;
mod call;
pub mod cases;
mod engine;
pub mod envelope;
mod limits;
mod load;
mod module;

pub use call::{CallError, CallStats, GuestLog, cut_chars};
pub use engine::{CallObserver, EngineError, RuleEngine};
pub use kmsync_guest_sdk::abi::{
    CandidateVersion, Context, DataType, DataValue, FilterInput, FilterOutput, Hook, Item,
    Metadata, RotateAction, RotateDecision, RotateInput, SecretInput, SyncedVersion,
    TransformInput, TransformOutput, ValidateConfigInput,
};
pub use kmsync_guest_sdk::{SecretValue, log::Level};
pub use limits::RuleLimits;
pub use load::{LoadError, ModuleInfo};
pub use module::{MAX_REQUEUE_SECONDS, RawCall, RuleModule, TransformResult};

/// Reads a module's metadata section without compiling it (for listings).
///
/// Errors: [`LoadError::NotWasm`] and the other header errors, [`LoadError::MissingMetadata`],
/// [`LoadError::BadMetadata`], [`LoadError::UnsupportedAbi`].
pub fn read_metadata(wasm: &[u8]) -> Result<Metadata, LoadError> {
    load::check_header(
        wasm,
        &RuleLimits {
            max_module_bytes: u64::MAX,
            ..RuleLimits::default()
        },
    )?;
    load::read_metadata(wasm)
}
