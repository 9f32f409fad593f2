//! Tests across the api module: ack-secret-manager manifests round-trip unchanged, kmsync's
//! additions round-trip, validation names every mistake, and the generated CRDs are structural,
//! default-free, carry their CEL rules and match the committed YAML.

use std::collections::BTreeSet;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

const ACK_COMPAT: &str = include_str!("testdata/ack-compat.yaml");
const ACK_V05: &str = include_str!("testdata/ack-v05-readme.yaml");
const ACK_V06: &str = include_str!("testdata/ack-v06-examples.yaml");

/// Every non-empty document of a YAML stream as JSON, independent of our types.
fn raw_documents(input: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(input)
        .map(|doc| serde_yaml_ng::Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn to_json(m: &Manifest) -> Value {
    match m {
        Manifest::ExternalSecret(o) => serde_json::to_value(o).unwrap(),
        Manifest::SecretStore(o) => serde_json::to_value(o).unwrap(),
        Manifest::ClusterSecretStore(o) => serde_json::to_value(o).unwrap(),
        Manifest::ClusterExternalSecret(o) => serde_json::to_value(o).unwrap(),
        Manifest::Other { object, .. } => object.clone(),
    }
}

/// Parses `input` with our types and checks that re-serialising gives back exactly the JSON
/// of every document: no field lost, renamed or added.
fn assert_round_trips(input: &str) -> Vec<Manifest> {
    let manifests = parse_manifests(input).unwrap_or_else(|e| panic!("{e}"));
    let raw = raw_documents(input);
    assert_eq!(manifests.len(), raw.len());
    for (m, original) in manifests.iter().zip(&raw) {
        assert_eq!(
            &to_json(m),
            original,
            "{} changed in a round trip",
            m.kind()
        );
    }
    manifests
}

fn external_secrets(ms: &[Manifest]) -> Vec<&ExternalSecret> {
    ms.iter()
        .filter_map(|m| match m {
            Manifest::ExternalSecret(es) => Some(es.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn ack_compat_example_round_trips_and_validates() {
    let ms = assert_round_trips(ACK_COMPAT);
    let es = external_secrets(&ms)[0];
    assert_eq!(es.spec.provider(), Provider::Kms);
    let d = &es.spec.data()[0];
    assert_eq!(
        d.secret_store_ref.as_ref().unwrap().kind(),
        StoreKind::SecretStore
    );
    assert_eq!(d.jmes_path()[1].path, "friends[0].name");
    assert_eq!(d.jmes_path()[1].object_alias, "friendname");
    let rule = &es.spec.data_process()[0].replace_rule.as_ref().unwrap()[0];
    assert_eq!(
        (rule.source.as_str(), rule.target.as_str()),
        ("^n.*e$", "alibabacloud")
    );
    assert_eq!(es.validate(), Ok(()));
}

#[test]
fn ack_v05_readme_examples_round_trip() {
    let ms = assert_round_trips(ACK_V05);
    assert_eq!(ms.len(), 14);
    let es = external_secrets(&ms);
    // The README writes `key: <TAB>test1`; YAML reads the tab as separation.
    assert_eq!(es[1].spec.data()[0].key, "test1");
    assert_eq!(es[0].spec.data()[0].version_stage(), Some("ACSCurrent"));
    let Manifest::SecretStore(cross) = &ms[4] else {
        panic!("expected a SecretStore, got {}", ms[4].kind())
    };
    let auth = cross.spec.provider().cloud_auth().unwrap().clone();
    assert_eq!(
        auth.remote_role_arn(),
        Some("acs:ram::{accountID}:role/{roleName}")
    );
    assert_eq!(auth.remote_role_session_name(), "kmsync");
    let Manifest::SecretStore(dkms) = &ms[5] else {
        panic!("expected a SecretStore")
    };
    let dedicated = dkms.spec.provider().dedicated_kms().unwrap();
    assert!(dedicated.ignore_ssl());
    assert_eq!(dedicated.password.namespace.as_deref(), Some("kube-system"));
    let Manifest::SecretStore(oos) = &ms[12] else {
        panic!("expected a SecretStore")
    };
    assert_eq!(oos.spec.provider().backend(), Some(Backend::Oos));
    for es in &es {
        assert_eq!(es.validate(), Ok(()), "{:?}", es.metadata.name);
    }
    assert_eq!(es[8].spec.provider(), Provider::Oos);
}

#[test]
fn ack_v06_examples_round_trip() {
    let ms = assert_round_trips(ACK_V06);
    assert_eq!(ms.len(), 30);
    let kinds: BTreeSet<&str> = ms.iter().map(Manifest::kind).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterExternalSecret",
            "ClusterSecretStore",
            "ConfigMap",
            "ExternalSecret",
            "Secret",
            "SecretStore",
            "ServiceAccount"
        ])
    );
    assert_eq!(
        (ms[0].name(), ms[0].namespace()),
        (Some("kms-store"), Some("production"))
    );
    assert_eq!(
        (ms[11].kind(), ms[11].name()),
        ("ServiceAccount", Some("kms-access-sa"))
    );
    assert_eq!(ms[11].namespace(), Some("production"));
    let Manifest::ClusterSecretStore(css) = &ms[4] else {
        panic!("expected a ClusterSecretStore, got {}", ms[4].kind())
    };
    let labels = [("environment".to_string(), "dev".to_string())].into();
    assert!(css.spec.namespace_allowed("dev-app", &Default::default()));
    assert!(css.spec.namespace_allowed("anything", &labels));
    assert!(!css.spec.namespace_allowed("prod", &Default::default()));
    assert_eq!(css.validate(), Ok(()));
    let Manifest::ClusterExternalSecret(ces) = &ms[10] else {
        panic!("expected a ClusterExternalSecret")
    };
    assert_eq!(ces.external_secret_name(), "db-secret");
    assert_eq!(ces.validate(), Ok(()));
    for es in external_secrets(&ms) {
        assert_eq!(es.validate(), Ok(()), "{:?}", es.metadata.name);
    }
    let tls = external_secrets(&ms)
        .into_iter()
        .find(|e| e.metadata.name.as_deref() == Some("tls-certificate-template"))
        .unwrap();
    assert_eq!(tls.spec.secret_type(), "kubernetes.io/tls");
    let multi = external_secrets(&ms)
        .into_iter()
        .find(|e| e.metadata.name.as_deref() == Some("multi-secret"))
        .unwrap();
    assert_eq!(
        multi.spec.data()[1].kms_endpoint(),
        Some("kms-vpc.cn-beijing.aliyuncs.com")
    );
}

const ADDITIONS: &str = r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata:
  name: app
  namespace: team-a
spec:
  refreshPolicy: OnChange
  data:
    - key: team-a/db
      name: password
      secretStoreRef: {name: shared, kind: ClusterSecretStore}
  target:
    name: app-secret
    creationPolicy: Merge
    deletionPolicy: Retain
    immutable: true
  rules:
    - module: {builtin: jmespath}
      config: {expression: "a.b"}
    - name: mask
      module:
        configMap: {name: rules, key: mask.wasm}
        sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      hooks: [transform, rotate]
      config:
        keep: [a, b]
        nested: {n: 1, flag: true, none: null}
status:
  observedGeneration: 3
  refreshTime: "2025-01-02T03:04:05Z"
  syncedResourceVersion: 3-0a1b2c
  binding: {name: app-secret}
  conditions:
    - type: Ready
      status: "False"
      reason: FetchFailed
      message: "GetSecretValue team-a/db: Forbidden.KeyNotFound"
      observedGeneration: 3
      lastTransitionTime: "2025-01-02T03:04:05Z"
  dataSyncResults:
    - ExternalSecretKey: team-a/db
      status: Failed
      reason: Forbidden.KeyNotFound
      synchronizationTime: "2025-01-02T03:04:05Z"
      versionId: v7
---
apiVersion: alibabacloud.com/v1alpha1
kind: ClusterSecretStore
metadata: {name: shared}
spec:
  conditions:
    - namespaceRegexes: ["team-.*"]
  keyNamePolicy:
    allowedKeys: ["{namespace}/*", "shared-*"]
  OOS:
    OOSAuth:
      accessKey: {name: ak, namespace: kmsync, key: id}
      accessKeySecret: {name: ak, namespace: kmsync, key: secret}
      roleSessionExpiration: "1800"
status:
  capabilities: ReadOnly
  conditions:
    - {type: Ready, status: "True", reason: Valid}
"#;

#[test]
fn kmsync_additions_round_trip() {
    let ms = assert_round_trips(ADDITIONS);
    let es = external_secrets(&ms)[0];
    assert_eq!(es.spec.refresh_policy(), RefreshPolicy::OnChange);
    assert_eq!(es.spec.creation_policy(), CreationPolicy::Merge);
    assert_eq!(es.spec.deletion_policy(), DeletionPolicy::Retain);
    assert!(es.spec.immutable());
    assert_eq!(es.target_name(), "app-secret");
    let rules = es.spec.rules();
    assert_eq!(
        rules[0].module.source(),
        Some(ModuleSource::Builtin("jmespath"))
    );
    assert_eq!(rules[0].hooks(), None);
    assert_eq!(rules[0].config, Some(json!({"expression": "a.b"})));
    assert_eq!(
        rules[1].hooks(),
        Some(&[RuleHook::Transform, RuleHook::Rotate][..])
    );
    assert!(matches!(
        rules[1].module.source(),
        Some(ModuleSource::ConfigMap {
            name: "rules",
            key: "mask.wasm",
            ..
        })
    ));
    let ready = es.ready().unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("FetchFailed"));
    let result = &es
        .status
        .as_ref()
        .unwrap()
        .data_sync_results
        .as_ref()
        .unwrap()[0];
    assert_eq!(result.external_secret_key.as_deref(), Some("team-a/db"));
    assert_eq!(result.status.as_deref(), Some(SYNC_FAILED));
    assert_eq!(es.validate(), Ok(()));

    let Manifest::ClusterSecretStore(css) = &ms[1] else {
        panic!("expected a ClusterSecretStore")
    };
    assert!(css.spec.key_allowed("team-a", "team-a/db"));
    assert!(!css.spec.key_allowed("team-a", "team-b/db"));
    assert!(css.spec.namespace_allowed("team-a", &Default::default()));
    assert_eq!(
        css.spec
            .provider()
            .cloud_auth()
            .unwrap()
            .role_session_expiration(),
        Ok(std::time::Duration::from_secs(1800))
    );
    assert_eq!(
        css.status.as_ref().unwrap().ready().unwrap().status,
        ConditionStatus::True
    );
    assert_eq!(css.validate(), Ok(()));
}

// ---------------------------------------------------------------------------------------
// Validation: one test per obvious mistake; each asserts the exact path and problem.
// ---------------------------------------------------------------------------------------

fn one<T: for<'de> Deserialize<'de>>(yaml: &str) -> T {
    serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn problems(result: Result<(), Invalid>) -> Vec<(String, ProblemKind)> {
    result
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| (p.path, p.kind))
        .collect()
}

const ES_HEAD: &str = "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {name: app, namespace: default}\n";

fn es(spec: &str) -> ExternalSecret {
    one(&format!("{ES_HEAD}spec:\n{spec}"))
}

#[test]
fn invalid_secret_key_names_are_reported_with_object_and_path() {
    let es = es("  data:\n    - {key: a, name: ok}\n    - {key: b, name: \"a b\"}\n");
    let err = es.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "ExternalSecret default/app: spec.data[1].name: \"a b\" is not a valid Secret key \
         (1-253 characters of [-._a-zA-Z0-9], not \".\" or starting with \"..\")"
    );
    let es = self::es("  data:\n    - key: a\n      jmesPath: [{path: x, objectAlias: \"x/y\"}]\n");
    assert_eq!(
        problems(es.validate()),
        [(
            "spec.data[0].jmesPath[0].objectAlias".to_string(),
            ProblemKind::InvalidSecretKey {
                value: "x/y".into()
            }
        )]
    );
}

#[test]
fn a_remote_key_that_cannot_be_a_secret_key_needs_a_name() {
    let es = es(
        "  provider: oos\n  data:\n    - {key: /prod/db/password}\n    - {key: /prod/db/user, name: user}\n",
    );
    assert_eq!(
        problems(es.validate()),
        [(
            "spec.data[0]".to_string(),
            ProblemKind::KeyNeedsName {
                key: "/prod/db/password".into()
            }
        )]
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let es = es(concat!(
        "  rotationInterval: 5 min\n",
        "  data:\n",
        "    - key: a\n",
        "      jmesPath: [{path: \"friends[\", objectAlias: f}]\n",
        "    - {key: b, name: f}\n",
        "  dataProcess:\n",
        "    - replaceRule: [{source: \"(\", target: x}]\n",
    ));
    let got = problems(es.validate());
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.data[0].jmesPath[0].path",
            "spec.data[1].name",
            "spec.dataProcess[0].extract",
            "spec.dataProcess[0].replaceRule[0].source",
            "spec.rotationInterval",
        ]
    );
    assert!(
        matches!(&got[0].1, ProblemKind::InvalidJmesPath { expression, .. } if expression == "friends[")
    );
    assert_eq!(
        got[1].1,
        ProblemKind::DuplicateSecretKey {
            key: "f".into(),
            first: "spec.data[0].jmesPath[0].objectAlias".into()
        }
    );
    assert_eq!(got[2].1, ProblemKind::Required);
    assert!(matches!(&got[3].1, ProblemKind::InvalidRegex { pattern, .. } if pattern == "("));
    assert!(
        matches!(&got[4].1, ProblemKind::Duration(DurationError::UnknownUnit { unit, .. }) if unit == " min")
    );
}

