//! Which server certificates a KMS instance client accepts.
//!
//! An instance gateway's certificate chains to a per-region private CA, so public roots are
//! never used: the client pins the store's `ca` (kmsync carries no copy of Alibaba Cloud's
//! regional CAs, so `ca` is required), or — only when `ignoreSSL: true` is written explicitly —
//! checks nothing, which [`TlsWarning`] reports for the store's status and logs.

use std::sync::Arc;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::error::InstanceError;
use crate::alibaba::transport::{ServerTrust, crypto_provider, root_store, tls_client_config};

/// A condition the caller should surface (store status condition, Event) and that is logged
/// when the client is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsWarning {
    /// Short CamelCase reason, e.g. `InsecureSkipTLSVerify`.
    pub reason: &'static str,
    /// One sentence for people.
    pub message: String,
}

/// The trust setting of a KMS instance client.
#[derive(Clone, Debug)]
pub enum InstanceTrust {
    /// Only these CA certificates (the store's `ca`, a `--ca-file`, the emulator's CA).
    Pinned(Vec<CertificateDer<'static>>),
    /// Accept any certificate (`ignoreSSL: true`). Produces a [`TlsWarning`].
    InsecureSkipVerify,
}

impl InstanceTrust {
    /// Pins the certificates of a PEM bundle.
    ///
    /// # Errors
    /// [`InstanceError::TlsSetup`] when there is no parsable CERTIFICATE block.
    pub fn pinned_pem(pem: &[u8]) -> Result<Self, InstanceError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|_| InstanceError::TlsSetup {
                reason: "the CA bundle is not valid PEM".into(),
            })?;
        if certs.is_empty() {
            return Err(InstanceError::TlsSetup {
                reason: "the CA bundle holds no CERTIFICATE block".into(),
            });
        }
        Ok(Self::Pinned(certs))
    }

    /// The trust a `dedicatedKMSAuth` store asks for, with ack-secret-manager's semantics:
    /// `ignoreSSL: true` skips verification (whatever `ca` says); else `ca` (base64 of a PEM
    /// bundle, whitespace ignored) is pinned. There is no fallback: the gateway's certificate
    /// chains to a per-region private CA that kmsync does not ship, so without `ca` nothing
    /// could be verified.
    ///
    /// # Errors
    /// [`InstanceError::TlsSetup`]: `ca` is missing, or is not base64 of a PEM bundle.
    pub fn from_store(ca_base64: Option<&str>, ignore_ssl: bool) -> Result<Self, InstanceError> {
        if ignore_ssl {
            return Ok(Self::InsecureSkipVerify);
        }
        let Some(ca) = ca_base64.filter(|c| !c.trim().is_empty()) else {
            return Err(InstanceError::TlsSetup {
                reason: "no ca is set: a KMS instance gateway's certificate chains to the private \
                         CA of its region; set ca to the base64 of that CA's PEM (downloadable \
                         from the KMS console)"
                    .into(),
            });
        };
        let compact: String = ca.chars().filter(|c| !c.is_whitespace()).collect();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| InstanceError::TlsSetup {
                reason: "ca is not base64 (it must be the base64 of a PEM bundle)".into(),
            })?;
        Self::pinned_pem(&pem)
    }

    /// The warning this setting deserves, if any.
    pub fn warning(&self) -> Option<TlsWarning> {
        match self {
            Self::InsecureSkipVerify => Some(TlsWarning {
                reason: "InsecureSkipTLSVerify",
                message: "ignoreSSL is true: the KMS instance's TLS certificate is not verified, so anyone on the network path can read the secrets and the signed requests; set ca instead".into(),
            }),
            _ => None,
        }
    }
}

/// A rustls client configuration (see [`tls_client_config`]) for `trust`.
pub(crate) fn client_config(trust: &InstanceTrust) -> Result<rustls::ClientConfig, InstanceError> {
    let provider = crypto_provider();
    let trust = match trust {
        InstanceTrust::Pinned(certs) => {
            ServerTrust::Roots(root_store(certs).map_err(|_| InstanceError::TlsSetup {
                reason: "a CA certificate was rejected as a trust anchor".into(),
            })?)
        }
        InstanceTrust::InsecureSkipVerify => {
            ServerTrust::Verifier(Arc::new(AcceptAnyCertificate {
                provider: provider.clone(),
            }))
        }
    };
    tls_client_config(provider, trust).map_err(|source| InstanceError::Tls { source })
}

/// `ignoreSSL`: accepts any certificate, but still checks that the handshake is signed by
/// the key in the certificate presented (so the connection is at least self-consistent).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_settings_map_to_trust_with_ignore_ssl_first() {
        assert!(matches!(
            InstanceTrust::from_store(Some("anything"), true).unwrap(),
            InstanceTrust::InsecureSkipVerify
        ));
        assert_eq!(
            InstanceTrust::InsecureSkipVerify.warning().unwrap().reason,
            "InsecureSkipTLSVerify"
        );
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let pem = ca.cert.pem();
        let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
        let wrapped = format!("{}\n{}", &b64[..40], &b64[40..]);
        assert!(matches!(
            InstanceTrust::from_store(Some(&wrapped), false).unwrap(),
            InstanceTrust::Pinned(c) if c.len() == 1
        ));
        assert!(
            InstanceTrust::from_store(Some(&wrapped), false)
                .unwrap()
                .warning()
                .is_none()
        );
        for (ca, needle) in [
            (Some("%%%"), "not base64"),
            (Some("aGVsbG8="), "no CERTIFICATE"),
            (None, "no ca is set"),
            (Some("  "), "no ca is set"),
        ] {
            let err = InstanceTrust::from_store(ca, false).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
