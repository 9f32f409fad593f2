//! ack-secret-manager's README examples, rendered by the real `kmsync render` binary, give the
//! Secrets that README documents — with the README's RRSA SecretStore (its placeholders filled
//! in) authenticating against the emulator's STS.
//!
//! One documented difference: the README's `extract-secret` output shows string values
//! JSON-quoted (`age: IjE0Ig==`, i.e. `"14"`). That is ack v0.5.0–v0.5.7 behaviour; ack's own
//! code since v0.5.8 (`utils.JsonStr` / `utils.YamlStr`) stores strings as they are, and so does
//! kmsync (`age: MTQ=`, i.e. `14`). The test pins that relationship exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine as _;
use kmsync::emulator::{Emulator, MintTokenRequest, Seed};

const BIN: &str = env!("CARGO_BIN_EXE_kmsync");

/// The secret of ack's README ("SecretData: {...}, VersionId: v1"), as KMS secret `test1` and
/// as OOS parameter `test2`, and the RAM pieces RRSA needs.
const SEED: &str = r#"
account_id: "1234567890123456"
roles:
  - arn: acs:ram::1234567890123456:role/secret-reader
    oidc_trust:
      - provider: acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789
        subjects: ["system:serviceaccount:kube-system:ack-secret-manager"]
oidc_providers:
  - arn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789
    issuer: https://oidc-ack-cn-hangzhou.example/c0123456789
secrets:
  - name: test1
    text: '{"name":"tom","age":"14","friends":[{"name":"lili"},{"name":"edf"}]}'
    version_id: v1
oos_parameters:
  - name: test2
    value: '{"name":"tom","age":"14","friends":[{"name":"lili"},{"name":"edf"}]}'
"#;

/// The README's SecretStore (`{accountID}`, `{clusterID}`, `{roleName}` filled in) and its
/// three ExternalSecrets, unchanged; plus the OOS variant its table describes.
const README_MANIFESTS: &str = r#"
apiVersion: 'alibabacloud.com/v1alpha1'
kind: SecretStore
metadata:
  name: scdemo
spec:
  KMS: # When synchronizing KMS Secret Manager credentials, specify as KMS, and OOS when synchronizing OOS encryption parameters
    KMSAuth: # KMSAuth or OOSAuth
      oidcProviderARN: "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789"
      ramRoleARN: "acs:ram::1234567890123456:role/secret-reader"
---
apiVersion: 'alibabacloud.com/v1alpha1'
kind: ExternalSecret
metadata:
  name: esdemo
spec:
  provider: kms  # Currently supports kms and oos, the default value is kms when this field is not specified
  data:
    - key: test1 # Key name to be synchronized, currently supports kms credentials and oos encryption parameters, this example is kms credential name
      name: test1 # the secret name in target Kubernetes cluster
      versionId: v1 # kms credential version, this field does not need to be configured when the provider is not kms
      secretStoreRef: # no need to be specified when using worker node RAM Role authentication
        name: scdemo
        namespace: default
---
apiVersion: 'alibabacloud.com/v1alpha1'
kind: ExternalSecret
metadata:
  name: es-json-demo
spec:
  provider: kms
  data: 
    - key: test1 
      name: test1 
      versionId: v1
      secretStoreRef:
        name: scdemo
        namespace: default
      jmesPath: # Parse some fields in json/yaml string
        - path: "name"
          objectAlias: "name"
        - path: "friends[0].name"
          objectAlias: "friendname"
---
apiVersion: 'alibabacloud.com/v1alpha1'
kind: ExternalSecret
metadata:
  name: extract-secret
spec:
  provider: kms
  dataProcess:
    - extract:
        key: test1
        name: extract
        versionId: v1
        secretStoreRef:
          name: scdemo
          namespace: default
      replaceRule:
        - source: "^n.*e$" # To replace keys that start with 'n' and end with 'e' with 'alibabacloud'
          target: "alibabacloud"
        - source: "^f.*s$"
          target: "ack"
---
apiVersion: 'alibabacloud.com/v1alpha1'
kind: SecretStore
metadata:
  name: oos-store
spec:
  OOS:
    OOSAuth:
      oidcProviderARN: "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789"
      ramRoleARN: "acs:ram::1234567890123456:role/secret-reader"
---
apiVersion: 'alibabacloud.com/v1alpha1'
kind: ExternalSecret
metadata:
  name: oos-demo
spec:
  provider: oos
  data:
    - key: test2
      name: test2
      secretStoreRef:
        name: oos-store
        namespace: default
"#;

/// The example that `shared/docs/ack-compat.md` says must work unchanged (jmesPath and
/// dataProcess in one object).
const ACK_COMPAT_EXAMPLE: &str = r#"
apiVersion: alibabacloud.com/v1alpha1
kind: ExternalSecret
metadata: {name: es-json-demo}
spec:
  provider: kms
  data:
    - key: test1
      name: test1
      versionId: v1
      secretStoreRef: {name: scdemo, namespace: default}
      jmesPath:
        - {path: "name", objectAlias: "name"}
        - {path: "friends[0].name", objectAlias: "friendname"}
  dataProcess:
    - extract:
        key: test1
        name: extract
        versionId: v1
        secretStoreRef: {name: scdemo, namespace: default}
      replaceRule:
        - {source: "^n.*e$", target: "alibabacloud"}