#[test]
fn rotation_interval_must_be_at_least_a_second_and_only_with_periodic_refresh() {
    let es = es("  rotationInterval: 500ms\n  data: [{key: a}]\n");
    assert_eq!(
        problems(es.validate()),
        [(
            "spec.rotationInterval".to_string(),
            ProblemKind::OutOfRange {
                value: "500ms".into(),
                range: "at least 1s"
            }
        )]
    );
    let es = self::es("  rotationInterval: 1m\n  refreshPolicy: CreatedOnce\n  data: [{key: a}]\n");
    assert!(matches!(
        &problems(es.validate())[0],
        (path, ProblemKind::Conflict { other, .. }) if path == "spec.rotationInterval" && other == "spec.refreshPolicy"
    ));
}

#[test]
fn deletion_policy_delete_needs_creation_policy_owner() {
    for policy in ["Orphan", "Merge", "None"] {
        let es = es(&format!(
            "  data: [{{key: a}}]\n  target: {{creationPolicy: {policy}, deletionPolicy: Delete}}\n"
        ));
        assert!(
            matches!(&problems(es.validate())[0], (path, ProblemKind::Conflict { .. }) if path == "spec.target.deletionPolicy"),
            "{policy}"
        );
    }
    let ok = es("  data: [{key: a}]\n  target: {creationPolicy: Owner, deletionPolicy: Delete}\n");
    assert_eq!(ok.validate(), Ok(()));
}

