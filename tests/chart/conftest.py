"""Shared helpers for the chart tests: render the chart with the Helm library (helm-python-sdk,
Helm v4 Go SDK behind a C ABI, no helm binary), parse the manifests, and name the value sets that
every test runs against."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kmsync"
VALUES_DIR = pathlib.Path(__file__).resolve().parent / "values"
OPERATIONS_MD = REPO / "docs" / "operations.md"
RELEASE = "kmsync"
NAMESPACE = "kmsync-system"
# The Kubernetes version the project builds against (k8s-openapi feature v1_33).
KUBE_VERSION = "1.33.0"


def load_values_file(name: str) -> dict[str, Any]:
    """A values file under tests/chart/values, parsed the way `helm -f` parses it."""
    return helm.values_from_yaml((VALUES_DIR / name).read_text())


# Value sets every rendering test runs against: name -> user-supplied values.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "rrsa": {
        "rrsa": {
            "enable": True,
            "roleArn": "acs:ram::1234567890123456:role/kmsync-controller",
        },
        "command": {"aliuid": "1234567890123456", "clusterId": "c0123456789abcdef"},
    },
    "worker-role": {"command": {"enableWorkerRole": True}, "networkPolicy": {"enabled": True}},
    "watch-namespace": {"env": {"WATCH_NAMESPACE": "team-a, team-b,team-a"}},
    "per-sa-token": {"command": {"enableServiceAccountToken": True}},
    "observability": {
        "metrics": {"service": {"enabled": True, "annotations": {"example.com/scrape": "true"}}},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
            ],
        },
    },
    "ack-seed": load_values_file("ack-seed.yaml"),
    "ack-0.5.8-defaults": load_values_file("ack-0.5.8-defaults.yaml"),
    "ack-rrsa-credentials": load_values_file("ack-rrsa-credentials.yaml"),
    "single-replica-text-logs": {
        "replicaCount": 1,
        "logFormat": "text",
        "logLevel": "debug",
        "command": {
            "excludeNamespaces": ["kube-system", "kube-public"],
            "allowedEndpoints": ["https://kms-proxy.internal:8443"],
            "allowedOidcTokenPaths": ["/var/run/secrets/tokens/team-a"],
            "kmsEndpoint": "kms-vpc.cn-hangzhou.aliyuncs.com",
        },
        "image": {"digest": "sha256:" + "a" * 64},
    },
}


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Render like `helm template kmsync charts/kmsync -n kmsync-system [values]` and return
    the Kubernetes objects (NOTES.txt and empty documents dropped)."""
    out = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("__source__", path)
                objects.append(doc)
    return objects


def notes(chart: helm.Chart, values: dict[str, Any] | None = None) -> str:
    out = chart.render(values=values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in out.items() if path.endswith("NOTES.txt"))


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__source__"}


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def controller(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["controller"]
    return containers[0]


def flags(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The controller's `--flag=value` arguments as a dict (after the `controller` subcommand)."""
    args = controller(objects)["args"]
    assert args[0] == "controller", args
    parsed: dict[str, str] = {}
    for arg in args[1:]:
        match = re.fullmatch(r"--([a-z0-9-]+)=(.*)", arg)
        assert match, f"argument {arg!r} is not --flag=value"
        assert match[1] not in parsed, f"flag --{match[1]} given twice"
        parsed[match[1]] = match[2]
    return parsed


def env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in controller(objects).get("env", [])}


def documented_flags() -> dict[str, dict[str, str]]:
    """The flag reference table of docs/operations.md: flag -> {env, default, value}."""
    rows: dict[str, dict[str, str]] = {}
    for line in OPERATIONS_MD.read_text().splitlines():
        match = re.match(r"^\| `--([a-z0-9-]+)` \|([^|]*)\|([^|]*)\|([^|]*)\|", line)
        if match:
            rows[match[1]] = {
                "env": match[2].strip(),
                "default": match[3].strip().strip("`"),
                "value": match[4].strip(),
            }
    return rows
