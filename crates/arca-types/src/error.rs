//! The one error type every Arca API returns, with a stable code that clients may match on.
//!
//! **API Boundary:** the strings returned by [`ErrorCode::azure_code`] and [`ErrorCode::reason`] are part
//! of the public API. Never rename one; add a new code instead.

use serde::{Deserialize, Serialize};

/// A stable, client-visible error code. The doc comment of each variant says when it is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A field of the request is malformed or outside its limits.
    BadParameter,
    /// A vault name breaks Azure's vault naming rules.
    VaultNameNotValid,
    /// The request carried no token, or a token Arca does not know.
    Unauthorized,
    /// The caller is known but not allowed to perform the action.
    Forbidden,
    /// The secret exists but is disabled, so its value cannot be read.
    SecretDisabled,
    /// Purge was refused because the vault has purge protection and retention has not ended.
    PurgeProtected,
    /// The secret (or the requested version) does not exist or is deleted.
    SecretNotFound,
    /// The vault does not exist or is deleted.
    VaultNotFound,
    /// The key (or the requested version) does not exist or is deleted.
    KeyNotFound,
    /// The key version is disabled and refuses every operation.
    KeyDisabled,
    /// The key's `key_ops` or validity window do not allow the operation.
    KeyOperationForbidden,
    /// The name is held by a soft-deleted object; recover or purge it first.
    ObjectIsDeletedButRecoverable,
    /// The vault name is taken, possibly by a soft-deleted vault.
    VaultAlreadyExists,
    /// The name is held by a live object (for example, restore onto a live name).
    Conflict,
    /// A recover or delete of the same object is in flight; retry.
    ObjectIsBeingRecovered,
    /// Too many requests; retry after the delay in RetryInfo.
    Throttled,
    /// The node is sealed; unseal it with `arca operator unseal`.
    Sealed,
    /// The cluster has not been initialized; run `arca operator init`.
    NotInitialized,
    /// `arca operator init` was already run for this cluster.
    AlreadyInitialized,
    /// No leader or no quorum right now; retry.
    Unavailable,
    /// This region may not take writes now: its lease on the epoch lapsed (it cannot reach the witness
    /// or the secondary region) or a failover is under way. Reads and crypto still work; retry.
    ReadOnlyFailover,
    /// The write may or may not have taken effect (leadership changed or the leader stopped answering
    /// while it was in flight). Read the object before retrying a write that is not idempotent.
    OutcomeUnknown,
    /// `arca cluster failover` cannot promote this region now: the message says why (not a node of
    /// the secondary region, the primary still heard from or still holding its lease, another node
    /// holds more of the log, a promotion already under way). Nothing changed.
    FailoverNotPossible,
    /// No divergence record for that epoch and node (`arca cluster divergence list` shows them).
    DivergenceNotFound,
    /// An invariant inside Arca failed. The message names what; the request changed nothing.
    Internal,
    /// A join token was refused: malformed, for another cluster, unknown, expired or already used by
    /// another node. Ask an operator for a new one (`arca cluster join-token create`).
    JoinTokenInvalid,
    /// The caller is not a member of this cluster (cluster listener only).
    NotAMember,
    /// The caller is known, but no role assignment allows the action at the scope (Azure's inner code).
    ForbiddenByRbac,
    /// The token endpoint refused the client's credentials (OAuth's `invalid_client`). Says nothing
    /// of whether the client id exists.
    InvalidClient,
    /// No user, group, service principal or managed identity has that id, client id or name.
    PrincipalNotFound,
    /// No built-in or custom role has that id or name.
    RoleDefinitionNotFound,
    /// No role assignment has that id.
    RoleAssignmentNotFound,
    /// The principal already holds that role at that scope.
    RoleAssignmentExists,
    /// A custom role that is still assigned cannot be deleted; delete its assignments first.
    RoleDefinitionHasAssignments,
    /// The vault's network rules do not allow calls from the caller's address (Azure's inner code).
    ForbiddenByFirewall,
}

