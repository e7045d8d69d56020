//! `arca.v1.AuthService` (the token endpoint) and `arca.v1.PrincipalService`.

use std::sync::Arc;

use arca_core::identity::{
    parse_uuid, uuid, BoundClaim, Credential, CredentialKind, FederatedTrust, IdentityView, PrincipalId, PrincipalKind,
    PrincipalRecord, ServiceAccount, WorkloadBinding,
};
use arca_core::{Command, Outcome};
use arca_identity::{client_assertion, client_secret, AuthMethod};
use arca_proto::v1 as pb;
use arca_proto::v1::auth_service_server::AuthService;
use arca_proto::v1::principal_service_server::PrincipalService;
use arca_types::limits::*;
use arca_types::{ArcaError, DisplayName, ErrorCode, SecretString};
use tonic::{Request, Response, Status};

use crate::access::{Action, Identity, Principal};
use crate::api::{next_token, page_size, page_token, Api, Call, Target, WRITE};
use crate::convert::ts;
use crate::engine::Consistency;
use crate::keyspace::Keyspace;

/// The audience a federated credential names when none is given (Azure's is api://AzureADTokenExchange).
pub const FEDERATED_AUDIENCE_DEFAULT: &str = "api://ArcaTokenExchange";

/// An application's grant (RFC 6749 §4.4).
const CLIENT_CREDENTIALS: &str = "client_credentials";
/// A person's grant (RFC 7523 §2.1): the ID token a trusted provider issued them.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The token endpoint. It needs no token, so every request is first taken from a rate limit.
pub struct Auth {
    api: Arc<Api>,
    rate: crate::rate::RateLimit,
    provider_keys: Arc<dyn crate::providers::ProviderKeys>,
}

impl Auth {
    pub fn new(api: Arc<Api>, provider_keys: Arc<dyn crate::providers::ProviderKeys>) -> Self {
        Self {
            api,
            rate: crate::rate::RateLimit::new("token requests", TOKEN_REQUESTS_PER_S_MAX, TOKEN_REQUESTS_BURST_MAX),
            provider_keys,
        }
    }
}
pub struct Principals(pub Arc<Api>);

fn kind_from(raw: i32) -> Result<Option<PrincipalKind>, ArcaError> {
    match pb::PrincipalKind::try_from(raw) {
        Ok(pb::PrincipalKind::Unspecified) => Ok(None),
        Ok(pb::PrincipalKind::User) => Ok(Some(PrincipalKind::User)),
        Ok(pb::PrincipalKind::Group) => Ok(Some(PrincipalKind::Group)),
        Ok(pb::PrincipalKind::ServicePrincipal) => Ok(Some(PrincipalKind::ServicePrincipal)),
        Ok(pb::PrincipalKind::ManagedIdentity) => Ok(Some(PrincipalKind::ManagedIdentity)),
        Ok(pb::PrincipalKind::Agent) => Ok(Some(PrincipalKind::Agent)),
        Err(_) => Err(ArcaError::bad_parameter("kind", "kind is not one Arca knows")),
    }
}

fn kind_to(kind: PrincipalKind) -> pb::PrincipalKind {
    match kind {
        PrincipalKind::User => pb::PrincipalKind::User,
        PrincipalKind::Group => pb::PrincipalKind::Group,
        PrincipalKind::ServicePrincipal => pb::PrincipalKind::ServicePrincipal,
        PrincipalKind::ManagedIdentity => pb::PrincipalKind::ManagedIdentity,
        PrincipalKind::Agent => pb::PrincipalKind::Agent,
    }
}

pub fn principal_message(p: &PrincipalRecord) -> pb::Principal {
    pb::Principal {
        id: uuid(&p.id),
        kind: kind_to(p.kind) as i32,
        display_name: p.name.as_str().to_owned(),
        app_id: p.app_id.as_ref().map(uuid).unwrap_or_default(),
        created: ts(p.created),
        groups: p.groups.iter().map(uuid).collect(),
        members: p.members.iter().map(uuid).collect(),
    }
}

fn credential_message(c: &Credential) -> pb::Credential {
    let mut message =
        pb::Credential { key_id: uuid(&c.key_id), start_date: ts(c.start), end_date: ts(c.end), ..Default::default() };
    match &c.kind {
        CredentialKind::Secret { hint, .. } => {
            message.r#type = "Password".into();
            message.hint = hint.clone();
        }
        CredentialKind::Certificate { thumbprint_sha256, .. } => {
            message.r#type = "AsymmetricX509Cert".into();
            message.thumbprint = crate::identity::thumbprint_text(thumbprint_sha256);
        }
        CredentialKind::AgentBinding { .. } | CredentialKind::AgentWorkload(_) => {
            let binding = c.kind.binding().expect("an agent binding has its fields");
            message.r#type = "AgentBinding".into();
            message.agent_id = uuid(binding.agent);
            message.uid = binding.uid;
            message.executable = binding.executable.unwrap_or_default().to_owned();
            if let Some(sa) = binding.service_account {
                message.service_account_issuer = sa.issuer.clone();
                message.service_account = sa.subject.clone();
            }
        }
        CredentialKind::Federated { .. } | CredentialKind::Federation(_) => {
            let trust = c.kind.trust().expect("a federated credential has its trust");
            message.r#type = "FederatedIdentityCredential".into();
            message.name = trust.name.to_owned();
            message.issuer = trust.issuer.to_owned();
            message.subject = trust.subject.to_owned();
            message.audiences = trust.audiences.to_vec();
            message.claims = trust
                .claims
                .iter()
                .map(|b| pb::BoundClaim { claim: b.claim.clone(), values: b.values.clone() })
                .collect();
        }
    }
    message
}

