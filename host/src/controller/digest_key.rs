//! The per-installation HMAC key of change-detection digests (`--digest-key-secret`): read
//! from `data.key` of a Secret in the controller's namespace, or created there (32 random
//! bytes) on first start. Only the leader creates it; a replica that loses the race to create
//! it reads the winner's.
//!
//! Verbs used: `get` on that Secret, `create` on Secrets in the controller's namespace.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use super::Error;
use crate::sync::DigestKey;

/// Key in the Secret's `data`.
pub const DATA_KEY: &str = "key";

/// Reads the digest key from `namespace/name`, creating the Secret if it does not exist.
///
/// # Errors
/// [`Error::Api`] when the API server cannot be asked; [`Error::DigestKey`] when the Secret
/// exists without a usable `data.key` (kmsync never overwrites it).
pub async fn ensure(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<DigestKey, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let object = format!("Secret {namespace}/{name}");
    for _ in 0..2 {
        if let Some(secret) = api.get_opt(name).await.map_err(|e| Error::Api {
            action: "reading the digest key",
            object: object.clone(),
            source: Box::new(e),
        })? {
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(DATA_KEY))
                .ok_or_else(|| Error::DigestKeyMissing {
                    secret: object.clone(),
                })?;
            return DigestKey::from_bytes(&bytes.0).map_err(|source| Error::DigestKey {
                secret: object.clone(),
                source,
            });
        }
        let key = DigestKey::random();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/part-of".to_owned(),
                    "kmsync".to_owned(),
                )])),
                annotations: Some(BTreeMap::from([(
                    "kmsync.io/description".to_owned(),
                    "HMAC key of kmsync's change-detection digests. Deleting it makes every managed Secret be rewritten once.".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                DATA_KEY.to_owned(),
                ByteString(key.expose().to_vec()),
            )])),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(secret = %object, "created the digest key");
                return Ok(key);
            }
            // Another replica created it first: read theirs.
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                return Err(Error::Api {
                    action: "creating the digest key",
                    object,
                    source: Box::new(e),
                });
            }
        }
    }
    Err(Error::DigestKeyRace { secret: object })
}
