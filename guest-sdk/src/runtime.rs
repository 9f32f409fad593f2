//! The glue between the ABI and typed hook functions. Used by the code [`crate::rule!`]
//! generates; not a public API (hidden from docs, may change without notice).
//!
//! Calling convention (see `docs/rules-abi.md`): the host calls `kmsync_alloc(len)`, writes the
//! input JSON there, then calls the hook with `(ptr, len)`. The hook returns an `i64` whose high
//! 32 bits are the pointer and low 32 bits the length of the envelope JSON it wrote. Every call
//! runs in a fresh instance, so nothing is ever freed.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{Envelope, RuleError, ValidateConfigInput, ValidateConfigOutput};

/// Describes a serde_json error without quoting the document (which may hold secret values):
/// syntax errors keep serde's text, shape errors only say where.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => e.to_string(),
        Category::Data => format!(
            "JSON does not have the expected shape (line {} column {})",
            e.line(),
            e.column()
        ),
    }
}

/// Parses `input` as `I`, runs `f`, and serialises the envelope.
pub fn dispatch<I, O>(input: &[u8], f: impl FnOnce(I) -> Result<O, RuleError>) -> Vec<u8>
where
    I: DeserializeOwned,
    O: Serialize,
{
    let envelope = match serde_json::from_slice::<I>(input) {
        Ok(i) => match f(i) {
            Ok(o) => Envelope::Ok(o),
            Err(e) => Envelope::Error(e),
        },
        Err(e) => Envelope::Error(RuleError::invalid_input(format!(
            "hook input: {}",
            describe_json_error(&e)
        ))),
    };
    serde_json::to_vec(&envelope).unwrap_or_else(|_| {
        br#"{"error":{"code":"internal","message":"the rule's output could not be serialised"}}"#
            .to_vec()
    })
}

/// `dispatch` for `validate_config`, whose typed function takes just the config.
pub fn dispatch_validate(
    input: &[u8],
    f: fn(serde_json::Value) -> Result<(), RuleError>,
) -> Vec<u8> {
    dispatch(input, |i: ValidateConfigInput| {
        f(i.config).map(|()| ValidateConfigOutput {})
    })
}

/// Copies a `&str` into a fixed-size array (for the metadata custom section).
pub const fn metadata_bytes<const N: usize>(s: &str) -> [u8; N] {
    let b = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    #[link(wasm_import_module = "kmsync")]
    unsafe extern "C" {
        #[link_name = "panic"]
        fn kmsync_panic(ptr: *const u8, len: usize);
    }

    /// Installs the panic hook that reports the message to the host before the trap.
    pub fn install_panic_hook() {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload_as_str().unwrap_or("Box<dyn Any>");
            let msg = match info.location() {
                Some(l) => format!("{payload} (at {}:{}:{})", l.file(), l.line(), l.column()),
                None => payload.to_owned(),
            };
            // SAFETY: the host copies `len` bytes at `ptr` and then stops the call.
            unsafe { kmsync_panic(msg.as_ptr(), msg.len()) }
        }));
    }

    /// `kmsync_alloc`: `len` writable bytes that stay valid for the rest of the call.
    pub fn alloc(len: usize) -> *mut u8 {
        let mut v = Vec::<u8>::with_capacity(len);
        let p = v.as_mut_ptr();
        std::mem::forget(v);
        p
    }

    /// Packs an output buffer as the hook's `i64` result (`ptr << 32 | len`); leaks it on purpose.
    pub fn finish(out: Vec<u8>) -> u64 {
        let out = out.leak();
        ((out.as_ptr() as usize as u64) << 32) | out.len() as u64
    }

    /// The input bytes the host wrote at `ptr`.
    ///
    /// # Safety
    /// `ptr..ptr+len` must be the buffer the host filled after calling `kmsync_alloc(len)`.
    pub unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
        if len == 0 {
            return &[];
        }
        // SAFETY: guaranteed by the caller (the ABI).
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::*;
