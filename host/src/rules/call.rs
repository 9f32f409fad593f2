//! One hook call in a fresh `Store`: limits, host functions, and the typed [`CallError`].
//!
//! ```text
//! Store::new (CallState: limiter, logs)  ->  InstancePre::instantiate
//!   -> kmsync_alloc(len) -> write input -> hook(ptr, len) -> i64 (ptr << 32 | len)
//!   -> copy the envelope out (<= output_bytes)  -> Store dropped (instance slot returned)
//! ```
//! Runs on a blocking thread (see `module.rs`); never on the async executor.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kmsync_guest_sdk::Hook;
use kmsync_guest_sdk::log::Level;
use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, ModuleExport, Store, Trap};
use zeroize::Zeroizing;

use super::limits::RuleLimits;

/// Why a hook call failed. Every message names the rule; none contains secret values (guest
/// panic and error messages are the rule author's text, capped in length).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The module does not implement the hook.
    #[error("rule {rule} does not implement the {hook} hook")]
    HookNotImplemented {
        /// Rule name.
        rule: Arc<str>,
        /// The hook asked for.
        hook: Hook,
    },
    /// The epoch deadline passed.
    #[error("rule {rule} exceeded its {} ms deadline", .deadline.as_millis())]
    Timeout {
        /// Rule name.
        rule: Arc<str>,
        /// The deadline.
        deadline: Duration,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("rule {rule} ran out of memory (limit {} MiB)", .limit_bytes >> 20)]
    OutOfMemory {
        /// Rule name.
        rule: Arc<str>,
        /// The limit, bytes.
        limit_bytes: u64,
    },
    /// The guest panicked (message reported by the SDK's panic hook).
    #[error("rule {rule} panicked: {message}")]
    Panic {
        /// Rule name.
        rule: Arc<str>,
        /// The panic message (at most 4 KiB).
        message: String,
    },
    /// The guest trapped without a panic message (e.g. `unreachable`, stack overflow).
    #[error("rule {rule} trapped: {trap}")]
    Trap {
        /// Rule name.
        rule: Arc<str>,
        /// Wasmtime's trap description.
        trap: String,
    },
    /// The envelope is larger than `RuleLimits::output_bytes`.
    #[error("rule {rule} returned {bytes} bytes from {hook}, over the limit of {limit} bytes")]
    OutputTooLarge {
        /// Rule name.
        rule: Arc<str>,
        /// The hook.
        hook: Hook,
        /// Output size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The output is not a valid envelope of the hook's output type.
    #[error("rule {rule} returned an invalid {hook} result: {detail}")]
    BadOutput {
        /// Rule name.
        rule: Arc<str>,
        /// The hook.
        hook: Hook,
        /// What is wrong (JSON position, field; never values).
        detail: String,
    },
    /// The rule returned an error envelope.
    #[error("rule {rule} failed: {code}: {message}")]
    Rule {
        /// Rule name.
        rule: Arc<str>,
        /// The rule's error code (at most 64 bytes).
        code: String,
        /// The rule's message (at most 1 KiB).
        message: String,
    },
    /// `transform` produced a key Kubernetes would reject.
    #[error(
        "rule {rule} produced the Secret key {key:?}, which is not valid ([-._a-zA-Z0-9]+, at most 253 characters)"
    )]
    InvalidKey {
        /// Rule name.
        rule: Arc<str>,
        /// The key, cut to 64 characters.
        key: String,
    },
    /// `filter` kept a key that was not in its input.
    #[error("rule {rule} kept the key {key:?}, which was not among the keys it was given")]
    UnknownKey {
        /// Rule name.
        rule: Arc<str>,
        /// The key, cut to 64 characters.
        key: String,
    },
    /// The guest's allocator did not give room for the input.
    #[error("rule {rule} could not take an input of {bytes} bytes (its allocator failed)")]
    InputRejected {
        /// Rule name.
        rule: Arc<str>,
        /// Input size.
        bytes: u64,
    },
    /// Instantiation or another engine step failed.
    #[error("rule {rule} could not be run: {detail}")]
    Engine {
        /// Rule name.
        rule: Arc<str>,
        /// Wasmtime's message.
        detail: String,
    },
    /// The input could not be serialised (a host bug).
    #[error("rule {rule}: the {hook} input could not be serialised")]
    Input {
        /// Rule name.
        rule: Arc<str>,
        /// The hook.
        hook: Hook,
    },
}

