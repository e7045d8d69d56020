//! A person's cached sign-in (`arca login`): the Arca access token won with a provider's ID token,
//! and what renews it (the provider's refresh token, issuer, client id and CA file), in one file
//! readable by its owner only: `$ARCA_CONFIG_DIR/login.json`, else `~/.arca/login.json`.
//!
//! The file is written to a new temporary file (created exclusively, mode 0600, in a directory of
//! mode 0700) and renamed over the old one, and read only if it is a regular file owned by the
//! caller and not readable by anyone else, so another local user can neither plant nor read it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the cache lives, unless `ARCA_CONFIG_DIR` says otherwise.
pub const ENV_CONFIG_DIR: &str = "ARCA_CONFIG_DIR";
/// The largest cache file read, in bytes.
pub const LOGIN_FILE_BYTES_MAX: u64 = 64 * 1024;
/// The grant a person's sign-in uses at Arca's token endpoint (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// One cached sign-in.
#[derive(Clone, Serialize, Deserialize)]
pub struct Login {
    /// The provider signed in with, and the client id used there.
    pub issuer: String,
    pub client_id: String,
    /// The CA file trusted for the provider, if not the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The Arca node signed in to (host:port), as the CLI was pointed at it.
    pub endpoint: String,
    /// The cluster signed in to (its id, as a node's seal status says it): the token, and a renewed
    /// ID token, go to nodes of this cluster only.
    pub cluster_id: String,
    pub access_token: String,
    /// Unix seconds.
    pub expires_on: i64,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("endpoint", &self.endpoint)
            .field("expires_on", &self.expires_on)
            .finish_non_exhaustive()
    }
}

/// The cache file's path.
pub fn path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(ENV_CONFIG_DIR).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("login.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".arca").join("login.json"))
}

fn uid() -> u32 {
    // The owner of /proc/self is this process's real uid; no libc call needed.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// Checks that `dir` is the caller's and nobody else may write in it (so nobody else can put a
/// login there, or take one away).
fn check_dir(dir: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid() || meta.permissions().mode() & 0o022 != 0 {
        return Err(format!(
            "{} must be a directory of yours that nobody else may write in (chmod 700 it)",
            dir.display()
        ));
    }
    Ok(())
}

/// Reads the cache; `Ok(None)` when there is none. It is opened without following a symbolic
/// link, and the open file must be a regular file of the caller's that nobody else may read, in a
/// directory nobody else may write in.
pub fn load(path: &Path) -> Result<Option<Login>, String> {
    use std::io::Read;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}; remove it and run arca login again", path.display())),
    };
    if let Some(dir) = path.parent() {
        check_dir(dir)?;
    }
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() || meta.uid() != uid() || meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is not a file of yours that only you can read; remove it and run arca login again",
            path.display()
        ));
    }
    if meta.len() > LOGIN_FILE_BYTES_MAX {
        return Err(format!("{} is larger than 64 KiB", path.display()));
    }
    let mut text = Vec::new();
    file.take(LOGIN_FILE_BYTES_MAX).read_to_end(&mut text).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|_| format!("{} is not a login this version of arca wrote; run arca login again", path.display()))
}

/// Writes the cache (see the module's notes on how).
pub fn save(path: &Path, login: &Login) -> Result<(), String> {
    let dir = path.parent().ok_or_else(|| format!("{} has no directory", path.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("create {}: {e}", dir.display()))?;
    check_dir(dir)?;
    let body = serde_json::to_vec(login).map_err(|e| e.to_string())?;
    let temp = dir.join(format!(".login.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)
        .map_err(|e| format!("create {}: {e}", temp.display()))?;
    file.write_all(&body).and_then(|_| file.sync_all()).map_err(|e| format!("write {}: {e}", temp.display()))?;
    std::fs::rename(&temp, path).map_err(|e| format!("replace {}: {e}", path.display()))
}

/// Removes the cache (`arca logout`); no cache is not an error.
pub fn remove(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            issuer: "https://idp.example".into(),
            client_id: "arca".into(),
            ca_file: None,
            endpoint: "127.0.0.1:8200".into(),
            cluster_id: "00".repeat(16),
            access_token: "eyJ.s3cret.x".into(),
            expires_on: 1_800_000_000,
            refresh_token: Some("r3fresh".into()),
        }
    }

    #[test]
    fn a_login_round_trips_through_a_file_only_its_owner_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cfg").join("login.json");
        assert!(load(&path).unwrap().is_none());
        save(&path, &login()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(load(&path).unwrap().unwrap().access_token, "eyJ.s3cret.x");
        save(&path, &Login { expires_on: 1, ..login() }).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().expires_on, 1);
        assert!(remove(&path).unwrap());
        assert!(!remove(&path).unwrap());
    }

    #[test]
    fn a_cache_others_can_read_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("login.json");
        save(&path, &login()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).is_err());
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(load(&link).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(load(&path).is_err(), "a directory others may write in is refused");
        assert!(save(&path, &login()).is_err());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(&path, b"not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(load(&path).is_err());
    }

    #[test]
    fn a_login_never_prints_its_tokens() {
        let text = format!("{:?}", login());
        assert!(!text.contains("s3cret") && !text.contains("r3fresh"));
    }
}
