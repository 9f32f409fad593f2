//! ClientKeys: the credential of a KMS instance application access point (AAP).
//!
//! A ClientKey is a JSON document `{"KeyId": "KAAP.<uuid>", "PrivateKeyData": "<base64 PKCS#12>"}`
//! plus a password (`shared/docs/alibaba-cloud-protocol.md`; the console downloads them as
//! `clientKey_KAAP.*.json` and `clientKey_KAAP.*_Password.txt`). The PKCS#12 holds an RSA private
//! key and the certificate the instance verifies signatures with. The official SDKs read it with
//! OpenSSL (Python) or `x/crypto/pkcs12` (Go), which accept the legacy `pbeWithSHAAnd3-KeyTripleDES`
//! encryption; kmsync reads that and PBES2 (AES) alike, and writes the legacy form (so that every
//! official SDK can read what the emulator hands out).
//!
//! Loading checks everything up front, so a bad ClientKey is reported when a store is set up,
//! not on the first fetch: JSON shape, base64, the PKCS#12 MAC (a wrong password), that the key is
//! RSA and usable, and that the certificate carries the same public key.
//!
//! Nothing here ever formats key material: `Debug` shows the KeyId, the certificate subject and
//! its expiry; errors name fields and the KeyId only.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ring::rand::SystemRandom;
use ring::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::alibaba::BodyProblem;
use crate::alibaba::response::parse_json;
use crate::value::{SecretBytes, SecretString};

/// Largest PKCS#12 archive accepted as a ClientKey, in bytes. A ClientKey (one RSA key of up
/// to 4096 bits and its certificate) takes 2.5–5 KiB; the archive comes from a Secret a tenant
/// writes, and every encrypted bag in it may ask for up to a million key-derivation rounds, so
/// the size bounds the work a load can cost.
pub const MAX_PKCS12_BYTES: usize = 16 * 1024;

/// Why a ClientKey could not be loaded or used. Never contains key material or the password.
#[derive(Debug, thiserror::Error)]
pub enum ClientKeyError {
    /// The content is not a JSON object of the ClientKey shape.
    #[error("client key content is not a JSON object with KeyId and PrivateKeyData: {problem}")]
    NotJson {
        /// What is wrong with the JSON (shape only, never content).
        problem: BodyProblem,
    },
    /// `KeyId` or `PrivateKeyData` is missing or empty.
    #[error("client key content has no {field}")]
    MissingField {
        /// `KeyId` or `PrivateKeyData`.
        field: &'static str,
    },
    /// `PrivateKeyData` is not standard base64.
    #[error("PrivateKeyData of client key {key_id} is not valid base64")]
    InvalidBase64 {
        /// The ClientKey's KeyId.
        key_id: String,
    },
    /// The PKCS#12 integrity check failed: the password is wrong (or the file was altered).
    #[error(
        "wrong password for client key {key_id} (the PKCS#12 integrity check failed; check the password Secret, and that it belongs to this client key)"
    )]
    WrongPassword {
        /// The ClientKey's KeyId.
        key_id: String,
    },
    /// `PrivateKeyData` is not a PKCS#12 archive kmsync can read (corrupt, truncated, or an
    /// unsupported encryption).
    #[error("PrivateKeyData of client key {key_id} is not a readable PKCS#12 archive")]
    InvalidPkcs12 {
        /// The ClientKey's KeyId.
        key_id: String,
        /// The PKCS#12 parser's error (structure and algorithm names only).
        #[source]
        source: p12_keystore::error::Error,
    },
    /// `PrivateKeyData` is larger than any ClientKey (see [`MAX_PKCS12_BYTES`]).
    #[error(
        "PrivateKeyData of client key {key_id} is {bytes} bytes, over the limit of {limit} bytes for a PKCS#12 client key"
    )]
    TooLarge {
        /// The ClientKey's KeyId.
        key_id: String,
        /// Size of the decoded PKCS#12 archive.
        bytes: usize,
        /// [`MAX_PKCS12_BYTES`].
        limit: usize,
    },
    /// The archive has no private key, or more than one.
    #[error("the PKCS#12 of client key {key_id} holds {count} private keys (expected exactly one)")]
    PrivateKeyCount {
        /// The ClientKey's KeyId.
        key_id: String,
        /// How many it holds.
        count: usize,
    },
    /// The private key is not an RSA key of 2048 to 8192 bits in PKCS#8 form.
    #[error("the private key of client key {key_id} is not a usable RSA key ({reason})")]
    UnsupportedKey {
        /// The ClientKey's KeyId.
        key_id: String,
        /// ring's fixed description, such as `InvalidEncoding`, `TooSmall`, `WrongAlgorithm`.
        reason: String,
    },
    /// The archive has no certificate.
    #[error("the PKCS#12 of client key {key_id} holds no certificate")]
    NoCertificate {
        /// The ClientKey's KeyId.
        key_id: String,
    },
    /// A certificate in the archive could not be parsed.
    #[error("a certificate in the PKCS#12 of client key {key_id} could not be parsed")]
    InvalidCertificate {
        /// The ClientKey's KeyId.
        key_id: String,
    },
    /// No certificate in the archive carries the private key's public key.
    #[error("the private key of client key {key_id} does not match its certificate ({subject})")]
    KeyCertificateMismatch {
        /// The ClientKey's KeyId.
        key_id: String,
        /// Subject of the (first) certificate found.
        subject: String,
    },
    /// Signing failed (ring reports no detail).
    #[error("signing with client key {key_id} failed")]
    Sign {
        /// The ClientKey's KeyId.
        key_id: String,
    },
    /// Writing a ClientKey failed (only [`write_client_key_json`]).
    #[error("could not write a client key: {reason}")]
    Write {
        /// What failed.
        reason: &'static str,
    },
}