impl CallError {
    /// The variant name in snake_case (metrics labels; `kind` in case files).
    pub fn metric_label(&self) -> &'static str {
        match self {
            CallError::HookNotImplemented { .. } => "hook_not_implemented",
            CallError::Timeout { .. } => "timeout",
            CallError::OutOfMemory { .. } => "out_of_memory",
            CallError::Panic { .. } => "panic",
            CallError::Trap { .. } => "trap",
            CallError::OutputTooLarge { .. } => "output_too_large",
            CallError::BadOutput { .. } => "bad_output",
            CallError::Rule { .. } => "rule",
            CallError::InvalidKey { .. } => "invalid_key",
            CallError::UnknownKey { .. } => "unknown_key",
            CallError::InputRejected { .. } => "input_rejected",
            CallError::Engine { .. } => "engine",
            CallError::Input { .. } => "input",
        }
    }

    /// Cuts the text a rule's author controls — the message of an error envelope, a panic
    /// message — to at most `max_chars` characters (`…` marks a cut). The controller does this
    /// before such text reaches conditions, Events and logs: a careless rule could quote the
    /// secret value it was given.
    pub fn limit_author_text(&mut self, max_chars: usize) {
        if let CallError::Rule { message, .. } | CallError::Panic { message, .. } = self {
            cut_chars(message, max_chars);
        }
    }

    /// The rule's own error code, for [`CallError::Rule`].
    pub fn rule_code(&self) -> Option<&str> {
        match self {
            CallError::Rule { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// One guest log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestLog {
    /// Level the guest gave.
    pub level: Level,
    /// The text (lossy UTF-8, cut to `RuleLimits::log_line_bytes`).
    pub message: String,
}

/// What a call used, for `kmsync rules run` and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Wall time of the call on its thread: Store, instantiation, hook, output copy.
    pub duration: Duration,
    /// CPU time of the same span (the thread's own CPU clock; equal to `duration` minus
    /// time the thread waited for a CPU). Zero where the platform has no thread clock.
    pub cpu_time: Duration,
    /// Largest linear memory size reached, in bytes.
    pub peak_memory_bytes: u64,
    /// Size of the input document, in bytes.
    pub input_bytes: u64,
    /// Size of the output envelope, in bytes (0 when there was none).
    pub output_bytes: u64,
    /// Log lines kept (at most `RuleLimits::log_lines_per_call`).
    pub logs: Vec<GuestLog>,
    /// Log lines dropped over the per-call cap.
    pub dropped_logs: u32,
}

/// A token bucket limiting the guest log lines of one module that reach tracing.
#[derive(Debug)]
pub(crate) struct LogBudget {
    state: Mutex<(f64, Instant, u64)>,
    per_second: f64,
    burst: f64,
}

impl LogBudget {
    pub(crate) fn new(per_second: u32) -> Self {
        let burst = f64::from(per_second) * 5.0;
        Self {
            state: Mutex::new((burst, Instant::now(), 0)),
            per_second: f64::from(per_second),
            burst,
        }
    }

    /// Takes one token; returns `Some(suppressed)` (lines dropped since the last success)
    /// when the line may be emitted.
    fn take(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.per_second;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            Some(std::mem::take(&mut s.2))
        } else {
            s.2 = s.2.saturating_add(1);
            None
        }
    }
}

/// Marker error: a memory growth past the limit (returned from the limiter, so the call traps
/// at once).
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached")]
struct MemoryLimitHit;

/// Marker error: the guest reported a panic through `kmsync.panic`.
#[derive(Debug, thiserror::Error)]
#[error("guest panicked")]
struct GuestPanicked;

