#!/usr/bin/env bash
# The whole kmsync test suite, exactly as CI runs it. Safe to run on a fresh machine:
# it installs what the tests need (the wasm32 Rust target, a Python venv with the official SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup target add wasm32-unknown-unknown
rustup component add clippy rustfmt >/dev/null 2>&1 || true

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy (rule guests, wasm32)"
# The wasm32-only parts of the guest SDK (exports, panic hook, host imports) and the rules.
cargo clippy --locked --target wasm32-unknown-unknown \
  -p kmsync-guest-sdk -p kmsync-rule-jmespath -p kmsync-rule-extract -p kmsync-rule-filter \
  -p kmsync-rule-rotate-default -p kmsync-rule-managed-credentials \
  -p kmsync-example-connection-string -p kmsync-test-hostile-rule -- -D warnings

step "cargo test"
cargo test --workspace --locked
