//! Keyed digests of Secret data: HMAC-SHA256 with a per-installation key over a canonical
//! encoding of the sorted keys and the SHA-256 [`fingerprint`] of each value.
//!
//! A bare hash of the values would let anyone who can read the digest (an annotation, a
//! status field, a rule's `rotate` input) test guesses of low-entropy values offline; with a
//! key they cannot (`shared/docs/security.md`, "Change-detection hash reveals low-entropy
//! values").
//!
//! Canonical encoding (version 2), fed to the MAC in this order:
//!
//! ```text
//! "kmsync-data-v2" || u64be(number of keys)
//!   || for each key in byte order: u64be(len(key)) || key || SHA-256(value)
//! ```
//!
//! The length prefix and the fixed-size fingerprint make the encoding injective (no two
//! different maps encode alike, short of a SHA-256 collision). The digest is written
//! `hmac-sha256:<64 lowercase hex>`.
//!
//! Why fingerprints rather than the values themselves (version 1 hashed the values): the
//! controller keeps only the fingerprint of each value of a managed Secret in its cache, not
//! the value, and must still check the recorded digest between refreshes (a hand edit). A
//! fingerprint never leaves the process; what is written out is only the keyed digest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::value::SecretBytes;

/// Prefix of every digest string.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";
/// Shortest key accepted, in bytes.
pub const MIN_DIGEST_KEY_BYTES: usize = 16;
/// Length of a generated key, in bytes.
pub const GENERATED_DIGEST_KEY_BYTES: usize = 32;

/// SHA-256 of one Secret value: all the controller keeps of a value between syncs (32 bytes
/// instead of the value, and no plaintext in its cache). Process memory only: never write it
/// anywhere, it is not keyed.
pub type Fingerprint = [u8; 32];

/// The [`Fingerprint`] of `value`.
pub fn fingerprint(value: &[u8]) -> Fingerprint {
    use sha2::Digest as _;
    Sha256::digest(value).into()
}

/// The HMAC key of change-detection digests. `Debug` hides it; it zeroes on drop.
#[derive(Clone)]
pub struct DigestKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestKey(<redacted, {} bytes>)", self.0.len())
    }
}

/// Why a digest key was refused.
#[derive(Debug, thiserror::Error)]
pub enum DigestKeyError {
    /// Fewer than [`MIN_DIGEST_KEY_BYTES`] bytes.
    #[error("the digest key is {len} bytes; at least {MIN_DIGEST_KEY_BYTES} are needed")]
    TooShort {
        /// Its length.
        len: usize,
    },
    /// The key file could not be read.
    #[error("the digest key file {path} could not be read")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl DigestKey {
    /// A fresh random key of 32 bytes (per run of `kmsync render`, or when the controller
    /// creates its digest-key Secret).
    pub fn random() -> Self {
        let mut key = Zeroizing::new(vec![0u8; GENERATED_DIGEST_KEY_BYTES]);
        rand::Rng::fill(&mut rand::rng(), key.as_mut_slice());
        Self(key)
    }

