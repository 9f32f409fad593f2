"""values.schema.json rejects typos, wrong types and values kmsync cannot honour, and accepts
what the chart documents. Helm validates the schema on every install, upgrade, template and lint;
these tests go through the same Helm code path (render) and through Chart.validate_schema, which
coalesces the user values over the chart's defaults first, as an install does."""

from __future__ import annotations

import json

import helm_python as helm
import jsonschema
import pytest

from conftest import CHART, VALUE_SETS, render

REJECTED = [
    # Typos, at every level.
    ({"comand": {"region": "cn-hangzhou"}}, "additional properties 'comand' not allowed"),
    ({"command": {"pollingIntervall": "60s"}}, "'pollingIntervall' not allowed"),
    ({"command": {"kmsEnpoint": "kms.cn-hangzhou.aliyuncs.com"}}, "'kmsEnpoint' not allowed"),
    ({"command": {"watchamespaces": "a"}}, "'watchamespaces' not allowed"),
    ({"env": {"WATCH_NAMESPACES": "a"}}, "'WATCH_NAMESPACES' not allowed"),
    ({"rrsa": {"enabled": True}}, "'enabled' not allowed"),
    ({"serviceAccount": {"annotation": {}}}, "'annotation' not allowed"),
    ({"rbac": {"enabled": False}}, "'enabled' not allowed"),
    ({"replicas": 3}, "'replicas' not allowed"),
    ({"image": {"repo": "x"}}, "'repo' not allowed"),
    ({"resources": {"limit": {"cpu": "1"}}}, "'limit' not allowed"),
    ({"securityContext": {"runAsNonroot": True}}, "'runAsNonroot' not allowed"),
    ({"containerSecurityContext": {"readOnlyRootFileSystem": True}}, "'readOnlyRootFileSystem' not allowed"),
    ({"tolerations": [{"key": "a", "efect": "NoSchedule"}]}, "'efect' not allowed"),
    ({"affinity": {"nodeAfinity": {}}}, "'nodeAfinity' not allowed"),
    ({"metrics": {"service": {"enable": True}}}, "'enable' not allowed"),
    ({"serviceMonitor": {"enable": True}}, "'enable' not allowed"),
    ({"networkPolicy": {"enable": True}}, "'enable' not allowed"),
    ({"networkPolicy": {"egress": [{"too": []}]}}, "'too' not allowed"),
    ({"leaderElection": {"leaseName": "x"}}, "'leaseName' not allowed"),
    ({"rules": {"timeoutMs": 100}}, "'timeoutMs' not allowed"),
    ({"podDisruptionBudget": {"maxUnavailabe": 1}}, "'maxUnavailabe' not allowed"),
    ({"extraEnv": [{"name": "A", "valueFrom": {"secretRef": {}}}]}, "'secretRef' not allowed"),
    # Wrong types.
    ({"command": {"disablePolling": "true"}}, "/command/disablePolling"),
    ({"command": {"reconcileCount": "4"}}, "/command/reconcileCount"),
    ({"command": {"reconcileCount": 0}}, "/command/reconcileCount"),
    ({"command": {"maxConcurrentKmsSecretPulls": 2.5}}, "/command/maxConcurrentKmsSecretPulls"),
    ({"command": {"aliuid": 1234567890123456}}, "/command/aliuid"),
    ({"command": {"allowedEndpoints": "https://a.internal"}}, "/command/allowedEndpoints"),
    ({"replicaCount": "2"}, "/replicaCount"),
    ({"rrsa": {"enable": "yes"}}, "/rrsa/enable"),
    ({"nodeSelector": {"zone": 1}}, "/nodeSelector/zone"),
    ({"tolerations": {"key": "a"}}, "/tolerations"),
    # Enums and formats.
    ({"command": {"backend": "alicloud-oos"}}, "/command/backend"),
    ({"command": {"pollingInterval": "2 minutes"}}, "/command/pollingInterval"),
    ({"command": {"pollingInterval": "1d"}}, "/command/pollingInterval"),
    ({"command": {"reconcilePeriod": 5}}, "/command/reconcilePeriod"),
    ({"command": {"region": "Hangzhou"}}, "/command/region"),
    ({"command": {"allowedEndpoints": ["ftp://x"]}}, "/command/allowedEndpoints/0"),
    ({"command": {"allowedEndpoints": ["https://a,https://b"]}}, "/command/allowedEndpoints/0"),
    ({"command": {"allowedOidcTokenPaths": "/tokens/a"}}, "/command/allowedOidcTokenPaths"),
    ({"command": {"allowedOidcTokenPaths": ["tokens/a"]}}, "/command/allowedOidcTokenPaths/0"),
    ({"command": {"allowedOidcTokenPaths": ["/a,/b"]}}, "/command/allowedOidcTokenPaths/0"),
    ({"command": {"excludeNamespaces": ["Kube_System"]}}, "/command/excludeNamespaces/0"),
    ({"env": {"WATCH_NAMESPACE": "team_a"}}, "/env/WATCH_NAMESPACE"),
    ({"env": {"WATCH_NAMESPACE": "a,,b"}}, "/env/WATCH_NAMESPACE"),
    ({"logFormat": "yaml"}, "/logFormat"),
    ({"logLevel": "verbose"}, "/logLevel"),
    ({"rules": {"memoryLimit": "32MB"}}, "/rules/memoryLimit"),
    ({"rules": {"timeout": "100"}}, "/rules/timeout"),
    ({"rules": {"logs": "true"}}, "/rules/logs"),
    ({"image": {"pullPolicy": "always"}}, "/image/pullPolicy"),
    ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
    ({"metrics": {"port": 80}}, "/metrics/port"),
    ({"rrsa": {"expirationSeconds": 60}}, "/rrsa/expirationSeconds"),
    ({"rrsa": {"roleArn": "arn:aws:iam::1:role/x"}}, "/rrsa/roleArn"),
    ({"serviceMonitor": {"interval": "30 seconds"}}, "/serviceMonitor/interval"),
    ({"securityContext": {"seccompProfile": {"type": "runtime/default"}}}, "/securityContext/seccompProfile/type"),
    # ack-secret-manager settings kmsync cannot honour.
    ({"command": {"cleanupSecretOnFailure": True}}, "/command/cleanupSecretOnFailure"),
    ({"command": {"processClusterSecretStore": False}}, "/command/processClusterSecretStore"),
    ({"command": {"processClusterExternalSecret": False}}, "/command/processClusterExternalSecret"),
    (
        {"envVarsFromSecret": {"ALICLOUD_REMOTE_ROLE_ARN": {"secretKeyRef": "a", "key": "b"}}},
        "invalid propertyName 'ALICLOUD_REMOTE_ROLE_ARN'",
    ),
    ({"envVarsFromSecret": {"ACCESS_KEY_ID": {"secretKeyRef": "a"}}}, "/envVarsFromSecret/ACCESS_KEY_ID"),
    # Required values removed.
    ({"command": {"pollingInterval": None}}, "missing property 'pollingInterval'"),
]


