#!/usr/bin/env bash
# The whole kmsync test suite, exactly as CI runs it. Safe to run on a fresh machine:
# it installs what the tests need (the wasm32 Rust target, a Python venv with the official SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup target add wasm32-unknown-unknown
rustup component add clippy rustfmt >/dev/null 2>&1 || true

step "kubectl"
# The fake kube-apiserver's tests run the real kubectl (shipped in the machine image). Fail
# here, loudly, rather than deep inside a test if it is missing.
if ! command -v "${KUBECTL:-kubectl}" >/dev/null 2>&1; then
    echo "kubectl not found: the fake kube-apiserver tests need it (set KUBECTL or install kubectl 1.32+)" >&2
    exit 1
fi
"${KUBECTL:-kubectl}" version --client

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked
