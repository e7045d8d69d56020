//! `arca.v1.AgentService`: what a node-local identity agent (`arca agent`) calls. Only an agent
//! principal reaches it. The agent registers its own certificates (enrolling with a one-time secret,
//! then rotating with the certificate it holds), and obtains tokens for the managed identities bound
//! to it, for a local workload it attested; Arca, not the agent, decides which identity that workload
//! may act as, so an agent can never obtain an identity that is not bound to it.

use std::sync::Arc;

use arca_core::identity::{uuid, Credential, PrincipalKind, PrincipalRecord, ServiceAccount};
use arca_core::{Command, Outcome};
use arca_identity::AuthMethod;
use arca_proto::v1 as pb;
use arca_proto::v1::agent_service_server::AgentService;
use arca_types::limits::*;
use arca_types::{ArcaError, ErrorCode};
use tonic::{Request, Response, Status};

use crate::access::{Identity, Principal};
use crate::api::{Api, Call, WRITE};
use crate::convert::ts;
use crate::keyspace::Keyspace;

/// The agent service, and where the keys of Kubernetes service account issuers come from (for
/// bindings that require a service account token).
pub struct Agents(pub Arc<Api>, pub Arc<dyn crate::providers::ProviderKeys>);

/// What the agent says about the local process asking for a token.
struct Workload {
    uid: u32,
    executable: Option<String>,
    /// The Kubernetes service account token it presented, unverified.
    service_account_token: Option<String>,
}

impl Workload {
    fn from(w: Option<&pb::AttestedWorkload>) -> Result<Self, ArcaError> {
        let w = w.ok_or_else(|| ArcaError::bad_parameter("workload", "the agent must say which workload asks"))?;
        let executable = Some(w.executable.clone()).filter(|e| !e.is_empty());
        if let Some(path) = &executable {
            arca_core::decide::identity::check_executable(path)?;
        }
        if w.service_account_token.len() > CLIENT_ASSERTION_BYTES_MAX {
            return Err(ArcaError::bad_parameter(
                "service_account_token",
                format!("a service account token is at most {} KiB", CLIENT_ASSERTION_BYTES_MAX / 1024),
            ));
        }
        let service_account_token = Some(w.service_account_token.clone()).filter(|t| !t.is_empty());
        Ok(Self { uid: w.uid, executable, service_account_token })
    }

    fn describe(&self) -> String {
        let token = if self.service_account_token.is_some() { ", with a service account token" } else { "" };
        match &self.executable {
            Some(exe) => format!("uid {} running {exe}{token}", self.uid),
            None => format!("uid {}{token}", self.uid),
        }
    }
}

/// Whether `credential` binds the identity to `agent` for a workload like this one, by what the
/// agent attested (uid, executable); a service account it requires is checked apart.
fn attested_matches(credential: &Credential, agent: &[u8; 16], workload: &Workload, now: i64) -> bool {
    let Some(b) = credential.kind.binding() else { return false };
    credential.is_valid_at(now)
        && b.agent == agent
        && b.uid.is_none_or(|u| u == workload.uid)
        && b.executable.is_none_or(|e| workload.executable.as_deref() == Some(e))
}

/// Whether some binding of `identity` could match (before any service account token is checked).
fn maybe_bound(identity: &PrincipalRecord, agent: &[u8; 16], workload: &Workload, now: i64) -> bool {
    identity.kind == PrincipalKind::ManagedIdentity
        && identity.credentials.iter().any(|c| attested_matches(c, agent, workload, now))
}

fn not_bound(workload: &Workload) -> ArcaError {
    ArcaError::new(
        ErrorCode::ForbiddenByRbac,
        format!(
            "no managed identity bound to this agent matches the workload ({}); bind one with arca identity bind",
            workload.describe()
        ),
    )
}