#[test]
fn an_external_secret_must_read_something_and_have_a_name() {
    let es: ExternalSecret = one(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {}\nspec: {}\n",
    );
    let err = es.validate().unwrap_err();
    assert_eq!(err.object, "<unnamed>");
    assert_eq!(
        err.problems,
        [
            Problem {
                path: "metadata.name".into(),
                kind: ProblemKind::Required
            },
            Problem {
                path: "spec".into(),
                kind: ProblemKind::NoData
            },
        ]
    );
}

#[test]
fn rule_modules_name_exactly_one_source_and_configmaps_need_a_digest() {
    let es = es(concat!(
        "  data: [{key: a}]\n",
        "  rules:\n",
        "    - module: {builtin: jmespath, configMap: {name: r, key: r.wasm}, sha256: ",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef}\n",
        "    - module: {}\n",
        "    - module: {configMap: {name: r, key: r.wasm}}\n",
        "    - module: {configMap: {name: r2, key: r.wasm}, sha256: ABC}\n",
        "    - {module: {builtin: jmespath}, hooks: [filter, filter]}\n",
    ));
    assert_eq!(
        problems(es.validate()),
        [
            (
                "spec.rules[0].module".to_string(),
                ProblemKind::ExactlyOneOf {
                    fields: "builtin, configMap"
                }
            ),
            (
                "spec.rules[0].module.sha256".to_string(),
                ProblemKind::Conflict {
                    other: "spec.rules[0].module.builtin".into(),
                    detail: "built-in modules are not pinned by digest"
                }
            ),
            (
                "spec.rules[1].module".to_string(),
                ProblemKind::ExactlyOneOf {
                    fields: "builtin, configMap"
                }
            ),
            (
                "spec.rules[2].module.sha256".to_string(),
                ProblemKind::Required
            ),
            (
                "spec.rules[3].module.sha256".to_string(),
                ProblemKind::InvalidSha256 {
                    value: "ABC".into()
                }
            ),
            (
                "spec.rules[4].name".to_string(),
                ProblemKind::Duplicate {
                    value: "jmespath".into()
                }
            ),
            (
                "spec.rules[4].hooks[1]".to_string(),
                ProblemKind::Duplicate {
                    value: "filter".into()
                }
            ),
        ]
    );
}

