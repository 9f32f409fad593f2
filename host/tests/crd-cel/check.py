#!/usr/bin/env python3
"""Evaluates the CEL rules (x-kubernetes-validations) of kmsync's generated CRDs.

No Kubernetes API server is available to the test suite, so this runs the rules with
cel-python (an independent CEL implementation) the way the API server would: each rule with
`self` bound to the value at the schema node that carries it. It checks that

  * every rule compiles;
  * no rule rejects any object in host/src/api/testdata (ack-secret-manager's own manifests
    and kmsync's additions);
  * every object in bad.yaml is rejected, by exactly the rule named in its
    `kmsync.test/expect-rule` annotation.

Usage: check.py CRD_YAML   (from the repository root; needs `pip install cel-python pyyaml`)
"""
import glob
import os
import re
import sys

import celpy
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
GROUP_VERSION = "alibabacloud.com/v1alpha1"


def load_all(path):
    with open(path, encoding="utf-8") as f:
        # PyYAML refuses a tab after "key:", which libyaml (and so the API server) accepts;
        # one of ack-secret-manager's README examples has one.
        text = re.sub(r":[ \t]*\t", ": ", f.read())
    return [d for d in yaml.safe_load_all(text) if d]


def walk(env, schema, value, path, out):
    for rule in schema.get("x-kubernetes-validations", []):
        program = env.program(env.compile(rule["rule"]))
        ok = program.evaluate({"self": celpy.json_to_cel(value)})
        out.append((path, rule["rule"], bool(ok)))
    if isinstance(value, dict):
        for key, sub_value in value.items():
            sub_schema = schema.get("properties", {}).get(key)
            if sub_schema is not None and sub_value is not None:
                walk(env, sub_schema, sub_value, f"{path}.{key}", out)
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            walk(env, schema["items"], item, f"{path}[{i}]", out)


def main():
    crds = {d["spec"]["names"]["kind"]: d for d in load_all(sys.argv[1])}
    env = celpy.Environment()
    passed = failed = 0

    def evaluate(doc):
        schema = crds[doc["kind"]]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out = []
        walk(env, schema, doc, doc["kind"], out)
        return out

    good_files = sorted(glob.glob(os.path.join(ROOT, "host/src/api/testdata/*.yaml")))
    for path in good_files:
        for doc in load_all(path):
            if doc.get("apiVersion") != GROUP_VERSION:
                continue
            rejected = [(p, r) for p, r, ok in evaluate(doc) if not ok]
            name = f"{os.path.basename(path)}: {doc['kind']} {doc['metadata'].get('name')}"
            if rejected:
                failed += 1
                print(f"FAIL {name}: rejected by {rejected}")
            else:
                passed += 1

    for doc in load_all(os.path.join(HERE, "bad.yaml")):
        expected = doc["metadata"]["annotations"]["kmsync.test/expect-rule"]
        rejected = [r for _, r, ok in evaluate(doc) if not ok]
        name = f"bad.yaml: {doc['kind']} {doc['metadata']['name']}"
        if rejected == [expected]:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {name}: expected rejection by {expected!r}, got {rejected}")

    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
