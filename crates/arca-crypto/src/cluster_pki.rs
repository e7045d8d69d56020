//! The cluster's own PKI: the certificate authority a cluster mints at init, the node certificates it
//! issues, and the checks a node runs on every certificate a peer presents on the cluster listener.
//!
//! A node certificate names exactly one cluster and one node in a URI subject alternative name,
//! `arca://<cluster id, 32 hex>/node/<node id>`, and is signed by that cluster's CA. The CA is not the
//! CA that clients trust for the API listener: it exists only inside the cluster (its key is sealed
//! under the barrier in replicated state), so no certificate an operator's PKI signs can ever pass as a
//! node.
//!
//! Every key here is Ed25519: signatures are deterministic, so with seeded entropy and a simulated
//! clock the simulation mints byte-identical certificates on every run of one seed.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use zeroize::Zeroizing;

use crate::Entropy;

/// How long a node certificate is valid, in seconds (one year). A member renews its own long before.
pub const NODE_CERT_VALIDITY_S: i64 = 365 * 86_400;
/// How long the cluster CA is valid, in seconds (twenty years).
pub const CLUSTER_CA_VALIDITY_S: i64 = 20 * 365 * 86_400;
/// How far a certificate's start is moved into the past, in seconds, so that a peer whose clock runs a
/// little behind accepts it at once.
pub const CERT_BACKDATE_S: i64 = 3_600;
/// Largest certificate a peer may present, in bytes of DER (node certificates are about 400).
pub const PEER_CERT_BYTES_MAX: usize = 8 * 1024;
/// The URI scheme of node names.
pub const NODE_URI_SCHEME: &str = "arca://";

/// Why a certificate could not be made or was not accepted. Messages never carry key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing a certificate failed.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The bytes are not a certificate or key this module can read.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The certificate is not signed by the cluster CA, is expired or not yet valid, or is not for
    /// this use.
    #[error("the certificate is not valid for this cluster: {0}")]
    Untrusted(String),
    /// The certificate is signed by the CA but does not name one node of this cluster.
    #[error("the certificate does not name a node of this cluster")]
    WrongName,
}

fn generate(e: impl std::fmt::Display) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// Whether `signature` is `public`'s Ed25519 signature of `message` (a raw 32-byte public key).
pub fn verify_ed25519(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public)
        .verify(message, signature)
        .is_ok()
}

/// The SHA-256 of some bytes (certificate pins, key fingerprints).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// An Ed25519 signing key (a node's, the cluster CA's, the token signing key) as PKCS#8 v1. Wiped on
/// drop; `Debug` hides it.
pub struct Ed25519Key {
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ed25519Key(<redacted>)")
    }
}

impl Clone for Ed25519Key {
    fn clone(&self) -> Self {
        Self { pkcs8: Zeroizing::new(self.pkcs8.to_vec()) }
    }
}

impl Ed25519Key {
    /// A new key whose seed comes from `entropy`.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        entropy.fill(&mut seed[..]);
        let pair =
            Ed25519KeyPair::from_seed_unchecked(&seed[..]).expect("every 32-byte string is a valid Ed25519 seed");
        let document = pair.to_pkcs8v1().expect("an Ed25519 key pair always encodes as PKCS#8");
        Self { pkcs8: Zeroizing::new(document.as_ref().to_vec()) }
    }

    /// Reads a key stored with [`Ed25519Key::pkcs8_der`].
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, PkiError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| PkiError::Malformed("Ed25519 PKCS#8 key"))?;
        Ok(Self { pkcs8: Zeroizing::new(der.to_vec()) })
    }

    /// The PKCS#8 document, for storage and for TLS.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// Signs `message` (Ed25519 signatures are deterministic).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8).expect("an Ed25519Key holds a valid Ed25519 key");
        pair.sign(message).as_ref().to_vec()
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&self.pkcs8).expect("a Ed25519Key holds a valid Ed25519 key");
        pair.public_key().as_ref().to_vec()
    }

    fn rcgen(&self) -> Result<KeyPair, PkiError> {
        KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(self.pkcs8.to_vec()), &rcgen::PKCS_ED25519)
            .map_err(generate)
    }
}

fn time(unix: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(generate)
}

