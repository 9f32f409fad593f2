//! [`SecretValue`]: the one type that carries secret material through the ABI.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A secret value: the KMS secret's data on input, a Secret data value on output.
///
/// Serialised as a plain JSON string. `Debug` prints only the length, there is no `Display`,
/// and the bytes are overwritten with zeros when the value is dropped (best effort: copies made
/// by code that calls [`SecretValue::expose`] are the caller's responsibility).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps an owned string (no copy).
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret text. Never log it or put it in an error message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (UTF-8).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the value is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretValue {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretValue {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<redacted, {} bytes>)", self.0.len())
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8, so the string stays valid while it is wiped.
        let bytes = unsafe { self.0.as_mut_vec() };
        for b in bytes.iter_mut() {
            // SAFETY: `b` is a valid, exclusive reference into the vector.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_only_the_length() {
        let v = SecretValue::from("hunter2");
        assert_eq!(format!("{v:?}"), "SecretValue(<redacted, 7 bytes>)");
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn serialises_as_a_plain_string() {
        let v = SecretValue::from("a\"b");
        assert_eq!(serde_json::to_string(&v).unwrap(), r#""a\"b""#);
        let back: SecretValue = serde_json::from_str(r#""xyz""#).unwrap();
        assert_eq!(back.expose(), "xyz");
    }
}
