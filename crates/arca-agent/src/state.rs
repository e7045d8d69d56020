//! What an agent keeps on disk, in its state directory (0700): `agent.json` (its client id and when
//! its certificate stops being honoured), `agent.pem` (its certificate and private key, 0600) and,
//! during a rotation, `agent.pem.next`, the new one, written before it is registered. Every file is
//! replaced whole (written beside, synced, renamed), so a crash leaves the old or the new one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

const SAVED: &str = "agent.json";
const CURRENT: &str = "agent.pem";
const STAGED: &str = "agent.pem.next";

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub client_id: String,
    /// When Arca stops honouring the current certificate (Unix seconds).
    pub end: i64,
}

pub struct Store {
    dir: PathBuf,
}

fn setup(what: String) -> crate::AgentError {
    crate::AgentError::Setup(what)
}

/// Writes `bytes` to `path` (mode 0600) so that a crash leaves the old file or the new one.
fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

impl Store {
    /// The state directory, made (0700) if missing; refused if others may read it.
    pub fn open(dir: &Path) -> Result<Self, crate::AgentError> {
        std::fs::create_dir_all(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self { dir: dir.to_owned() })
    }

    pub fn current_path(&self) -> PathBuf {
        self.dir.join(CURRENT)
    }

    pub fn staged_path(&self) -> PathBuf {
        self.dir.join(STAGED)
    }

    pub fn has_staged(&self) -> bool {
        self.staged_path().exists()
    }

    pub fn load(&self) -> Result<Option<Saved>, crate::AgentError> {
        match std::fs::read(self.dir.join(SAVED)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| setup(format!("{} is damaged ({e}); remove the state directory and enroll again", SAVED))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn save(&self, saved: &Saved) -> Result<(), crate::AgentError> {
        let json = serde_json::to_vec(saved).map_err(|e| setup(format!("encode the agent's state: {e}")))?;
        Ok(replace(&self.dir.join(SAVED), &json)?)
    }

    /// Records the client id before the first certificate is registered.
    pub fn begin(&self, client_id: &str) -> Result<(), crate::AgentError> {
        self.save(&Saved { client_id: client_id.to_owned(), end: 0 })
    }

    /// Makes a new key and self-signed certificate and writes them as the staged pair.
    pub fn stage(&self, client_id: &str, lifetime_s: i64) -> Result<(), crate::AgentError> {
        let days = lifetime_s.max(0) / 86_400 + 2;
        let pem = arca_crypto::client_cert::self_signed(&format!("arca agent {client_id}"), now(), days)
            .map_err(|e| setup(format!("make the agent's certificate: {e}")))?;
        let pem = Zeroizing::new(pem);
        Ok(replace(&self.staged_path(), pem.as_bytes())?)
    }

    /// The staged certificate alone (PEM), to register: its private key stays in the file.
    pub fn staged_certificate(&self) -> Result<String, crate::AgentError> {
        let pem = Zeroizing::new(std::fs::read_to_string(self.staged_path())?);
        let end = "-----END CERTIFICATE-----";
        let cut = pem.find(end).ok_or_else(|| setup(format!("{STAGED} holds no certificate")))?;
        Ok(format!("{}\n", &pem[..cut + end.len()]))
    }

    /// The staged pair becomes current; `end` is when Arca stops honouring it (unknown: now, so the
    /// agent rotates at once). Returns that end.
    pub fn promote(&self, end: Option<i64>) -> Result<i64, crate::AgentError> {
        let saved = self.load()?.ok_or_else(|| setup("the agent's state has no client id".into()))?;
        std::fs::rename(self.staged_path(), self.current_path())?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let end = end.unwrap_or_else(now);
        self.save(&Saved { client_id: saved.client_id, end })?;
        Ok(end)
    }
}

/// Refuses to replace anything at `path` but a stale socket.
pub fn check_replaceable(path: &Path) -> Result<(), crate::AgentError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            Err(setup(format!("{} exists and is not a socket; refusing to replace it", path.display())))
        }
        _ => Ok(()),
    }
}

/// Binds the agent's Unix socket, replacing a stale one, and lets every local user connect to it.
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, crate::AgentError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    check_replaceable(path)?;
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_certificate_is_private_and_becomes_current_whole() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = Store::open(&state).unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(store.load().unwrap().is_none());
        store.begin("client").unwrap();
        store.stage("client", 60).unwrap();
        assert_eq!(std::fs::metadata(store.staged_path()).unwrap().permissions().mode() & 0o777, 0o600);
        let staged = std::fs::read_to_string(store.staged_path()).unwrap();
        assert!(staged.contains("PRIVATE KEY"));
        let certificate = store.staged_certificate().unwrap();
        assert!(certificate.contains("BEGIN CERTIFICATE") && !certificate.contains("PRIVATE KEY"));
        assert_eq!(store.promote(Some(42)).unwrap(), 42);
        assert!(!store.has_staged());
        assert_eq!(std::fs::read_to_string(store.current_path()).unwrap(), staged);
        let saved = store.load().unwrap().unwrap();
        assert_eq!((saved.client_id.as_str(), saved.end), ("client", 42));
    }
}
