//! [`RuleLimits`]: what one rule call may use, and how much the engine keeps.

use std::time::Duration;

/// Limits for every rule call and for the engine's caches. `Default` gives the documented
/// defaults; [`RuleLimits::check`] rejects inconsistent values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleLimits {
    /// Wall-clock deadline of one hook call, instantiation included. Default 100 ms.
    pub deadline: Duration,
    /// Period of the epoch ticker that enforces `deadline`; a call is stopped between
    /// `deadline` and `deadline + epoch_tick` after it starts. Default 10 ms.
    pub epoch_tick: Duration,
    /// Largest linear memory of one call, in bytes (rounded down to 64 KiB pages). Default 32 MiB.
    pub memory_bytes: u64,
    /// Largest hook output envelope, in bytes. Default 1 MiB (the size limit of a Secret).
    pub output_bytes: u64,
    /// Rule calls running at once (each holds one pooled instance slot). Default: the number of
    /// CPUs, at least 2.
    pub max_concurrent_calls: u32,
    /// Compiled modules kept in the cache (least recently used are evicted). Default 64.
    pub max_cached_modules: usize,
    /// Largest module accepted by `load`, in bytes. Default 16 MiB.
    pub max_module_bytes: u64,
    /// Longest guest log line kept, in bytes (longer lines are cut). Default 1024.
    pub log_line_bytes: usize,
    /// Guest log lines kept per call; later lines are counted and dropped. Default 32.
    pub log_lines_per_call: usize,
    /// Guest log lines per second per module that reach the host log (burst: 5 seconds'
    /// worth); the rest are counted and reported as suppressed. Default 20.
    pub log_lines_per_second: u32,
    /// Whether guest log lines reach the host log (`tracing`, target `kmsync::rules::guest`).
    /// They are kept in [`CallStats::logs`](super::CallStats::logs) either way. A rule's log
    /// text is written by its author and may quote the data it was given, so the controller
    /// turns this off unless `--rule-logs`; local commands (`kmsync rules`, `render`) keep it.
    /// Default true.
    pub log_to_host: bool,
}

impl Default for RuleLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        Self {
            deadline: Duration::from_millis(100),
            epoch_tick: Duration::from_millis(10),
            memory_bytes: 32 << 20,
            output_bytes: 1 << 20,
            max_concurrent_calls: cpus.max(2),
            max_cached_modules: 64,
            max_module_bytes: 16 << 20,
            log_line_bytes: 1024,
            log_lines_per_call: 32,
            log_lines_per_second: 20,
            log_to_host: true,
        }
    }
}

/// The WebAssembly page size.
pub(crate) const PAGE: u64 = 64 << 10;

impl RuleLimits {
    /// Checks the limits are usable; the error names the field.
    pub fn check(&self) -> Result<(), String> {
        if self.epoch_tick.is_zero() || self.epoch_tick > self.deadline {
            return Err("epoch_tick must be non-zero and at most deadline".into());
        }
        if self.deadline > Duration::from_secs(60) {
            return Err("deadline must be at most 60 s".into());
        }
        if self.memory_bytes < 2 * PAGE || self.memory_bytes > 4 << 30 {
            return Err("memory_bytes must be between 128 KiB and 4 GiB".into());
        }
        if self.output_bytes == 0 || self.output_bytes >= self.memory_bytes {
            return Err("output_bytes must be non-zero and below memory_bytes".into());
        }
        if self.max_concurrent_calls == 0 || self.max_concurrent_calls > 1024 {
            return Err("max_concurrent_calls must be between 1 and 1024".into());
        }
        if self.max_cached_modules == 0 {
            return Err("max_cached_modules must be at least 1".into());
        }
        if self.max_module_bytes < 8 {
            return Err("max_module_bytes must be at least 8".into());
        }
        if self.log_line_bytes == 0 {
            return Err("log_line_bytes must be non-zero".into());
        }
        Ok(())
    }

    /// Epoch ticks a call may run: enough that it is never stopped before `deadline`.
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        (self.deadline.as_nanos().div_ceil(tick) as u64) + 1
    }

    /// `memory_bytes` rounded down to whole pages.
    pub(crate) fn memory_cap(&self) -> u64 {
        self.memory_bytes / PAGE * PAGE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_documentation() {
        let l = RuleLimits::default();
        assert_eq!(l.check(), Ok(()));
        assert_eq!(l.deadline, Duration::from_millis(100));
        assert_eq!(l.memory_bytes, 32 * 1024 * 1024);
        assert_eq!(l.deadline_ticks(), 11);
    }

    #[test]
    fn inconsistent_limits_name_the_field() {
        let l = RuleLimits {
            epoch_tick: Duration::from_millis(200),
            ..Default::default()
        };
        assert!(l.check().unwrap_err().contains("epoch_tick"));
        let l = RuleLimits {
            output_bytes: 64 << 20,
            ..Default::default()
        };
        assert!(l.check().unwrap_err().contains("output_bytes"));
    }
}
