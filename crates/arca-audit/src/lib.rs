//! The audit log: what every request and the node's own jobs leave behind, and how an auditor checks
//! that nobody changed it.
//!
//! A sink writes one JSON line per record. [`FileAuditSink`] chains them: each record carries its
//! sequence number and the SHA-256 of the record before it, and ends with its own hash over
//! everything else it holds, so an edit, a deletion, a reordering or a cut at the start breaks the
//! chain where it happened ([`verify`]). The chain's head is anchored in the cluster's replicated
//! state from time to time (by the node, through Raft); checked against those anchors, a log that was
//! cut short, or replaced whole, is caught too.
//!
//! **Architecture Invariant:** sinks are set in a node's configuration, never through the API.
#![forbid(unsafe_code)]

pub mod chain;
pub mod conformance;
mod file;
pub mod verify;

use arca_types::ArcaError;
use serde::Serialize;

pub use chain::ChainHead;
pub use file::FileAuditSink;

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
    /// The authenticated caller's credential accessor, `system` for the node's own jobs, or none.
    pub caller: Option<String>,
    /// Who the caller is: a principal's object id, `root:<accessor>`, `system` or `node:<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Azure's `principalType` (User, Group, ServicePrincipal, ManagedIdentity), or Root, System, Node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal_type: Option<&'static str>,
    /// How the caller signed in (client_secret, client_assertion, root_token, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<&'static str>,
    /// The client id of a service principal or managed identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The address the call came from, as the node's listener saw it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_address: Option<String>,
    /// The TLS version of the caller's connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The action asked for, as Azure names it (a data action or a control action).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// What allowed it: `root`, or the role assignment's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// The role of that assignment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
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
    /// On stable storage (fsync'd): records of requests that change state, before they act.
    Synced,
    /// Handed to the operating system (it survives the process dying, not the machine), and on
    /// disk with the next sync: reads, and the outcomes of every request.
    Buffered,
}

/// Where audit records go. Sinks are set in a node's configuration, never through the API.
pub trait AuditSink: Send + Sync {
    /// Records `event` as `durability` asks, or fails: a request whose record cannot be written is
    /// refused (fail-closed), and a failed record leaves nothing half-written behind.
    fn record(&self, event: &AuditEvent, durability: AuditDurability) -> Result<(), ArcaError>;

    /// The head of the sink's chain (its last record's sequence number and hash), for a sink that
    /// chains its records; what the node anchors in the cluster.
    fn head(&self) -> Option<ChainHead> {
        None
    }
}