/// The longest an agent's certificate is honoured for, asked for or the default, in seconds.
fn certificate_lifetime(d: Option<&prost_types::Duration>) -> Result<i64, ArcaError> {
    let Some(d) = d else { return Ok(AGENT_CERTIFICATE_LIFETIME_S_DEFAULT) };
    if d.nanos != 0 || !(AGENT_CERTIFICATE_LIFETIME_S_MIN..=AGENT_CERTIFICATE_LIFETIME_S_MAX).contains(&d.seconds) {
        return Err(ArcaError::bad_parameter(
            "lifetime",
            format!(
                "lifetime must be whole seconds, {AGENT_CERTIFICATE_LIFETIME_S_MIN}-{AGENT_CERTIFICATE_LIFETIME_S_MAX}"
            ),
        ));
    }
    Ok(d.seconds)
}

impl Agents {
    /// The calling agent, checked against state as of the request's start, and recorded as the
    /// request's caller before anything happens. With `by_certificate`, it must have signed in with
    /// its certificate over mutual TLS (an agent holding only its enrollment secret has not enrolled).
    async fn agent(&self, call: &mut Call, by_certificate: bool) -> Result<(Keyspace, PrincipalRecord), ArcaError> {
        let (keyspace, caller) = self.0.authenticate_fresh(call, WRITE).await?;
        let Identity::Principal { id, kind: PrincipalKind::Agent, method, .. } = caller.identity else {
            return Err(ArcaError::new(
                ErrorCode::ForbiddenByRbac,
                "only an arca agent calls the agent service (this caller is not an agent principal)",
            ));
        };
        if by_certificate && method != AuthMethod::ClientCertificate {
            return Err(ArcaError::new(
                ErrorCode::ForbiddenByRbac,
                "the agent must sign in with its certificate over mutual TLS (enroll it first: arca agent run)",
            ));
        }
        let record = keyspace.principal(&id)?.ok_or_else(|| ArcaError::internal("the agent was just authenticated"))?;
        self.0.audit_request(call)?;
        Ok((keyspace, record))
    }

    /// Whether the workload's service account token is one of `sa`: signed by its issuer's keys
    /// (its JWKS, or by discovery), for its subject and audience, not expired.
    async fn presents(&self, sa: &ServiceAccount, workload: &Workload, now: i64) -> bool {
        use arca_identity::federation;
        let Some(token) = &workload.service_account_token else { return false };
        let checked = crate::providers::verify_external(self.1.as_ref(), &sa.jwks, token, &sa.issuer, now).await;
        // A projected token lives hours at most; one issued for a year (a legacy or auto-mounted
        // token) is not taken as proof of a pod.
        let short_lived = |claims: &federation::ExternalClaims| {
            let iat = claims.all.get("iat").and_then(|v| v.as_i64());
            iat.is_some_and(|iat| claims.exp.saturating_sub(iat) <= SERVICE_ACCOUNT_TOKEN_LIFETIME_S_MAX)
        };
        match checked {
            Ok(claims) => {
                claims.sub == sa.subject && claims.aud.iter().any(|a| a == &sa.audience) && short_lived(&claims)
            }
            Err(e) => {
                tracing::debug!("a workload's service account token was refused: {e}");
                false
            }
        }
    }

    /// Whether `identity` is bound to `agent` for this workload now, its service account included.
    async fn bound(&self, identity: &PrincipalRecord, agent: &[u8; 16], workload: &Workload, now: i64) -> bool {
        if identity.kind != PrincipalKind::ManagedIdentity {
            return false;
        }
        for credential in identity.credentials.iter().filter(|c| attested_matches(c, agent, workload, now)) {
            match credential.kind.binding().and_then(|b| b.service_account) {
                None => return true,
                Some(sa) if self.presents(sa, workload, now).await => return true,
                Some(_) => {}
            }
        }
        false
    }