@pytest.mark.parametrize(("values", "fragment"), REJECTED, ids=[json.dumps(v)[:60] for v, _ in REJECTED])
def test_schema_rejects(chart, values, fragment):
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.validate_schema(values)
    assert fragment in str(caught.value)
    # Rendering (what install/upgrade/template do) refuses the same values.
    with pytest.raises(helm.HelmError):
        render(chart, values)


ACCEPTED = [
    {"command": {"region": "cn-hangzhou", "kmsEndpoint": "https://kms.cn-hangzhou.aliyuncs.com"}},
    {"command": {"pollingInterval": "1h30m", "reconcilePeriod": "1.5s"}},
    {"command": {"tokenRotationPeriod": "120s", "aliuid": "1234567890123456", "clusterId": "c0123abc"}},
    {"env": {"WATCH_NAMESPACE": ""}},
    {"env": {"WATCH_NAMESPACE": "team-a"}},
    {"env": {"OPERATOR_NAME": "ack-secret-manager"}},
    {"serviceAccount": {"create": False, "name": "existing-sa"}},
    {"rbac": {"create": False}},
    {"cleanupImage": {"repository": "x", "tag": "y", "pullPolicy": "Always"}},
    {"podDisruptionBudget": {"minAvailable": "50%"}},
    {"tolerations": [{"key": "node-role.kubernetes.io/infra", "operator": "Exists", "effect": "NoSchedule"}]},
    {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}},
    {"extraEnv": [{"name": "NO_PROXY", "valueFrom": {"configMapKeyRef": {"name": "proxy", "key": "no"}}}]},
    {"imagePullSecrets": [{"name": "regcred"}]},
]


@pytest.mark.parametrize("values", ACCEPTED, ids=[json.dumps(v)[:60] for v in ACCEPTED])
def test_schema_accepts(chart, values):
    chart.validate_schema(values)
    render(chart, values)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_value_sets_are_valid(chart, name):
    chart.validate_schema(VALUE_SETS[name])


def _walk(schema, path="#"):
    yield path, schema
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from _walk(value, f"{path}/{index}")


def test_every_fixed_object_forbids_unknown_keys():
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for path, node in _walk(schema):
        if isinstance(node, dict) and node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} allows unknown keys"
        if isinstance(node, dict) and node.get("type") == "object" and "properties" not in node:
            # Free-form maps must still say what their values are (or be a documented
            # pass-through of a Kubernetes type).
            allowed_passthrough = path.endswith(
                ("/nodeAffinity", "/podAffinity", "/podAntiAffinity", "/global")
            )
            assert "additionalProperties" in node or allowed_passthrough, path


def test_values_yaml_has_a_schema_entry_for_every_key(chart):
    schema = json.loads((CHART / "values.schema.json").read_text())

    def check(values, node, path):
        if "$ref" in node:
            node = schema["definitions"][node["$ref"].split("/")[-1]]
        if not isinstance(values, dict) or "properties" not in node:
            return
        for key, value in values.items():
            assert key in node["properties"], f"{path}.{key} has no schema"
            check(value, node["properties"][key], f"{path}.{key}")

    check(chart.values, schema, "values")