impl ClientKeyError {
    /// Bounded label for metrics and condition reasons: the variant name in snake case.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotJson { .. } => "not_json",
            Self::MissingField { .. } => "missing_field",
            Self::InvalidBase64 { .. } => "invalid_base64",
            Self::WrongPassword { .. } => "wrong_password",
            Self::InvalidPkcs12 { .. } => "invalid_pkcs12",
            Self::TooLarge { .. } => "too_large",
            Self::PrivateKeyCount { .. } => "private_key_count",
            Self::UnsupportedKey { .. } => "unsupported_key",
            Self::NoCertificate { .. } => "no_certificate",
            Self::InvalidCertificate { .. } => "invalid_certificate",
            Self::KeyCertificateMismatch { .. } => "key_certificate_mismatch",
            Self::Sign { .. } => "sign",
            Self::Write { .. } => "write",
        }
    }
}

#[derive(Deserialize)]
struct ClientKeyJson {
    #[serde(rename = "KeyId")]
    key_id: Option<String>,
    #[serde(rename = "PrivateKeyData")]
    private_key_data: Option<String>,
}

/// A loaded ClientKey: KeyId, RSA private key (ring, constant-time signing) and certificate.
/// Cheap to share behind an `Arc`; `Debug` shows no key material.
pub struct ClientKey {
    key_id: String,
    key_pair: RsaKeyPair,
    certificate: Vec<u8>,
    subject: String,
    not_after: Option<DateTime<Utc>>,
    rng: SystemRandom,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("key_id", &self.key_id)
            .field("private_key", &"<redacted>")
            .field("certificate_subject", &self.subject)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl ClientKey {
    /// Loads a ClientKey from the content of its JSON file and its password (both as read
    /// from Secrets; the password is used as given, without trimming).
    ///
    /// # Errors
    /// [`ClientKeyError`]: `NotJson`, `MissingField`, `InvalidBase64`, `WrongPassword`,
    /// `InvalidPkcs12`, `PrivateKeyCount`, `UnsupportedKey`, `NoCertificate`,
    /// `InvalidCertificate`, `KeyCertificateMismatch`.
    pub fn from_json(
        content: &SecretBytes,
        password: &SecretString,
    ) -> Result<Self, ClientKeyError> {
        let parsed: ClientKeyJson = parse_json(content.expose(), Some("application/json"))
            .map_err(|problem| ClientKeyError::NotJson { problem })?;
        let private_key_data = Zeroizing::new(parsed.private_key_data.unwrap_or_default());
        let key_id = parsed
            .key_id
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty())
            .ok_or(ClientKeyError::MissingField { field: "KeyId" })?;
        if private_key_data.trim().is_empty() {
            return Err(ClientKeyError::MissingField {
                field: "PrivateKeyData",
            });
        }
        let compact: Zeroizing<String> = Zeroizing::new(
            private_key_data
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect(),
        );
        let mut der = Zeroizing::new(Vec::new());
        base64::engine::general_purpose::STANDARD
            .decode_vec(compact.as_bytes(), &mut der)
            .map_err(|_| ClientKeyError::InvalidBase64 {
                key_id: key_id.clone(),
            })?;
        Self::from_pkcs12(key_id, &der, password)
    }