#[test]
fn kms_endpoint_is_for_kms_only_and_must_look_like_a_host() {
    let es = es("  provider: oos\n  data: [{key: a, kmsEndpoint: kms.cn-hangzhou.aliyuncs.com}]\n");
    assert_eq!(
        problems(es.validate()),
        [(
            "spec.data[0].kmsEndpoint".to_string(),
            ProblemKind::NotForProvider { provider: "oos" }
        )]
    );
    let es = self::es("  data: [{key: a, kmsEndpoint: \"http://x y\"}]\n");
    assert_eq!(
        problems(es.validate()),
        [(
            "spec.data[0].kmsEndpoint".to_string(),
            ProblemKind::InvalidEndpoint {
                value: "http://x y".into()
            }
        )]
    );
}

#[test]
fn template_type_must_agree_with_spec_type_and_template_from_names_one_source() {
    let es = es(concat!(
        "  type: Opaque\n",
        "  data: [{key: a}]\n",
        "  target:\n",
        "    template:\n",
        "      type: kubernetes.io/tls\n",
        "      data: {\"bad key\": x}\n",
        "      templateFrom:\n",
        "        - {literal: x, configMap: {name: c, items: [{key: k}]}}\n",
    ));
    let got = problems(es.validate());
    assert_eq!(got[0].0, "spec.type");
    assert_eq!(
        got[1],
        (
            "spec.target.template.data[\"bad key\"]".to_string(),
            ProblemKind::InvalidSecretKey {
                value: "bad key".into()
            }
        )
    );
    assert_eq!(
        got[2],
        (
            "spec.target.template.templateFrom[0]".to_string(),
            ProblemKind::ExactlyOneOf {
                fields: "configMap, secret, literal"
            }
        )
    );
    assert_eq!(got.len(), 3);
}