/// A retried request (same request id) whose first attempt acted gets that attempt's outcome, and
/// with it a credential whose secret only the first answer carried: this attempt's secret was never
/// stored, and must not be handed out as if it had been.
fn stored(record: &PrincipalRecord, key_id: &[u8; 16]) -> Result<(), ArcaError> {
    if record.credentials.iter().any(|c| &c.key_id == key_id) {
        return Ok(());
    }
    Err(ArcaError::new(
        ErrorCode::OutcomeUnknown,
        "an earlier attempt of this request made the credential, and its secret was shown only to that \
         attempt; reset the credential to get a new one",
    ))
}

/// The principal a request names: by object id, client id (appId) or display name.
pub fn resolve(keyspace: &Keyspace, field: &str, raw: &str) -> Result<PrincipalRecord, ArcaError> {
    let not_found = || ArcaError::new(ErrorCode::PrincipalNotFound, format!("no principal matches {field}"));
    if raw.is_empty() {
        return Err(ArcaError::bad_parameter(
            field,
            format!("{field} must name a principal: an object id, client id or display name"),
        ));
    }
    if let Ok(id) = parse_uuid(field, raw) {
        if let Some(p) = keyspace.principal(&id)? {
            return Ok(p);
        }
        return keyspace.principal_by_client(&id)?.ok_or_else(not_found);
    }
    let name = DisplayName::parse(field, raw).map_err(|_| not_found())?;
    let view = keyspace.recording_view();
    match view.principal_named(&name)? {
        Some(id) => view.principal(&id)?.ok_or_else(not_found),
        None => Err(not_found()),
    }
}

/// The credential that keeps a certificate: its thumbprint and whole public key, honoured from
/// `start` for `lifetime` seconds and never past the certificate's own end.
pub(crate) fn certificate_credential(
    key_id: [u8; 16],
    cert: arca_crypto::client_cert::CertificateCredential,
    start: i64,
    lifetime: i64,
) -> Credential {
    Credential {
        key_id,
        end: cert.not_after.min(start.saturating_add(lifetime)),
        kind: CredentialKind::Certificate { thumbprint_sha256: cert.thumbprint_sha256, spki_der: cert.spki_der },
        start,
    }
}

/// A certificate offered as a credential: refused if the PEM also holds a private key (the key never
/// leaves the client; a request that carries one is a mistake worth stopping).
pub(crate) fn certificate_only(pem: &str) -> Result<arca_crypto::client_cert::CertificateCredential, ArcaError> {
    if pem.contains("PRIVATE KEY") {
        return Err(ArcaError::bad_parameter(
            "certificate_pem",
            "send only the certificate: this PEM also holds a private key, which must never leave the client",
        ));
    }
    arca_crypto::client_cert::read_certificate(pem)
        .map_err(|e| ArcaError::bad_parameter("certificate_pem", e.to_string()))
}

/// How long a new client secret lasts: an agent's (an enrollment secret) a day, so it serves to
/// enroll and nothing else; a service principal's `raw` years.
fn secret_lifetime(kind: PrincipalKind, raw: u32) -> Result<i64, ArcaError> {
    match kind {
        PrincipalKind::Agent => Ok(AGENT_ENROLLMENT_SECRET_LIFETIME_S),
        _ => years(raw),
    }
}

/// A lifetime in whole years: 0 is the default (one), at most two.
fn years(raw: u32) -> Result<i64, ArcaError> {
    let seconds = i64::from(raw.max(1)) * 365 * SECONDS_PER_DAY;
    if seconds > CREDENTIAL_LIFETIME_S_MAX {
        return Err(ArcaError::bad_parameter(
            "years",
            format!("a credential may last at most {} years", CREDENTIAL_LIFETIME_S_MAX / (365 * SECONDS_PER_DAY)),
        ));
    }
    Ok(seconds)
}

impl Principals {
    /// Whoever controls a principal's credentials (or joins it to a group) can do what it can. So a
    /// change to them needs, beside `Arca/principals/*`, the right to assign (`action`: write) or to
    /// remove (`action`: delete) every role `holders` hold: an identity administrator cannot reset the
    /// secret of a service principal that is a Key Vault Administrator, unless it could make one.
    fn may_act_as(
        &self,
        ks: &Keyspace,
        call: &Call,
        holders: &[arca_core::identity::PrincipalId],
        action: Action,
    ) -> Result<(), ArcaError> {
        for assignment in ks.assignments_held(holders)? {
            self.0.permits_assigning(ks, call, action, &assignment.scope, Some(&assignment.role_id)).map_err(|_| {
                ArcaError::new(
                    ErrorCode::ForbiddenByRbac,
                    "the principal holds a role the caller could not assign itself, so the caller may not take \
                     over its credentials, its memberships or its deletion",
                )
            })?;
        }
        Ok(())
    }

    /// The principal and the groups it is in: whose roles its credentials carry.
    fn with_groups(p: &PrincipalRecord) -> Vec<arca_core::identity::PrincipalId> {
        let mut ids = vec![p.id];
        ids.extend(p.groups.iter().copied());
        ids
    }

    /// Whose roles a principal's credentials carry: its own and its groups', and for an agent, those
    /// of every managed identity bound to it (and their groups), since it can obtain their tokens.
    fn holders(ks: &Keyspace, p: &PrincipalRecord) -> Result<Vec<arca_core::identity::PrincipalId>, ArcaError> {
        let mut ids = Self::with_groups(p);
        if p.kind == PrincipalKind::Agent {
            let bound = ks.principals_where(|identity| {
                identity.credentials.iter().any(|c| c.kind.binding().is_some_and(|b| b.agent == &p.id))
            })?;
            ids.extend(bound.iter().flat_map(Self::with_groups));
        }
        Ok(ids)
    }

    async fn run(&self, call: &Call, command: Command) -> Result<PrincipalRecord, ArcaError> {
        match self.0.engine.execute(&command, call.client_request().as_ref()).await? {
            Outcome::Principal(p) => Ok(p),
            _ => Err(ArcaError::internal("a principal command produced another kind of outcome")),
        }
    }

    /// Adds `credential` beside the principal's others and answers with it as stored. A retried
    /// request answers with its first attempt's credential (its own key id), found by what it is.
    async fn append_credential(
        &self,
        call: &Call,
        principal: PrincipalId,
        credential: Credential,
    ) -> Result<pb::Credential, ArcaError> {
        let kind = credential.kind.clone();
        let record = self.run(call, Command::ResetCredential { principal, credential, append: true }).await?;
        let stored = record.credentials.iter().rev().find(|c| c.kind == kind);
        stored.map(credential_message).ok_or_else(|| {
            ArcaError::new(ErrorCode::OutcomeUnknown, "an earlier attempt of this request added another credential")
        })
    }

    /// A new client secret for `app_id`: the secret (shown once) and the credential that keeps its hash.
    fn new_secret(&self, keyspace: &Keyspace, app_id: &[u8; 16], lifetime: i64) -> (SecretString, Credential) {
        let entropy = self.0.engine.seal.entropy();
        let (secret, hint) = client_secret::generate(entropy.as_ref());
        let hash = keyspace
            .barrier()
            .name_hash(arca_crypto::Scope::System, &client_secret::hash_input(app_id, secret.expose()));
        let now = self.0.engine.clock.now_unix();
        let credential = Credential {
            key_id: entropy.bytes16(),
            kind: CredentialKind::Secret { hash, hint },
            start: now,
            end: now.saturating_add(lifetime),
        };
        (secret, credential)
    }
}

#[tonic::async_trait]
impl PrincipalService for Principals {
    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::CreatePrincipalResponse>, Status> {
        let mut call = self.0.begin(&request, "PrincipalCreate");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalWrite, Target::Cluster, WRITE).await?;
            let kind = kind_from(r.kind)?.ok_or_else(|| ArcaError::bad_parameter("kind", "kind is required"))?;
            let name = DisplayName::parse("display_name", &r.display_name)?;
            if r.with_secret && !kind.has_own_credentials() {
                return Err(ArcaError::bad_parameter(
                    "with_secret",
                    "only a service principal (or an agent, to enroll) has a client secret",
                ));
            }
            let entropy = self.0.engine.seal.entropy();
            let app_id = kind.is_application().then(|| entropy.bytes16());
            let secret = match (r.with_secret, &app_id) {
                (true, Some(app)) => Some(self.new_secret(&ks, app, secret_lifetime(kind, r.years)?)),
                _ => None,
            };
            let command = Command::CreatePrincipal {
                id: entropy.bytes16(),
                kind,
                name,
                app_id,
                credential: secret.as_ref().map(|(_, c)| c.clone()),
            };
            let record = self.run(&call, command).await?;
            if let Some((_, credential)) = &secret {
                stored(&record, &credential.key_id)?;
            }
            Ok(pb::CreatePrincipalResponse {
                principal: Some(principal_message(&record)),
                password: secret.as_ref().map(|(s, _)| s.expose().to_owned()).unwrap_or_default(),
                key_id: secret.map(|(_, c)| uuid(&c.key_id)).unwrap_or_default(),
            })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_principal(
        &self,
        request: Request<pb::GetPrincipalRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let mut call = self.0.begin(&request, "PrincipalGet");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalRead, Target::Cluster, WRITE).await?;
            resolve(&ks, "id", &r.id).map(|p| principal_message(&p))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListPrincipalsRequest>,
    ) -> Result<Response<pb::ListPrincipalsResponse>, Status> {
        let mut call = self.0.begin(&request, "PrincipalList");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalRead, Target::Cluster, WRITE).await?;
            let kind = kind_from(r.kind)?;
            let after = page_token(&r.page_token)?;
            let page = ks.recording_view().principals(after.as_deref(), page_size(r.page_size)?)?;
            Ok(pb::ListPrincipalsResponse {
                principals: page
                    .items
                    .iter()
                    .filter(|p| kind.is_none_or(|k| k == p.kind))
                    .map(principal_message)
                    .collect(),
                next_page_token: next_token(page.next),
            })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::DeletePrincipalResponse>, Status> {
        let mut call = self.0.begin(&request, "PrincipalDelete");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalDelete, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            self.may_act_as(&ks, &call, &[target.id], Action::RoleAssignmentDelete)?;
            self.run(&call, Command::DeletePrincipal { id: target.id }).await?;
            Ok(pb::DeletePrincipalResponse {})
        }
        .await;
        self.0.finish(call, result)
    }

    async fn reset_credential(
        &self,
        request: Request<pb::ResetCredentialRequest>,
    ) -> Result<Response<pb::ResetCredentialResponse>, Status> {
        let mut call = self.0.begin(&request, "CredentialReset");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalCredentialWrite, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            self.may_act_as(&ks, &call, &Self::holders(&ks, &target)?, Action::RoleAssignmentWrite)?;
            let app_id = target
                .app_id
                .ok_or_else(|| ArcaError::bad_parameter("id", "only a service principal has credentials to reset"))?;
            if target.kind == PrincipalKind::Agent && !r.certificate_pem.is_empty() {
                return Err(ArcaError::bad_parameter(
                    "certificate_pem",
                    "an agent registers its own certificates; reset gives it a new enrollment secret",
                ));
            }
            let (password, credential) = if r.certificate_pem.is_empty() {
                let (secret, credential) = self.new_secret(&ks, &app_id, secret_lifetime(target.kind, r.years)?);
                (secret.expose().to_owned(), credential)
            } else {
                let lifetime = years(r.years)?;
                let cert = certificate_only(&r.certificate_pem)?;
                let now = self.0.engine.clock.now_unix();
                let key_id = self.0.engine.seal.entropy().bytes16();
                let start = cert.not_before.max(now);
                (String::new(), certificate_credential(key_id, cert, start, lifetime))
            };
            let (key_id, end) = (credential.key_id, credential.end);
            let record = self
                .run(&call, Command::ResetCredential { principal: target.id, credential, append: r.append })
                .await?;
            stored(&record, &key_id)?;
            Ok(pb::ResetCredentialResponse {
                app_id: uuid(&app_id),
                password,
                key_id: uuid(&key_id),
                end_date: ts(end),
            })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<Response<pb::ListCredentialsResponse>, Status> {
        let mut call = self.0.begin(&request, "CredentialList");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalRead, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            Ok(pb::ListCredentialsResponse { credentials: target.credentials.iter().map(credential_message).collect() })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn delete_credential(
        &self,
        request: Request<pb::DeleteCredentialRequest>,
    ) -> Result<Response<pb::DeleteCredentialResponse>, Status> {
        let mut call = self.0.begin(&request, "CredentialDelete");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalCredentialWrite, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            self.may_act_as(&ks, &call, &Self::with_groups(&target), Action::RoleAssignmentDelete)?;
            let key_id = parse_uuid("key_id", &r.key_id)?;
            self.run(&call, Command::DeleteCredential { principal: target.id, key_id }).await?;
            Ok(pb::DeleteCredentialResponse {})
        }
        .await;
        self.0.finish(call, result)
    }

    async fn add_group_member(
        &self,
        request: Request<pb::GroupMemberRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let mut call = self.0.begin(&request, "GroupMemberAdd");
        let r = request.into_inner();
        let result = self.membership(&mut call, &r, true).await;
        self.0.finish(call, result)
    }

    async fn remove_group_member(
        &self,
        request: Request<pb::GroupMemberRequest>,
    ) -> Result<Response<pb::Principal>, Status> {
        let mut call = self.0.begin(&request, "GroupMemberRemove");
        let r = request.into_inner();
        let result = self.membership(&mut call, &r, false).await;
        self.0.finish(call, result)
    }

    async fn revoke_access_token(
        &self,
        request: Request<pb::RevokeAccessTokenRequest>,
    ) -> Result<Response<pb::RevokeTokensResponse>, Status> {
        let mut call = self.0.begin(&request, "AccessTokenRevoke");
        let r = request.into_inner();
        let result = self.revoke_one(&mut call, &r.access_token).await.map(|()| pb::RevokeTokensResponse {});
        self.0.finish(call, result)
    }

    async fn bind_managed_identity(
        &self,
        request: Request<pb::BindManagedIdentityRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        let mut call = self.0.begin(&request, "ManagedIdentityBind");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalCredentialWrite, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            let agent = resolve(&ks, "agent", &r.agent)?;
            // Whoever binds an agent to the identity lets that agent act as it.
            self.may_act_as(&ks, &call, &Self::with_groups(&target), Action::RoleAssignmentWrite)?;
            let executable = Some(r.executable).filter(|e| !e.is_empty());
            if let Some(path) = &executable {
                arca_core::decide::identity::check_executable(path)?;
            }
            let service_account = match (r.service_account_issuer.is_empty(), r.service_account.is_empty()) {
                (true, true) if !r.service_account_audience.is_empty() || !r.service_account_jwks_json.is_empty() => {
                    return Err(ArcaError::bad_parameter(
                        "service_account",
                        "a service account audience or JWKS goes with a service account and its issuer",
                    ))
                }
                (true, true) => None,
                (false, false) => {
                    if !r.service_account_jwks_json.is_empty() {
                        arca_identity::federation::parse_jwks(&r.service_account_jwks_json)
                            .map_err(|e| ArcaError::bad_parameter("service_account_jwks_json", e.to_string()))?;
                    }
                    let audience = Some(r.service_account_audience)
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| FEDERATED_AUDIENCE_DEFAULT.to_owned());
                    Some(ServiceAccount {
                        issuer: r.service_account_issuer,
                        subject: r.service_account,
                        audience,
                        jwks: r.service_account_jwks_json,
                    })
                }
                _ => {
                    return Err(ArcaError::bad_parameter(
                        "service_account",
                        "name both the service account and its issuer (service_account_issuer), or neither",
                    ))
                }
            };
            let now = self.0.engine.clock.now_unix();
            let credential = Credential {
                key_id: self.0.engine.seal.entropy().bytes16(),
                kind: CredentialKind::AgentWorkload(Box::new(WorkloadBinding {
                    agent: agent.id,
                    uid: r.uid,
                    executable,
                    service_account,
                })),
                start: now,
                end: now.saturating_add(years(r.years)?),
            };
            self.append_credential(&call, target.id, credential).await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn add_federated_credential(
        &self,
        request: Request<pb::AddFederatedCredentialRequest>,
    ) -> Result<Response<pb::Credential>, Status> {
        let mut call = self.0.begin(&request, "FederatedCredentialAdd");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalCredentialWrite, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            // Whoever names a provider the principal trusts lets that provider's tokens act as it.
            self.may_act_as(&ks, &call, &Self::holders(&ks, &target)?, Action::RoleAssignmentWrite)?;
            if r.jwks_json.len() > FEDERATED_JWKS_BYTES_MAX {
                return Err(ArcaError::bad_parameter(
                    "jwks_json",
                    format!("the JWKS is larger than {} KiB", FEDERATED_JWKS_BYTES_MAX / 1024),
                ));
            }
            // No JWKS: the keys are fetched by discovery from the issuer when a token comes.
            if !r.jwks_json.is_empty() {
                arca_identity::federation::parse_jwks(&r.jwks_json)
                    .map_err(|e| ArcaError::bad_parameter("jwks_json", e.to_string()))?;
            }
            // A group stands for a value of the groups claim: it has no audience of its own.
            let audiences = match (target.kind, r.audiences.is_empty()) {
                (PrincipalKind::Group, true) => Vec::new(),
                (_, true) => vec![FEDERATED_AUDIENCE_DEFAULT.to_owned()],
                (_, false) => r.audiences,
            };
            let now = self.0.engine.clock.now_unix();
            let claims = r.claims.into_iter().map(|b| BoundClaim { claim: b.claim, values: b.values }).collect();
            let trust = CredentialKind::Federation(Box::new(FederatedTrust {
                name: r.name,
                issuer: r.issuer,
                subject: r.subject,
                audiences,
                jwks: r.jwks_json,
                claims,
            }));
            let credential = Credential {
                key_id: self.0.engine.seal.entropy().bytes16(),
                kind: trust,
                start: now,
                end: now.saturating_add(CREDENTIAL_LIFETIME_S_MAX),
            };
            self.append_credential(&call, target.id, credential).await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn revoke_tokens(
        &self,
        request: Request<pb::RevokeTokensRequest>,
    ) -> Result<Response<pb::RevokeTokensResponse>, Status> {
        let mut call = self.0.begin(&request, "PrincipalTokensRevoke");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::PrincipalWrite, Target::Cluster, WRITE).await?;
            let target = resolve(&ks, "id", &r.id)?;
            self.run(&call, Command::RevokePrincipalTokens { principal: target.id }).await?;
            Ok(pb::RevokeTokensResponse {})
        }
        .await;
        self.0.finish(call, result)
    }
}

