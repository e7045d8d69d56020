//! A node's cluster credentials: its own key, the certificate it presents on the cluster listener and
//! to peers, and the cluster CA it trusts.
//!
//! A node that has never joined holds a provisional, self-signed certificate that names no cluster.
//! Joining (or initializing the cluster it bootstrapped) installs the certificate the cluster CA issued
//! for the node's key, together with that CA. Installs are persisted before they take effect, through a
//! [`CredentialStore`]: files in the data dir in production, memory in the simulation.

use std::sync::{Arc, Mutex, RwLock};

use arca_crypto::cluster_pki::{self, Ed25519Key, PkiError};
use arca_crypto::Entropy;

use crate::join_token::JoinPin;

/// What a store persists for one node.
#[derive(Clone)]
pub struct StoredCredentials {
    pub key: Ed25519Key,
    /// The provisional or issued certificate (DER).
    pub cert_der: Vec<u8>,
    /// The cluster CA (DER), once the node belongs to a cluster.
    pub ca_der: Option<Vec<u8>>,
}

impl std::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("key", &self.key)
            .field("cert_der", &self.cert_der.len())
            .field("ca_der", &self.ca_der.as_ref().map(Vec::len))
            .finish()
    }
}

/// Why credentials could not be loaded, saved or installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("failed to {0}")]
    Io(String),
    #[error("the stored cluster credentials are corrupt: {0}")]
    Corrupt(String),
    #[error("the certificate does not fit: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// Where a node's credentials live between restarts.
pub trait CredentialStore: Send + Sync {
    /// The saved credentials, or `None` on a node that never saved any.
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError>;
    /// Saves atomically: after a crash, `load` returns either the old or the new credentials whole.
    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError>;
}

/// The credentials in force, as the transport reads them.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub stored: StoredCredentials,
    /// The cluster and node the certificate names, once it is an issued one.
    pub identity: Option<NodeIdentity>,
}

/// A node's place in a cluster, as its own certificate names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeIdentity {
    pub cluster_id: [u8; 16],
    pub node_id: u64,
}

impl Credentials {
    fn from_stored(stored: StoredCredentials, now: i64) -> Result<Self, CredentialError> {
        let spki = cluster_pki::certificate_spki(&stored.cert_der)?;
        if !spki.ends_with(&stored.key.public_key()) {
            return Err(CredentialError::Mismatch("the certificate is not for this node's key".into()));
        }
        let identity = match &stored.ca_der {
            None => None,
            Some(ca) => {
                let (cluster_id, node_id) = cluster_pki::named_node(&stored.cert_der)
                    .ok_or_else(|| CredentialError::Mismatch("the certificate names no node".into()))?;
                // Checked within its own validity: an expired certificate still says who this node is,
                // and renewing it needs to know.
                let (not_before, not_after) = cluster_pki::validity(&stored.cert_der)?;
                let at = now.max(not_before).min(not_after);
                let named = cluster_pki::verify_node_certificate(
                    &stored.cert_der,
                    ca,
                    &cluster_id,
                    at,
                    cluster_pki::CertUse::Client,
                )?;
                debug_assert_eq!(named, node_id);
                Some(NodeIdentity { cluster_id, node_id })
            }
        };
        Ok(Self { stored, identity })
    }

    /// The cluster CA and cluster id this node trusts, once it belongs to a cluster.
    pub fn trust(&self) -> Option<(&[u8], [u8; 16])> {
        Some((self.stored.ca_der.as_deref()?, self.identity?.cluster_id))
    }
}

/// A node's credentials, shared by the node (which installs them) and its transport (which presents
/// and checks with them). Cheap to read.
pub struct NodeCredentials {
    current: RwLock<Arc<Credentials>>,
    store: Box<dyn CredentialStore>,
    join_pin: Mutex<Option<JoinPin>>,
    /// Why the last server a joining node dialled did not pass as the pinned cluster.
    join_refusal: Mutex<Option<String>>,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials").field("identity", &self.current().identity).finish()
    }
}

impl NodeCredentials {
    /// Loads the node's credentials, or makes and saves a key and a provisional certificate on first
    /// start.
    pub fn open(store: Box<dyn CredentialStore>, entropy: &dyn Entropy, now: i64) -> Result<Self, CredentialError> {
        let stored = match store.load()? {
            Some(stored) => stored,
            None => {
                let key = Ed25519Key::generate(entropy);
                let cert_der = cluster_pki::provisional_certificate(&key, entropy, now)?;
                let stored = StoredCredentials { key, cert_der, ca_der: None };
                store.save(&stored)?;
                stored
            }
        };
        let current = Credentials::from_stored(stored, now)?;
        Ok(Self {
            current: RwLock::new(Arc::new(current)),
            store,
            join_pin: Mutex::new(None),
            join_refusal: Mutex::new(None),
        })
    }