impl ErrorCode {
    /// The Azure-style code (innermost), e.g. `SecretNotFound`.
    pub fn azure_code(self) -> &'static str {
        match self {
            ErrorCode::BadParameter => "BadParameter",
            ErrorCode::VaultNameNotValid => "VaultNameNotValid",
            ErrorCode::Unauthorized => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::SecretDisabled => "SecretDisabled",
            ErrorCode::PurgeProtected => "PurgeProtected",
            ErrorCode::SecretNotFound => "SecretNotFound",
            ErrorCode::VaultNotFound => "VaultNotFound",
            ErrorCode::KeyNotFound => "KeyNotFound",
            ErrorCode::KeyDisabled => "KeyDisabled",
            ErrorCode::KeyOperationForbidden => "KeyOperationForbidden",
            ErrorCode::ObjectIsDeletedButRecoverable => "ObjectIsDeletedButRecoverable",
            ErrorCode::VaultAlreadyExists => "VaultAlreadyExists",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::ObjectIsBeingRecovered => "ObjectIsBeingRecovered",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::Sealed => "Sealed",
            ErrorCode::NotInitialized => "NotInitialized",
            ErrorCode::AlreadyInitialized => "AlreadyInitialized",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::ReadOnlyFailover => "ReadOnlyFailover",
            ErrorCode::FailoverNotPossible => "FailoverNotPossible",
            ErrorCode::DivergenceNotFound => "DivergenceNotFound",
            ErrorCode::OutcomeUnknown => "OutcomeUnknown",
            ErrorCode::Internal => "Internal",
            ErrorCode::JoinTokenInvalid => "JoinTokenInvalid",
            ErrorCode::NotAMember => "NotAMember",
            ErrorCode::ForbiddenByRbac => "ForbiddenByRbac",
            ErrorCode::InvalidClient => "InvalidClient",
            ErrorCode::PrincipalNotFound => "PrincipalNotFound",
            ErrorCode::RoleDefinitionNotFound => "RoleDefinitionNotFound",
            ErrorCode::RoleAssignmentNotFound => "RoleAssignmentNotFound",
            ErrorCode::RoleAssignmentExists => "RoleAssignmentExists",
            ErrorCode::RoleDefinitionHasAssignments => "RoleDefinitionHasAssignments",
            ErrorCode::ForbiddenByFirewall => "ForbiddenByFirewall",
        }
    }

    /// The outer Azure code that an HTTP facade would put around the inner one.
    pub fn azure_outer_code(self) -> &'static str {
        match self {
            ErrorCode::SecretDisabled
            | ErrorCode::PurgeProtected
            | ErrorCode::KeyDisabled
            | ErrorCode::KeyOperationForbidden => "Forbidden",
            ErrorCode::ObjectIsDeletedButRecoverable | ErrorCode::ObjectIsBeingRecovered => "Conflict",
            ErrorCode::JoinTokenInvalid
            | ErrorCode::NotAMember
            | ErrorCode::ForbiddenByRbac
            | ErrorCode::ForbiddenByFirewall => "Forbidden",
            ErrorCode::InvalidClient => "Unauthorized",
            ErrorCode::PrincipalNotFound
            | ErrorCode::RoleDefinitionNotFound
            | ErrorCode::RoleAssignmentNotFound
            | ErrorCode::DivergenceNotFound => "NotFound",
            ErrorCode::RoleAssignmentExists | ErrorCode::RoleDefinitionHasAssignments => "Conflict",
            other => other.azure_code(),
        }
    }

    /// The AIP-193 `ErrorInfo.reason`: the Azure code in UPPER_SNAKE_CASE, e.g. `SECRET_NOT_FOUND`.
    pub fn reason(self) -> String {
        let mut out = String::new();
        for (i, ch) in self.azure_code().chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_uppercase());
        }
        out
    }

    /// Parses an Azure-style code back into the enum (used by clients decoding ErrorInfo).
    pub fn from_azure_code(code: &str) -> Option<ErrorCode> {
        ALL_CODES.iter().copied().find(|c| c.azure_code() == code)
    }

    /// Whether a client may retry the same request unchanged.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::Throttled
                | ErrorCode::Unavailable
                | ErrorCode::ObjectIsBeingRecovered
                | ErrorCode::ReadOnlyFailover
        )
    }
}

/// Every code, for round-trip tests and parsing.
pub const ALL_CODES: &[ErrorCode] = &[
    ErrorCode::BadParameter,
    ErrorCode::VaultNameNotValid,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::SecretDisabled,
    ErrorCode::PurgeProtected,
    ErrorCode::SecretNotFound,
    ErrorCode::VaultNotFound,
    ErrorCode::KeyNotFound,
    ErrorCode::KeyDisabled,
    ErrorCode::KeyOperationForbidden,
    ErrorCode::ObjectIsDeletedButRecoverable,
    ErrorCode::VaultAlreadyExists,
    ErrorCode::Conflict,
    ErrorCode::ObjectIsBeingRecovered,
    ErrorCode::Throttled,
    ErrorCode::Sealed,
    ErrorCode::NotInitialized,
    ErrorCode::AlreadyInitialized,
    ErrorCode::Unavailable,
    ErrorCode::ReadOnlyFailover,
    ErrorCode::FailoverNotPossible,
    ErrorCode::DivergenceNotFound,
    ErrorCode::OutcomeUnknown,
    ErrorCode::Internal,
    ErrorCode::JoinTokenInvalid,
    ErrorCode::NotAMember,
    ErrorCode::ForbiddenByRbac,
    ErrorCode::InvalidClient,
    ErrorCode::PrincipalNotFound,
    ErrorCode::RoleDefinitionNotFound,
    ErrorCode::RoleAssignmentNotFound,
    ErrorCode::RoleAssignmentExists,
    ErrorCode::RoleDefinitionHasAssignments,
    ErrorCode::ForbiddenByFirewall,
];

/// An error with a stable code and a message a person can act on. Messages never contain secret values
/// or secret names: callers pass only the public parts of a request into them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}: {message}", code.azure_code())]
pub struct ArcaError {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, for `BadRequest` field violations.
    pub field: Option<String>,
}

impl ArcaError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), field: None }
    }

    pub fn bad_parameter(field: &str, message: impl Into<String>) -> Self {
        Self { code: ErrorCode::BadParameter, message: message.into(), field: Some(field.to_owned()) }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_upper_snake_case() {
        assert_eq!(ErrorCode::SecretNotFound.reason(), "SECRET_NOT_FOUND");
        assert_eq!(ErrorCode::ObjectIsDeletedButRecoverable.reason(), "OBJECT_IS_DELETED_BUT_RECOVERABLE");
        assert_eq!(ErrorCode::Sealed.reason(), "SEALED");
    }

    #[test]
    fn every_code_round_trips() {
        for code in ALL_CODES {
            assert_eq!(ErrorCode::from_azure_code(code.azure_code()), Some(*code));
        }
        assert_eq!(ErrorCode::from_azure_code("NoSuchCode"), None);
    }
}
