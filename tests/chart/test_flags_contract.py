"""Every flag the chart renders is part of the controller's documented contract
(docs/operations.md), and — once `kmsync controller` exists — the real parser accepts every
rendered command line. The binary is taken from $KMSYNC_BIN (tests/run-all.sh sets it)."""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

from conftest import VALUE_SETS, controller, documented_flags, flags, render

# The flag contract the controller authors implement (issue #7). The documentation must list
# exactly these, and the chart may render nothing else.
CONTRACT = {
    "region", "kms-endpoint", "backend", "polling-interval", "disable-polling", "reconcile-period",
    "reconcile-count", "max-concurrent-kms-secret-pulls", "max-concurrent-oos-secret-pulls",
    "watch-namespaces", "exclude-namespaces", "enable-cross-namespace-secret-store",
    "enable-cross-namespace-auth-ref", "enable-worker-role", "enable-service-account-token",
    "allowed-endpoints", "allowed-oidc-token-paths", "kms-qps", "leader-elect", "leader-election-namespace",
    "leader-election-id", "metrics-bind-address", "health-probe-bind-address", "log-format",
    "log-level", "rule-timeout", "rule-memory-limit", "rule-max-concurrency", "rule-logs", "digest-key-secret",
}

# Contract defaults (what the binary does without the flag) as documented.
CONTRACT_DEFAULTS = {
    "backend": "alicloud-kms",
    "polling-interval": "120s",
    "disable-polling": "false",
    "reconcile-period": "5s",
    "reconcile-count": "1",
    "max-concurrent-kms-secret-pulls": "10",
    "max-concurrent-oos-secret-pulls": "10",
    "kms-qps": "100",
    "leader-elect": "false",
    "leader-election-id": "kmsync-leader",
    "metrics-bind-address": "0.0.0.0:8080",
    "health-probe-bind-address": "0.0.0.0:8081",
    "log-level": "info",
    "rule-timeout": "100ms",
    "rule-memory-limit": "32Mi",
    "rule-max-concurrency": "4",
    "rule-logs": "false",
    "log-format": "text",
    "leader-election-namespace": "$POD_NAMESPACE",
    "digest-key-secret": "kmsync-digest-key",
}


def test_operations_md_documents_exactly_the_contract():
    documented = documented_flags()
    assert set(documented) == CONTRACT
    for flag, default in CONTRACT_DEFAULTS.items():
        assert documented[flag]["default"] == default, flag
    assert documented["region"]["env"] == "`ALIBABA_CLOUD_REGION_ID`"
    assert documented["watch-namespaces"]["env"] == "`WATCH_NAMESPACE`"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_flags_are_documented(chart, name):
    rendered = flags(render(chart, VALUE_SETS[name]))
    undocumented = set(rendered) - set(documented_flags())
    assert not undocumented, f"rendered but not in docs/operations.md: {sorted(undocumented)}"


def test_value_column_names_real_values(chart):
    """The 'chart value' column of the flag table names keys that exist in values.yaml."""
    defaults = chart.values
    for flag, row in documented_flags().items():
        for ref in [part.strip().strip("`") for part in row["value"].split(",")]:
            if not ref or ref.startswith("(") or " " in ref:
                continue
            node = defaults
            for part in ref.split("."):
                assert isinstance(node, dict) and part in node, f"--{flag}: {ref} is not a value"
                node = node[part]


# A clean environment: WATCH_NAMESPACE or ALIBABA_CLOUD_* in the caller's environment must not
# change what the parser sees.
_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _binary() -> pathlib.Path:
    path = os.environ.get("KMSYNC_BIN")
    if not path:
        pytest.fail("set KMSYNC_BIN to the kmsync binary (tests/run-all.sh builds it and sets it)")
    binary = pathlib.Path(path)
    if not binary.is_file():
        pytest.fail(f"KMSYNC_BIN={path} does not exist; build it with `cargo build -p kmsync`")
    return binary


def _controller_help(binary: pathlib.Path) -> str:
    """`kmsync controller --help`; fails when the subcommand is missing or broken."""
    proc = subprocess.run(
        [str(binary), "controller", "--help"], capture_output=True, text=True, timeout=60, env=_ENV
    )
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or "--" not in output:
        pytest.fail(
            f"`{binary} controller --help` failed (exit {proc.returncode}, output: "
            f"{output.strip()[:200]!r})"
        )
    return output


def test_help_lists_every_contract_flag():
    text = _controller_help(_binary())
    missing = sorted(f for f in CONTRACT if f"--{f}" not in text)
    assert not missing, f"`kmsync controller --help` lacks {missing}"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_controller_parser_accepts_the_rendered_command_line(chart, name):
    binary = _binary()
    _controller_help(binary)
    args = controller(render(chart, VALUE_SETS[name]))["args"]
    assert args[0] == "controller"
    # clap parses (and validates) every argument before it acts on --help: an unknown flag or a
    # value its parser refuses fails here with exit code 2.
    proc = subprocess.run(
        [str(binary), *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_ENV,
    )
    assert proc.returncode == 0, f"kmsync rejected {args}:\n{proc.stderr}"


@pytest.mark.parametrize(
    "bad",
    ["--no-such-flag=1", "--reconcile-count=many", "--disable-polling=maybe"],
)
def test_controller_parser_rejects_what_the_schema_rejects(bad):
    binary = _binary()
    _controller_help(binary)
    proc = subprocess.run(
        [str(binary), "controller", bad, "--help"], capture_output=True, text=True, timeout=60, env=_ENV
    )
    assert proc.returncode != 0, f"kmsync accepted {bad}"