impl Principals {
    /// Revokes one access token: the caller's own, or (with `Arca/principals/write`) anyone's.
    async fn revoke_one(&self, call: &mut Call, token: &str) -> Result<(), ArcaError> {
        let caller = self.0.caller(call)?;
        let keyspace = self.0.engine.seal.keyspace()?;
        let now = self.0.engine.clock.now_unix();
        let claims = arca_identity::access_token::verify(
            token,
            &crate::identity::token_keys(&keyspace)?,
            &crate::identity::issuer(&keyspace)?,
            now,
        );
        let claims = match claims {
            Ok(claims) => claims,
            // An expired token needs no revoking.
            Err(arca_identity::TokenError::Expired) => return Ok(()),
            Err(_) => {
                return Err(ArcaError::bad_parameter("access_token", "this is not an access token of this cluster"))
            }
        };
        if caller.subject() == claims.sub {
            self.0.audit_request(call)?;
        } else {
            self.0.authorize(call, Action::PrincipalWrite, Target::Cluster, WRITE).await?;
        }
        let jti = parse_uuid("access_token", &claims.jti)?;
        let command = crate::engine::SystemCommand::RevokeAccessToken { jti, expires: claims.exp };
        self.0.engine.execute_system(command).await.map(|_| ())
    }

    async fn membership(
        &self,
        call: &mut Call,
        r: &pb::GroupMemberRequest,
        add: bool,
    ) -> Result<pb::Principal, ArcaError> {
        let ks = self.0.authorize(call, Action::PrincipalWrite, Target::Cluster, WRITE).await?;
        let group = resolve(&ks, "group", &r.group)?;
        let member = resolve(&ks, "member", &r.member)?;
        if add {
            // Joining a group hands the member the group's roles.
            self.may_act_as(&ks, call, &[group.id], Action::RoleAssignmentWrite)?;
        }
        let record = self.run(call, Command::SetGroupMember { group: group.id, member: member.id, add }).await?;
        Ok(principal_message(&record))
    }
}

/// Checks `token`'s signature against a key nobody signs with, when no user has the name it gives,
/// so that refusal costs what checking a real user's token does. (An Ed25519 stand-in: for an
/// EdDSA token the same work; for RS256, PS256 and ES256 tokens a verification is skipped, tens of
/// microseconds.)
fn stand_in_check(token: &str) {
    static KEY: std::sync::OnceLock<Option<arca_crypto::jwt::PublicKey>> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(|| {
        let ed = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
        arca_crypto::jwt::PublicKey::ed25519(&ed.public_key()).ok()
    });
    if let (Ok(jws), Some(key)) = (arca_crypto::jwt::parse(token, CLIENT_ASSERTION_BYTES_MAX), key) {
        let _ = arca_crypto::jwt::verify(&jws, key);
    }
}

