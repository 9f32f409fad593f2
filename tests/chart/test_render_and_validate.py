"""Every value set renders, passes Helm's strict lint, and every rendered object validates against
the Kubernetes 1.33 API schemas (strict: unknown fields are errors). The CRDs in crds/ validate as
CustomResourceDefinitions; the ServiceMonitor, whose schema is not part of Kubernetes, is checked
against the fields of monitoring.coreos.com/v1 it uses."""

from __future__ import annotations

import re

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from conftest import (
    CHART,
    KUBE_VERSION,
    NAMESPACE,
    VALUE_SETS,
    find,
    one,
    render,
    strip,
)

SET_NAMES = sorted(VALUE_SETS)


@pytest.mark.parametrize("name", SET_NAMES)
def test_lint_is_clean_in_strict_mode(name):
    report = helm.lint(
        CHART,
        VALUE_SETS[name],
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Severity 2 = warning, 3 = error; strict mode fails on both. Info (1) is allowed
    # ("icon is recommended").
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize("name", SET_NAMES)
def test_every_object_validates_against_kubernetes_1_33(chart, name):
    objects = render(chart, VALUE_SETS[name])
    assert objects, "nothing rendered"
    validated = []
    for obj in objects:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # not a Kubernetes API type; see the ServiceMonitor test
        body = strip(obj)
        try:
            kubernetes_validate.validate(body, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{obj['__source__']}: {obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}")
        validated.append(obj["kind"])
    assert "Deployment" in validated


@pytest.mark.parametrize("name", SET_NAMES)
def test_namespaced_objects_name_the_release_namespace(chart, name):
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in render(chart, VALUE_SETS[name]):
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"]
        elif obj["kind"] in ("RoleBinding", "Role"):
            assert obj["metadata"]["namespace"]  # watched or lease namespaces, see test_rbac
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]


@pytest.mark.parametrize("name", SET_NAMES)
def test_object_names_are_unique_per_kind_and_namespace(chart, name):
    seen = set()
    for obj in render(chart, VALUE_SETS[name]):
        key = (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)


def test_crds_are_the_generated_file_and_validate(chart):
    # Helm loads one CRD file: the one `cargo run -p kmsync --example crdgen` writes (a Rust test
    # keeps it equal to the generated YAML), byte for byte.
    (crd_file,) = chart.crds
    assert (crd_file["name"], crd_file["filename"]) == ("crds/kmsync-crds.yaml", "kmsync/crds/kmsync-crds.yaml")
    generated = (CHART / "crds" / "kmsync-crds.yaml").read_text()
    assert crd_file["data"] == generated
    docs = [d for d in yaml.safe_load_all(generated) if d]
    names = sorted(d["metadata"]["name"] for d in docs)
    assert names == [
        "clusterexternalsecrets.alibabacloud.com",
        "clustersecretstores.alibabacloud.com",
        "externalsecrets.alibabacloud.com",
        "secretstores.alibabacloud.com",
    ]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        assert doc["spec"]["group"] == "alibabacloud.com"
        assert [v["name"] for v in doc["spec"]["versions"]] == ["v1alpha1"]
    # crds/ holds exactly the generated file: nothing hand-written next to it.
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == ["kmsync-crds.yaml"]


def test_crds_are_not_templates(chart):
    # Helm installs crds/ before the templates and never upgrades or deletes them; CRDs in
    # templates/ would be deleted with the release, taking every ExternalSecret with them.
    for obj in render(chart, VALUE_SETS["observability"]):
        assert obj["kind"] != "CustomResourceDefinition"


PROM_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def test_service_monitor_selects_the_metrics_service(chart):
    objects = render(chart, VALUE_SETS["observability"])
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert set(spec["selector"]) == {"matchLabels"}
    for key, value in spec["selector"]["matchLabels"].items():
        assert service["metadata"]["labels"][key] == value
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http"
    assert PROM_DURATION.match(endpoint["interval"]) and PROM_DURATION.match(endpoint["scrapeTimeout"])
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_metrics_service_targets_the_controller_metrics_port(chart):
    objects = render(chart)
    service = one(objects, "Service")
    deployment = one(objects, "Deployment")
    assert service["metadata"]["name"] == "kmsync-metrics"
    assert service["spec"]["type"] == "ClusterIP"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for key, value in service["spec"]["selector"].items():
        assert pod_labels[key] == value
    (port,) = service["spec"]["ports"]
    assert port == {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    container_ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert container_ports == {"metrics": 8080, "health": 8081}


def test_optional_objects_are_off_by_default(chart):
    kinds = sorted({o["kind"] for o in render(chart)})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    assert not find(render(chart), "ServiceMonitor")
    assert not find(render(chart), "NetworkPolicy")


def test_pdb_keeps_one_replica_and_is_dropped_for_a_single_replica(chart):
    objects = render(chart)
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    deployment = one(objects, "Deployment")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert not find(render(chart, {"replicaCount": 1}), "PodDisruptionBudget")


def test_network_policy_allows_dns_api_server_cloud_and_metrics(chart):
    policy = one(render(chart, VALUE_SETS["observability"]), "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kmsync",
        "app.kubernetes.io/instance": "kmsync",
    }
    metrics_rule, health_rule = spec["ingress"]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert health_rule == {"ports": [{"port": "health", "protocol": "TCP"}]}
    egress_ports = sorted(
        (p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]
    )
    assert egress_ports == [("TCP", 53), ("TCP", 443), ("TCP", 6443), ("UDP", 53)]


def test_network_policy_adds_the_metadata_service_for_the_worker_role(chart):
    policy = one(render(chart, VALUE_SETS["worker-role"]), "NetworkPolicy")
    metadata_rules = [
        r for r in policy["spec"]["egress"] if r.get("to") == [{"ipBlock": {"cidr": "100.100.100.200/32"}}]
    ]
    assert metadata_rules == [
        {"to": [{"ipBlock": {"cidr": "100.100.100.200/32"}}], "ports": [{"port": 80, "protocol": "TCP"}]}
    ]
    plain = one(render(chart, {"networkPolicy": {"enabled": True}}), "NetworkPolicy")
    assert all("to" not in r for r in plain["spec"]["egress"])


def test_network_policy_with_no_egress_denies_all_egress(chart):
    policy = one(render(chart, {"networkPolicy": {"enabled": True, "egress": []}}), "NetworkPolicy")
    assert policy["spec"]["egress"] == []
