//! What every public RPC shares: the access seam (authenticate → authorize → audit), request ids,
//! response metadata, and parsing of the common request fields.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use arca_types::limits::{PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX};
use arca_types::{ArcaError, ErrorCode};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::access::{AccessScope, Action, AuditEvent, AuditSink, Authenticator, Authorizer, Principal};
use crate::engine::{Consistency, Engine, MAX_STALENESS_MS};
use crate::keyspace::Keyspace;
use crate::status::to_status;

pub struct Api {
    pub engine: Arc<Engine>,
    pub authenticator: Arc<dyn Authenticator>,
    pub authorizer: Arc<dyn Authorizer>,
    pub audit: Arc<dyn AuditSink>,
    /// The secret `Init` must present, on the node that bootstrapped the cluster (none elsewhere).
    pub bootstrap_secret: Option<zeroize::Zeroizing<String>>,
}

/// One request in flight.
pub struct Call {
    pub request_id: String,
    started: Instant,
    operation: &'static str,
    bearer: Option<String>,
    principal: Option<Principal>,
    vault: Option<String>,
    object: Option<String>,
    /// The barrier the call was authorized under: if it is wiped before the call ends (the node
    /// sealed), a failure is reported as `SEALED`, since it may come from the missing keys.
    barrier: Option<arca_crypto::Barrier>,
}

impl Call {
    /// The accessor of the authenticated caller, once `authorize` has run.
    pub fn accessor(&self) -> Option<String> {
        self.principal.as_ref().map(|p| p.accessor.clone())
    }
}

fn bearer<T>(request: &Request<T>) -> Option<String> {
    let value = request.metadata().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(|t| t.trim().to_owned())
}

impl Api {
    pub fn begin<T>(&self, request: &Request<T>, operation: &'static str) -> Call {
        let id = self.engine.seal.entropy().bytes16();
        Call {
            request_id: crate::seal::hex_of(&id),
            started: Instant::now(),
            operation,
            bearer: bearer(request),
            principal: None,
            vault: None,
            object: None,
            barrier: None,
        }
    }

    /// Checks the node is unsealed, the caller is known, and the caller may do `action` on `vault`.
    pub fn authorize(&self, call: &mut Call, action: Action, vault: Option<&str>) -> Result<Keyspace, ArcaError> {
        call.vault = vault.map(str::to_owned);
        let keyspace = self.engine.seal.keyspace()?;
        let principal = self.authenticator.authenticate(&keyspace, call.bearer.as_deref())?;
        let scope = match vault {
            Some(v) => AccessScope::Vault(v.to_ascii_lowercase()),
            None => AccessScope::Cluster,
        };
        self.authorizer.authorize(&principal, action, &scope)?;
        call.principal = Some(principal);
        call.barrier = Some(keyspace.barrier().clone());
        Ok(keyspace)
    }

    /// Names the object the call touches, for the audit record (stored only as a keyed hash).
    pub fn touch(&self, call: &mut Call, object: &str) {
        call.object = Some(object.to_ascii_lowercase());
    }

    /// Audits the call and turns its result into a gRPC response with Arca's metadata.
    pub fn finish<R>(&self, call: Call, result: Result<R, ArcaError>) -> Result<Response<R>, Status> {
        let result = match result {
            Err(e) if call.barrier.as_ref().is_some_and(|b| b.is_wiped()) && e.code != ErrorCode::Sealed => {
                tracing::debug!("a request failed while the node sealed: {e}");
                Err(crate::seal::sealed_error())
            }
            other => other,
        };
        let object_hash = match (&call.object, self.engine.seal.barrier()) {
            (Some(name), Ok(barrier)) => Some(audit_object_hash(&barrier, name)),
            _ => None,
        };
        let event = AuditEvent {
            time: self.engine.clock.now_unix(),
            request_id: call.request_id.clone(),
            node_id: self.engine.node_id.get().copied().unwrap_or(0),
            operation: call.operation.to_owned(),
            caller: call.principal.as_ref().map(|p| p.accessor.clone()),
            vault: call.vault.clone(),
            object_hash,
            result: if result.is_ok() { "success" } else { "failure" },
            code: result.as_ref().err().map(|e| e.code.azure_code()),
            duration_ms: call.started.elapsed().as_millis() as u64,
        };
        // Calls refused before authentication (no token, sealed) are audited too, but only a call that
        // reached its handler is failed closed when the audit cannot be written.
        let audit_result = self.audit.record(&event);
        let result = match (result, audit_result) {
            (Ok(_), Err(e)) => {
                tracing::error!("failed to {e:#}; refusing the response");
                Err(ArcaError::internal("the audit record could not be written, so the response is withheld"))
            }
            (r, _) => r,
        };
        if let Err(e) = &result {
            if e.code == ErrorCode::Internal {
                tracing::error!(operation = call.operation, request_id = %call.request_id, "request failed: {e}");
            }
        }
        let mut response = result.map(Response::new).map_err(|e| to_status(&e))?;
        let md = response.metadata_mut();
        if let Ok(v) = MetadataValue::try_from(call.request_id.as_str()) {
            md.insert("x-arca-request-id", v);
        }
        if let Ok(raft) = self.engine.raft() {
            if let Ok(v) = MetadataValue::try_from(raft.node_id.to_string()) {
                md.insert("x-arca-node-id", v);
            }
            if let Ok(v) = MetadataValue::try_from(raft.applied_index().to_string()) {
                md.insert("x-arca-applied-index", v);
            }
        }
        Ok(response)
    }
}