fn invalid_client() -> ArcaError {
    ArcaError::new(
        ErrorCode::InvalidClient,
        "the client id or its credential is not valid (an unknown client, a wrong or expired secret, and a \
         deleted service principal all look the same)",
    )
}

/// The lifetime a token request asks for, in seconds.
pub(crate) fn lifetime(d: Option<&prost_types::Duration>) -> Result<i64, ArcaError> {
    let Some(d) = d else { return Ok(ACCESS_TOKEN_LIFETIME_S_DEFAULT) };
    if d.seconds < 1 || d.seconds > ACCESS_TOKEN_LIFETIME_S_MAX || d.nanos != 0 {
        return Err(ArcaError::bad_parameter(
            "lifetime",
            format!("lifetime must be whole seconds, 1-{ACCESS_TOKEN_LIFETIME_S_MAX}"),
        ));
    }
    Ok(d.seconds)
}

impl Auth {
    /// Checks a client secret against the principal's unexpired secrets in constant time. The
    /// presented secret is hashed whether or not the client exists, so an unknown client id costs
    /// the same as a wrong secret.
    fn secret_matches(
        &self,
        keyspace: &Keyspace,
        app_id: &[u8; 16],
        principal: Option<&PrincipalRecord>,
        secret: &str,
    ) -> bool {
        let presented =
            keyspace.barrier().name_hash(arca_crypto::Scope::System, &client_secret::hash_input(app_id, secret));
        let now = self.api.engine.clock.now_unix();
        let mut matched = false;
        for credential in principal.map(|p| p.credentials.as_slice()).unwrap_or_default() {
            if let CredentialKind::Secret { hash, .. } = &credential.kind {
                matched |= arca_crypto::constant_time_eq(hash, &presented) && credential.is_valid_at(now);
            }
        }
        matched
    }

    /// Checks a client assertion against the principal's unexpired certificates: the one its header
    /// names by thumbprint, compared as a whole public key. Any failure is the same `INVALID_CLIENT`.
    fn assertion_matches(
        &self,
        keyspace: &Keyspace,
        client_id: &str,
        principal: Option<&PrincipalRecord>,
        token: &str,
    ) -> Result<client_assertion::Accepted, ArcaError> {
        let refuse = |why: &dyn std::fmt::Display| {
            tracing::debug!("a client assertion was refused: {why}");
            invalid_client()
        };
        let assertion = client_assertion::parse(token).map_err(|e| refuse(&e))?;
        let now = self.api.engine.clock.now_unix();
        let spki = principal
            .into_iter()
            .flat_map(|p| p.credentials.iter())
            .filter(|c| c.is_valid_at(now))
            .find_map(|c| match &c.kind {
                CredentialKind::Certificate { thumbprint_sha256, spki_der }
                    if *thumbprint_sha256 == assertion.thumbprint =>
                {
                    Some(spki_der.clone())
                }
                _ => None,
            })
            .ok_or_else(|| refuse(&"no unexpired certificate of this client has that thumbprint"))?;
        let (_, cluster) = crate::membership::cluster_record(keyspace.store())?
            .ok_or_else(|| ArcaError::unavailable("this node does not know its cluster yet; retry"))?;
        let audience = client_assertion::audience(&cluster.cluster_id);
        assertion.verify(&spki, client_id, &audience, now).map_err(|e| refuse(&e))
    }

    /// Checks the certificate the connection presented (its key signed the TLS handshake) against the
    /// principal's unexpired certificates: same thumbprint and the same whole public key. Any failure
    /// is the same `INVALID_CLIENT`.
    fn tls_certificate_matches(
        &self,
        principal: Option<&PrincipalRecord>,
        presented_der: &[u8],
    ) -> Result<([u8; 32], i64), ArcaError> {
        let presented = arca_crypto::client_cert::read_certificate_der(presented_der).map_err(|e| {
            tracing::debug!("a TLS client certificate was refused: {e}");
            invalid_client()
        })?;
        let now = self.api.engine.clock.now_unix();
        let mut matched: Option<i64> = None;
        for credential in principal.map(|p| p.credentials.as_slice()).unwrap_or_default() {
            if let CredentialKind::Certificate { thumbprint_sha256, spki_der } = &credential.kind {
                let same = arca_crypto::constant_time_eq(thumbprint_sha256, &presented.thumbprint_sha256)
                    && arca_crypto::constant_time_eq(spki_der, &presented.spki_der)
                    && credential.is_valid_at(now);
                if same {
                    matched = Some(matched.map_or(credential.end, |end| end.max(credential.end)));
                }
            }
        }
        if let Some(end) = matched {
            Ok((presented.thumbprint_sha256, end))
        } else {
            tracing::debug!("a TLS client certificate matched no unexpired certificate of the client");
            Err(invalid_client())
        }
    }

