//! A throwaway CA and a server certificate for `127.0.0.1`, `::1`, `localhost` and
//! `*.cryptoservice.kms.aliyuncs.com` (rcgen), so
//! clients can pin the CA exactly as they pin a KMS instance's private CA.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// SAN of the emulator's certificate covering every KMS instance host name.
pub const INSTANCE_HOST_WILDCARD: &str = "*.cryptoservice.kms.aliyuncs.com";

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Certificate generation failed.
    #[error("could not generate the emulator's certificates")]
    Generate {
        /// rcgen error.
        #[source]
        source: rcgen::Error,
    },
    /// rustls refused the configuration.
    #[error("could not build the emulator's TLS configuration")]
    Config {
        /// rustls error.
        #[source]
        source: rustls::Error,
    },
}

/// The generated material.
pub(crate) struct GeneratedTls {
    /// The CA certificate, PEM (for clients to pin).
    pub ca_pem: String,
    /// The server configuration (HTTP/1.1 by ALPN).
    pub server_config: Arc<rustls::ServerConfig>,
}

pub(crate) fn generate() -> Result<GeneratedTls, TlsSetupError> {
    let gen_err = |source| TlsSetupError::Generate { source };
    let ca_key = KeyPair::generate().map_err(gen_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kmsync emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(gen_err)?;

    let server_key = KeyPair::generate().map_err(gen_err)?;
    let mut params = CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        "localhost".to_owned(),
        // Any KMS instance host, so clients that resolve `kst-*.cryptoservice.kms.aliyuncs.com`
        // to the emulator still pass their host name checks.
        INSTANCE_HOST_WILDCARD.to_owned(),
    ])
    .map_err(gen_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kmsync emulator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let server_cert = params.signed_by(&server_key, &ca).map_err(gen_err)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsSetupError::Config { source })?
        .with_no_client_auth()
        .with_single_cert(vec![server_cert.der().clone(), ca.der().clone()], key)
        .map_err(|source| TlsSetupError::Config { source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(GeneratedTls {
        ca_pem: ca.pem(),
        server_config: Arc::new(config),
    })
}
