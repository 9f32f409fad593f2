//! Test-only rule (built by `host/build.rs`, never shipped): a Rust guest, compiled with the
//! SDK, that misbehaves on request so the host tests can check the SDK's panic hook, real
//! allocator failures, log caps and deadlines end to end.
//!
//! Config of `transform`: `{"panic": "message"}`, `{"allocate": bytes}`, `{"spin": true}`,
//! `{"log": lines}`, `{"output": bytes}` (a value that size under key `big`), or nothing
//! (echo the secret under key `echo`).

use kmsync_guest_sdk::{DataValue, RuleError, TransformInput, TransformOutput, log, rule};

fn transform(input: TransformInput) -> Result<TransformOutput, RuleError> {
    let config = &input.config;
    if let Some(message) = config.get("panic").and_then(|v| v.as_str()) {
        panic!("{message}");
    }
    let mut out = TransformOutput::default();
    if let Some(bytes) = config.get("allocate").and_then(|v| v.as_u64()) {
        let v = vec![7u8; bytes as usize];
        out.data
            .insert("allocated".into(), DataValue::text(v.len().to_string()));
    }
    if config.get("spin").is_some() {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    if let Some(lines) = config.get("log").and_then(|v| v.as_u64()) {
        for i in 0..lines {
            log::info(&format!("line {i}"));
        }
    }
    if let Some(bytes) = config.get("output").and_then(|v| v.as_u64()) {
        out.data
            .insert("big".into(), DataValue::text("x".repeat(bytes as usize)));
    }
    if out.data.is_empty() {
        out.data
            .insert("echo".into(), DataValue::text(input.secret.data.expose()));
    }
    Ok(out)
}

rule! {
    name: "hostile",
    description: "Test rule that panics, allocates, spins or logs on request",
    hooks: { transform: transform },
}