    /// Checks a token another identity provider issued against the principal's federated credentials
    /// for its issuer: signed by a key of the credential's JWKS (or, when it names none, of the keys
    /// the issuer publishes by discovery), for its subject and audience, not expired. Any failure is
    /// the same `INVALID_CLIENT`.
    ///
    /// A person's ID token (`person`) must have been issued to the credential's audience as its
    /// client (its only audience, or its authorized party). Returns the claims, and whether the keys
    /// that checked them were the issuer's own (by discovery) rather than a JWKS stored with the
    /// credential.
    async fn federated_matches(
        &self,
        principal: Option<&PrincipalRecord>,
        token: &str,
        issuer: &str,
        person: bool,
    ) -> Result<(arca_identity::federation::ExternalClaims, bool), ArcaError> {
        let now = self.api.engine.clock.now_unix();
        let credentials = principal.map(|p| p.credentials.as_slice()).unwrap_or_default();
        for credential in credentials.iter().filter(|c| c.is_valid_at(now)) {
            let Some(trust) = credential.kind.trust() else { continue };
            let (trusted, subject, audiences, jwks) = (trust.issuer, trust.subject, trust.audiences, trust.jwks);
            if trusted != issuer {
                continue;
            }
            let checked =
                crate::providers::verify_external(self.provider_keys.as_ref(), jwks, token, trusted, now).await;
            let for_us = |claims: &arca_identity::federation::ExternalClaims| {
                if person {
                    audiences.iter().any(|a| claims.issued_to(a))
                } else {
                    claims.aud.iter().any(|a| audiences.contains(a))
                }
            };
            let bound = |claims: &arca_identity::federation::ExternalClaims| {
                trust.claims.iter().all(|b| claims.carries(&b.claim, &b.values))
            };
            match checked {
                Ok(claims) if claims.sub == subject && for_us(&claims) && bound(&claims) => {
                    return Ok((claims, jwks.is_empty()))
                }
                Ok(_) => tracing::debug!("a federated token's subject, audience or bound claims matched no credential"),
                Err(e) => tracing::debug!("a federated token was refused: {e}"),
            }
        }
        Err(invalid_client())
    }

    /// A person's sign-in: the ID token `assertion` from a provider that a user's federated
    /// credential trusts for the token's subject. Returns the user, and the Arca groups that stand
    /// for the token's `groups` claim values at that provider. Any failure is `INVALID_CLIENT`.
    async fn user_matches(&self, assertion: &str) -> Result<(Keyspace, PrincipalRecord, Vec<PrincipalId>), ArcaError> {
        if assertion.is_empty() {
            return Err(ArcaError::bad_parameter("assertion", "send the provider's ID token as the assertion"));
        }
        let (issuer, subject) =
            arca_identity::federation::unverified_issuer_and_subject(assertion).ok_or_else(invalid_client)?;
        // A credential deleted (or a user deleted) before this request started counts.
        self.api.engine.read_barrier(Consistency::Linearizable).await?;
        let keyspace = self.api.engine.seal.keyspace()?;
        let user = keyspace.principal_by_external(PrincipalKind::User, &issuer, &subject)?;
        if user.is_none() {
            // As much work as checking a signature, so a refusal takes as long whether or not a user
            // signs in with this name (arca-bench --suite signin measures both).
            stand_in_check(assertion);
        }
        let (claims, discovered) = self.federated_matches(user.as_ref(), assertion, &issuer, true).await?;
        let user = user.ok_or_else(invalid_client)?;
        let now = self.api.engine.clock.now_unix();
        let mut groups: Vec<PrincipalId> = Vec::new();
        // Only the provider itself speaks for its groups: a token checked against a JWKS stored
        // with the user's credential (which whoever manages principals could have written) names
        // no group, whatever its issuer says.
        for name in claims.groups.iter().filter(|_| discovered) {
            if let Some(group) = keyspace.principal_by_external(PrincipalKind::Group, &issuer, name)? {
                if group.holds_external_at(&issuer, name, now) && !groups.contains(&group.id) {
                    groups.push(group.id);
                }
            }
        }
        if groups.len() > EXTERNAL_GROUPS_PER_TOKEN_MAX {
            return Err(ArcaError::bad_parameter(
                "assertion",
                format!(
                    "the sign-in's groups claim stands for more than {EXTERNAL_GROUPS_PER_TOKEN_MAX} Arca groups; an \
                     access token carries at most that many (assign roles to fewer, larger groups)"
                ),
            ));
        }
        Ok((keyspace, user, groups))
    }

    /// Signs the access token a sign-in won, and says who the call turned out to be.
    #[allow(clippy::too_many_arguments)]
    async fn grant(
        &self,
        call: &mut Call,
        keyspace: Keyspace,
        principal: &PrincipalRecord,
        method: AuthMethod,
        lifetime: i64,
        bound_to: Option<[u8; 32]>,
        groups: &[PrincipalId],
    ) -> Result<pb::TokenResponse, ArcaError> {
        let keyspace = self.ensure_token_key(keyspace).await?;
        let now = self.api.engine.clock.now_unix();
        let entropy = self.api.engine.seal.entropy();
        let grant = crate::identity::Grant {
            principal,
            method,
            lifetime,
            bound_to: bound_to.as_ref(),
            external_groups: groups,
        };
        let issued = crate::identity::issue(&keyspace, grant, now, entropy.as_ref())?;
        let mut all_groups = principal.groups.clone();
        all_groups.extend(groups.iter().filter(|g| !principal.groups.contains(g)));
        call.identify_as(Principal {
            accessor: issued.accessor.clone(),
            identity: Identity::Principal {
                id: principal.id,
                kind: principal.kind,
                groups: all_groups,
                app_id: principal.app_id,
                method,
            },
        });
        let (token, expires) = (issued.token, issued.expires);
        Ok(pb::TokenResponse {
            access_token: token,
            token_type: "Bearer".to_owned(),
            expires_in: expires - now,
            expires_on: ts(expires),
        })
    }