/// Marker error: a host function got a pointer outside the guest's memory.
#[derive(Debug, thiserror::Error)]
#[error("a kmsync.{0} call passed a buffer outside the module's memory")]
struct BadGuestPointer(&'static str);

/// Store data of one call.
pub(crate) struct CallState {
    memory_cap: u64,
    peak_memory: u64,
    memory_hit: bool,
    panic: Option<String>,
    logs: Vec<GuestLog>,
    dropped_logs: u32,
    limits: RuleLimits,
    rule: Arc<str>,
    budget: Arc<LogBudget>,
}

impl wasmtime::ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory_cap {
            self.memory_hit = true;
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        self.peak_memory = self.peak_memory.max(desired as u64);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Cuts `text` to at most `max_chars` characters, marking a cut with `…`.
pub fn cut_chars(text: &mut String, max_chars: usize) {
    if let Some((cut, _)) = text.char_indices().nth(max_chars) {
        text.truncate(cut);
        text.push('…');
    }
}

/// Truncates to at most `max` bytes on a char boundary.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

fn guest_bytes(data: &[u8], ptr: i32, len: i32, cap: usize) -> Option<(&[u8], bool)> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    let end = ptr.checked_add(len)?;
    if end > data.len() {
        return None;
    }
    Some((&data[ptr..ptr + len.min(cap)], len > cap))
}

fn memory_of(caller: &mut Caller<'_, CallState>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

/// Defines the `kmsync` host functions (ABI v1: `log`, `panic`).
pub(crate) fn define_host_functions(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "kmsync",
        "log",
        |mut caller: Caller<'_, CallState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let memory = memory_of(&mut caller)
                .ok_or_else(|| wasmtime::Error::new(BadGuestPointer("log")))?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            if state.logs.len() >= state.limits.log_lines_per_call {
                state.dropped_logs = state.dropped_logs.saturating_add(1);
                return Ok(());
            }
            let (bytes, cut) = guest_bytes(data, ptr, len, state.limits.log_line_bytes)
                .ok_or_else(|| wasmtime::Error::new(BadGuestPointer("log")))?;
            let mut message = String::from_utf8_lossy(bytes).into_owned();
            if cut {
                message = truncate(message, state.limits.log_line_bytes);
                if !message.ends_with('…') {
                    message.push('…');
                }
            }
            let level = Level::from_u32(level as u32);
            if state.limits.log_to_host
                && let Some(suppressed) = state.budget.take()
            {
                emit(&state.rule, level, &message, suppressed);
            }
            state.logs.push(GuestLog { level, message });
            Ok(())
        },
    )?;
    linker.func_wrap(
        "kmsync",
        "panic",
        |mut caller: Caller<'_, CallState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            const MAX: usize = 4096;
            let memory = memory_of(&mut caller)
                .ok_or_else(|| wasmtime::Error::new(BadGuestPointer("panic")))?;
            let (data, state) = memory.data_and_store_mut(&mut caller);
            let (bytes, _) = guest_bytes(data, ptr, len, MAX)
                .ok_or_else(|| wasmtime::Error::new(BadGuestPointer("panic")))?;
            state.panic = Some(truncate(String::from_utf8_lossy(bytes).into_owned(), MAX));
            Err(wasmtime::Error::new(GuestPanicked))
        },
    )?;
    Ok(())
}

fn emit(rule: &str, level: Level, message: &str, suppressed: u64) {
    const TARGET: &str = "kmsync::rules::guest";
    if suppressed > 0 {
        tracing::warn!(target: TARGET, rule, suppressed, "guest log lines were rate-limited");
    }
    match level {
        Level::Error => tracing::error!(target: TARGET, rule, "{message}"),
        Level::Warn => tracing::warn!(target: TARGET, rule, "{message}"),
        Level::Info => tracing::info!(target: TARGET, rule, "{message}"),
        Level::Debug => tracing::debug!(target: TARGET, rule, "{message}"),
    }
}

/// Everything a call needs; cheap to clone into a blocking task.
#[derive(Clone)]
pub(crate) struct CallContext {
    pub(crate) engine: Engine,
    pub(crate) pre: InstancePre<CallState>,
    pub(crate) memory: ModuleExport,
    pub(crate) alloc: ModuleExport,
    pub(crate) limits: RuleLimits,
    pub(crate) rule: Arc<str>,
    pub(crate) budget: Arc<LogBudget>,
}

/// Runs `hook` with `input` and returns the raw envelope bytes (zeroed on drop).
pub(crate) fn run(
    ctx: &CallContext,
    hook: Hook,
    export: &ModuleExport,
    input: &[u8],
) -> (Result<Zeroizing<Vec<u8>>, CallError>, CallStats) {
    let start = Instant::now();
    let cpu_start = thread_cpu_time();
    let mut store = Store::new(
        &ctx.engine,
        CallState {
            memory_cap: ctx.limits.memory_cap(),
            peak_memory: 0,
            memory_hit: false,
            panic: None,
            logs: Vec::new(),
            dropped_logs: 0,
            limits: ctx.limits,
            rule: ctx.rule.clone(),
            budget: ctx.budget.clone(),
        },
    );
    store.limiter(|s| s);
    store.set_epoch_deadline(ctx.limits.deadline_ticks());
    store.epoch_deadline_trap();

    let result = call_in_store(ctx, &mut store, hook, export, input);
    let state = store.into_data();
    let stats = CallStats {
        duration: start.elapsed(),
        cpu_time: thread_cpu_time().saturating_sub(cpu_start),
        peak_memory_bytes: state.peak_memory,
        input_bytes: input.len() as u64,
        output_bytes: result.as_ref().map_or(0, |o| o.len() as u64),
        logs: state.logs,
        dropped_logs: state.dropped_logs,
    };
    let result = result.map_err(|e| classify(ctx, e, state.memory_hit, state.panic));
    (result, stats)
}

/// CPU time consumed by the calling thread so far.
#[cfg(unix)]
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_THREAD_CPUTIME_ID needs no other state.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(not(unix))]
fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// A failure inside the store, classified after the store's state is known.
enum Failure {
    Wasm(wasmtime::Error),
    Call(CallError),
}

