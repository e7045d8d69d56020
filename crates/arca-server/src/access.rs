//! The access seam every RPC passes through: authenticate → authorize(principal, action, scope) → audit.
//!
//! Today the only principal is the root token from `init`. Identity, RBAC with Azure's roles and more
//! audit sinks plug in behind these traits without touching the services.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

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
            Action::ClusterManage => "cluster/manage/action",
        }
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
        if token.len() > 256 {
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

/// One audit record. It names objects only by keyed hash and never carries values.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub time: i64,
    pub request_id: String,
    pub node_id: u64,
    pub operation: String,
    pub caller: Option<String>,
    pub vault: Option<String>,
    pub object_hash: Option<String>,
    pub result: &'static str,
    pub code: Option<&'static str>,
    pub duration_ms: u64,
}

pub trait AuditSink: Send + Sync {
    /// Must durably record the event or fail: a request whose audit fails is refused (fail-closed).
    fn record(&self, event: &AuditEvent) -> Result<(), ArcaError>;
}

/// Appends JSON lines to a file.
pub struct FileAuditSink {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl FileAuditSink {
    pub fn new(path: PathBuf) -> Self {
        Self { path, file: Mutex::new(None) }
    }
}

impl AuditSink for FileAuditSink {
    fn record(&self, event: &AuditEvent) -> Result<(), ArcaError> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|e| ArcaError::internal(format!("failed to open the audit log: {e}")))?;
            *guard = Some(file);
        }
        let mut line = serde_json::to_vec(event).map_err(|e| ArcaError::internal(format!("audit encode: {e}")))?;
        line.push(b'\n');
        let file = guard.as_mut().expect("opened above");
        file.write_all(&line).map_err(|e| ArcaError::internal(format!("failed to write the audit log: {e}")))
    }
}