    /// The managed identity a request names, or the only one bound to the agent for the workload.
    async fn identity_for(
        &self,
        keyspace: &Keyspace,
        named: &str,
        agent: &[u8; 16],
        workload: &Workload,
        now: i64,
    ) -> Result<PrincipalRecord, ArcaError> {
        if !named.is_empty() {
            // Whether the name exists or not, the refusal is the same.
            let found = super::principals::resolve(keyspace, "identity", named).ok();
            return match found {
                Some(p) if self.bound(&p, agent, workload, now).await => Ok(p),
                _ => Err(not_bound(workload)),
            };
        }
        let mut matching = Vec::new();
        for candidate in keyspace.principals_where(|p| maybe_bound(p, agent, workload, now))? {
            if self.bound(&candidate, agent, workload, now).await {
                matching.push(candidate);
            }
        }
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(not_bound(workload)),
            n => Err(ArcaError::bad_parameter(
                "identity",
                format!("{n} managed identities are bound for this workload; name one (client_id)"),
            )),
        }
    }
}

#[tonic::async_trait]
impl AgentService for Agents {
    async fn register_agent_certificate(
        &self,
        request: Request<pb::RegisterAgentCertificateRequest>,
    ) -> Result<Response<pb::RegisterAgentCertificateResponse>, Status> {
        let mut call = self.0.begin(&request, "AgentCertificateRegister");
        let r = request.into_inner();
        let result = async {
            let (_, agent) = self.agent(&mut call, false).await?;
            let lifetime = certificate_lifetime(r.lifetime.as_ref())?;
            let cert = super::principals::certificate_only(&r.certificate_pem)?;
            let now = self.0.engine.clock.now_unix();
            // Honoured from now: a certificate dated in the future could outlive every rotation.
            if cert.not_before > now + ACCESS_TOKEN_CLOCK_SKEW_S {
                return Err(ArcaError::bad_parameter(
                    "certificate_pem",
                    "the certificate is not valid yet; an agent registers a certificate valid from now",
                ));
            }
            let key_id = self.0.engine.seal.entropy().bytes16();
            let credential = super::principals::certificate_credential(key_id, cert, now, lifetime);
            let kind = credential.kind.clone();
            let command = Command::RegisterAgentCertificate { agent: agent.id, credential };
            // A retry answers with the first attempt's record: the certificate is found by what it is.
            let outcome = self.0.engine.execute(&command, call.client_request().as_ref()).await?;
            let stored = match &outcome {
                Outcome::Principal(p) => p.credentials.iter().find(|c| c.kind == kind),
                _ => None,
            };
            match stored {
                Some(stored) => {
                    Ok(pb::RegisterAgentCertificateResponse { key_id: uuid(&stored.key_id), end_date: ts(stored.end) })
                }
                None => Err(ArcaError::new(
                    ErrorCode::OutcomeUnknown,
                    "an earlier attempt of this request registered another certificate; register again",
                )),
            }
        }
        .await;
        self.0.finish(call, result)
    }

    async fn issue_managed_identity_token(
        &self,
        request: Request<pb::IssueManagedIdentityTokenRequest>,
    ) -> Result<Response<pb::TokenResponse>, Status> {
        let mut call = self.0.begin(&request, "ManagedIdentityToken");
        let r = request.into_inner();
        let result = async {
            let (keyspace, agent) = self.agent(&mut call, true).await?;
            let workload = Workload::from(r.workload.as_ref())?;
            let lifetime = super::principals::lifetime(r.lifetime.as_ref())?;
            let now = self.0.engine.clock.now_unix();
            let identity = self.identity_for(&keyspace, &r.identity, &agent.id, &workload, now).await?;
            let entropy = self.0.engine.seal.entropy();
            let grant = crate::identity::Grant {
                principal: &identity,
                method: AuthMethod::ManagedIdentity,
                lifetime,
                bound_to: None,
                external_groups: &[],
            };
            let issued = crate::identity::issue(&keyspace, grant, now, entropy.as_ref())?;
            // The response record names the identity the token was issued to (and under which token id).
            call.identify_as(Principal {
                accessor: issued.accessor.clone(),
                identity: Identity::Principal {
                    id: identity.id,
                    kind: identity.kind,
                    groups: identity.groups.clone(),
                    app_id: identity.app_id,
                    method: AuthMethod::ManagedIdentity,
                },
            });
            Ok(pb::TokenResponse {
                access_token: issued.token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires - now,
                expires_on: ts(issued.expires),
            })
        }
        .await;
        self.0.finish(call, result)
    }
}