fn call_in_store(
    ctx: &CallContext,
    store: &mut Store<CallState>,
    hook: Hook,
    export: &ModuleExport,
    input: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let rule = &ctx.rule;
    let instance = ctx.pre.instantiate(&mut *store).map_err(Failure::Wasm)?;
    let func = |store: &mut Store<CallState>, e: &ModuleExport| {
        instance
            .get_module_export(&mut *store, e)
            .and_then(Extern::into_func)
    };
    let memory = instance
        .get_module_export(&mut *store, &ctx.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| Failure::Call(engine_error(rule, "the memory export is missing")))?;
    let alloc = func(store, &ctx.alloc)
        .ok_or_else(|| Failure::Call(engine_error(rule, "kmsync_alloc is missing")))?
        .typed::<i32, i32>(&*store)
        .map_err(Failure::Wasm)?;
    let hook_fn = func(store, export)
        .ok_or_else(|| Failure::Call(engine_error(rule, "the hook export is missing")))?
        .typed::<(i32, i32), i64>(&*store)
        .map_err(Failure::Wasm)?;

    let len = i32::try_from(input.len()).map_err(|_| {
        Failure::Call(CallError::InputRejected {
            rule: rule.clone(),
            bytes: input.len() as u64,
        })
    })?;
    let ptr = alloc.call(&mut *store, len).map_err(Failure::Wasm)?;
    let rejected = || {
        Failure::Call(CallError::InputRejected {
            rule: rule.clone(),
            bytes: input.len() as u64,
        })
    };
    if ptr == 0 && len > 0 {
        return Err(rejected());
    }
    memory
        .write(&mut *store, ptr as u32 as usize, input)
        .map_err(|_| rejected())?;

    let packed = hook_fn
        .call(&mut *store, (ptr, len))
        .map_err(Failure::Wasm)? as u64;
    let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if out_len as u64 > ctx.limits.output_bytes {
        return Err(Failure::Call(CallError::OutputTooLarge {
            rule: rule.clone(),
            hook,
            bytes: out_len as u64,
            limit: ctx.limits.output_bytes,
        }));
    }
    let data = memory.data(&*store);
    let bytes = out_ptr
        .checked_add(out_len)
        .filter(|&end| end <= data.len())
        .map(|end| &data[out_ptr..end])
        .ok_or_else(|| {
            Failure::Call(CallError::BadOutput {
                rule: rule.clone(),
                hook,
                detail: format!(
                    "the result points outside the module's memory (offset {out_ptr}, {out_len} bytes)"
                ),
            })
        })?;
    Ok(Zeroizing::new(bytes.to_vec()))
}

fn engine_error(rule: &Arc<str>, detail: &str) -> CallError {
    CallError::Engine {
        rule: rule.clone(),
        detail: detail.into(),
    }
}

fn classify(
    ctx: &CallContext,
    failure: Failure,
    memory_hit: bool,
    panic: Option<String>,
) -> CallError {
    let rule = ctx.rule.clone();
    let e = match failure {
        Failure::Call(e) => return e,
        Failure::Wasm(e) => e,
    };
    if memory_hit || e.is::<MemoryLimitHit>() {
        return CallError::OutOfMemory {
            rule,
            limit_bytes: ctx.limits.memory_cap(),
        };
    }
    if let Some(message) = panic {
        return CallError::Panic { rule, message };
    }
    if let Some(bad) = e.downcast_ref::<BadGuestPointer>() {
        return CallError::Trap {
            rule,
            trap: bad.to_string(),
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout {
            rule,
            deadline: ctx.limits.deadline,
        },
        Some(trap) => {
            let text = trap.to_string();
            CallError::Trap {
                rule,
                trap: text.strip_prefix("wasm trap: ").unwrap_or(&text).to_owned(),
            }
        }
        None => CallError::Engine {
            rule,
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_budget_allows_a_burst_then_counts_what_it_suppresses() {
        let budget = LogBudget::new(1);
        for _ in 0..5 {
            assert_eq!(budget.take(), Some(0));
        }
        assert_eq!(budget.take(), None);
        assert_eq!(budget.take(), None);
        // Simulate time passing: the next allowed line reports the two suppressed ones.
        budget.state.lock().unwrap().1 -= Duration::from_secs(2);
        assert_eq!(budget.take(), Some(2));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("héllo".into(), 2), "h…");
        assert_eq!(truncate("abc".into(), 3), "abc");
    }

    #[test]
    fn guest_buffers_outside_memory_are_refused() {
        let mem = [1u8, 2, 3, 4];
        assert_eq!(guest_bytes(&mem, 1, 2, 10), Some((&mem[1..3], false)));
        assert_eq!(guest_bytes(&mem, 0, 4, 2), Some((&mem[0..2], true)));
        assert_eq!(guest_bytes(&mem, 3, 2, 10), None);
        assert_eq!(guest_bytes(&mem, -1, 2, 10), None);
    }
}