    /// Loads a ClientKey from a KeyId and the DER bytes of its PKCS#12 archive.
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json), from `WrongPassword` on.
    pub fn from_pkcs12(
        key_id: String,
        pkcs12_der: &[u8],
        password: &SecretString,
    ) -> Result<Self, ClientKeyError> {
        if pkcs12_der.len() > MAX_PKCS12_BYTES {
            return Err(ClientKeyError::TooLarge {
                key_id,
                bytes: pkcs12_der.len(),
                limit: MAX_PKCS12_BYTES,
            });
        }
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(pkcs12_der, password.expose())
            .map_err(|source| match source {
                p12_keystore::error::Error::MacError(_) => ClientKeyError::WrongPassword {
                    key_id: key_id.clone(),
                },
                source => ClientKeyError::InvalidPkcs12 {
                    key_id: key_id.clone(),
                    source,
                },
            })?;
        if archive.keys.len() != 1 {
            return Err(ClientKeyError::PrivateKeyCount {
                key_id,
                count: archive.keys.len(),
            });
        }
        let pkcs8 = Zeroizing::new(archive.keys[0].key.as_der().to_vec());
        drop(archive.keys);
        let key_pair =
            RsaKeyPair::from_pkcs8(&pkcs8).map_err(|rejected| ClientKeyError::UnsupportedKey {
                key_id: key_id.clone(),
                reason: rejected.to_string(),
            })?;
        if archive.certs.is_empty() {
            return Err(ClientKeyError::NoCertificate { key_id });
        }
        let public = key_pair.public_key().as_ref().to_vec();
        let mut first_subject = None;
        for bag in &archive.certs {
            let der = bag.cert.as_der();
            let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| {
                ClientKeyError::InvalidCertificate {
                    key_id: key_id.clone(),
                }
            })?;
            let subject = cert.subject().to_string();
            if cert.public_key().subject_public_key.data.as_ref() == public.as_slice() {
                let not_after =
                    DateTime::<Utc>::from_timestamp(cert.validity().not_after.timestamp(), 0);
                return Ok(Self {
                    key_id,
                    key_pair,
                    certificate: der.to_vec(),
                    subject,
                    not_after,
                    rng: SystemRandom::new(),
                });
            }
            first_subject.get_or_insert(subject);
        }
        Err(ClientKeyError::KeyCertificateMismatch {
            key_id,
            subject: first_subject.unwrap_or_default(),
        })
    }

    /// The KeyId (`KAAP.…`), sent as `x-kms-acccesskeyid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// DER of the certificate matching the key.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// Subject of that certificate (for logs and status).
    pub fn certificate_subject(&self) -> &str {
        &self.subject
    }

    /// When that certificate expires (the instance refuses the key afterwards).
    pub fn not_after(&self) -> Option<DateTime<Utc>> {
        self.not_after
    }

    /// Signs `string_to_sign` (RSASSA-PKCS1-v1_5, SHA-256) and returns the standard base64 of
    /// the signature, as it goes after `Bearer ` in `authorization`.
    ///
    /// # Errors
    /// [`ClientKeyError::Sign`].
    pub fn sign(&self, string_to_sign: &str) -> Result<String, ClientKeyError> {
        let mut sig = vec![0u8; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &self.rng,
                string_to_sign.as_bytes(),
                &mut sig,
            )
            .map_err(|_| ClientKeyError::Sign {
                key_id: self.key_id.clone(),
            })?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig))
    }
}

/// Writes a ClientKey JSON document (`{"KeyId", "PrivateKeyData"}`) for a PKCS#8 RSA private
/// key and its certificate, the PKCS#12 protected by `password` with
/// `pbeWithSHAAnd3-KeyTripleDES-CBC` for key and certificate and an HMAC-SHA1 MAC — the
/// legacy form every official SDK reads. Used by the emulator to hand out matching pairs.
///
/// # Errors
/// [`ClientKeyError::Write`] when the key or certificate cannot be encoded.
pub fn write_client_key_json(
    key_id: &str,
    private_key_pkcs8: &[u8],
    certificate_der: &[u8],
    password: &SecretString,
) -> Result<SecretString, ClientKeyError> {
    use p12_keystore::{
        Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
        PrivateKeyChain,
    };
    let key = PrivateKey::from_der(private_key_pkcs8).map_err(|_| ClientKeyError::Write {
        reason: "the private key is not PKCS#8 DER",
    })?;
    let cert = Certificate::from_der(certificate_der).map_err(|_| ClientKeyError::Write {
        reason: "the certificate is not X.509 DER",
    })?;
    let mut store = KeyStore::new();
    store.add_entry(
        key_id,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(vec![1u8], key, [cert])),
    );
    let der = Zeroizing::new(
        store
            .writer(password.expose())
            .encryption_algorithm(EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
            .mac_algorithm(MacAlgorithm::HmacSha1)
            .encryption_iterations(2048)
            .mac_iterations(2048)
            .write()
            .map_err(|_| ClientKeyError::Write {
                reason: "PKCS#12 encoding failed",
            })?,
    );
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der.as_slice()));
    let json = serde_json::json!({"KeyId": key_id, "PrivateKeyData": b64.as_str()});
    Ok(SecretString::new(json.to_string()))
}

/// A freshly generated ClientKey with its parts (for the emulator and tests).
pub struct GeneratedClientKey {
    /// The KeyId.
    pub key_id: String,
    /// The ClientKey JSON document (what the console's `clientKey_*.json` holds).
    pub json: SecretString,
    /// Its password.
    pub password: SecretString,
    /// The certificate (PEM), which the instance verifies signatures with.
    pub certificate_pem: String,
    /// The same certificate, DER.
    pub certificate_der: Vec<u8>,
}

impl fmt::Debug for GeneratedClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedClientKey")
            .field("key_id", &self.key_id)
            .field("json", &self.json)
            .field("password", &self.password)
            .finish_non_exhaustive()
    }
}

/// ring's system RNG behind the `rand_core` 0.10 traits the `rsa` crate wants.
struct SystemRng(SystemRandom);

impl rsa::rand_core::TryRng for SystemRng {
    type Error = RngFailure;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        ring::rand::SecureRandom::fill(&self.0, dst).map_err(|_| RngFailure)
    }
}

impl rsa::rand_core::TryCryptoRng for SystemRng {}

#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
struct RngFailure;

/// Generates a 2048-bit RSA key, a self-signed certificate for it (subject
/// `CN=<key_id>`, valid for ten years) and the ClientKey JSON protected by `password`.
///
/// # Errors
/// [`ClientKeyError::Write`].
pub fn generate_client_key(
    key_id: &str,
    password: &SecretString,
) -> Result<GeneratedClientKey, ClientKeyError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::PrivateKey::new(&mut SystemRng(SystemRandom::new()), 2048).map_err(|_| {
        ClientKeyError::Write {
            reason: "RSA key generation failed",
        }
    })?;
    let pkcs8 = key.to_pkcs8_der().map_err(|_| ClientKeyError::Write {
        reason: "PKCS#8 encoding failed",
    })?;
    let pkcs8_der = rustls::pki_types::PrivatePkcs8KeyDer::from(pkcs8.as_bytes());
    let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8_der, &rcgen::PKCS_RSA_SHA256)
        .map_err(|_| ClientKeyError::Write {
            reason: "the generated key was refused by the certificate builder",
        })?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|_| ClientKeyError::Write {
            reason: "certificate parameters",
        })?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, key_id);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    let now_year = chrono::Datelike::year(&Utc::now());
    params.not_after = rcgen::date_time_ymd(now_year + 10, 1, 1);
    let cert = params
        .self_signed(&signer)
        .map_err(|_| ClientKeyError::Write {
            reason: "self-signing the certificate failed",
        })?;
    let json = write_client_key_json(key_id, pkcs8.as_bytes(), cert.der(), password)?;
    Ok(GeneratedClientKey {
        key_id: key_id.to_owned(),
        json,
        password: password.clone(),
        certificate_pem: cert.pem(),
        certificate_der: cert.der().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    use super::*;

    /// Key generation takes a moment: share two keys between the tests.
    fn keys() -> &'static (GeneratedClientKey, GeneratedClientKey) {
        static KEYS: OnceLock<(GeneratedClientKey, GeneratedClientKey)> = OnceLock::new();
        KEYS.get_or_init(|| {
            let pw = SecretString::from("pw-marker-123");
            (
                generate_client_key("KAAP.test-one", &pw).unwrap(),
                generate_client_key("KAAP.test-two", &pw).unwrap(),
            )
        })
    }

    fn json_bytes(k: &GeneratedClientKey) -> SecretBytes {
        SecretBytes::from(k.json.expose())
    }

    fn no_secrets(text: &str) {
        let k = &keys().0;
        let json: serde_json::Value = serde_json::from_str(k.json.expose()).unwrap();
        let pkd = json["PrivateKeyData"].as_str().unwrap();
        assert!(!text.contains("pw-marker"), "{text}");
        assert!(!text.contains(&pkd[..40]), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn generated_keys_fit_well_under_the_size_limit_and_huge_archives_are_refused_unparsed() {
        let json: serde_json::Value = serde_json::from_str(keys().0.json.expose()).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(json["PrivateKeyData"].as_str().unwrap())
            .unwrap();
        assert!(der.len() * 2 < MAX_PKCS12_BYTES, "{} bytes", der.len());
        let err = ClientKey::from_pkcs12(
            "KAAP.huge".into(),
            &vec![0x30; MAX_PKCS12_BYTES + 1],
            &SecretString::from("pw"),
        )
        .unwrap_err();
        assert!(matches!(err, ClientKeyError::TooLarge { .. }), "{err}");
        assert_eq!(err.metric_label(), "too_large");
    }

    #[test]
    fn generated_client_keys_load_and_sign_verifiably() {
        let (one, _) = keys();
        let ck = ClientKey::from_json(&json_bytes(one), &one.password).unwrap();
        assert_eq!(ck.key_id(), "KAAP.test-one");
        assert_eq!(ck.certificate_der(), one.certificate_der.as_slice());
        assert!(ck.certificate_subject().contains("KAAP.test-one"));
        assert!(ck.not_after().unwrap() > Utc::now());
        let sig = ck.sign("POST\nX\n/").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&one.certificate_der).unwrap();
        UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            cert.public_key().subject_public_key.data.as_ref(),
        )
        .verify(b"POST\nX\n/", &raw)
        .unwrap();
        let dbg = format!("{ck:?} {one:?}");
        no_secrets(&dbg);
        assert!(dbg.contains("KAAP.test-one"));
    }

    #[test]
    fn a_wrong_password_is_reported_as_such() {
        let (one, _) = keys();
        let err =
            ClientKey::from_json(&json_bytes(one), &SecretString::from("not-it")).unwrap_err();
        assert!(
            matches!(err, ClientKeyError::WrongPassword { .. }),
            "{err:?}"
        );
        assert_eq!(err.metric_label(), "wrong_password");
        let msg = err.to_string();
        assert!(
            msg.starts_with("wrong password for client key KAAP.test-one"),
            "{msg}"
        );
        no_secrets(&format!("{msg} {err:?}"));
    }

    #[test]
    fn corrupt_archives_json_and_base64_are_told_apart() {
        let (one, _) = keys();
        let pw = &one.password;
        let err = ClientKey::from_json(&SecretBytes::from("{not json"), pw).unwrap_err();
        assert!(matches!(err, ClientKeyError::NotJson { .. }), "{err:?}");
        let err = ClientKey::from_json(&SecretBytes::from(r#"{"PrivateKeyData":"AAAA"}"#), pw)
            .unwrap_err();
        assert!(matches!(
            err,
            ClientKeyError::MissingField { field: "KeyId" }
        ));
        let err =
            ClientKey::from_json(&SecretBytes::from(r#"{"KeyId":"KAAP.x"}"#), pw).unwrap_err();
        assert!(matches!(
            err,
            ClientKeyError::MissingField {
                field: "PrivateKeyData"
            }
        ));
        let err = ClientKey::from_json(
            &SecretBytes::from(r#"{"KeyId":"KAAP.x","PrivateKeyData":"not base64!"}"#),
            pw,
        )
        .unwrap_err();
        assert!(matches!(err, ClientKeyError::InvalidBase64 { .. }));
        // A real archive with bytes cut off and one with a flipped byte in the middle.
        let json: serde_json::Value = serde_json::from_str(one.json.expose()).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(json["PrivateKeyData"].as_str().unwrap())
            .unwrap();
        let truncated = &der[..der.len() / 2];
        let err = ClientKey::from_pkcs12("KAAP.x".into(), truncated, pw).unwrap_err();
        assert!(
            matches!(err, ClientKeyError::InvalidPkcs12 { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "PrivateKeyData of client key KAAP.x is not a readable PKCS#12 archive"
        );
        let mut flipped = der.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        let err = ClientKey::from_pkcs12("KAAP.x".into(), &flipped, pw).unwrap_err();
        assert!(
            matches!(
                err,
                ClientKeyError::InvalidPkcs12 { .. } | ClientKeyError::WrongPassword { .. }
            ),
            "{err:?}"
        );
        no_secrets(&format!("{err} {err:?}"));
    }

    #[test]
    fn a_key_with_another_keys_certificate_is_a_mismatch() {
        let (one, two) = keys();
        // Re-pack key one with certificate two.
        let json: serde_json::Value = serde_json::from_str(one.json.expose()).unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(json["PrivateKeyData"].as_str().unwrap())
            .unwrap();
        let archive =
            p12_keystore::Pkcs12Archive::from_pkcs12(&der, one.password.expose()).unwrap();
        let mixed = write_client_key_json(
            "KAAP.mixed",
            archive.keys[0].key.as_der(),
            &two.certificate_der,
            &one.password,
        )
        .unwrap();
        let err =
            ClientKey::from_json(&SecretBytes::from(mixed.expose()), &one.password).unwrap_err();
        assert!(
            matches!(err, ClientKeyError::KeyCertificateMismatch { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the private key of client key KAAP.mixed does not match its certificate (CN=KAAP.test-two)"
        );
        no_secrets(&format!("{err:?}"));
    }
}
