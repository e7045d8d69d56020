//! The edge of the API listener: what every request meets before a handler decodes it.
//!
//! Each call has a size limit sized to its largest legal request ([`rule`]), checked on the gRPC
//! length prefix of the message before the message is read. Every call but the few that must work
//! without a token (init, unseal, seal status, join, and the share-authorized root generation and
//! rekey) is authenticated from its headers first, so an
//! unauthenticated caller can make a node read no more than [`REQUEST_BYTES_MAX_DEFAULT`] bytes of
//! anything. A request turned away here is audited with bounded fields only.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arca_types::limits::{
    BATCH_REQUEST_BYTES_MAX, CREDENTIAL_REQUEST_BYTES_MAX, CRYPTO_REQUEST_BYTES_MAX,
    FEDERATED_CREDENTIAL_REQUEST_BYTES_MAX, IMPORT_KEY_REQUEST_BYTES_MAX, MANAGED_IDENTITY_BIND_REQUEST_BYTES_MAX,
    MANAGED_IDENTITY_TOKEN_REQUEST_BYTES_MAX, NETWORK_RULES_REQUEST_BYTES_MAX, REQUEST_BYTES_MAX_DEFAULT,
    REQUEST_ID_CHARS_MAX, RESTORE_REQUEST_BYTES_MAX, ROLE_DEFINITION_BYTES_MAX, SET_SECRET_REQUEST_BYTES_MAX,
    TAGGED_REQUEST_BYTES_MAX, TOKEN_REQUEST_BYTES_MAX,
};
use arca_types::ArcaError;
use http_body::Frame;
use http_body_util::BodyExt;
use tonic::body::Body;
use tonic::codegen::{http, Bytes};
use tonic::server::NamedService;

use crate::access::Principal;
use crate::api::Api;
use crate::status::to_status;

/// What the edge requires of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The call's name in audit records (a fixed string, never what the caller sent).
    pub operation: &'static str,
    pub bytes_max: usize,
    /// Works without a token.
    pub open: bool,
}

/// The rule for a request path.
pub fn rule(path: &str) -> Rule {
    let method = path.rsplit('/').next().unwrap_or("");
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let known = |operation: &'static str, bytes_max: usize, open: bool| Rule { operation, bytes_max, open };
    match (service, method) {
        ("arca.v1.OperatorService", "Init") => known("OperatorInit", REQUEST_BYTES_MAX_DEFAULT, true),
        ("arca.v1.OperatorService", "Unseal") => known("OperatorUnseal", REQUEST_BYTES_MAX_DEFAULT, true),
        ("arca.v1.OperatorService", "GetSealStatus") => known("OperatorSealStatus", REQUEST_BYTES_MAX_DEFAULT, true),
        ("arca.v1.ClusterService", "JoinCluster") => known("ClusterJoin", REQUEST_BYTES_MAX_DEFAULT, true),
        ("arca.v1.OperatorService", "GenerateRoot") => known("OperatorGenerateRoot", REQUEST_BYTES_MAX_DEFAULT, true),
        ("arca.v1.OperatorService", "Rekey") => known("OperatorRekey", REQUEST_BYTES_MAX_DEFAULT, true),
        // The token endpoint: the client's credentials are the authority.
        ("arca.v1.AuthService", "Token") => known("Token", TOKEN_REQUEST_BYTES_MAX, true),
        ("arca.v1.PrincipalService", "ResetCredential") => {
            known("CredentialReset", CREDENTIAL_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.PrincipalService", "AddFederatedCredential") => {
            known("FederatedCredentialAdd", FEDERATED_CREDENTIAL_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.PrincipalService", "BindManagedIdentity") => {
            known("ManagedIdentityBind", MANAGED_IDENTITY_BIND_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.AgentService", "IssueManagedIdentityToken") => {
            known("ManagedIdentityToken", MANAGED_IDENTITY_TOKEN_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.AgentService", "RegisterAgentCertificate") => {
            known("AgentCertificateRegister", CREDENTIAL_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.RoleService", "CreateRoleDefinition") => {
            known("RoleDefinitionCreate", ROLE_DEFINITION_BYTES_MAX + REQUEST_BYTES_MAX_DEFAULT, false)
        }
        ("arca.v1.RoleService", "UpdateRoleDefinition") => {
            known("RoleDefinitionUpdate", ROLE_DEFINITION_BYTES_MAX + REQUEST_BYTES_MAX_DEFAULT, false)
        }
        ("arca.v1.SecretService", "SetSecret") => known("SecretSet", SET_SECRET_REQUEST_BYTES_MAX, false),
        ("arca.v1.SecretService", "UpdateSecret") => known("SecretUpdate", TAGGED_REQUEST_BYTES_MAX, false),
        ("arca.v1.SecretService", "RestoreSecret") => known("SecretRestore", RESTORE_REQUEST_BYTES_MAX, false),
        ("arca.v1.VaultService", "CreateVault") => known("VaultCreate", TAGGED_REQUEST_BYTES_MAX, false),
        ("arca.v1.VaultService", "UpdateVault") => known("VaultUpdate", TAGGED_REQUEST_BYTES_MAX, false),
        ("arca.v1.VaultService", "SetVaultNetworkRules") => {
            known("VaultNetworkRulesSet", NETWORK_RULES_REQUEST_BYTES_MAX, false)
        }
        ("arca.v1.KeyService", "CreateKey") => known("KeyCreate", TAGGED_REQUEST_BYTES_MAX, false),
        ("arca.v1.KeyService", "UpdateKey") => known("KeyUpdate", TAGGED_REQUEST_BYTES_MAX, false),
        ("arca.v1.KeyService", "ImportKey") => known("KeyImport", IMPORT_KEY_REQUEST_BYTES_MAX, false),
        ("arca.v1.KeyService", "RestoreKey") => known("KeyRestore", RESTORE_REQUEST_BYTES_MAX, false),
        ("arca.v1.CryptoService", m) if m.starts_with("Batch") => known("CryptoBatch", BATCH_REQUEST_BYTES_MAX, false),
        ("arca.v1.CryptoService", _) => known("Crypto", CRYPTO_REQUEST_BYTES_MAX, false),
        _ => known("Other", REQUEST_BYTES_MAX_DEFAULT, false),
    }
}

/// The principal the edge authenticated, handed to the handler so it does not look the token up twice.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// A client's request id (`x-arca-request-id`) and the fingerprint of the request it names.
#[derive(Debug, Clone)]
pub struct RequestId {
    pub id: String,
    pub fingerprint: [u8; 32],
}

/// The client's request id from the headers: `None` if absent, an error if malformed.
fn request_id(headers: &http::HeaderMap) -> Result<Option<String>, ArcaError> {
    let Some(value) = headers.get("x-arca-request-id") else { return Ok(None) };
    let id = value.to_str().unwrap_or("");
    let ok = !id.is_empty()
        && id.len() <= REQUEST_ID_CHARS_MAX
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(Some(id.to_owned()))
    } else {
        Err(ArcaError::bad_parameter(
            "x-arca-request-id",
            format!("x-arca-request-id must be 1-{REQUEST_ID_CHARS_MAX} characters of A-Z a-z 0-9 . _ -"),
        ))
    }
}

/// An API service behind the edge.
#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    api: Arc<Api>,
}

impl<S> Edge<S> {
    pub fn new(inner: S, api: Arc<Api>) -> Self {
        Self { inner, api }
    }
}

impl<S: NamedService> NamedService for Edge<S> {
    const NAME: &'static str = S::NAME;
}

/// A body whose first bytes were already read (to look at the length prefix) and are given back.
struct Replayed {
    first: Option<Bytes>,
    rest: Body,
}

impl http_body::Body for Replayed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

fn refuse(api: &Api, rule: Rule, error: ArcaError) -> http::Response<Body> {
    api.audit_refusal(rule.operation, &error);
    to_status(&error).into_http()
}

/// Reads until the 5-byte gRPC message prefix is in hand; returns what was read and the message
/// length it announces (`None` for an empty body).
async fn read_prefix(body: &mut Body) -> Result<(Bytes, Option<usize>), tonic::Status> {
    let mut read = Vec::new();
    while read.len() < 5 {
        match body.frame().await {
            None => break,
            Some(Err(e)) => return Err(tonic::Status::cancelled(format!("the request body broke off: {e}"))),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
        }
    }
    let len = (read.len() >= 5).then(|| u32::from_be_bytes([read[1], read[2], read[3], read[4]]) as usize);
    Ok((Bytes::from(read), len))
}

impl<S> tonic::codegen::Service<http::Request<Body>> for Edge<S>
where
    S: tonic::codegen::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let rule = rule(request.uri().path());
        let api = self.api.clone();
        // The clone that is ready serves this call; the fresh one waits for the next.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let (mut parts, mut body) = request.into_parts();
            if !rule.open {
                let bearer = parts
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                    .map(str::trim);
                let presented = parts
                    .extensions
                    .get::<arca_transport::incoming::PeerInfo>()
                    .and_then(|p| p.certificates.first())
                    .map(|der| arca_crypto::cluster_pki::sha256(der));
                match api.authenticate(bearer, presented.as_ref()) {
                    Ok(principal) => {
                        parts.extensions.insert(Authenticated(principal));
                    }
                    Err(e) => return Ok(refuse(&api, rule, e)),
                }
            }
            let (first, len) = match read_prefix(&mut body).await {
                Ok(read) => read,
                Err(status) => return Ok(status.into_http()),
            };
            if let Some(len) = len.filter(|len| *len > rule.bytes_max) {
                let error = ArcaError::new(
                    arca_types::ErrorCode::BadParameter,
                    format!("the request is {len} bytes; this call accepts at most {} bytes", rule.bytes_max),
                );
                return Ok(refuse(&api, rule, error));
            }
            let id = match request_id(&parts.headers) {
                Ok(id) => id,
                Err(e) => return Ok(refuse(&api, rule, e)),
            };
            let (first, rest) = match id {
                None => (first, body),
                Some(id) => {
                    // A request named for retries is fingerprinted whole (it is already known to fit).
                    let mut whole = first.to_vec();
                    while let Some(frame) = body.frame().await {
                        match frame {
                            Ok(frame) => {
                                if let Ok(data) = frame.into_data() {
                                    whole.extend_from_slice(&data);
                                }
                            }
                            Err(e) => {
                                return Ok(
                                    tonic::Status::cancelled(format!("the request body broke off: {e}")).into_http()
                                )
                            }
                        }
                        if whole.len() > rule.bytes_max + 5 {
                            let error = ArcaError::bad_parameter("request", "the request is longer than it said");
                            return Ok(refuse(&api, rule, error));
                        }
                    }
                    let fingerprint =
                        arca_crypto::cluster_pki::sha256(&[parts.uri.path().as_bytes(), b"\0", &whole].concat());
                    parts.extensions.insert(RequestId { id, fingerprint });
                    (Bytes::from(whole), Body::empty())
                }
            };
            let replayed = Replayed { first: Some(first), rest };
            inner.call(http::Request::from_parts(parts, Body::new(replayed))).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_has_a_rule_and_only_the_tokenless_ones_are_open() {
        let open: Vec<&str> = [
            "/arca.v1.OperatorService/Init",
            "/arca.v1.OperatorService/Unseal",
            "/arca.v1.OperatorService/GetSealStatus",
            "/arca.v1.ClusterService/JoinCluster",
            "/arca.v1.OperatorService/GenerateRoot",
            "/arca.v1.OperatorService/Rekey",
        ]
        .to_vec();
        for path in &open {
            assert!(rule(path).open, "{path}");
            assert_eq!(rule(path).bytes_max, REQUEST_BYTES_MAX_DEFAULT);
        }
        assert!(rule("/arca.v1.AuthService/Token").open);
        assert_eq!(rule("/arca.v1.AuthService/Token").bytes_max, TOKEN_REQUEST_BYTES_MAX);
        for path in ["/arca.v1.PrincipalService/CreatePrincipal", "/arca.v1.RoleService/CreateRoleAssignment"] {
            assert!(!rule(path).open, "{path}");
        }
        for path in [
            "/arca.v1.OperatorService/Seal",
            "/arca.v1.ClusterService/GetClusterStatus",
            "/x",
            "",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(!rule(path).open, "{path}");
        }
        assert_eq!(rule("/arca.v1.SecretService/SetSecret").bytes_max, SET_SECRET_REQUEST_BYTES_MAX);
        assert_eq!(rule("/arca.v1.CryptoService/BatchSign").bytes_max, BATCH_REQUEST_BYTES_MAX);
        assert_eq!(rule("/arca.v1.CryptoService/Sign").bytes_max, CRYPTO_REQUEST_BYTES_MAX);
    }
}
