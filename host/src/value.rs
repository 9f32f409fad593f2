//! Types that hold secret material: secret values fetched from KMS, cloud credentials, tokens.
//!
//! Every type here zeroes its memory on drop and never prints its contents: `Debug` shows only
//! the length, so a value can not leak into a log line, an Event, a status or an error message by
//! accident. Reading the contents is always an explicit call (`expose`).

use std::fmt;

use zeroize::Zeroizing;

/// Secret bytes (a binary secret, or the UTF-8 bytes of a text secret / Secret data value).
///
/// `Debug` prints `SecretBytes(<redacted, N bytes>)`. There is deliberately no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps owned bytes (no copy).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not log or format them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl From<&str> for SecretBytes {
    fn from(v: &str) -> Self {
        Self::new(v.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted, {} bytes>)", self.0.len())
    }
}

/// A secret string: an AccessKeySecret, a SecurityToken, an OIDC token, a password, a text secret.
///
/// `Debug` prints `SecretString(<redacted>)` (no length: tokens are fixed-format anyway).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps an owned string (no copy).
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The secret text. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(v: String) -> Self {
        Self::new(v)
    }
}

impl From<&str> for SecretString {
    fn from(v: &str) -> Self {
        Self::new(v.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_value() {
        let b = SecretBytes::from("hunter2-marker");
        let s = SecretString::from("hunter2-marker");
        assert_eq!(format!("{b:?}"), "SecretBytes(<redacted, 14 bytes>)");
        assert_eq!(format!("{s:?}"), "SecretString(<redacted>)");
        assert_eq!(b.expose(), b"hunter2-marker");
        assert_eq!(s.expose(), "hunter2-marker");
    }
}
