//! The built-in rules, compiled to wasm by `host/build.rs` and embedded in the binary.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// Names of the built-in rules (`jmespath`, `extract`, `filter`, `rotate-default`,
/// `managed-credentials`), sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(name, _)| *name)
}

/// The wasm bytes of built-in rule `name`.
pub fn wasm(name: &str) -> Option<&'static [u8]> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, w)| *w)
}

/// The wasm bytes and sha256 of built-in rule `name` (the digest is computed once per process,
/// so looking a built-in up in the module cache does not hash 200-300 KB each time).
pub(crate) fn wasm_and_digest(name: &str) -> Option<(&'static [u8], [u8; 32])> {
    static DIGESTS: OnceLock<Vec<[u8; 32]>> = OnceLock::new();
    let digests = DIGESTS.get_or_init(|| {
        BUILTINS
            .iter()
            .map(|(_, w)| Sha256::digest(w).into())
            .collect()
    });
    let i = BUILTINS.iter().position(|(n, _)| *n == name)?;
    Some((BUILTINS[i].1, digests[i]))
}
