//! Turning [`ArcaError`] into a gRPC status: a canonical code, `google.rpc.ErrorInfo` with the stable
//! reason, `BadRequest` field violations for invalid input and `RetryInfo` for retryable failures.

use std::collections::HashMap;
use std::time::Duration;

use arca_types::{ArcaError, ErrorCode};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Arca error.
pub const ERROR_DOMAIN: &str = "arca";

pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::BadParameter | ErrorCode::VaultNameNotValid => Code::InvalidArgument,
        ErrorCode::Unauthorized | ErrorCode::InvalidClient => Code::Unauthenticated,
        ErrorCode::Forbidden
        | ErrorCode::ForbiddenByRbac
        | ErrorCode::ForbiddenByFirewall
        | ErrorCode::KeyOperationForbidden
        | ErrorCode::JoinTokenInvalid
        | ErrorCode::NotAMember => Code::PermissionDenied,
        ErrorCode::SecretDisabled
        | ErrorCode::KeyDisabled
        | ErrorCode::PurgeProtected
        | ErrorCode::ObjectIsDeletedButRecoverable
        | ErrorCode::NotInitialized
        | ErrorCode::AlreadyInitialized
        | ErrorCode::RoleDefinitionHasAssignments
        | ErrorCode::FailoverNotPossible => Code::FailedPrecondition,
        ErrorCode::SecretNotFound
        | ErrorCode::VaultNotFound
        | ErrorCode::KeyNotFound
        | ErrorCode::PrincipalNotFound
        | ErrorCode::RoleDefinitionNotFound
        | ErrorCode::RoleAssignmentNotFound
        | ErrorCode::DivergenceNotFound => Code::NotFound,
        ErrorCode::VaultAlreadyExists | ErrorCode::Conflict | ErrorCode::RoleAssignmentExists => Code::AlreadyExists,
        ErrorCode::ObjectIsBeingRecovered => Code::Aborted,
        ErrorCode::Throttled => Code::ResourceExhausted,
        ErrorCode::Sealed | ErrorCode::Unavailable | ErrorCode::ReadOnlyFailover => Code::Unavailable,
        // gRPC's own convention for "the operation may have completed".
        ErrorCode::OutcomeUnknown => Code::DeadlineExceeded,
        ErrorCode::Internal => Code::Internal,
    }
}

pub fn to_status(error: &ArcaError) -> tonic::Status {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> = [
        ("code".to_owned(), error.code.azure_outer_code().to_owned()),
        ("inner_code".to_owned(), error.code.azure_code().to_owned()),
    ]
    .into();
    details.set_error_info(error.code.reason(), ERROR_DOMAIN, metadata);
    if let Some(field) = &error.field {
        details.add_bad_request_violation(field.clone(), error.message.clone());
    }
    if error.code.is_retryable() {
        details.set_retry_info(Some(Duration::from_secs(1)));
    }
    tonic::Status::with_error_details(grpc_code(error.code), error.message.clone(), details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_reason_and_field() {
        let status = to_status(&ArcaError::bad_parameter("value", "too big"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "BAD_PARAMETER");
        assert_eq!(info.domain, "arca");
        assert_eq!(info.metadata.get("inner_code").map(String::as_str), Some("BadParameter"));
        assert_eq!(details.bad_request().unwrap().field_violations[0].field, "value");
        assert!(to_status(&ArcaError::unavailable("x")).get_error_details().retry_info().is_some());
    }
}