    /// The cluster's token key, made now if the cluster was initialized before access tokens existed.
    async fn ensure_token_key(&self, keyspace: Keyspace) -> Result<Keyspace, ArcaError> {
        if keyspace.token_signing_key()?.is_some() {
            return Ok(keyspace);
        }
        let key = arca_crypto::cluster_pki::Ed25519Key::generate(self.api.engine.seal.entropy().as_ref());
        let pkcs8 = arca_types::SecretBytes::new(key.pkcs8_der().to_vec());
        self.api.engine.execute_system(crate::engine::SystemCommand::CreateTokenKey { pkcs8 }).await?;
        self.api.engine.read_barrier(Consistency::Linearizable).await?;
        self.api.engine.seal.keyspace()
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn token(&self, request: Request<pb::TokenRequest>) -> Result<Response<pb::TokenResponse>, Status> {
        let mut call = self.api.begin(&request, "Token");
        let presented = call.peer_certificate.clone();
        let r = request.into_inner();
        let result = async {
            if r.grant_type == JWT_BEARER {
                // At most an hour: the provider's say on who the person is, and in which groups, is
                // asked again at least that often.
                let lifetime = lifetime(r.lifetime.as_ref())?.min(USER_ACCESS_TOKEN_LIFETIME_S_MAX);
                let other = [&r.client_id, &r.client_secret, &r.client_assertion, &r.client_assertion_type];
                if other.iter().any(|f| !f.is_empty()) {
                    return Err(ArcaError::bad_parameter(
                        "client_id",
                        "a person's sign-in sends the provider's ID token as assertion, and no client fields",
                    ));
                }
                self.rate.admit()?;
                let (keyspace, user, groups) = self.user_matches(&r.assertion).await?;
                return self.grant(&mut call, keyspace, &user, AuthMethod::Federated, lifetime, None, &groups).await;
            }
            if r.grant_type != CLIENT_CREDENTIALS {
                return Err(ArcaError::bad_parameter(
                    "grant_type",
                    format!("unsupported_grant_type: use \"{CLIENT_CREDENTIALS}\" or \"{JWT_BEARER}\""),
                ));
            }
            if !r.assertion.is_empty() {
                return Err(ArcaError::bad_parameter(
                    "assertion",
                    format!("assertion goes with grant_type \"{JWT_BEARER}\"; an application sends client_assertion"),
                ));
            }
            let lifetime = lifetime(r.lifetime.as_ref())?;
            let app_id = parse_uuid("client_id", &r.client_id)?;
            let client_id = uuid(&app_id);
            call.claim_client(&client_id);
            self.rate.admit()?;
            let by_assertion = !r.client_assertion.is_empty() || !r.client_assertion_type.is_empty();
            if by_assertion && r.client_assertion_type != client_assertion::ASSERTION_TYPE {
                return Err(ArcaError::bad_parameter(
                    "client_assertion_type",
                    format!("client_assertion_type must be \"{}\"", client_assertion::ASSERTION_TYPE),
                ));
            }
            if by_assertion && !r.client_secret.is_empty() {
                return Err(ArcaError::bad_parameter(
                    "client_secret",
                    "send a client secret or an assertion, not both",
                ));
            }
            // With neither a secret nor an assertion, the certificate the connection presented is the
            // credential (RFC 8705's tls_client_auth), and the token is bound to it.
            let by_tls = !by_assertion && r.client_secret.is_empty() && presented.is_some();
            // A secret Arca could not have made is refused before any lookup or barrier.
            if !by_assertion && !by_tls && !client_secret::well_formed(&r.client_secret) {
                return Err(invalid_client());
            }
            // A credential reset or deleted (or a principal deleted) before this request started counts.
            self.api.engine.read_barrier(Consistency::Linearizable).await?;
            let keyspace = self.api.engine.seal.keyspace()?;
            let principal = keyspace.principal_by_client(&app_id)?;
            let mut bound_to = None;
            let mut lifetime = lifetime;
            let method = if let (true, Some((der, _))) = (by_tls, &presented) {
                let (thumbprint, credential_end) = self.tls_certificate_matches(principal.as_ref(), der)?;
                bound_to = Some(thumbprint);
                // A token bound to a certificate lasts no longer than the certificate is honoured.
                lifetime = lifetime.min(credential_end - self.api.engine.clock.now_unix()).max(1);
                AuthMethod::ClientCertificate
            } else if let Some(issuer) = by_assertion
                .then(|| arca_identity::federation::unverified_issuer(&r.client_assertion))
                .flatten()
                .filter(|iss| iss != &client_id)
            {
                // Not the client's own assertion: a token another provider issued, for a federated credential.
                self.federated_matches(principal.as_ref(), &r.client_assertion, &issuer, false).await?;
                AuthMethod::Federated
            } else if by_assertion {
                if principal.is_none() {
                    stand_in_check(&r.client_assertion);
                }
                let accepted =
                    self.assertion_matches(&keyspace, &client_id, principal.as_ref(), &r.client_assertion)?;
                // Taken once in the whole cluster: a replay to any node is refused.
                let mark = keyspace.used_assertion_key(&client_id, &accepted.jti);
                let command = crate::engine::SystemCommand::UseAssertion { mark, expires: accepted.expires };
                self.api.engine.execute_system(command).await?;
                AuthMethod::ClientAssertion
            } else {
                if !self.secret_matches(&keyspace, &app_id, principal.as_ref(), &r.client_secret) {
                    return Err(invalid_client());
                }
                AuthMethod::ClientSecret
            };
            let principal = principal.ok_or_else(invalid_client)?;
            self.grant(&mut call, keyspace, &principal, method, lifetime, bound_to, &[]).await
        }
        .await;
        self.api.finish(call, result)
    }
}
