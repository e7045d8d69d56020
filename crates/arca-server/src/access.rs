//! The access seam every RPC passes through: authenticate → authorize(principal, action, scope) → audit.
//!
//! Today the only principal is the root token from `init`. Identity, RBAC with Azure's roles and more
//! audit sinks plug in behind these traits without touching the services.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use arca_types::limits::BEARER_TOKEN_BYTES_MAX;
use arca_types::{ArcaError, ErrorCode};
use serde::Serialize;

use crate::keyspace::Keyspace;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A short, non-secret id of the credential, safe for audit records.
    pub accessor: String,
    pub policy: String,
}

/// Data actions, named as Azure names them (without the `Microsoft.KeyVault/vaults/` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    VaultRead,
    VaultWrite,
    VaultDelete,
    SecretReadMetadata,
    SecretGet,
    SecretSet,
    SecretUpdate,
    SecretDelete,
    SecretRecover,
    SecretPurge,
    SecretBackup,
    SecretRestore,
    KeyRead,
    KeyCreate,
    KeyImport,
    KeyUpdate,
    KeyDelete,
    KeyRecover,
    KeyPurge,
    KeyBackup,
    KeyRestore,
    KeyRotate,
    KeyPolicyRead,
    KeyPolicyWrite,
    KeyEncrypt,
    KeyDecrypt,
    KeyWrap,
    KeyUnwrap,
    KeySign,
    KeyVerify,
    RandomBytes,
    OperatorSeal,
    OperatorRotate,
    OperatorTokens,
    ClusterRead,
    ClusterManage,
}

impl Action {
    pub fn azure_name(self) -> &'static str {
        match self {
            Action::VaultRead => "vaults/read",
            Action::VaultWrite => "vaults/write",
            Action::VaultDelete => "vaults/delete",
            Action::SecretReadMetadata => "secrets/readMetadata/action",
            Action::SecretGet => "secrets/getSecret/action",
            Action::SecretSet => "secrets/setSecret/action",
            Action::SecretUpdate => "secrets/update/action",
            Action::SecretDelete => "secrets/delete",
            Action::SecretRecover => "secrets/recover/action",
            Action::SecretPurge => "secrets/purge/action",
            Action::SecretBackup => "secrets/backup/action",
            Action::SecretRestore => "secrets/restore/action",
            Action::KeyRead => "keys/read",
            Action::KeyCreate => "keys/create/action",
            Action::KeyImport => "keys/import/action",
            Action::KeyUpdate => "keys/update/action",
            Action::KeyDelete => "keys/delete",
            Action::KeyRecover => "keys/recover/action",
            Action::KeyPurge => "keys/purge/action",
            Action::KeyBackup => "keys/backup/action",
            Action::KeyRestore => "keys/restore/action",
            Action::KeyRotate => "keys/rotate/action",
            Action::KeyPolicyRead => "keyrotationpolicies/read",
            Action::KeyPolicyWrite => "keyrotationpolicies/write",
            Action::KeyEncrypt => "keys/encrypt/action",
            Action::KeyDecrypt => "keys/decrypt/action",
            Action::KeyWrap => "keys/wrap/action",
            Action::KeyUnwrap => "keys/unwrap/action",
            Action::KeySign => "keys/sign/action",
            Action::KeyVerify => "keys/verify/action",
            Action::RandomBytes => "rng/action",
            Action::OperatorSeal => "operator/seal/action",
            Action::OperatorRotate => "operator/rotate/action",
            Action::OperatorTokens => "operator/tokens/action",
            Action::ClusterRead => "cluster/read",
            Action::ClusterManage => "cluster/manage/action",
        }
    }

    /// Whether the action changes state: its request is audited durably before it acts.
    pub fn is_mutation(self) -> bool {
        !matches!(
            self,
            Action::VaultRead
                | Action::SecretReadMetadata
                | Action::SecretGet
                | Action::SecretBackup
                | Action::KeyRead
                | Action::KeyBackup
                | Action::KeyPolicyRead
                | Action::KeyEncrypt
                | Action::KeyDecrypt
                | Action::KeyWrap
                | Action::KeyUnwrap
                | Action::KeySign
                | Action::KeyVerify
                | Action::RandomBytes
                | Action::ClusterRead
        )
    }
}

/// Where an action applies: the whole cluster, a vault, or one object in a vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessScope {
    Cluster,
    Vault(String),
}

pub trait Authenticator: Send + Sync {
    fn authenticate(&self, keyspace: &Keyspace, bearer: Option<&str>) -> Result<Principal, ArcaError>;
}

pub trait Authorizer: Send + Sync {
    fn authorize(&self, principal: &Principal, action: Action, scope: &AccessScope) -> Result<(), ArcaError>;
}

/// Tokens issued by the cluster, looked up by keyed hash in the replicated keyspace.
pub struct TokenAuthenticator;

impl Authenticator for TokenAuthenticator {
    fn authenticate(&self, keyspace: &Keyspace, bearer: Option<&str>) -> Result<Principal, ArcaError> {
        let unauthorized = |why: &str| {
            ArcaError::new(ErrorCode::Unauthorized, format!("{why}; pass `authorization: Bearer <token>` (ARCA_TOKEN)"))
        };
        let token = bearer.ok_or_else(|| unauthorized("the request carries no token"))?;
        if token.len() > BEARER_TOKEN_BYTES_MAX {
            return Err(unauthorized("the token is not valid"));
        }
        match keyspace.token(token)? {
            Some(record) => Ok(Principal { accessor: record.accessor, policy: record.policy }),
            None => Err(unauthorized("the token is not valid")),
        }
    }
}