    pub fn current(&self) -> Arc<Credentials> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The DER public key this node proves it holds in every handshake.
    pub fn spki_der(&self) -> Result<Vec<u8>, CredentialError> {
        Ok(cluster_pki::certificate_spki(&self.current().stored.cert_der)?)
    }

    /// Installs a certificate the cluster CA issued for this node's key: checked, saved, then used.
    pub fn install(&self, cert_der: Vec<u8>, ca_der: Vec<u8>, now: i64) -> Result<NodeIdentity, CredentialError> {
        let key = self.current().stored.key.clone();
        let stored = StoredCredentials { key, cert_der, ca_der: Some(ca_der) };
        let next = Credentials::from_stored(stored, now)?;
        let identity = next.identity.ok_or_else(|| CredentialError::Mismatch("not an issued certificate".into()))?;
        self.store.save(&next.stored)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(identity)
    }

    /// Pins the cluster a joining node dials (from its join token) until it holds the cluster CA.
    pub fn set_join_pin(&self, pin: Option<JoinPin>) {
        *self.join_pin.lock().unwrap_or_else(|p| p.into_inner()) = pin;
    }

    pub fn join_pin(&self) -> Option<JoinPin> {
        *self.join_pin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why a server did not pass as the cluster the join token pins (for the joining node's
    /// error message: TLS reports only that the handshake failed).
    pub fn note_join_refusal(&self, why: String) {
        *self.join_refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    pub fn take_join_refusal(&self) -> Option<String> {
        self.join_refusal.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Credentials kept in memory (the simulation keeps one per simulated disk, so they survive crashes).
#[derive(Clone, Default)]
pub struct MemCredentialStore(Arc<Mutex<Option<StoredCredentials>>>);

impl MemCredentialStore {
    /// The certificate saved last, for a simulated network that plays the part of TLS.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|s| s.cert_der.clone())
    }
}

impl CredentialStore for MemCredentialStore {
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(credentials.clone());
        Ok(())
    }
}

/// Credentials as files in a directory of the data dir, readable only by the node's user:
/// `node.key` (PKCS#8 PEM) and `node.pem` (the node certificate, then the cluster CA, each PEM). `openssl x509 -in node.pem -noout -text` shows
/// the node's name in the cluster.
pub struct FileCredentialStore {
    dir: std::path::PathBuf,
}

const KEY_FILE: &str = "node.key";
const CERT_FILE: &str = "node.pem";

impl FileCredentialStore {
    pub fn new(dir: std::path::PathBuf) -> Self {
        Self { dir }
    }

    fn write_atomically(&self, name: &str, contents: &str) -> Result<(), CredentialError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::fs::PermissionsExt;
        let io = |what: &str, e: std::io::Error| CredentialError::Io(format!("{what} {}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(|e| io("create", e))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| io("chmod", e))?;
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("write in", e))?;
        file.write_all(contents.as_bytes()).map_err(|e| io("write in", e))?;
        file.sync_all().map_err(|e| io("sync in", e))?;
        std::fs::rename(&tmp, self.dir.join(name)).map_err(|e| io("rename in", e))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", e))
    }
}

impl CredentialStore for FileCredentialStore {
    fn load(&self) -> Result<Option<StoredCredentials>, CredentialError> {
        let read = |name: &str| match std::fs::read_to_string(self.dir.join(name)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CredentialError::Io(format!("read {}: {e}", self.dir.join(name).display()))),
        };
        let (Some(key_pem), Some(cert_pem)) = (read(KEY_FILE)?, read(CERT_FILE)?) else {
            return Ok(None);
        };
        let corrupt = |what: &str| CredentialError::Corrupt(format!("{what} in {}", self.dir.display()));
        let key_der = cluster_pki::from_pem("PRIVATE KEY", &key_pem).ok_or_else(|| corrupt("no key"))?;
        let key = Ed25519Key::from_pkcs8(&key_der).map_err(|_| corrupt("an unreadable key"))?;
        let mut certs = cluster_pki::pem_blocks("CERTIFICATE", &cert_pem).into_iter();
        let cert_der = certs.next().ok_or_else(|| corrupt("no certificate"))?;
        let ca_der = certs.next();
        Ok(Some(StoredCredentials { key, cert_der, ca_der }))
    }

    fn save(&self, credentials: &StoredCredentials) -> Result<(), CredentialError> {
        // The key never changes once made: write it only when it is not there yet (first start).
        if !self.dir.join(KEY_FILE).exists() {
            self.write_atomically(KEY_FILE, &cluster_pki::pem("PRIVATE KEY", credentials.key.pkcs8_der()))?;
        }
        let mut text = cluster_pki::pem("CERTIFICATE", &credentials.cert_der);
        if let Some(ca) = &credentials.ca_der {
            text.push_str(&cluster_pki::pem("CERTIFICATE", ca));
        }
        self.write_atomically(CERT_FILE, &text)
    }
}

/// The suite every [`CredentialStore`] passes.
pub mod conformance {
    use super::*;

    /// Runs every check against stores made by `make` (each call a fresh, empty store; `reopen` gives a
    /// second handle on the same storage, as after a restart).
    pub fn run(make: impl Fn() -> (Box<dyn CredentialStore>, Box<dyn Fn() -> Box<dyn CredentialStore>>)) {
        let entropy = arca_crypto::entropy::DangerSeededEntropy::new(11);
        let (store, reopen) = make();
        assert!(store.load().unwrap().is_none(), "a new store is empty");
        let key = Ed25519Key::generate(&entropy);
        let cert_der = cluster_pki::provisional_certificate(&key, &entropy, 1_800_000_000).unwrap();
        let first = StoredCredentials { key: key.clone(), cert_der, ca_der: None };
        store.save(&first).unwrap();
        let loaded = reopen().load().unwrap().expect("saved credentials load");
        assert_eq!(loaded.key.pkcs8_der(), key.pkcs8_der());
        assert_eq!(loaded.cert_der, first.cert_der);
        assert_eq!(loaded.ca_der, None);
        let second =
            StoredCredentials { key: key.clone(), cert_der: vec![0x30, 0x00], ca_der: Some(vec![0x30, 0x01, 0x00]) };
        store.save(&second).unwrap();
        let loaded = reopen().load().unwrap().expect("saved credentials load");
        assert_eq!(loaded.cert_der, second.cert_der);
        assert_eq!(loaded.ca_der, second.ca_der);
        assert_eq!(loaded.key.pkcs8_der(), key.pkcs8_der(), "the key survives every save");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::cluster_pki::ClusterCa;
    use arca_crypto::entropy::DangerSeededEntropy;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        conformance::run(|| {
            let store = MemCredentialStore::default();
            let again = store.clone();
            (Box::new(store), Box::new(move || Box::new(again.clone()) as Box<dyn CredentialStore>))
        });
    }

    #[test]
    fn file_store_passes_the_conformance_suite_and_keeps_its_files_private() {
        let dirs = Arc::new(Mutex::new(Vec::new()));
        let keep = dirs.clone();
        conformance::run(move || {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("cluster-tls");
            keep.lock().unwrap().push(dir);
            let again = path.clone();
            (
                Box::new(FileCredentialStore::new(path)),
                Box::new(move || Box::new(FileCredentialStore::new(again.clone())) as Box<dyn CredentialStore>),
            )
        });
        use std::os::unix::fs::PermissionsExt;
        for dir in dirs.lock().unwrap().iter() {
            for name in [KEY_FILE, CERT_FILE] {
                let mode = std::fs::metadata(dir.path().join("cluster-tls").join(name)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{name}");
            }
            let mode = std::fs::metadata(dir.path().join("cluster-tls")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_new_node_is_provisional_and_an_install_names_it() {
        let entropy = DangerSeededEntropy::new(3);
        let store = MemCredentialStore::default();
        let creds = NodeCredentials::open(Box::new(store.clone()), &entropy, NOW).unwrap();
        assert!(creds.current().identity.is_none());
        let cluster_id = entropy.bytes16();
        let ca = ClusterCa::generate(&cluster_id, &entropy, NOW).unwrap();
        let cert = ca.issue_node_certificate(&cluster_id, 4, &creds.spki_der().unwrap(), &entropy, NOW).unwrap();
        let identity = creds.install(cert.clone(), ca.cert_der.clone(), NOW).unwrap();
        assert_eq!(identity, NodeIdentity { cluster_id, node_id: 4 });
        let reopened = NodeCredentials::open(Box::new(store), &entropy, NOW).unwrap();
        assert_eq!(reopened.current().identity, Some(identity));
        // A certificate for another key is refused and changes nothing.
        let other = Ed25519Key::generate(&entropy);
        let other_cert = cluster_pki::provisional_certificate(&other, &entropy, NOW).unwrap();
        let spki = cluster_pki::certificate_spki(&other_cert).unwrap();
        let wrong = ca.issue_node_certificate(&cluster_id, 5, &spki, &entropy, NOW).unwrap();
        assert!(matches!(creds.install(wrong, ca.cert_der.clone(), NOW), Err(CredentialError::Mismatch(_))));
        assert_eq!(creds.current().identity, Some(identity));
    }
}
