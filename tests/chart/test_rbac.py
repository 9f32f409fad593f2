"""The controller's RBAC is exactly the least-privilege rule set documented in
docs/operations.md: compared rule by rule, so any added verb is a deliberate change here too.
The e2e suite later checks these rules against the fake apiserver's request log."""

from __future__ import annotations

import yaml

from conftest import CHART, NAMESPACE, VALUE_SETS, find, one, render

SA = {"kind": "ServiceAccount", "name": "kmsync", "namespace": NAMESPACE}


def grants(rules):
    """Flatten rules to a set of (apiGroup, resource, resourceName or '*', verb)."""
    out = set()
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for name in rule.get("resourceNames", ["*"]):
                    for verb in rule["verbs"]:
                        out.add((group, resource, name, verb))
    return out


def expand(group, resources, verbs, names=("*",)):
    return {(group, r, n, v) for r in resources for n in names for v in verbs}


NAMESPACED_COMMON = (
    expand("", ["secrets"], ["get", "list", "watch", "create", "patch", "delete"])
    | expand("", ["configmaps"], ["get"])
    | expand("alibabacloud.com", ["externalsecrets", "secretstores"], ["get", "list", "watch"])
    | expand("alibabacloud.com", ["externalsecrets"], ["patch"])
    | expand("alibabacloud.com", ["secretstores"], ["patch"])
    | expand("alibabacloud.com", ["externalsecrets/status", "secretstores/status"], ["patch"])
    | expand("alibabacloud.com", ["externalsecrets/finalizers"], ["update"])
    | expand("events.k8s.io", ["events"], ["create", "patch"])
)
CLUSTER_EXTERNAL_SECRET_WRITES = expand("alibabacloud.com", ["externalsecrets"], ["create", "delete"])
SERVICE_ACCOUNT_TOKEN = expand("", ["serviceaccounts"], ["get", "list", "watch"]) | expand(
    "", ["serviceaccounts/token"], ["create"]
)
CLUSTER_KINDS = (
    expand("alibabacloud.com", ["clustersecretstores", "clusterexternalsecrets"], ["get", "list", "watch"])
    | expand("alibabacloud.com", ["clustersecretstores"], ["patch"])
    | expand("alibabacloud.com", ["clustersecretstores/status", "clusterexternalsecrets/status"], ["patch"])
    | expand("alibabacloud.com", ["clusterexternalsecrets/finalizers"], ["update"])
    | expand("", ["namespaces"], ["get", "list", "watch"])
)
LEADER_ELECTION = expand("coordination.k8s.io", ["leases"], ["create"]) | expand(
    "coordination.k8s.io", ["leases"], ["get", "update", "patch"], names=["kmsync-leader"]
)
DIGEST_KEY = expand("", ["secrets"], ["get"], names=["kmsync-digest-key"]) | expand("", ["secrets"], ["create"])


def binding_subjects_and_role(binding):
    return binding["subjects"], binding["roleRef"]


def test_cluster_wide_install(chart):
    objects = render(chart)
    assert grants(one(objects, "ClusterRole", "kmsync")["rules"]) == NAMESPACED_COMMON | CLUSTER_EXTERNAL_SECRET_WRITES
    assert grants(one(objects, "ClusterRole", "kmsync-cluster")["rules"]) == CLUSTER_KINDS
    for name in ("kmsync", "kmsync-cluster"):
        binding = one(objects, "ClusterRoleBinding", name)
        assert binding["subjects"] == [SA]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
    assert len(find(objects, "ClusterRoleBinding")) == 2
    assert len(find(objects, "ClusterRole")) == 2


def test_own_namespace_roles(chart):
    objects = render(chart)
    lease = one(objects, "Role", "kmsync-leader-election")
    assert lease["metadata"]["namespace"] == NAMESPACE
    assert grants(lease["rules"]) == LEADER_ELECTION
    digest = one(objects, "Role", "kmsync-digest-key")
    assert digest["metadata"]["namespace"] == NAMESPACE
    assert grants(digest["rules"]) == DIGEST_KEY
    for name in ("kmsync-leader-election", "kmsync-digest-key"):
        binding = one(objects, "RoleBinding", name)
        assert binding["subjects"] == [SA]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}


