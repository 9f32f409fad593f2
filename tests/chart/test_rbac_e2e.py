"""Every request the real controller made in the end-to-end tests is granted by the chart's RBAC
rendered with the values matching that test's flags, and every granted rule the e2e suite never
exercised is on a short, justified list.

The e2e tests (tests/tests/e2e, `cargo test -p kmsync-tests --test e2e`) write one JSON file
per test to $KMSYNC_E2E_REQUESTS: the chart values equivalent to the controller's flags and the
controller's requests (those with its User-Agent) from the fake kube-apiserver's request log.
tests/run-all.sh sets the variable for both steps; without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections import defaultdict
from typing import Any

import pytest

from conftest import NAMESPACE, find, render

SA = ("kmsync", NAMESPACE)

# Granted (see docs/operations.md, "RBAC") but not exercised by the e2e suite, and why.
EXPECTED_UNUSED = {
    # Rule modules from ConfigMaps: the e2e suite uses built-in rules only (rule modules are
    # covered by host/tests and `kmsync render`).
    ("", "configmaps", "get"),
    # Only needed where the OwnerReferencesPermissionEnforcement admission plugin is on; the
    # fake apiserver does not enforce blockOwnerDeletion.
    ("alibabacloud.com", "externalsecrets/finalizers", "update"),
    ("alibabacloud.com", "clusterexternalsecrets/finalizers", "update"),
    # An Event series is written back at most every 5 minutes; e2e tests are shorter.
    ("events.k8s.io", "events", "patch"),
    # Namespaces are listed and watched, never read one by one.
    ("", "namespaces", "get"),
    # Cluster-scoped kinds are listed and watched; SecretStores likewise.
    ("alibabacloud.com", "clustersecretstores", "get"),
    ("alibabacloud.com", "clusterexternalsecrets", "get"),
    ("alibabacloud.com", "secretstores", "get"),
    ("alibabacloud.com", "externalsecrets", "get"),
    # The Lease is replaced (update), never patched.
    ("coordination.k8s.io", "leases", "patch"),
}


def _dumps() -> list[dict[str, Any]]:
    directory = os.environ.get("KMSYNC_E2E_REQUESTS")
    if not directory:
        pytest.skip("KMSYNC_E2E_REQUESTS is not set (tests/run-all.sh sets it for the e2e run)")
    files = sorted(pathlib.Path(directory).glob("*.json"))
    if not files:
        pytest.fail(
            f"no request dumps in {directory}: run `cargo test -p kmsync-tests --test e2e` "
            "with KMSYNC_E2E_REQUESTS set first"
        )
    return [json.loads(f.read_text()) for f in files]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _bound_rules(objects: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace the rule applies in, None = everywhere; rule) for every rule bound to the
    controller's ServiceAccount."""
    roles = {(r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"]): r for r in
             find(objects, "Role") + find(objects, "ClusterRole")}
    out: list[tuple[str | None, dict[str, Any]]] = []
    for binding in find(objects, "RoleBinding") + find(objects, "ClusterRoleBinding"):
        subjects = {(s["name"], s.get("namespace")) for s in binding["subjects"] if s["kind"] == "ServiceAccount"}
        if SA not in subjects:
            continue
        ref = binding["roleRef"]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role_ns = scope if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        for rule in role["rules"]:
            out.append((scope, rule))
    return out


def _grants(rule: dict[str, Any], group: str, resource: str, verb: str, name: str) -> bool:
    if group not in rule["apiGroups"] or resource not in rule["resources"] or verb not in rule["verbs"]:
        return False
    names = rule.get("resourceNames")
    # resourceNames cannot restrict create or collection requests (the name is not in the URL).
    return names is None or (name != "" and name in names)


def _needed(request: dict[str, Any]) -> list[str]:
    """The verbs a request needs: an apply (patch) that created the object needs create too."""
    if request["verb"] == "patch" and request["status"] == 201:
        return ["patch", "create"]
    return [request["verb"]]


def test_every_controller_request_in_the_e2e_run_is_granted_by_the_rendered_rbac(chart):
    problems = []
    for dump in _dumps():
        rules = _bound_rules(render(chart, dump["values"]))
        for request in dump["requests"]:
            resource = request["resource"] + (f"/{request['subresource']}" if request["subresource"] else "")
            for verb in _needed(request):
                ok = any(
                    (scope is None or scope == request["namespace"])
                    and _grants(rule, request["group"], resource, verb, request["name"])
                    for scope, rule in rules
                )
                if not ok:
                    problems.append(
                        f"{dump['test']}: {verb} {request['group'] or 'core'}/{resource} "
                        f"{request['namespace'] or '(cluster)'}/{request['name'] or '*'}"
                    )
    assert not problems, "requests the chart does not grant:\n" + "\n".join(sorted(set(problems)))


def test_granted_rules_the_e2e_run_never_used_are_the_expected_ones(chart):
    used: dict[tuple[str, str, str], int] = defaultdict(int)
    for dump in _dumps():
        for request in dump["requests"]:
            resource = request["resource"] + (f"/{request['subresource']}" if request["subresource"] else "")
            for verb in _needed(request):
                used[(request["group"], resource, verb)] += 1
    granted = set()
    for values in ({}, {"command": {"enableServiceAccountToken": True}}):
        for _, rule in _bound_rules(render(chart, values)):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        granted.add((group, resource, verb))
    unused = granted - set(used)
    print("granted but not used by the e2e run:", sorted(unused))
    assert unused == EXPECTED_UNUSED, (
        f"unexpectedly unused: {sorted(unused - EXPECTED_UNUSED)}; "
        f"now used: {sorted(EXPECTED_UNUSED - unused)}"
    )
