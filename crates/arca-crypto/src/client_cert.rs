//! Certificates registered as service principal credentials: what is kept of one (its SHA-256
//! thumbprint and its whole public key) and the key a client assertion signed with it is checked with.
//!
//! A registered certificate is matched by its entire public key, never by subject, serial or key id
//! (the mistake behind CVE-2024-2048 and CVE-2025-6037): a second certificate with the same name and
//! another key matches nothing.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as X509Key;

use crate::cluster_pki::{certificate_spki, from_pem, sha256};
use crate::jwt::{Algorithm, JwtError, PublicKey};

/// Largest certificate accepted as a credential, in bytes of DER.
pub const CLIENT_CERTIFICATE_BYTES_MAX: usize = 16 * 1024;

/// What a credential keeps of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateCredential {
    /// SHA-256 of the DER certificate: its `x5t#S256`.
    pub thumbprint_sha256: [u8; 32],
    /// The DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

/// Why a certificate was refused as a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    #[error("the certificate is not one PEM `CERTIFICATE` block of at most {CLIENT_CERTIFICATE_BYTES_MAX} bytes")]
    Pem,
    #[error("the certificate does not parse as X.509")]
    Malformed,
    #[error("the certificate's key is {0}; use RSA of 2048 bits or more, EC P-256, or Ed25519")]
    KeyType(String),
}

/// Reads a PEM certificate offered as a credential.
pub fn read_certificate(pem: &str) -> Result<CertificateCredential, ClientCertError> {
    let der = from_pem("CERTIFICATE", pem).ok_or(ClientCertError::Pem)?;
    read_certificate_der(&der)
}

/// Reads a DER certificate (one a client presented over TLS, or one offered as a credential).
pub fn read_certificate_der(der: &[u8]) -> Result<CertificateCredential, ClientCertError> {
    if der.len() > CLIENT_CERTIFICATE_BYTES_MAX {
        return Err(ClientCertError::Pem);
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| ClientCertError::Malformed)?;
    if !rest.is_empty() {
        return Err(ClientCertError::Malformed);
    }
    let spki_der = cert.public_key().raw.to_vec();
    assertion_key(&spki_der, None).map_err(|e| match e {
        JwtError::Key(why) => ClientCertError::KeyType(why.to_owned()),
        _ => ClientCertError::Malformed,
    })?;
    Ok(CertificateCredential {
        thumbprint_sha256: sha256(der),
        spki_der,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The key a client assertion signed with this SPKI is checked with. RSA keys verify PS256 (or RS256
/// when `rsa_algorithm` asks for it); EC P-256 keys ES256; Ed25519 keys EdDSA.
pub fn assertion_key(spki_der: &[u8], rsa_algorithm: Option<Algorithm>) -> Result<PublicKey, JwtError> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
        .map_err(|_| JwtError::Key("the public key does not parse"))?;
    let raw = spki.subject_public_key.data.to_vec();
    match spki.parsed().map_err(|_| JwtError::Key("an unsupported key type"))? {
        X509Key::RSA(rsa) => {
            if rsa.key_size() < 2048 {
                return Err(JwtError::Key("an RSA key shorter than 2048 bits"));
            }
            let algorithm = match rsa_algorithm {
                Some(Algorithm::RS256) => Algorithm::RS256,
                _ => Algorithm::PS256,
            };
            PublicKey::from_parts(algorithm, raw)
        }
        X509Key::EC(point) => {
            let p256 = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok())
                == Some(x509_parser::oid_registry::OID_EC_P256);
            if !p256 || point.data().len() != 65 {
                return Err(JwtError::Key("an EC key on a curve other than P-256"));
            }
            PublicKey::from_parts(Algorithm::ES256, raw)
        }
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            PublicKey::from_parts(Algorithm::EdDSA, raw)
        }
        _ => Err(JwtError::Key("an unsupported key type")),
    }
}

/// A new self-signed certificate and its key, for a service principal to sign in with (`arca ad sp
/// create-for-rbac --create-cert`): P-256, valid for `days` from `now`. Returns one PEM holding the
/// certificate and the PKCS#8 key, as Azure's `fileWithCertAndPrivateKey`.
pub fn self_signed(common_name: &str, now: i64, days: i64) -> Result<String, ClientCertError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| ClientCertError::Malformed)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|_| ClientCertError::Malformed)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    let time = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|_| ClientCertError::Malformed);
    params.not_before = time(now - 300)?;
    params.not_after = time(now + days * 86_400)?;
    let cert = params.self_signed(&key).map_err(|_| ClientCertError::Malformed)?;
    Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
}

/// A certificate (DER), its private key (PKCS#8 DER, wiped on drop) and the algorithm it signs with.
pub type CertificateAndKey = (Vec<u8>, zeroize::Zeroizing<Vec<u8>>, Algorithm);

/// The certificate and the private key (PKCS#8 DER) of a PEM file holding both, and the algorithm
/// its key signs assertions with.
pub fn read_certificate_and_key(pem: &str) -> Result<CertificateAndKey, ClientCertError> {
    let cert = from_pem("CERTIFICATE", pem).ok_or(ClientCertError::Pem)?;
    let key = zeroize::Zeroizing::new(from_pem("PRIVATE KEY", pem).ok_or(ClientCertError::Pem)?);
    let spki = certificate_spki(&cert).map_err(|_| ClientCertError::Malformed)?;
    let algorithm = assertion_key(&spki, None)
        .map_err(|e| match e {
            JwtError::Key(why) => ClientCertError::KeyType(why.to_owned()),
            _ => ClientCertError::Malformed,
        })?
        .algorithm();
    Ok((cert, key, algorithm))
}

/// `x5t#S256`: the base64url SHA-256 of a DER certificate.
pub fn thumbprint(cert_der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha256(cert_der))
}