/// How an audit record names an object: a keyed hash of its lowercase name, never the name.
pub fn audit_object_hash(barrier: &arca_crypto::Barrier, lowercase_name: &str) -> String {
    crate::seal::hex_of(
        &barrier.name_hash(arca_crypto::Scope::System, format!("audit:{lowercase_name}").as_bytes())[..12],
    )
}

/// Parses the read options of a Get or List call (default: linearizable).
pub fn parse_consistency(options: Option<&arca_proto::v1::ReadOptions>) -> Result<Consistency, ArcaError> {
    use arca_proto::v1::Consistency as C;
    let Some(options) = options else { return Ok(Consistency::Linearizable) };
    match C::try_from(options.consistency) {
        Ok(C::Unspecified) | Ok(C::Linearizable) => Ok(Consistency::Linearizable),
        Ok(C::BoundedStaleness) => {
            let d = options.max_staleness.as_ref().ok_or_else(|| {
                ArcaError::bad_parameter(
                    "read_options.max_staleness",
                    "max_staleness is required with BOUNDED_STALENESS",
                )
            })?;
            if d.seconds < 0 || d.nanos < 0 {
                return Err(ArcaError::bad_parameter("read_options.max_staleness", "max_staleness must be positive"));
            }
            let ms = (d.seconds as u64).saturating_mul(1000).saturating_add(d.nanos as u64 / 1_000_000);
            if ms == 0 || ms > MAX_STALENESS_MS {
                return Err(ArcaError::bad_parameter(
                    "read_options.max_staleness",
                    format!("max_staleness must be between 1 ms and {} s", MAX_STALENESS_MS / 1000),
                ));
            }
            Ok(Consistency::BoundedStaleness(Duration::from_millis(ms)))
        }
        Err(_) => Err(ArcaError::bad_parameter("read_options.consistency", "unknown consistency value")),
    }
}

pub fn page_size(raw: i32) -> Result<usize, ArcaError> {
    match raw {
        0 => Ok(PAGE_SIZE_DEFAULT as usize),
        n if n > 0 && n as u32 <= PAGE_SIZE_MAX => Ok(n as usize),
        n => Err(ArcaError::bad_parameter(
            "page_size",
            format!("page_size must be 1-{PAGE_SIZE_MAX} (or 0 for {PAGE_SIZE_DEFAULT}), it is {n}"),
        )),
    }
}

pub fn page_token(raw: &str) -> Result<Option<Vec<u8>>, ArcaError> {
    if raw.is_empty() {
        return Ok(None);
    }
    hex::decode(raw)
        .map(Some)
        .map_err(|_| ArcaError::bad_parameter("page_token", "page_token is not one this server issued"))
}

pub fn next_token(next: Option<Vec<u8>>) -> String {
    next.map(hex::encode).unwrap_or_default()
}

/// One page over an in-memory list (versions of one object): the index range to return and the next
/// page token. Tokens are the big-endian start offset.
pub fn offset_window(
    total: usize,
    raw_size: i32,
    raw_token: &str,
) -> Result<(std::ops::Range<usize>, String), ArcaError> {
    let limit = page_size(raw_size)?;
    let start = match page_token(raw_token)? {
        None => 0,
        Some(bytes) => {
            let raw: [u8; 4] = bytes
                .try_into()
                .map_err(|_| ArcaError::bad_parameter("page_token", "page_token is not one this server issued"))?;
            u32::from_be_bytes(raw) as usize
        }
    };
    let start = start.min(total);
    let end = (start + limit).min(total);
    let next = (end < total).then(|| (end as u32).to_be_bytes().to_vec());
    Ok((start..end, next_token(next)))
}

/// Checks an update mask against the updatable paths and answers which fields it covers (an empty mask
/// covers all).
pub fn update_mask(
    mask: Option<&prost_types::FieldMask>,
    updatable: &'static [&'static str],
) -> Result<impl Fn(&str) -> bool, ArcaError> {
    let paths: Vec<String> = mask.map(|m| m.paths.clone()).unwrap_or_default();
    if let Some(bad) = paths.iter().find(|p| !updatable.contains(&p.as_str())) {
        return Err(ArcaError::bad_parameter(
            "update_mask",
            format!("'{bad}' cannot be updated; updatable: {}", updatable.join(", ")),
        ));
    }
    Ok(move |p: &str| paths.is_empty() || paths.iter().any(|x| x == p))
}