"#;

struct Setup {
    _dir: tempfile::TempDir,
    seed: PathBuf,
    token: PathBuf,
    dir: PathBuf,
}

/// Writes the seed and an RRSA token for ack's ServiceAccount, minted with the emulator's
/// built-in TEST ONLY OIDC key (every emulator instance trusts it).
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.txt");
    std::fs::write(&seed_path, SEED).unwrap();
    let emu = Emulator::builder(Seed::from_yaml_str(SEED).unwrap())
        .start()
        .await
        .unwrap();
    let token = emu
        .mint_oidc_token(&MintTokenRequest {
            provider_arn: "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0123456789".into(),
            subject: "system:serviceaccount:kube-system:ack-secret-manager".into(),
            audience: None,
            expires_in_seconds: None,
            issuer: None,
        })
        .unwrap();
    emu.shutdown().await;
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, token).unwrap();
    Setup {
        dir: dir.path().to_owned(),
        _dir: dir,
        seed: seed_path,
        token: token_path,
    }
}

/// Renders `manifests` (`-o json --show-values`); returns name -> data (base64 as printed).
fn render(s: &Setup, manifests: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let file = s.dir.join("manifests.yaml");
    std::fs::write(&file, manifests).unwrap();
    let out = Command::new(BIN)
        .args(["render", "--show-values", "-o", "json", "-f"])
        .arg(&file)
        .arg("--emulator")
        .arg(&s.seed)
        // Where ACK's RRSA puts the token; the README's store names no token file.
        .env("ALIBABA_CLOUD_OIDC_TOKEN_FILE", &s.token)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("ALIBABA_CLOUD_ROLE_ARN")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|secret| {
            assert_eq!(secret["type"], "Opaque");
            assert_eq!(secret["metadata"]["namespace"], "default");
            let data = secret["data"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (
                secret["metadata"]["name"].as_str().unwrap().to_owned(),
                data,
            )
        })
        .collect()
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn decode(b64: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ack_readme_examples_render_the_secrets_its_readme_documents() {
    let s = setup().await;
    let secrets = render(&s, README_MANIFESTS);
    assert_eq!(
        secrets.keys().map(String::as_str).collect::<Vec<_>>(),
        ["es-json-demo", "esdemo", "extract-secret", "oos-demo"]
    );
    // `kubectl get secret esdemo -oyaml`, as the README prints it.
    assert_eq!(
        secrets["esdemo"],
        data(&[(
            "test1",
            "eyJuYW1lIjoidG9tIiwiYWdlIjoiMTQiLCJmcmllbmRzIjpbeyJuYW1lIjoibGlsaSJ9LHsibmFtZSI6ImVkZiJ9XX0="
        )])
    );
    assert_eq!(
        secrets["es-json-demo"],
        data(&[("friendname", "bGlsaQ=="), ("name", "dG9t")])
    );
    // The OOS variant reads the same value.
    assert_eq!(secrets["oos-demo"]["test2"], secrets["esdemo"]["test1"]);

    // extract-secret: the README's keys and its `ack` value exactly; its two string values
    // are the README's with the JSON quotes of ack < v0.5.8 removed (see the module docs).
    let readme = data(&[
        ("ack", "W3sibmFtZSI6ImxpbGkifSx7Im5hbWUiOiJlZGYifV0="),
        ("age", "IjE0Ig=="),
        ("alibabacloud", "InRvbSI="),
    ]);
    let ours = &secrets["extract-secret"];
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        readme.keys().collect::<Vec<_>>()
    );
    assert_eq!(ours["ack"], readme["ack"]);
    assert_eq!(ours["age"], "MTQ=");
    assert_eq!(ours["alibabacloud"], "dG9t");
    for key in ["age", "alibabacloud"] {
        assert_eq!(
            decode(&readme[key]),
            serde_json::to_string(&decode(&ours[key])).unwrap(),
            "{key}: the README shows our value JSON-quoted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ack_compat_example_renders_unchanged() {
    let s = setup().await;
    let store = README_MANIFESTS.split("\n---\n").next().unwrap();
    let secrets = render(&s, &format!("{store}\n---\n{ACK_COMPAT_EXAMPLE}"));
    let decoded: BTreeMap<&str, String> = secrets["es-json-demo"]
        .iter()
        .map(|(k, v)| (k.as_str(), decode(v)))
        .collect();
    assert_eq!(
        decoded,
        BTreeMap::from([
            ("age", "14".to_owned()),
            ("alibabacloud", "tom".to_owned()),
            ("friendname", "lili".to_owned()),
            ("friends", r#"[{"name":"lili"},{"name":"edf"}]"#.to_owned()),
            ("name", "tom".to_owned()),
        ])
    );
}