/// The policy in force until RBAC lands: the root policy may do everything, nothing else may do anything.
pub struct RootOnlyAuthorizer;

impl Authorizer for RootOnlyAuthorizer {
    fn authorize(&self, principal: &Principal, action: Action, _scope: &AccessScope) -> Result<(), ArcaError> {
        if principal.policy == "root" {
            Ok(())
        } else {
            Err(ArcaError::new(
                ErrorCode::Forbidden,
                format!("the caller ({}) may not perform {}", principal.accessor, action.azure_name()),
            ))
        }
    }
}

/// Which half of a request an audit record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditStage {
    /// Written before the request acts; for a change, durably, or the request is refused.
    Request,
    /// Written after, with the outcome and the same request id.
    Response,
}

/// One audit record. It names objects only by keyed hash, names the vault only once the caller is
/// authenticated, and never carries values: every field is bounded whoever sent the request.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub time: i64,
    pub request_id: String,
    pub stage: AuditStage,
    pub node_id: u64,
    pub operation: &'static str,
    /// The authenticated caller's accessor, `system` for the node's own jobs, or none.
    pub caller: Option<String>,
    pub vault: Option<String>,
    /// Keyed hashes of every object the request names (each item of a batch).
    pub objects: Vec<String>,
    /// On responses: `success` or `failure`, the stable code, and how long the request took.
    pub result: Option<&'static str>,
    pub code: Option<&'static str>,
    pub duration_ms: Option<u64>,
}

/// How far a record must be on its way to disk before `record` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditDurability {
    /// On stable storage (fsync'd): records of requests that change state.
    Synced,
    /// Handed to the operating system (it survives the process dying, not the machine): reads.
    Buffered,
}

/// Where audit records go. Sinks are set in a node's configuration, never through the API.
pub trait AuditSink: Send + Sync {
    /// Records `event` as `durability` asks, or fails: a request whose record cannot be written is
    /// refused (fail-closed), and a failed record leaves nothing half-written behind.
    fn record(&self, event: &AuditEvent, durability: AuditDurability) -> Result<(), ArcaError>;
}

/// Appends JSON lines to a file, fsync'ing the records that must be durable.
pub struct FileAuditSink {
    path: PathBuf,
    file: Mutex<Option<(std::fs::File, u64)>>,
}

impl FileAuditSink {
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: Mutex::new(None) }
    }
}

fn audit_failure(what: &str, e: std::io::Error) -> ArcaError {
    ArcaError::internal(format!("failed to {what} the audit log: {e}"))
}

impl AuditSink for FileAuditSink {
    fn record(&self, event: &AuditEvent, durability: AuditDurability) -> Result<(), ArcaError> {
        let mut line = serde_json::to_vec(event).map_err(|e| ArcaError::internal(format!("audit encode: {e}")))?;
        line.push(b'\n');
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| audit_failure("open", e))?;
            let len = file.metadata().map_err(|e| audit_failure("read", e))?.len();
            *guard = Some((file, len));
        }
        let (file, len) = guard.as_mut().expect("opened above");
        let written = file.write_all(&line).and_then(|()| match durability {
            AuditDurability::Synced => file.sync_data(),
            AuditDurability::Buffered => Ok(()),
        });
        match written {
            Ok(()) => {
                *len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A full disk can leave part of the line: cut back to the last whole record.
                let _ = file.set_len(*len);
                Err(audit_failure("write", e))
            }
        }
    }
}

/// The suite every [`AuditSink`] passes: records come back whole, in order, as JSON lines, and the
/// fields of a request from nobody stay bounded.
pub mod conformance {
    use super::*;

    fn event(stage: AuditStage, request_id: &str) -> AuditEvent {
        AuditEvent {
            time: 1_800_000_000,
            request_id: request_id.to_owned(),
            stage,
            node_id: 3,
            operation: "SecretSet",
            caller: Some("accessor".into()),
            vault: Some("demo".into()),
            objects: vec!["0a1b".into(), "2c3d".into()],
            result: (stage == AuditStage::Response).then_some("success"),
            code: None,
            duration_ms: (stage == AuditStage::Response).then_some(4),
        }
    }

    /// `read` returns everything the sink holds so far.
    pub fn run(sink: &dyn AuditSink, read: &dyn Fn() -> Vec<u8>) {
        sink.record(&event(AuditStage::Request, "r1"), AuditDurability::Synced).unwrap();
        sink.record(&event(AuditStage::Response, "r1"), AuditDurability::Synced).unwrap();
        sink.record(&event(AuditStage::Response, "r2"), AuditDurability::Buffered).unwrap();
        let text = String::from_utf8(read()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["stage"], "request");
        assert_eq!(lines[1]["stage"], "response");
        assert_eq!(lines[0]["request_id"], lines[1]["request_id"]);
        assert_eq!(lines[1]["objects"].as_array().map(Vec::len), Some(2));
        assert_eq!(lines[2]["request_id"], "r2");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_passes_the_conformance_suite_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = FileAuditSink::new(path.clone());
        conformance::run(&sink, &|| std::fs::read(&path).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_sink_that_cannot_write_fails_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let sink = FileAuditSink::new(dir.path().join("missing-dir").join("audit.log"));
        let event = AuditEvent {
            time: 0,
            request_id: "r".into(),
            stage: AuditStage::Request,
            node_id: 1,
            operation: "SecretSet",
            caller: None,
            vault: None,
            objects: Vec::new(),
            result: None,
            code: None,
            duration_ms: None,
        };
        assert!(sink.record(&event, AuditDurability::Synced).is_err());
    }
}
