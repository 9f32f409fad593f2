"""The controller pod's hardening holds for every value set, including ack-secret-manager values
files that set `securityContext: {}`."""

from __future__ import annotations

import pytest

from conftest import VALUE_SETS, controller, one, render

SET_NAMES = sorted(VALUE_SETS)


@pytest.mark.parametrize("name", SET_NAMES)
def test_pod_runs_non_root_with_runtime_default_seccomp(chart, name):
    pod = one(render(chart, VALUE_SETS[name]), "Deployment")["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == 65532 and ctx["runAsGroup"] == 65532 and ctx["fsGroup"] == 65532
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod.get("hostNetwork") is None and pod.get("hostPID") is None and pod.get("hostIPC") is None
    assert pod["enableServiceLinks"] is False


@pytest.mark.parametrize("name", SET_NAMES)
def test_container_is_locked_down(chart, name):
    container = controller(render(chart, VALUE_SETS[name]))
    ctx = container["securityContext"]
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["runAsNonRoot"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("name", SET_NAMES)
def test_resources_have_requests_and_limits(chart, name):
    resources = controller(render(chart, VALUE_SETS[name]))["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_default_resources(chart):
    assert controller(render(chart))["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1000m", "memory": "512Mi"},
    }


@pytest.mark.parametrize("name", SET_NAMES)
def test_probes_hit_the_health_endpoints(chart, name):
    container = controller(render(chart, VALUE_SETS[name]))
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    health = [p for p in container["ports"] if p["name"] == "health"]
    assert health == [{"name": "health", "containerPort": 8081, "protocol": "TCP"}]


@pytest.mark.parametrize("name", SET_NAMES)
def test_only_writable_paths_are_tmp_and_nothing_from_the_host(chart, name):
    deployment = one(render(chart, VALUE_SETS[name]), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "projected"}, volume
        assert "hostPath" not in volume
    mounts = controller(render(chart, VALUE_SETS[name]))["volumeMounts"]
    writable = [m["mountPath"] for m in mounts if not m.get("readOnly")]
    assert writable == ["/tmp"]


def test_two_replicas_with_leader_election_and_safe_rollout(chart):
    deployment = one(render(chart), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    args = controller(render(chart))["args"]
    assert "--leader-elect=true" in args
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread == [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {
                "matchLabels": {"app.kubernetes.io/name": "kmsync", "app.kubernetes.io/instance": "kmsync"}
            },
        }
    ]


def test_user_security_context_keys_merge_over_the_defaults(chart):
    pod = one(render(chart, {"securityContext": {"fsGroup": 2000}}), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 2000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_image_runs_the_binary_from_the_documented_path(chart):
    container = controller(render(chart))
    assert container["command"] == ["/usr/local/bin/kmsync"]
    assert container["image"] == "ghcr.io/kmsync/kmsync:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    pinned = controller(render(chart, VALUE_SETS["single-replica-text-logs"]))
    assert pinned["image"] == "ghcr.io/kmsync/kmsync@sha256:" + "a" * 64
