#!/usr/bin/env bash
# The whole kmsync test suite, exactly as CI runs it. Safe to run on a fresh machine:
# it installs what the tests need (the wasm32 Rust target, a Python venv with the official SDKs).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup target add wasm32-unknown-unknown
rustup component add clippy rustfmt >/dev/null 2>&1 || true

step "python venv (official Alibaba Cloud SDKs, pytest, cel-python)"
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  # Debian splits venv/ensurepip into python3-venv.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "python3 lacks venv/ensurepip; install python3-venv" >&2
    exit 1
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -r tests/conformance/requirements.txt -r host/tests/crd-cel/requirements.txt \
  -r tests/chart/requirements.txt

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

step "clippy (rule guests, wasm32)"
# The wasm32-only parts of the guest SDK (exports, panic hook, host imports) and the rules.
cargo clippy --locked --target wasm32-unknown-unknown \
  -p kmsync-guest-sdk -p kmsync-rule-jmespath -p kmsync-rule-extract -p kmsync-rule-filter \
  -p kmsync-rule-rotate-default -p kmsync-rule-managed-credentials \
  -p kmsync-example-connection-string -p kmsync-test-hostile-rule -- -D warnings

step "cargo test"
# The e2e tests (tests/tests/e2e) dump the controller's API requests here; the chart tests
# below check them against the rendered RBAC (tests/chart/test_rbac_e2e.py).
KMSYNC_E2E_REQUESTS="$(mktemp -d)"
export KMSYNC_E2E_REQUESTS
cargo test --workspace --locked

step "CRD CEL rules (evaluated with cel-python, no API server needed)"
.venv/bin/python host/tests/crd-cel/check.py charts/kmsync/crds/kmsync-crds.yaml

step "locate the kmsync binary built by cargo test"
cargo build --workspace --locked
target_dir="$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
export KMSYNC_BIN="$target_dir/debug/kmsync"

step "conformance: official Alibaba Cloud Python SDKs against kmsync emulator"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/conformance

step "Helm chart: render, strict lint, values schema, Kubernetes 1.33 API schemas (tests/chart)"
# The real Helm library (helm-python-sdk, no helm binary) and kubernetes-validate, in the same venv.
# The flag-contract tests run `kmsync controller ... --help` from the debug build; the RBAC
# tests read the e2e request dumps in $KMSYNC_E2E_REQUESTS.
.venv/bin/python -m pytest -q -p no:cacheprovider tests/chart