    /// A key from raw bytes (e.g. `data.key` of the digest-key Secret), used as given.
    ///
    /// # Errors
    /// [`DigestKeyError::TooShort`] below 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DigestKeyError> {
        if bytes.len() < MIN_DIGEST_KEY_BYTES {
            return Err(DigestKeyError::TooShort { len: bytes.len() });
        }
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// A key from a file's raw bytes, used as given (no trimming: the same bytes as the
    /// controller's digest-key Secret give the same digests).
    ///
    /// # Errors
    /// [`DigestKeyError::Io`], [`DigestKeyError::TooShort`].
    pub fn from_file(path: &Path) -> Result<Self, DigestKeyError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| DigestKeyError::Io {
            path: path.display().to_string(),
            source,
        })?);
        Self::from_bytes(&bytes)
    }

    /// The raw key bytes (to store them in the digest-key Secret). Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The digest of `data`, `hmac-sha256:<hex>` (see the module docs for the encoding).
    pub fn digest(&self, data: &BTreeMap<String, SecretBytes>) -> String {
        self.digest_fingerprints(
            data.iter()
                .map(|(k, v)| (k.as_str(), fingerprint(v.expose()))),
        )
    }

    /// The digest of the data whose values have these fingerprints: the same string as
    /// [`DigestKey::digest`] of the values. `entries` must be in byte order of the keys, each
    /// key once (as a `BTreeMap<String, _>` iterates).
    pub fn digest_fingerprints<'a>(
        &self,
        entries: impl ExactSizeIterator<Item = (&'a str, Fingerprint)>,
    ) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(b"kmsync-data-v2");
        mac.update(&(entries.len() as u64).to_be_bytes());
        for (key, fp) in entries {
            mac.update(&(key.len() as u64).to_be_bytes());
            mac.update(key.as_bytes());
            mac.update(&fp);
        }
        format!(
            "{DIGEST_PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::from(*v)))
            .collect()
    }

    #[test]
    fn the_same_data_and_key_give_the_same_digest_whatever_the_insertion_order() {
        let key = DigestKey::from_bytes(&[7u8; 32]).unwrap();
        let a = key.digest(&data(&[("user", "app"), ("pass", "pw")]));
        let b = key.digest(&data(&[("pass", "pw"), ("user", "app")]));
        assert_eq!(a, b);
        assert!(a.starts_with("hmac-sha256:"));
        assert_eq!(a.len(), "hmac-sha256:".len() + 64);
    }

    #[test]
    fn digests_are_keyed_and_never_a_bare_hash_of_the_values() {
        use sha2::Digest as _;
        let d = data(&[("password", "hunter2")]);
        let one = DigestKey::from_bytes(&[1u8; 32]).unwrap().digest(&d);
        let two = DigestKey::from_bytes(&[2u8; 32]).unwrap().digest(&d);
        assert_ne!(one, two);
        let bare = hex::encode(Sha256::digest(b"hunter2"));
        assert!(!one.contains(&bare));
        assert!(!one.contains("hunter2"));
    }

    #[test]
    fn the_encoding_is_injective_across_key_value_boundaries() {
        let key = DigestKey::from_bytes(&[3u8; 16]).unwrap();
        assert_ne!(
            key.digest(&data(&[("ab", "c")])),
            key.digest(&data(&[("a", "bc")]))
        );
        assert_ne!(key.digest(&data(&[])), key.digest(&data(&[("", "")])));
    }

    #[test]
    fn a_known_key_and_data_give_a_fixed_digest() {
        // Pinned so that the encoding cannot change silently (digests are stored on Secrets).
        // The expected value was computed outside this code (Python's hmac and hashlib).
        let key = DigestKey::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            key.digest(&data(&[("a", "1"), ("bb", "")])),
            "hmac-sha256:f5a6b178ba6e34bce92a17d97c010438ab92b52ef309d4298271e6447c3f1229"
        );
    }

    #[test]
    fn the_digest_of_fingerprints_equals_the_digest_of_the_values() {
        let key = DigestKey::from_bytes(&[9u8; 32]).unwrap();
        let d = data(&[("user", "app"), ("pass", "pw"), ("empty", "")]);
        let fps: Vec<(String, Fingerprint)> = d
            .iter()
            .map(|(k, v)| (k.clone(), fingerprint(v.expose())))
            .collect();
        assert_eq!(
            key.digest_fingerprints(fps.iter().map(|(k, f)| (k.as_str(), *f))),
            key.digest(&d)
        );
        // FIPS 180-2 example: SHA-256("abc").
        assert_eq!(
            hex::encode(fingerprint(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(matches!(
            DigestKey::from_bytes(b"short"),
            Err(DigestKeyError::TooShort { len: 5 })
        ));
        let key = DigestKey::from_bytes(b"key-marker-0123456789").unwrap();
        let dbg = format!("{key:?}");
        assert!(!dbg.contains("key-marker"), "{dbg}");
    }
}