fn serial(entropy: &dyn Entropy) -> SerialNumber {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    // A positive INTEGER: clear the top bit so DER needs no sign byte.
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// `arca://<cluster id>/node/<node id>`: the name a node certificate carries.
pub fn node_uri(cluster_id: &[u8; 16], node_id: u64) -> String {
    format!("{NODE_URI_SCHEME}{}/node/{node_id}", hex::encode(cluster_id))
}

/// Parses [`node_uri`]'s form strictly: lowercase hex id, decimal node id without leading zeros.
pub fn parse_node_uri(uri: &str) -> Option<([u8; 16], u64)> {
    let rest = uri.strip_prefix(NODE_URI_SCHEME)?;
    let (cluster_hex, node) = rest.split_once("/node/")?;
    if cluster_hex.len() != 32 || cluster_hex.bytes().any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    if node.is_empty() || node.len() > 20 || node.starts_with('0') || !node.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut cluster_id = [0u8; 16];
    hex::decode_to_slice(cluster_hex, &mut cluster_id).ok()?;
    Some((cluster_id, node.parse().ok()?))
}

/// The self-signed certificate a node presents before the cluster has issued it one (while it asks to
/// join). It names no cluster and no node, so it can never pass as a member.
pub fn provisional_certificate(key: &Ed25519Key, entropy: &dyn Entropy, now: i64) -> Result<Vec<u8>, PkiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
    params.distinguished_name.push(DnType::CommonName, "arca node (not admitted to a cluster)");
    params.distinguished_name.push(DnType::OrganizationName, "Arca");
    params.serial_number = Some(serial(entropy));
    params.not_before = time(now.saturating_sub(CERT_BACKDATE_S))?;
    params.not_after = time(now.saturating_add(NODE_CERT_VALIDITY_S))?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key.rcgen()?).map_err(generate)?;
    Ok(cert.der().to_vec())
}

/// A cluster's certificate authority: its certificate (public, replicated in the clear) and its key
/// (replicated only under the barrier).
pub struct ClusterCa {
    pub cert_der: Vec<u8>,
    pub key: Ed25519Key,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("cert_der", &self.cert_der.len()).field("key", &self.key).finish()
    }
}

impl ClusterCa {
    /// Mints the CA of the cluster `cluster_id`.
    pub fn generate(cluster_id: &[u8; 16], entropy: &dyn Entropy, now: i64) -> Result<Self, PkiError> {
        let key = Ed25519Key::generate(entropy);
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        params.distinguished_name.push(DnType::CommonName, format!("Arca cluster CA {}", hex::encode(cluster_id)));
        params.distinguished_name.push(DnType::OrganizationName, "Arca");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(serial(entropy));
        params.not_before = time(now.saturating_sub(CERT_BACKDATE_S))?;
        params.not_after = time(now.saturating_add(CLUSTER_CA_VALIDITY_S))?;
        let cert = params.self_signed(&key.rcgen()?).map_err(generate)?;
        Ok(Self { cert_der: cert.der().to_vec(), key })
    }

    /// Issues the certificate of node `node_id` for the public key `subject_spki_der` (the key the node
    /// proved it holds in its TLS handshake).
    pub fn issue_node_certificate(
        &self,
        cluster_id: &[u8; 16],
        node_id: u64,
        subject_spki_der: &[u8],
        entropy: &dyn Entropy,
        now: i64,
    ) -> Result<Vec<u8>, PkiError> {
        let subject =
            rcgen::SubjectPublicKeyInfo::from_der(subject_spki_der).map_err(|_| PkiError::Malformed("public key"))?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.as_slice()), self.key.rcgen()?)
            .map_err(generate)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
        let uri = node_uri(cluster_id, node_id);
        params.subject_alt_names =
            vec![SanType::URI(uri.clone().try_into().map_err(|_| PkiError::Generate("node URI".into()))?)];
        params.distinguished_name.push(DnType::CommonName, uri);
        params.distinguished_name.push(DnType::OrganizationName, "Arca");
        params.serial_number = Some(serial(entropy));
        params.not_before = time(now.saturating_sub(CERT_BACKDATE_S))?;
        params.not_after = time(now.saturating_add(NODE_CERT_VALIDITY_S))?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&subject, &issuer).map_err(generate)?;
        Ok(cert.der().to_vec())
    }
}

/// Which way a certificate is being used: presented by a caller, or by the server a node dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUse {
    Client,
    Server,
}