const SS_HEAD: &str = "apiVersion: alibabacloud.com/v1alpha1\nkind: SecretStore\nmetadata: {name: s, namespace: team-a}\n";

#[test]
fn a_store_names_exactly_one_of_kms_and_oos() {
    for spec in ["spec: {}\n", "spec: {KMS: {}, OOS: {}}\n"] {
        let store: SecretStore = one(&format!("{SS_HEAD}{spec}"));
        assert_eq!(
            problems(store.validate()),
            [(
                "spec".to_string(),
                ProblemKind::ExactlyOneOf { fields: "KMS, OOS" }
            )],
            "{spec}"
        );
    }
    let store: SecretStore = one(&format!("{SS_HEAD}spec: {{KMS: {{}}}}\n"));
    assert_eq!(store.validate(), Ok(()));
}

#[test]
fn store_auth_mistakes_are_each_named() {
    let store: SecretStore = one(&format!(
        "{SS_HEAD}{}",
        concat!(
            "spec:\n",
            "  KMS:\n",
            "    KMSAuth:\n",
            "      accessKey: {name: ak, key: id}\n",
            "      oidcProviderARN: acs:ram::123:role/oops\n",
            "      remoteRamRoleARN: acs:ram::456:role/a\n",
            "      remoteRamRoleArn: acs:ram::456:role/b\n",
            "      ramRoleSessionName: \"no spaces\"\n",
            "      roleSessionExpiration: \"60\"\n",
            "      oidcTokenFilePath: relative/token\n",
            "    dedicatedKMSAuth:\n",
            "      protocol: http\n",
            "      endpoint: kst-1\n",
            "      ca: bm90IGEgY2VydA==\n",
            "      clientKeyContent: {name: ck, key: clientkey}\n",
            "      password: {name: ck, key: password}\n",
        )
    ));
    let got = problems(store.validate());
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.KMS",
            "spec.KMS.KMSAuth.accessKey",
            "spec.KMS.KMSAuth.oidcProviderARN",
            "spec.KMS.KMSAuth.oidcProviderARN",
            "spec.KMS.KMSAuth.remoteRamRoleArn",
            "spec.KMS.KMSAuth.ramRoleSessionName",
            "spec.KMS.KMSAuth.oidcTokenFilePath",
            "spec.KMS.KMSAuth.roleSessionExpiration",
            "spec.KMS.dedicatedKMSAuth.protocol",
            "spec.KMS.dedicatedKMSAuth.ca",
        ]
    );
    assert_eq!(
        got[0].1,
        ProblemKind::AtMostOneOf {
            fields: "KMSAuth, dedicatedKMSAuth"
        }
    );
    assert_eq!(
        got[1].1,
        ProblemKind::Requires {
            other: "accessKeySecret"
        }
    );
    assert_eq!(
        got[2].1,
        ProblemKind::InvalidArn {
            value: "acs:ram::123:role/oops".into(),
            expected: "oidc-provider"
        }
    );
    assert_eq!(
        got[3].1,
        ProblemKind::Requires {
            other: "ramRoleARN"
        }
    );
    assert_eq!(
        got[7].1,
        ProblemKind::OutOfRange {
            value: "60".into(),
            range: "900s to 43200s"
        }
    );
    assert_eq!(got[9].1, ProblemKind::InvalidCaBundle);
}

#[test]
fn cluster_store_references_name_their_namespace_and_conditions_are_checked() {
    let css: ClusterSecretStore = one(concat!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: ClusterSecretStore\nmetadata: {name: shared}\n",
        "spec:\n",
        "  OOS:\n",
        "    OOSAuth:\n",
        "      serviceAccountRef: {name: sa}\n",
        "  conditions:\n",
        "    - {}\n",
        "    - namespaceRegexes: [\"(\"]\n",
        "      namespaces: [Bad_Name]\n",
        "    - namespaceSelector:\n",
        "        matchExpressions: [{key: env, operator: In}]\n",
        "  keyNamePolicy:\n",
        "    allowedKeys: [\"{ns}/*\"]\n",
    ));
    let err = css.validate().unwrap_err();
    assert_eq!(err.object, "shared");
    let got: Vec<(String, ProblemKind)> =
        err.problems.into_iter().map(|p| (p.path, p.kind)).collect();
    assert_eq!(
        got[0],
        (
            "spec.OOS.OOSAuth.serviceAccountRef.namespace".to_string(),
            ProblemKind::Required
        )
    );
    assert_eq!(
        got[1],
        (
            "spec.conditions[0]".to_string(),
            ProblemKind::EmptyCondition
        )
    );
    assert_eq!(
        got[2],
        (
            "spec.conditions[1].namespaces[0]".to_string(),
            ProblemKind::InvalidLabelName {
                value: "Bad_Name".into()
            }
        )
    );
    assert_eq!(got[3].0, "spec.conditions[1].namespaceRegexes[0]");
    assert_eq!(
        got[4],
        (
            "spec.conditions[2].namespaceSelector.matchExpressions[0].operator".to_string(),
            ProblemKind::InvalidSelector {
                operator: "In".into(),
                detail: "needs at least one value"
            }
        )
    );
    assert_eq!(
        got[5],
        (
            "spec.keyNamePolicy.allowedKeys[0]".to_string(),
            ProblemKind::UnknownPlaceholder {
                value: "{ns}/*".into()
            }
        )
    );
    assert_eq!(got.len(), 6);
}

