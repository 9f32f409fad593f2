//! Logging from a rule: lines go to the host's log (tracing), tagged with the rule's name.
//!
//! The host caps each line (1 KiB by default), the lines per call (32) and the lines per second
//! per rule; excess lines are dropped and counted. Never log secret values: the input envelope
//! holds them, the log does not need them.
//!
//! On native targets (`cargo test`) lines are printed to stderr and kept in a per-thread buffer
//! that [`crate::testing::take_logs`] returns.

/// Log level, as passed to the host import `kmsync.log(level, ptr, len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum Level {
    /// Something failed.
    Error = 1,
    /// Something looks wrong.
    Warn = 2,
    /// Normal operation.
    Info = 3,
    /// Detail for rule authors.
    Debug = 4,
}

impl Level {
    /// The wire number (1 = error ... 4 = debug).
    pub fn as_u32(self) -> u32 {
        self as u32
    }

    /// Parses the wire number; anything unknown is `Info`.
    pub fn from_u32(level: u32) -> Level {
        match level {
            1 => Level::Error,
            2 => Level::Warn,
            4 => Level::Debug,
            _ => Level::Info,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// Sends one line to the host log.
pub fn log(level: Level, message: &str) {
    imp::log(level, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// `format!`-style logging: `log!(Level::Info, "kept {} keys", n)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::log($level, &::std::format!($($arg)+))
    };
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::Level;

    #[link(wasm_import_module = "kmsync")]
    unsafe extern "C" {
        #[link_name = "log"]
        fn kmsync_log(level: u32, ptr: *const u8, len: usize);
    }

    pub(super) fn log(level: Level, message: &str) {
        // SAFETY: the host reads `len` bytes at `ptr` from our memory and keeps no reference.
        unsafe { kmsync_log(level.as_u32(), message.as_ptr(), message.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::Level;
    use std::cell::RefCell;

    thread_local! {
        pub(crate) static CAPTURED: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn log(level: Level, message: &str) {
        eprintln!("[rule {}] {message}", level.as_str());
        CAPTURED.with(|c| c.borrow_mut().push((level, message.to_owned())));
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn take_captured() -> Vec<(Level, String)> {
    imp::CAPTURED.with(|c| std::mem::take(&mut *c.borrow_mut()))
}