/// Checks that `cert_der` is a node certificate of cluster `cluster_id`, signed by `ca_der` and valid
/// at `now`, and returns the node id it names.
pub fn verify_node_certificate(
    cert_der: &[u8],
    ca_der: &[u8],
    cluster_id: &[u8; 16],
    now: i64,
    usage: CertUse,
) -> Result<u64, PkiError> {
    if cert_der.len() > PEER_CERT_BYTES_MAX {
        return Err(PkiError::Malformed("certificate (too large)"));
    }
    let ca = CertificateDer::from(ca_der);
    let anchor = webpki::anchor_from_trusted_cert(&ca).map_err(|_| PkiError::Malformed("cluster CA certificate"))?;
    let cert = CertificateDer::from(cert_der);
    let end_entity = webpki::EndEntityCert::try_from(&cert).map_err(|_| PkiError::Malformed("certificate"))?;
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    let usage = match usage {
        CertUse::Client => webpki::KeyUsage::client_auth(),
        CertUse::Server => webpki::KeyUsage::server_auth(),
    };
    end_entity
        .verify_for_usage(&[webpki::aws_lc_rs::ED25519], &[anchor], &[], at, usage, None, None)
        .map_err(|e| PkiError::Untrusted(e.to_string()))?;
    match node_names(cert_der)?.as_slice() {
        [(named_cluster, node_id)] if named_cluster == cluster_id => Ok(*node_id),
        _ => Err(PkiError::WrongName),
    }
}

/// Every `arca://` node name in a certificate's subject alternative names. A URI that starts with the
/// scheme but does not parse counts as a name too (so that it can never be ignored), as a node id of 0.
fn node_names(cert_der: &[u8]) -> Result<Vec<([u8; 16], u64)>, PkiError> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| PkiError::Malformed("certificate"))?;
    let san = cert.subject_alternative_name().map_err(|_| PkiError::Malformed("subject alternative names"))?;
    let mut names = Vec::new();
    for name in san.map(|s| s.value.general_names.clone()).unwrap_or_default() {
        if let GeneralName::URI(uri) = name {
            if uri.starts_with(NODE_URI_SCHEME) {
                names.push(parse_node_uri(uri).unwrap_or(([0; 16], 0)));
            }
        }
    }
    Ok(names)
}

/// The DER SubjectPublicKeyInfo of a certificate (the key a node proves it holds).
pub fn certificate_spki(cert_der: &[u8]) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    if cert_der.len() > PEER_CERT_BYTES_MAX {
        return Err(PkiError::Malformed("certificate (too large)"));
    }
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| PkiError::Malformed("certificate"))?;
    Ok(cert.public_key().raw.to_vec())
}

/// The one node a certificate names (unverified: use [`verify_node_certificate`] to trust it).
pub fn named_node(cert_der: &[u8]) -> Option<([u8; 16], u64)> {
    match node_names(cert_der).ok()?.as_slice() {
        [(cluster_id, node_id)] if *node_id != 0 => Some((*cluster_id, *node_id)),
        _ => None,
    }
}

/// A certificate's validity window, as Unix seconds (not before, not after).
pub fn validity(cert_der: &[u8]) -> Result<(i64, i64), PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| PkiError::Malformed("certificate"))?;
    Ok((cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp()))
}

/// PEM text of a DER object (`CERTIFICATE`, `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block labelled `label`.
pub fn from_pem(label: &str, text: &str) -> Option<Vec<u8>> {
    pem_blocks(label, text).into_iter().next()
}