def test_lease_role_follows_the_leader_election_namespace_and_id(chart):
    objects = render(chart, {"leaderElection": {"namespace": "kube-system", "id": "lock"}})
    lease = one(objects, "Role", "kmsync-leader-election")
    assert lease["metadata"]["namespace"] == "kube-system"
    assert ("coordination.k8s.io", "leases", "lock", "update") in grants(lease["rules"])
    assert one(objects, "RoleBinding", "kmsync-leader-election")["metadata"]["namespace"] == "kube-system"
    assert not find(render(chart, {"replicaCount": 1, "leaderElection": {"enabled": False}}), "Role", "kmsync-leader-election")


def test_watched_namespaces_get_roles_and_nothing_cluster_scoped(chart):
    objects = render(chart, VALUE_SETS["watch-namespace"])
    # Nothing cluster-scoped: a namespace admin can install this (with --skip-crds).
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    roles = [r for r in find(objects, "Role") if r["metadata"]["name"] == "kmsync"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        # No ClusterExternalSecret in this mode: no create/delete of ExternalSecrets.
        assert grants(role["rules"]) == NAMESPACED_COMMON
    bindings = [b for b in find(objects, "RoleBinding") if b["metadata"]["name"] == "kmsync"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"] == [SA]
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kmsync"}
    # Lease and digest key stay in the release namespace.
    assert one(objects, "Role", "kmsync-leader-election")["metadata"]["namespace"] == NAMESPACE
    assert one(objects, "Role", "kmsync-digest-key")["metadata"]["namespace"] == NAMESPACE


def test_watching_the_release_namespace_too(chart):
    objects = render(chart, {"env": {"WATCH_NAMESPACE": NAMESPACE}})
    names = sorted(r["metadata"]["name"] for r in find(objects, "Role"))
    assert names == ["kmsync", "kmsync-digest-key", "kmsync-leader-election"]
    assert {r["metadata"]["namespace"] for r in find(objects, "Role")} == {NAMESPACE}


def test_service_account_tokens_only_when_enabled(chart):
    default = grants(one(render(chart), "ClusterRole", "kmsync")["rules"])
    assert not default & SERVICE_ACCOUNT_TOKEN
    enabled = grants(one(render(chart, VALUE_SETS["per-sa-token"]), "ClusterRole", "kmsync")["rules"])
    assert enabled == NAMESPACED_COMMON | CLUSTER_EXTERNAL_SECRET_WRITES | SERVICE_ACCOUNT_TOKEN
    scoped = render(chart, {**VALUE_SETS["watch-namespace"], **VALUE_SETS["per-sa-token"]})
    for role in find(scoped, "Role", "kmsync"):
        assert grants(role["rules"]) == NAMESPACED_COMMON | SERVICE_ACCOUNT_TOKEN


def test_no_wildcards_no_update_on_secrets_no_crd_or_rbac_access(chart):
    for name in VALUE_SETS:
        for role in find(render(chart, VALUE_SETS[name]), "ClusterRole") + find(render(chart, VALUE_SETS[name]), "Role"):
            for group, resource, _, verb in grants(role["rules"]):
                assert "*" not in (group, resource, verb)
                assert group not in ("apiextensions.k8s.io", "rbac.authorization.k8s.io", "apps")
                assert resource not in ("pods", "nodes", "customresourcedefinitions")
                assert verb not in ("deletecollection", "escalate", "bind", "impersonate")
                if resource == "secrets":
                    assert verb != "update"


def test_every_served_kind_is_readable_and_its_status_writable(chart):
    crds = [d for d in yaml.safe_load_all((CHART / "crds" / "kmsync-crds.yaml").read_text()) if d]
    objects = render(chart)
    all_grants = set()
    for role in find(objects, "ClusterRole"):
        all_grants |= grants(role["rules"])
    for crd in crds:
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        for verb in ("get", "list", "watch"):
            assert (group, plural, "*", verb) in all_grants, (plural, verb)
        assert crd["spec"]["versions"][0]["subresources"]["status"] == {}
        assert (group, f"{plural}/status", "*", "patch") in all_grants, plural


def test_rbac_create_false_renders_no_rbac(chart):
    objects = render(chart, {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "mine"}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"):
        assert not find(objects, kind)
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
