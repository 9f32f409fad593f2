//! RAM resource names the credential providers pass to STS: roles
//! (`acs:ram::<account>:role/<name>`) and OIDC identity providers
//! (`acs:ram::<account>:oidc-provider/<name>`).
//!
//! Shapes from the STS API reference (`AssumeRole` / `AssumeRoleWithOIDC` parameters `RoleArn`
//! and `OIDCProviderArn`) and `shared/docs/ack-compat.md`. ARNs are not secret, so errors quote
//! them.

use std::fmt;

/// Why an ARN was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Not of the form `acs:ram::<account>:<kind>/<name>`.
    #[error("{value:?} is not a RAM {kind} ARN (expected acs:ram::<account-id>:{kind}/<name>)")]
    Malformed {
        /// The text as given.
        value: String,
        /// `role` or `oidc-provider`.
        kind: &'static str,
    },
}

/// A RAM role ARN, e.g. `acs:ram::1234567890123456:role/kmsync-reader`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoleArn {
    arn: String,
    account: String,
    name: String,
}

/// A RAM OIDC identity provider ARN, e.g. `acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OidcProviderArn {
    arn: String,
}

/// Splits `acs:ram::<account>:<kind>/<name>` into `(account, name)`.
///
/// The account is 1–32 ASCII digits (RAM account ids are 16 digits; masked ids such as
/// `1234****` are refused); the name is 1–128 characters of letters, digits and `. @ - _`
/// (RAM role names; ACK RRSA provider names use the same alphabet). Whitespace anywhere
/// is refused.
fn split(value: &str, kind: &'static str) -> Result<(String, String), ArnError> {
    let malformed = || ArnError::Malformed {
        value: value.to_owned(),
        kind,
    };
    let rest = value.strip_prefix("acs:ram::").ok_or_else(malformed)?;
    let (account, resource) = rest.split_once(':').ok_or_else(malformed)?;
    let name = resource
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(malformed)?;
    let account_ok =
        !account.is_empty() && account.len() <= 32 && account.bytes().all(|b| b.is_ascii_digit());
    let name_ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
    if account_ok && name_ok {
        Ok((account.to_owned(), name.to_owned()))
    } else {
        Err(malformed())
    }
}

impl RoleArn {
    /// Parses a role ARN.
    ///
    /// # Errors
    /// [`ArnError::Malformed`].
    pub fn parse(value: &str) -> Result<Self, ArnError> {
        let (account, name) = split(value, "role")?;
        Ok(Self {
            arn: value.to_owned(),
            account,
            name,
        })
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The role name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl OidcProviderArn {
    /// Parses an OIDC provider ARN.
    ///
    /// # Errors
    /// [`ArnError::Malformed`].
    pub fn parse(value: &str) -> Result<Self, ArnError> {
        split(value, "oidc-provider")?;
        Ok(Self {
            arn: value.to_owned(),
        })
    }

    /// The ARN as written.
    pub fn as_str(&self) -> &str {
        &self.arn
    }
}

impl fmt::Display for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl fmt::Debug for RoleArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleArn({})", self.arn)
    }
}

impl fmt::Display for OidcProviderArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

impl fmt::Debug for OidcProviderArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OidcProviderArn({})", self.arn)
    }
}

/// True when `name` is a valid `RoleSessionName`: 2–64 characters of letters, digits and
/// `. @ - _` (STS `AssumeRole` reference).
pub fn is_valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_split_into_account_and_name() {
        let arn = RoleArn::parse("acs:ram::1234567890123456:role/kmsync-reader").unwrap();
        assert_eq!(arn.account(), "1234567890123456");
        assert_eq!(arn.name(), "kmsync-reader");
        assert_eq!(
            arn.to_string(),
            "acs:ram::1234567890123456:role/kmsync-reader"
        );
        let p =
            OidcProviderArn::parse("acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1").unwrap();
        assert_eq!(
            p.as_str(),
            "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1"
        );
    }

    #[test]
    fn malformed_arns_are_refused_with_the_expected_shape() {
        for bad in [
            "",
            "kmsync-reader",
            "acs:ram:1234:role/x",
            "acs:ram::1234:role/",
            "acs:ram:::role/x",
            "acs:ram::1234****:role/x",
            "acs:ram::1234:user/x",
            "acs:ram::1234:role/x y",
            " acs:ram::1234:role/x",
            "acs:ram::1234:oidc-provider/x",
        ] {
            let err = RoleArn::parse(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{bad:?} is not a RAM role ARN (expected acs:ram::<account-id>:role/<name>)"
                )
            );
        }
        assert!(OidcProviderArn::parse("acs:ram::1234:role/x").is_err());
    }

    #[test]
    fn session_names_follow_the_sts_alphabet() {
        assert!(is_valid_session_name("kmsync"));
        assert!(is_valid_session_name("a.b@c-d_e"));
        assert!(!is_valid_session_name("k"));
        assert!(!is_valid_session_name("has space"));
        assert!(!is_valid_session_name(&"x".repeat(65)));
    }
}
