"""Values become the right controller flags and environment: the seed document's parameter table,
ack-secret-manager values files, RRSA, and kmsync's own values."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import VALUE_SETS, controller, env, flags, notes, one, render

# What the chart renders with no values at all.
DEFAULT_FLAGS = {
    "backend": "alicloud-kms",
    "polling-interval": "120s",
    "disable-polling": "false",
    "reconcile-period": "5s",
    "reconcile-count": "4",
    "max-concurrent-kms-secret-pulls": "10",
    "max-concurrent-oos-secret-pulls": "10",
    "enable-cross-namespace-secret-store": "false",
    "enable-cross-namespace-auth-ref": "false",
    "enable-worker-role": "false",
    "enable-service-account-token": "false",
    "kms-qps": "100",
    "leader-elect": "true",
    "leader-election-namespace": "kmsync-system",
    "leader-election-id": "kmsync-leader",
    "metrics-bind-address": "0.0.0.0:8080",
    "health-probe-bind-address": "0.0.0.0:8081",
    "log-format": "json",
    "log-level": "info",
    "rule-timeout": "100ms",
    "rule-memory-limit": "32Mi",
    "rule-max-concurrency": "4",
    "rule-logs": "false",
    "digest-key-secret": "kmsync-digest-key",
}


def test_default_flags(chart):
    assert flags(render(chart)) == DEFAULT_FLAGS


def test_seed_parameter_table_values_file(chart):
    rendered = flags(render(chart, VALUE_SETS["ack-seed"]))
    assert rendered == {
        **DEFAULT_FLAGS,
        "backend": "alicloud-kms",
        "region": "cn-hangzhou",
        "disable-polling": "true",
        "polling-interval": "60s",
    }


def test_seed_parameter_table_as_set_flags(chart):
    # `helm install --set command.backend=alicloud-kms,command.region=cn-hangzhou,...`
    values = helm.parse_set_string(
        "command.backend=alicloud-kms,command.region=cn-hangzhou,"
        "command.disablePolling=true,command.pollingInterval=60s"
    )
    assert values == {
        "command": {
            "backend": "alicloud-kms",
            "region": "cn-hangzhou",
            "disablePolling": True,
            "pollingInterval": "60s",
        }
    }
    assert flags(render(chart, values)) == flags(render(chart, VALUE_SETS["ack-seed"]))


@pytest.mark.parametrize(
    ("values", "flag", "expected"),
    [
        ({"command": {"kmsEndpoint": "kms-vpc.cn-hangzhou.aliyuncs.com"}}, "kms-endpoint", "kms-vpc.cn-hangzhou.aliyuncs.com"),
        ({"command": {"reconcilePeriod": "30s"}}, "reconcile-period", "30s"),
        ({"command": {"reconcileCount": 1}}, "reconcile-count", "1"),
        ({"command": {"maxConcurrentKmsSecretPulls": 3}}, "max-concurrent-kms-secret-pulls", "3"),
        ({"command": {"maxConcurrentOosSecretPulls": 7}}, "max-concurrent-oos-secret-pulls", "7"),
        ({"command": {"enableWorkerRole": True}}, "enable-worker-role", "true"),
        ({"command": {"enableCrossNamespaceSecretStore": True}}, "enable-cross-namespace-secret-store", "true"),
        ({"command": {"enableCrossNamespaceAuthRef": True}}, "enable-cross-namespace-auth-ref", "true"),
        ({"command": {"enableServiceAccountToken": True}}, "enable-service-account-token", "true"),
        ({"command": {"kmsQps": 25}}, "kms-qps", "25"),
        (
            {"command": {"allowedEndpoints": ["https://a.internal:8443", "http://127.0.0.1:9000"]}},
            "allowed-endpoints",
            "https://a.internal:8443,http://127.0.0.1:9000",
        ),
        (
            {"command": {"allowedOidcTokenPaths": ["/var/run/secrets/tokens/team-a", "/tokens/b"]}},
            "allowed-oidc-token-paths",
            "/var/run/secrets/tokens/team-a,/tokens/b",
        ),
        ({"command": {"excludeNamespaces": ["kube-system", "dev"]}}, "exclude-namespaces", "kube-system,dev"),
        ({"env": {"WATCH_NAMESPACE": "team-a"}}, "watch-namespaces", "team-a"),
        ({"env": {"WATCH_NAMESPACE": " a ,b, a"}}, "watch-namespaces", "a,b"),
        ({"rules": {"timeout": "250ms"}}, "rule-timeout", "250ms"),
        ({"rules": {"memoryLimit": "64Mi"}}, "rule-memory-limit", "64Mi"),
        ({"rules": {"maxConcurrency": 8}}, "rule-max-concurrency", "8"),
        ({"rules": {}}, "rule-logs", "false"),
        ({"rules": {"logs": True}}, "rule-logs", "true"),
        ({"logFormat": "text"}, "log-format", "text"),
        ({"logLevel": "debug"}, "log-level", "debug"),
        ({"metrics": {"port": 9090}}, "metrics-bind-address", "0.0.0.0:9090"),
        ({"health": {"port": 9091}}, "health-probe-bind-address", "0.0.0.0:9091"),
        ({"leaderElection": {"id": "custom-lock"}}, "leader-election-id", "custom-lock"),
        ({"leaderElection": {"namespace": "kube-system"}}, "leader-election-namespace", "kube-system"),
        ({"digestKey": {"secretName": "hmac"}}, "digest-key-secret", "hmac"),
        ({"fullnameOverride": "sync"}, "leader-election-id", "sync-leader"),
        ({"fullnameOverride": "sync"}, "digest-key-secret", "sync-digest-key"),
    ],
)
def test_value_maps_to_flag(chart, values, flag, expected):
    assert flags(render(chart, values))[flag] == expected


def test_empty_optional_flags_are_omitted(chart):
    rendered = flags(render(chart))
    for flag in ("region", "kms-endpoint", "watch-namespaces", "exclude-namespaces", "allowed-endpoints",
                 "allowed-oidc-token-paths"):
        assert flag not in rendered


def test_single_replica_without_leader_election(chart):
    rendered = flags(render(chart, {"replicaCount": 1, "leaderElection": {"enabled": False}}))
    assert rendered["leader-elect"] == "false"
    assert "leader-election-id" not in rendered and "leader-election-namespace" not in rendered


def test_ack_default_values_file_installs_unchanged(chart):
    objects = render(chart, VALUE_SETS["ack-0.5.8-defaults"])
    rendered = flags(objects)
    # Their values win where kmsync has the same meaning...
    assert rendered["reconcile-count"] == "1"
    assert rendered["enable-worker-role"] == "true"
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    assert controller(objects)["image"] == "registry.example.com/kmsync/kmsync:v0.1.0"
    assert controller(objects)["imagePullPolicy"] == "Always"
    assert controller(objects)["resources"]["limits"]["memory"] == "1G"
    # ...and the keys kmsync ignores leave no trace.
    assert "OPERATOR_NAME" not in env(objects)
    assert not [a for a in controller(objects)["args"] if "token-rotation" in a or "cleanup" in a]


def test_downward_api_env(chart):
    variables = env(render(chart))
    assert variables["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert variables["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert set(variables) == {"POD_NAMESPACE", "POD_NAME"}


def test_rrsa_projects_the_token_where_ack_mounts_it(chart):
    objects = render(chart, VALUE_SETS["rrsa"])
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, path in (("rrsa-token", "token"), ("ack-secret-manager-token", "ack-secret-manager")):
        (source,) = volumes[name]["projected"]["sources"]
        assert source == {
            "serviceAccountToken": {"audience": "sts.aliyuncs.com", "expirationSeconds": 3600, "path": path}
        }
    mounts = {m["name"]: m for m in controller(objects)["volumeMounts"]}
    assert mounts["rrsa-token"] == {
        "name": "rrsa-token",
        "mountPath": "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens",
        "readOnly": True,
    }
    # ack-secret-manager's path, the default oidcTokenFilePath of SecretStores.
    assert mounts["ack-secret-manager-token"] == {
        "name": "ack-secret-manager-token",
        "mountPath": "/var/run/secrets/tokens",
        "readOnly": True,
    }
    variables = env(objects)
    assert variables["ALIBABA_CLOUD_OIDC_TOKEN_FILE"]["value"] == (
        "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"
    )
    assert variables["ALIBABA_CLOUD_ROLE_ARN"]["value"] == "acs:ram::1234567890123456:role/kmsync-controller"
    # Built from command.aliuid and command.clusterId, as ack-secret-manager does.
    assert variables["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"]["value"] == (
        "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789abcdef"
    )


def test_rrsa_off_mounts_no_token(chart):
    objects = render(chart)
    names = [v["name"] for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]]
    assert names == ["tmp"]
    assert not [k for k in env(objects) if k.startswith("ALIBABA_CLOUD_")]


def test_explicit_oidc_provider_arn_wins(chart):
    variables = env(
        render(
            chart,
            {
                "rrsa": {
                    "enable": True,
                    "roleArn": "acs:ram::1:role/r",
                    "oidcProviderArn": "acs:ram::1:oidc-provider/custom",
                },
                "command": {"aliuid": "2", "clusterId": "c2"},
            },
        )
    )
    assert variables["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"]["value"] == "acs:ram::1:oidc-provider/custom"


def test_ack_env_vars_from_secret_map_to_standard_names(chart):
    variables = env(render(chart, VALUE_SETS["ack-rrsa-credentials"]))
    expected = {
        "ALIBABA_CLOUD_ROLE_ARN": ("alibaba-credentials", "rolearn"),
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": ("alibaba-credentials", "oidcproviderarn"),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": ("alibaba-credentials", "id"),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ("alibaba-credentials", "secret"),
    }
    for name, (secret, key) in expected.items():
        assert variables[name]["valueFrom"] == {"secretKeyRef": {"name": secret, "key": key}}
    assert "ACCESS_KEY_ID" not in variables and "ALICLOUD_ROLE_ARN" not in variables
    assert variables["ALIBABA_CLOUD_OIDC_TOKEN_FILE"]["value"].endswith("/rrsa-tokens/token")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"envVarsFromSecret": {
                "ACCESS_KEY_ID": {"secretKeyRef": "a", "key": "id"},
                "ALIBABA_CLOUD_ACCESS_KEY_ID": {"secretKeyRef": "b", "key": "id"},
            }},
            "ALIBABA_CLOUD_ACCESS_KEY_ID is set twice",
        ),
        (
            {"rrsa": {"enable": True, "roleArn": "acs:ram::1:role/r"},
             "envVarsFromSecret": {"ALICLOUD_ROLE_ARN": {"secretKeyRef": "a", "key": "arn"}},
             "command": {"aliuid": "1", "clusterId": "c1"}},
            "ALIBABA_CLOUD_ROLE_ARN is set twice",
        ),
        ({"rrsa": {"enable": True, "roleArn": "acs:ram::1:role/r"}}, "rrsa.roleArn needs an OIDC provider"),
        ({"command": {"aliuid": "1"}}, "set both or neither"),
        ({"replicaCount": 3, "leaderElection": {"enabled": False}}, "needs leaderElection.enabled=true"),
        (
            {"env": {"WATCH_NAMESPACE": "a,b"}, "command": {"excludeNamespaces": ["b"]}},
            "namespace b is in both",
        ),
        ({"serviceMonitor": {"enabled": True}, "metrics": {"service": {"enabled": False}}}, "needs metrics.service.enabled"),
        ({"metrics": {"port": 9000}, "health": {"port": 9000}}, "must differ"),
    ],
)
def test_inconsistent_values_fail_with_a_clear_message(chart, values, message):
    with pytest.raises(helm.HelmRenderError, match=message):
        render(chart, values)


def test_extra_env_is_appended(chart):
    variables = env(render(chart, {"extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]}))
    assert variables["HTTPS_PROXY"] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}


def test_notes_describe_scope_and_credentials(chart):
    text = notes(chart, VALUE_SETS["watch-namespace"])
    assert "Watching only: team-a, team-b." in text
    assert "ClusterSecretStore and ClusterExternalSecret are not served" in text
    text = notes(chart, VALUE_SETS["worker-role"])
    assert "The node's ECS RAM role" in text
    text = notes(chart)
    assert "Watching the whole cluster." in text
    assert "none configured" in text
    assert "kubectl apply --server-side --force-conflicts -f charts/kmsync/crds/kmsync-crds.yaml" in text
    assert "role from envVarsFromSecret." in notes(chart, VALUE_SETS["ack-rrsa-credentials"])
    assert "role acs:ram::1234567890123456:role/kmsync-controller." in notes(chart, VALUE_SETS["rrsa"])
    assert "no role set" in notes(chart, {"rrsa": {"enable": True}})
