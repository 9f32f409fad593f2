//! The built-in rules, compiled to wasm by `host/build.rs` and embedded in the binary.

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
