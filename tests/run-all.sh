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

step "cargo test"
cargo test --workspace --locked

step "CRD CEL rules (evaluated with cel-python, no API server needed)"
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check cel-python==0.5.0 pyyaml==6.0.4
.venv/bin/python host/tests/crd-cel/check.py charts/kmsync/crds/kmsync-crds.yaml

step "Helm chart: render, strict lint, values schema, Kubernetes 1.33 API schemas (tests/chart)"
# The real Helm library (helm-python-sdk, no helm binary) and kubernetes-validate, in the same venv.
# The flag-contract tests run `kmsync controller ... --help` from the debug build.
cargo build -p kmsync --locked
target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/chart/requirements.txt
KMSYNC_BIN="$target_dir/debug/kmsync" .venv/bin/python -m pytest -q -p no:cacheprovider tests/chart