#[test]
fn cluster_external_secret_reports_embedded_spec_problems_under_its_path() {
    let ces: ClusterExternalSecret = one(concat!(
        "apiVersion: alibabacloud.com/v1alpha1\nkind: ClusterExternalSecret\nmetadata: {name: c}\n",
        "spec:\n",
        "  externalSecretName: Not_Valid\n",
        "  externalSecretSpec:\n",
        "    data: [{key: a, name: \"a:b\"}]\n",
        "  rotationInterval: 1d\n",
    ));
    let got = problems(ces.validate());
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.externalSecretSpec.data[0].name",
            "spec.externalSecretName",
            "spec.rotationInterval"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// The manifest reader: clear errors naming document, kind and field; never a panic.
// ---------------------------------------------------------------------------------------

#[test]
fn missing_required_fields_name_document_kind_path_and_line() {
    let input = format!(
        "{}---\n# comment-only document\n---\napiVersion: alibabacloud.com/v1alpha1\nkind: ExternalSecret\nmetadata: {{name: broken}}\nspec:\n  data:\n    - key: a\n      jmesPath:\n        - {{path: name}}\n",
        ACK_COMPAT
    );
    let err = parse_manifests(&input).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("document 3 (ExternalSecret broken): spec.data[0].jmesPath[0]: missing field `objectAlias`"),
        "{msg}"
    );
    assert!(msg.ends_with("at line 33 column 11"), "{msg}");
    assert!(matches!(err, ManifestError::Invalid { document: 3, .. }));
}

