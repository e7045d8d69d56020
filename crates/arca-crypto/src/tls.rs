//! TLS material for development and test clusters: a self-signed CA and node certificates it signs.
//!
//! Production clusters bring their own PKI; `arcad gen-certs` and `arcad dev` use this to make one.
//! Keys are ECDSA P-256, signed with the aws-lc-rs provider.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
#[error("certificate generation failed: {0}")]
pub struct TlsGenError(String);

impl From<rcgen::Error> for TlsGenError {
    fn from(e: rcgen::Error) -> Self {
        Self(e.to_string())
    }
}

/// A certificate and its private key, both PEM. `Debug` hides the key.
pub struct PemPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// Creates a self-signed CA valid for ten years.
pub fn generate_ca(common_name: &str) -> Result<PemPair, TlsGenError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "Arca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(PemPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Issues a certificate for a node, usable both as a TLS server and as an mTLS client, signed by `ca`.
/// `names` become DNS or IP subject alternative names.
pub fn issue_node_cert(ca: &PemPair, common_name: &str, names: &[String]) -> Result<PemPair, TlsGenError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.distinguished_name.push(DnType::OrganizationName, "Arca");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_signs_node_certificates() {
        let ca = generate_ca("arca test ca").unwrap();
        let node = issue_node_cert(&ca, "node-1", &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(node.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(node.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{node:?}").contains("PRIVATE KEY"));
    }
}