/// The DER inside every well-formed PEM block labelled `label`, in order.
pub fn pem_blocks(label: &str, text: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&begin) {
        let body_start = at + begin.len();
        let Some(len) = rest[body_start..].find(&end) else { break };
        let body: String = rest[body_start..body_start + len].chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body) {
            out.push(der);
        }
        rest = &rest[body_start + len + end.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::DangerSeededEntropy;

    const NOW: i64 = 1_800_000_000;

    fn cluster(seed: u64) -> ([u8; 16], ClusterCa, DangerSeededEntropy) {
        let entropy = DangerSeededEntropy::new(seed);
        let id = entropy.bytes16();
        let ca = ClusterCa::generate(&id, &entropy, NOW).unwrap();
        (id, ca, entropy)
    }

    fn node_cert(ca: &ClusterCa, id: &[u8; 16], node: u64, entropy: &DangerSeededEntropy) -> (Ed25519Key, Vec<u8>) {
        let key = Ed25519Key::generate(entropy);
        let provisional = provisional_certificate(&key, entropy, NOW).unwrap();
        let spki = certificate_spki(&provisional).unwrap();
        (key, ca.issue_node_certificate(id, node, &spki, entropy, NOW).unwrap())
    }

    #[test]
    fn an_issued_certificate_names_its_cluster_and_node() {
        let (id, ca, entropy) = cluster(1);
        let (_, cert) = node_cert(&ca, &id, 7, &entropy);
        assert_eq!(named_node(&cert), Some((id, 7)));
        assert_eq!(validity(&cert), Ok((NOW - CERT_BACKDATE_S, NOW + NODE_CERT_VALIDITY_S)));
        assert_eq!(verify_node_certificate(&cert, &ca.cert_der, &id, NOW, CertUse::Client), Ok(7));
        assert_eq!(verify_node_certificate(&cert, &ca.cert_der, &id, NOW, CertUse::Server), Ok(7));
        assert_eq!(
            verify_node_certificate(&cert, &ca.cert_der, &[9; 16], NOW, CertUse::Client),
            Err(PkiError::WrongName)
        );
    }

    #[test]
    fn the_same_seed_mints_the_same_bytes() {
        let (id, ca, entropy) = cluster(5);
        let (_, cert) = node_cert(&ca, &id, 2, &entropy);
        let (id2, ca2, entropy2) = cluster(5);
        let (_, cert2) = node_cert(&ca2, &id2, 2, &entropy2);
        assert_eq!(ca.cert_der, ca2.cert_der);
        assert_eq!(cert, cert2);
    }

    #[test]
    fn another_clusters_ca_a_provisional_certificate_and_expired_ones_are_refused() {
        let (id, ca, entropy) = cluster(1);
        let (other_id, other_ca, other_entropy) = cluster(2);
        let (_, foreign) = node_cert(&other_ca, &other_id, 1, &other_entropy);
        assert!(matches!(
            verify_node_certificate(&foreign, &ca.cert_der, &id, NOW, CertUse::Client),
            Err(PkiError::Untrusted(_))
        ));
        let key = Ed25519Key::generate(&entropy);
        let provisional = provisional_certificate(&key, &entropy, NOW).unwrap();
        assert!(verify_node_certificate(&provisional, &ca.cert_der, &id, NOW, CertUse::Client).is_err());
        let (_, cert) = node_cert(&ca, &id, 3, &entropy);
        let after = NOW + NODE_CERT_VALIDITY_S + 1;
        assert!(matches!(
            verify_node_certificate(&cert, &ca.cert_der, &id, after, CertUse::Client),
            Err(PkiError::Untrusted(_))
        ));
        let before = NOW - CERT_BACKDATE_S - 1;
        assert!(verify_node_certificate(&cert, &ca.cert_der, &id, before, CertUse::Client).is_err());
        assert!(verify_node_certificate(&cert, &ca.cert_der, &id, NOW - CERT_BACKDATE_S, CertUse::Client).is_ok());
    }

    #[test]
    fn garbage_never_panics() {
        let (id, ca, _) = cluster(1);
        for junk in [&b""[..], b"\x30\x03\x02\x01\x01", &[0u8; 100]] {
            assert!(verify_node_certificate(junk, &ca.cert_der, &id, NOW, CertUse::Client).is_err());
            assert!(certificate_spki(junk).is_err());
            assert!(verify_node_certificate(&ca.cert_der, junk, &id, NOW, CertUse::Client).is_err());
        }
        let big = vec![0u8; PEER_CERT_BYTES_MAX + 1];
        assert_eq!(certificate_spki(&big), Err(PkiError::Malformed("certificate (too large)")));
    }

    #[test]
    fn node_uris_parse_strictly() {
        let id = [0xab; 16];
        assert_eq!(parse_node_uri(&node_uri(&id, 42)), Some((id, 42)));
        let hex = "ab".repeat(16);
        for bad in [
            format!("arca://{hex}/node/042"),
            format!("arca://{hex}/node/"),
            format!("arca://{hex}/node/4x"),
            format!("arca://{}/node/1", hex.to_uppercase()),
            format!("arca://{hex}x/node/1"),
            format!("arca://{hex}/node/99999999999999999999"),
            format!("https://{hex}/node/1"),
        ] {
            assert_eq!(parse_node_uri(&bad), None, "{bad}");
        }
    }

    #[test]
    fn pem_round_trips() {
        let (_, ca, _) = cluster(3);
        let text = pem("CERTIFICATE", &ca.cert_der);
        assert_eq!(from_pem("CERTIFICATE", &text), Some(ca.cert_der.clone()));
        assert_eq!(from_pem("PRIVATE KEY", &text), None);
        let key = Ed25519Key::generate(&DangerSeededEntropy::new(4));
        assert!(!format!("{key:?}").contains(&hex::encode(&key.pkcs8_der()[16..])));
        assert_eq!(Ed25519Key::from_pkcs8(key.pkcs8_der()).unwrap().public_key(), key.public_key());
    }
}