#[test]
fn wrong_types_and_unknown_enum_values_are_named() {
    let err = parse_manifests(&format!(
        "{ES_HEAD}spec:\n  provider: KMS\n  data: [{{key: a}}]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("document 1 (ExternalSecret app): spec.provider: unknown variant `KMS`, expected `kms` or `oos`"), "{err}");
    let err = parse_manifests(&format!(
        "{SS_HEAD}spec:\n  KMS:\n    dedicatedKMSAuth: {{ignoreSSL: \"yes\"}}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "document 1 (SecretStore s): spec.KMS.dedicatedKMSAuth.ignoreSSL: invalid type"
        ),
        "{err}"
    );
}

#[test]
fn malformed_yaml_and_non_objects_are_errors_not_panics() {
    let err = parse_manifests("a: [1, 2\n").unwrap_err();
    assert!(
        matches!(err, ManifestError::Yaml { document: 1, .. }),
        "{err}"
    );
    let err = parse_manifests("---\n- a\n- b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1: expected a Kubernetes object (a mapping with apiVersion and kind), found a sequence"
    );
    let err = parse_manifests("kind: ExternalSecret\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1: missing or non-string apiVersion"
    );
    // A `---` forgotten between two objects merges them into one mapping with duplicate keys
    // (as in one of ack-secret-manager's own examples).
    let err = parse_manifests(&format!(
        "{ES_HEAD}spec: {{data: [{{key: a}}]}}\napiVersion: v1\nkind: ConfigMap\n"
    ))
    .unwrap_err();
    assert!(
        matches!(err, ManifestError::Yaml { document: 1, .. }),
        "{err}"
    );
    assert!(parse_manifests("").unwrap().is_empty());
    assert!(parse_manifests("# nothing\n---\n").unwrap().is_empty());
}

#[test]
fn other_versions_of_our_group_are_refused_and_other_kinds_pass_through() {
    let err = parse_manifests(
        "apiVersion: alibabacloud.com/v1beta1\nkind: SecretStore\nmetadata: {name: s}\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 1 (SecretStore s): apiVersion \"alibabacloud.com/v1beta1\" is not served; use alibabacloud.com/v1alpha1"
    );
    let ms = parse_manifests(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: eso}\n",
    )
    .unwrap();
    assert!(
        matches!(&ms[0], Manifest::Other { api_version, .. } if api_version == "external-secrets.io/v1")
    );
}

#[test]
fn lists_from_kubectl_get_are_expanded() {
    let input = format!(
        "apiVersion: v1\nkind: List\nitems:\n  - {}\n  - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: c}}}}\n",
        serde_json::to_string(&raw_documents(ACK_COMPAT)[0]).unwrap()
    );
    let ms = parse_manifests(&input).unwrap();
    assert_eq!(
        ms.iter().map(Manifest::kind).collect::<Vec<_>>(),
        ["ExternalSecret", "ConfigMap"]
    );
    let bad = "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: alibabacloud.com/v1alpha1, kind: ExternalSecret, metadata: {name: x}, spec: {data: [{name: y}]}}\n";
    let err = parse_manifests(bad).unwrap_err().to_string();
    assert!(
        err.starts_with("document 1 items[0] (ExternalSecret x): "),
        "{err}"
    );
    assert!(err.contains("missing field `key`"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The generated CRDs.
// ---------------------------------------------------------------------------------------

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Walks a schema and reports every node that breaks Kubernetes' structural-schema rules or
/// carries a `default`.
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        out.push(format!("{path}: schema is not an object"));
        return;
    };
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    if !obj.contains_key("type") && !preserve && !int_or_string {
        out.push(format!("{path}: no type"));
    }
    for forbidden in [
        "default",
        "$ref",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "definitions",
        "$defs",
    ] {
        if obj.contains_key(forbidden) {
            out.push(format!("{path}: has {forbidden}"));
        }
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!("{path}: both properties and additionalProperties"));
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            structural_violations(sub, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
    if let Some(add) = obj.get("additionalProperties").filter(|a| a.is_object()) {
        structural_violations(add, &format!("{path}{{}}"), out);
    }
}

#[test]
fn generated_schemas_are_structural_and_have_no_defaults() {
    for crd in crds() {
        let mut violations = Vec::new();
        structural_violations(&schema_of(&crd), &crd.spec.names.kind, &mut violations);
        assert!(violations.is_empty(), "{violations:#?}");
    }
    // Belt and braces: the word never appears as a schema key anywhere in the YAML.
    assert!(
        !crds_yaml().contains("default:"),
        "a schema default slipped in"
    );
}

/// Follows a dotted path of property names (`[]` steps into `items`).
fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, step| {
        let next = if step == "[]" {
            node.get("items")
        } else {
            node["properties"].get(step)
        };
        next.unwrap_or_else(|| panic!("no {step} in {path}"))
    })
}

fn rules_at(schema: &Value, path: &str) -> Vec<String> {
    let node = if path.is_empty() {
        schema
    } else {
        at(schema, path)
    };
    node.get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["rule"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn cel_rules_guard_the_obvious_mistakes() {
    let es = schema_of(&ExternalSecret::crd());
    let ss = schema_of(&SecretStore::crd());
    let css = schema_of(&ClusterSecretStore::crd());
    let ces = schema_of(&ClusterExternalSecret::crd());
    let one_provider = ["has(self.KMS) != has(self.OOS)"];
    assert_eq!(rules_at(&ss, "spec"), one_provider);
    assert_eq!(rules_at(&css, "spec"), one_provider);
    for s in [&ss, &css] {
        assert_eq!(
            rules_at(s, "spec.KMS"),
            ["!(has(self.KMSAuth) && has(self.dedicatedKMSAuth))"]
        );
    }
    let module_rules = [
        "has(self.builtin) != has(self.configMap)",
        "has(self.configMap) == has(self.sha256)",
    ];
    assert_eq!(rules_at(&es, "spec.rules.[].module"), module_rules);
    assert_eq!(
        rules_at(&ces, "spec.externalSecretSpec.rules.[].module"),
        module_rules
    );
    assert_eq!(rules_at(&es, "spec.target").len(), 1);
    assert!(rules_at(&es, "spec.target")[0].contains("self.deletionPolicy != 'Delete'"));
    assert_eq!(rules_at(&es, "spec").len(), 1);
    // Each rule carries a message, which is what kubectl prints.
    let yaml = crds_yaml();
    assert_eq!(
        yaml.matches("- message:").count(),
        yaml.matches("rule:").count()
    );
}

#[test]
fn schema_constrains_names_digests_and_enums() {
    let es = schema_of(&ExternalSecret::crd());
    assert_eq!(
        at(&es, "spec.data.[].name")["pattern"],
        json!(SECRET_KEY_PATTERN)
    );
    assert_eq!(
        at(&es, "spec.data.[].jmesPath.[].objectAlias")["pattern"],
        json!(SECRET_KEY_PATTERN)
    );
    assert_eq!(
        at(&es, "spec.data.[].jmesPath.[]")["required"],
        json!(["objectAlias", "path"])
    );
    assert_eq!(at(&es, "spec.data.[]")["required"], json!(["key"]));
    assert_eq!(
        at(&es, "spec.rules.[].module.sha256")["pattern"],
        json!("^[0-9a-f]{64}$")
    );
    assert_eq!(
        at(&es, "spec.rotationInterval")["pattern"],
        json!(GO_DURATION_PATTERN)
    );
    let enums = [
        ("spec.provider", json!(["kms", "oos"])),
        (
            "spec.refreshPolicy",
            json!(["Periodic", "OnChange", "CreatedOnce"]),
        ),
        (
            "spec.target.creationPolicy",
            json!(["Owner", "Orphan", "Merge", "None"]),
        ),
        ("spec.target.deletionPolicy", json!(["Retain", "Delete"])),
        (
            "spec.target.template.mergePolicy",
            json!(["Replace", "Merge"]),
        ),
        (
            "spec.data.[].secretStoreRef.kind",
            json!(["SecretStore", "ClusterSecretStore"]),
        ),
        (
            "spec.rules.[].hooks.[]",
            json!(["transform", "filter", "rotate"]),
        ),
        (
            "status.conditions.[].status",
            json!(["True", "False", "Unknown"]),
        ),
    ];
    for (path, values) in enums {
        let node = at(&es, path);
        assert_eq!(node["enum"], values, "{path}");
        assert_eq!(node["type"], json!("string"), "{path}");
    }
    assert_eq!(
        at(&es, "spec.rules.[].hooks")["x-kubernetes-list-type"],
        json!("set")
    );
    assert_eq!(
        at(&es, "spec.rules.[].config")["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    assert_eq!(
        at(&es, "status.dataSyncResults.[]")["properties"]["ExternalSecretKey"]["type"],
        json!("string")
    );
    let ss = schema_of(&SecretStore::crd());
    for field in [
        "ramRoleARN",
        "oidcProviderARN",
        "remoteRamRoleARN",
        "remoteRamRoleArn",
        "serviceAccountRef",
    ] {
        at(&ss, &format!("spec.KMS.KMSAuth.{field}"));
        at(&ss, &format!("spec.OOS.OOSAuth.{field}"));
    }
    assert_eq!(
        at(&ss, "spec.KMS.dedicatedKMSAuth")["required"],
        json!(["clientKeyContent", "endpoint", "password", "protocol"])
    );
}

#[test]
fn crds_have_names_columns_short_names_categories_and_status() {
    let expected = [
        ("externalsecrets.alibabacloud.com", "Namespaced", "es", true),
        ("secretstores.alibabacloud.com", "Namespaced", "ss", false),
        (
            "clustersecretstores.alibabacloud.com",
            "Cluster",
            "css",
            false,
        ),
        (
            "clusterexternalsecrets.alibabacloud.com",
            "Cluster",
            "ces",
            false,
        ),
    ];
    for (crd, (name, scope, short, has_last_sync)) in crds().iter().zip(expected) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.scope, scope);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["kmsync".to_string()][..])
        );
        let version = &crd.spec.versions[0];
        assert_eq!(
            (version.name.as_str(), version.served, version.storage),
            (VERSION, true, true)
        );
        assert!(
            version.subresources.as_ref().unwrap().status.is_some(),
            "{name}"
        );
        let columns: Vec<(&str, &str)> = version
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns[0],
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status")
        );
        assert_eq!(
            columns[1],
            ("Reason", ".status.conditions[?(@.type==\"Ready\")].reason")
        );
        assert!(columns.contains(&("Age", ".metadata.creationTimestamp")));
        assert_eq!(
            columns.contains(&("Last Sync", ".status.refreshTime")),
            has_last_sync
        );
    }
}

#[test]
fn crd_yaml_is_valid_apiextensions_v1() {
    let yaml = crds_yaml();
    let parsed: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(parsed, crds());
    assert_eq!(crds_yaml(), yaml, "generation is deterministic");
}

const COMMITTED_CRDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../charts/kmsync/crds/kmsync-crds.yaml"
);

#[test]
fn committed_crds_match_the_types() {
    let generated = crds_yaml();
    if std::env::var_os("KMSYNC_UPDATE_CRDS").is_some() {
        std::fs::create_dir_all(std::path::Path::new(COMMITTED_CRDS).parent().unwrap()).unwrap();
        std::fs::write(COMMITTED_CRDS, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED_CRDS).unwrap_or_default();
    assert!(
        committed == generated,
        "charts/kmsync/crds/kmsync-crds.yaml is out of date with host/src/api; regenerate it with\n    \
         cargo run -p kmsync --example crdgen > charts/kmsync/crds/kmsync-crds.yaml\n\
         (or KMSYNC_UPDATE_CRDS=1 cargo test -p kmsync api::tests::committed_crds_match_the_types)"
    );
}
