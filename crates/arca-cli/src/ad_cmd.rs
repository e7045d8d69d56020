//! `arca ad …` and `arca role …`: principals, their credentials, role definitions and role
//! assignments, shaped like `az ad sp …`, `az ad group …` and `az role …`.

use std::path::PathBuf;

use anyhow::Context;
use arca_client::{pb, ArcaClient, ClientError};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::output::{print_value, Format};

#[derive(Subcommand)]
pub enum AdCmd {
    /// Service principals: applications that sign in with a secret or a certificate.
    Sp {
        #[command(subcommand)]
        command: SpCmd,
    },
    /// Groups: role assignments to a group apply to its members.
    Group {
        #[command(subcommand)]
        command: GroupCmd,
    },
    /// Users (people who sign in through a trusted identity provider).
    User {
        #[command(subcommand)]
        command: UserCmd,
    },
}

#[derive(Subcommand)]
pub enum SpCmd {
    /// Create a service principal with a client secret, and optionally give it a role (as `az ad sp
    /// create-for-rbac`). Prints its appId and password: the password is shown only now.
    CreateForRbac {
        #[arg(long, short = 'n')]
        name: String,
        /// A role to assign at each of --scopes.
        #[arg(long)]
        role: Option<String>,
        #[arg(long, num_args = 1.., requires = "role")]
        scopes: Vec<String>,
        /// Register this certificate (PEM) instead of creating a client secret.
        #[arg(long, conflicts_with = "create_cert")]
        cert: Option<PathBuf>,
        /// Make a new self-signed certificate (P-256) and register it; its certificate and private key
        /// are written to one PEM file (0600) named in the output, for ARCA_CLIENT_CERTIFICATE_PATH.
        #[arg(long)]
        create_cert: bool,
        /// How many years the credential is valid (1 or 2).
        #[arg(long, default_value_t = 1)]
        years: u32,
    },
    /// A service principal with no credential yet: give it a federated credential (a workload that
    /// signs in with another provider's token holds no secret), a certificate or a secret after.
    Create {
        #[arg(long)]
        display_name: String,
    },
    List,
    Show {
        /// Object id, appId or display name.
        #[arg(long)]
        id: String,
    },
    Delete {
        #[arg(long)]
        id: String,
    },
    /// Client secrets and certificates.
    Credential {
        #[command(subcommand)]
        command: CredentialCmd,
    },
    /// Every access token the service principal holds stops working.
    RevokeTokens {
        #[arg(long)]
        id: String,
    },
    /// Trust another identity provider's tokens (a Kubernetes service account, a CI job), as `az ad
    /// app federated-credential` does. Also for managed identities (by their id or name).
    FederatedCredential {
        #[command(subcommand)]
        command: FederatedCmd,
    },
}

#[derive(Subcommand)]
pub enum FederatedCmd {
    Create {
        /// The service principal or managed identity (object id, appId or display name).
        #[arg(long)]
        id: String,
        #[arg(long, short = 'n')]
        name: String,
        /// The provider's issuer, exactly as its tokens' iss claim says it.
        #[arg(long)]
        issuer: String,
        /// The sub claim a token must carry, e.g. system:serviceaccount:NAMESPACE:NAME.
        #[arg(long)]
        subject: String,
        /// The audience a token must be for (default api://ArcaTokenExchange).
        #[arg(long)]
        audience: Option<String>,
        /// The provider's public keys as a JWKS file (e.g. from `kubectl get --raw /openid/v1/jwks`).
        /// Without it, every node fetches the issuer's keys by OIDC discovery (an https:// issuer).
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// A claim the token must also carry, as NAME=VALUE[,VALUE…] (NAME may be a JSON pointer such
        /// as /kubernetes.io/namespace); repeat for more.
        #[arg(long = "claim", value_name = "NAME=VALUES")]
        claims: Vec<String>,
    },
    List {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// A new client secret (or, with --cert, a certificate), replacing the others of its kind unless
    /// --append (at most two at once).
    Reset {
        #[arg(long)]
        id: String,
        #[arg(long)]
        append: bool,
        #[arg(long)]
        cert: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        years: u32,
    },
    List {
        #[arg(long)]
        id: String,
    },
    Delete {
        #[arg(long)]
        id: String,
        #[arg(long)]
        key_id: String,
    },
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// A group; with --issuer and --external-name, it also holds every user who signs in through
    /// that provider with the name in their token's groups claim.
    Create {
        #[arg(long)]
        display_name: String,
        #[arg(long, requires = "external_name")]
        issuer: Option<String>,
        /// A value of the provider's groups claim.
        #[arg(long, requires = "issuer")]
        external_name: Option<String>,
    },
    List,
    Show {
        #[arg(long, short = 'g')]
        group: String,
    },
    Delete {
        #[arg(long, short = 'g')]
        group: String,
    },
    Member {
        #[command(subcommand)]
        command: MemberCmd,
    },
}

#[derive(Subcommand)]
pub enum MemberCmd {
    Add {
        #[arg(long, short = 'g')]
        group: String,
        #[arg(long)]
        member_id: String,
    },
    Remove {
        #[arg(long, short = 'g')]
        group: String,
        #[arg(long)]
        member_id: String,
    },
}

#[derive(Subcommand)]
pub enum UserCmd {
    /// A person; with --issuer and --subject, one who signs in (arca login) through that OpenID
    /// Connect provider as that subject.
    Create {
        #[arg(long)]
        display_name: String,
        /// The provider's issuer URL (https://; its keys are fetched by discovery).
        #[arg(long, requires = "subject")]
        issuer: Option<String>,
        /// The person's sub claim at the provider.
        #[arg(long, requires = "issuer")]
        subject: Option<String>,
        /// The client id `arca login` uses at the provider (the ID token's audience).
        #[arg(long, default_value = "arca")]
        audience: String,
    },
    List,
    Delete {
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
pub enum RoleCmd {
    Definition {
        #[command(subcommand)]
        command: DefinitionCmd,
    },
    Assignment {
        #[command(subcommand)]
        command: AssignmentCmd,
    },
}

#[derive(Subcommand)]
pub enum DefinitionCmd {
    List {
        #[arg(long)]
        custom_role_only: bool,
    },
    Show {
        /// Role name or id.
        #[arg(long, short = 'n')]
        name: String,
    },
    /// A custom role from JSON (`az role definition create`'s shape), inline or `@file`.
    Create {
        #[arg(long)]
        role_definition: String,
    },
    Update {
        #[arg(long)]
        role_definition: String,
    },
    Delete {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AssignmentCmd {
    Create {
        /// Object id, appId or display name.
        #[arg(long)]
        assignee: String,
        /// Role name or id.
        #[arg(long)]
        role: String,
        /// `/`, `/vaults/NAME` or `/vaults/NAME/secrets|keys|certificates/NAME`.
        #[arg(long)]
        scope: String,
    },
    List {
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        scope: Option<String>,
    },
    Delete {
        /// By id; or give --assignee, --role and --scope.
        #[arg(long)]
        ids: Option<String>,
        #[arg(long)]
        assignee: Option<String>,
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        scope: Option<String>,
    },
}

fn secs(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.seconds))
}

fn kind_name(kind: i32) -> &'static str {
    match pb::PrincipalKind::try_from(kind) {
        Ok(pb::PrincipalKind::User) => "User",
        Ok(pb::PrincipalKind::Group) => "Group",
        Ok(pb::PrincipalKind::ServicePrincipal) => "ServicePrincipal",
        Ok(pb::PrincipalKind::ManagedIdentity) => "ManagedIdentity",
        Ok(pb::PrincipalKind::Agent) => "Agent",
        _ => "Unknown",
    }
}

pub fn principal(p: &pb::Principal) -> Value {
    json!({
        "id": p.id,
        "objectType": kind_name(p.kind),
        "displayName": p.display_name,
        "appId": if p.app_id.is_empty() { Value::Null } else { json!(p.app_id) },
        "created": secs(&p.created),
        "memberOf": p.groups,
        "members": p.members,
    })
}

pub fn credential(c: &pb::Credential) -> Value {
    if c.r#type == "FederatedIdentityCredential" {
        return json!({
            "keyId": c.key_id,
            "type": c.r#type,
            "name": c.name,
            "issuer": c.issuer,
            "subject": c.subject,
            "audiences": c.audiences,
            "claims": c.claims.iter().map(|b| (b.claim.clone(), json!(b.values))).collect::<serde_json::Map<_, _>>(),
            "startDateTime": secs(&c.start_date),
            "endDateTime": secs(&c.end_date),
        });
    }
    if c.r#type == "AgentBinding" {
        return json!({
            "keyId": c.key_id,
            "type": c.r#type,
            "agentId": c.agent_id,
            "uid": c.uid,
            "executable": if c.executable.is_empty() { Value::Null } else { json!(c.executable) },
            "serviceAccount": if c.service_account.is_empty() { Value::Null } else { json!(c.service_account) },
            "serviceAccountIssuer": if c.service_account_issuer.is_empty() { Value::Null } else { json!(c.service_account_issuer) },
            "startDateTime": secs(&c.start_date),
            "endDateTime": secs(&c.end_date),
        });
    }
    json!({
        "keyId": c.key_id,
        "type": c.r#type,
        "hint": if c.hint.is_empty() { Value::Null } else { json!(c.hint) },
        "customKeyIdentifier": if c.thumbprint.is_empty() { Value::Null } else { json!(c.thumbprint) },
        "startDateTime": secs(&c.start_date),
        "endDateTime": secs(&c.end_date),
    })
}

fn definition(r: &pb::RoleDefinition) -> Value {
    json!({
        "name": r.id,
        "roleName": r.name,
        "description": r.description,
        "roleType": if r.custom { "CustomRole" } else { "BuiltInRole" },
        "assignableScopes": r.assignable_scopes,
        "permissions": [{
            "actions": r.actions,
            "notActions": r.not_actions,
            "dataActions": r.data_actions,
            "notDataActions": r.not_data_actions,
        }],
    })
}

fn assignment(a: &pb::RoleAssignment) -> Value {
    json!({
        "name": a.id,
        "principalId": a.principal_id,
        "principalType": a.principal_type,
        "roleDefinitionId": a.role_definition_id,
        "roleDefinitionName": a.role_definition_name,
        "scope": a.scope,
        "createdOn": secs(&a.created),
    })
}

/// The certificate blocks of a PEM file (a file that also holds the private key, as `--create-cert`
/// writes, gives only its certificate: the key never leaves this machine).
fn read_pem(path: &PathBuf) -> anyhow::Result<String> {
    let text =
        zeroize::Zeroizing::new(std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?);
    let (begin, end) = ("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(begin) {
        let Some(stop) = rest[start..].find(end) else { break };
        out.push_str(&rest[start..start + stop + end.len()]);
        out.push('\n');
        rest = &rest[start + stop + end.len()..];
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no certificate (PEM)", path.display());
    Ok(out)
}

/// Makes a self-signed certificate for a service principal and writes it with its key to
/// `arca-sp-<appId>.pem` in the current directory (0600).
fn new_certificate(sp: &pb::Principal, years: u32) -> anyhow::Result<PathBuf> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let pem = arca_crypto::client_cert::self_signed(&sp.display_name, now, 365 * i64::from(years.clamp(1, 2)))
        .context("make a certificate")?;
    let path = PathBuf::from(format!("arca-sp-{}.pem", sp.app_id));
    crate::write_private(&path, pem.as_bytes())?;
    Ok(path)
}

/// A JSON argument given inline or as `@file`.
fn inline_or_file(raw: &str) -> anyhow::Result<String> {
    match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {path}")),
        None => Ok(raw.to_owned()),
    }
}

async fn create(
    client: &ArcaClient,
    kind: pb::PrincipalKind,
    name: String,
    with_secret: bool,
    years: u32,
) -> anyhow::Result<pb::CreatePrincipalResponse> {
    let request = pb::CreatePrincipalRequest { kind: kind as i32, display_name: name, with_secret, years };
    Ok(client.principals().create_principal(request).await.map_err(ClientError::from)?.into_inner())
}

/// A user or group, linked (when `link` names a credential name, issuer, subject and audiences) to
/// a provider: a user's sign-in, or a group of the provider's groups claim (keys by discovery).
async fn create_linked(
    client: &ArcaClient,
    kind: pb::PrincipalKind,
    name: String,
    link: Option<(&str, String, String, Vec<String>)>,
) -> anyhow::Result<pb::Principal> {
    let created = create(client, kind, name, false, 0).await?.principal.unwrap_or_default();
    if let Some((credential_name, issuer, subject, audiences)) = link {
        let request = pb::AddFederatedCredentialRequest {
            id: created.id.clone(),
            name: credential_name.into(),
            issuer,
            subject,
            audiences,
            jwks_json: String::new(),
            claims: vec![],
        };
        client
            .principals()
            .add_federated_credential(request)
            .await
            .map_err(ClientError::from)
            .context("link it to the provider")?;
    }
    Ok(created)
}

async fn list(client: &ArcaClient, kind: pb::PrincipalKind) -> anyhow::Result<Value> {
    crate::all_pages(None, |page_token| {
        let mut p = client.principals();
        async move {
            let r = p
                .list_principals(pb::ListPrincipalsRequest { kind: kind as i32, page_size: 0, page_token })
                .await?
                .into_inner();
            Ok((r.principals.iter().map(principal).collect(), r.next_page_token))
        }
    })
    .await
}

pub async fn ad(client: &ArcaClient, command: AdCmd, f: Format) -> anyhow::Result<()> {
    let err = ClientError::from;
    let mut p = client.principals();
    let value = match command {
        AdCmd::Sp { command } => match command {
            SpCmd::CreateForRbac { name, role, scopes, cert, create_cert, years } => {
                let with_secret = cert.is_none() && !create_cert;
                let created = create(client, pb::PrincipalKind::ServicePrincipal, name, with_secret, years).await?;
                let sp = created.principal.unwrap_or_default();
                let mut out = json!({ "appId": sp.app_id, "displayName": sp.display_name, "objectId": sp.id });
                let cert = match create_cert {
                    true => Some(new_certificate(&sp, years)?),
                    false => cert,
                };
                if let Some(path) = cert {
                    let request = pb::ResetCredentialRequest {
                        id: sp.id.clone(),
                        append: false,
                        years,
                        certificate_pem: read_pem(&path)?,
                    };
                    p.reset_credential(request).await.map_err(err)?;
                    let key = if create_cert { "fileWithCertAndPrivateKey" } else { "certificate" };
                    out[key] = json!(path.display().to_string());
                } else {
                    out["password"] = json!(created.password);
                }
                if let Some(role) = role {
                    for scope in scopes {
                        let request =
                            pb::CreateRoleAssignmentRequest { assignee: sp.id.clone(), role: role.clone(), scope };
                        client.roles().create_role_assignment(request).await.map_err(err)?;
                    }
                }
                out
            }
            SpCmd::Create { display_name } => principal(
                &create(client, pb::PrincipalKind::ServicePrincipal, display_name, false, 0)
                    .await?
                    .principal
                    .unwrap_or_default(),
            ),
            SpCmd::List => list(client, pb::PrincipalKind::ServicePrincipal).await?,
            SpCmd::Show { id } => {
                principal(&p.get_principal(pb::GetPrincipalRequest { id }).await.map_err(err)?.into_inner())
            }
            SpCmd::Delete { id } => {
                p.delete_principal(pb::DeletePrincipalRequest { id }).await.map_err(err)?;
                return Ok(());
            }
            SpCmd::RevokeTokens { id } => {
                p.revoke_tokens(pb::RevokeTokensRequest { id }).await.map_err(err)?;
                return Ok(());
            }
            SpCmd::FederatedCredential {
                command: FederatedCmd::Create { id, name, issuer, subject, audience, jwks_file, claims },
            } => {
                let jwks_json = match &jwks_file {
                    Some(file) => std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?,
                    None => String::new(),
                };
                let claims = claims
                    .iter()
                    .map(|c| match c.split_once('=') {
                        Some((claim, values)) => Ok(pb::BoundClaim {
                            claim: claim.to_owned(),
                            values: values.split(',').map(str::to_owned).collect(),
                        }),
                        None => anyhow::bail!("--claim takes NAME=VALUE[,VALUE…], not {c:?}"),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let request = pb::AddFederatedCredentialRequest {
                    id,
                    name,
                    issuer,
                    subject,
                    audiences: audience.into_iter().collect(),
                    jwks_json,
                    claims,
                };
                credential(&p.add_federated_credential(request).await.map_err(err)?.into_inner())
            }
            SpCmd::FederatedCredential { command: FederatedCmd::List { id } } => {
                let r = p.list_credentials(pb::ListCredentialsRequest { id }).await.map_err(err)?.into_inner();
                let federated = r.credentials.iter().filter(|c| c.r#type == "FederatedIdentityCredential");
                json!(federated.map(credential).collect::<Vec<_>>())
            }
            SpCmd::Credential { command } => match command {
                CredentialCmd::Reset { id, append, cert, years } => {
                    let certificate_pem = cert.as_ref().map(read_pem).transpose()?.unwrap_or_default();
                    let r = p
                        .reset_credential(pb::ResetCredentialRequest { id, append, years, certificate_pem })
                        .await
                        .map_err(err)?
                        .into_inner();
                    let mut out = json!({ "appId": r.app_id, "keyId": r.key_id, "endDateTime": secs(&r.end_date) });
                    if !r.password.is_empty() {
                        out["password"] = json!(r.password);
                    }
                    out
                }
                CredentialCmd::List { id } => {
                    let r = p.list_credentials(pb::ListCredentialsRequest { id }).await.map_err(err)?.into_inner();
                    Value::Array(r.credentials.iter().map(credential).collect())
                }
                CredentialCmd::Delete { id, key_id } => {
                    p.delete_credential(pb::DeleteCredentialRequest { id, key_id }).await.map_err(err)?;
                    return Ok(());
                }
            },
        },
        AdCmd::Group { command } => match command {
            GroupCmd::Create { display_name, issuer, external_name } => {
                let link =
                    issuer.zip(external_name).map(|(issuer, subject)| ("external-group", issuer, subject, vec![]));
                principal(&create_linked(client, pb::PrincipalKind::Group, display_name, link).await?)
            }
            GroupCmd::List => list(client, pb::PrincipalKind::Group).await?,
            GroupCmd::Show { group } => {
                principal(&p.get_principal(pb::GetPrincipalRequest { id: group }).await.map_err(err)?.into_inner())
            }
            GroupCmd::Delete { group } => {
                p.delete_principal(pb::DeletePrincipalRequest { id: group }).await.map_err(err)?;
                return Ok(());
            }
            GroupCmd::Member { command } => match command {
                MemberCmd::Add { group, member_id } => principal(
                    &p.add_group_member(pb::GroupMemberRequest { group, member: member_id })
                        .await
                        .map_err(err)?
                        .into_inner(),
                ),
                MemberCmd::Remove { group, member_id } => principal(
                    &p.remove_group_member(pb::GroupMemberRequest { group, member: member_id })
                        .await
                        .map_err(err)?
                        .into_inner(),
                ),
            },
        },
        AdCmd::User { command } => match command {
            UserCmd::Create { display_name, issuer, subject, audience } => {
                let link = issuer.zip(subject).map(|(issuer, subject)| ("sign-in", issuer, subject, vec![audience]));
                principal(&create_linked(client, pb::PrincipalKind::User, display_name, link).await?)
            }
            UserCmd::List => list(client, pb::PrincipalKind::User).await?,
            UserCmd::Delete { id } => {
                p.delete_principal(pb::DeletePrincipalRequest { id }).await.map_err(err)?;
                return Ok(());
            }
        },
    };
    print_value(f, &value);
    Ok(())
}

pub async fn role(client: &ArcaClient, command: RoleCmd, f: Format) -> anyhow::Result<()> {
    let err = ClientError::from;
    let mut r = client.roles();
    let value = match command {
        RoleCmd::Definition { command } => match command {
            DefinitionCmd::List { custom_role_only } => {
                let list = r
                    .list_role_definitions(pb::ListRoleDefinitionsRequest { custom_only: custom_role_only })
                    .await
                    .map_err(err)?
                    .into_inner();
                Value::Array(list.role_definitions.iter().map(definition).collect())
            }
            DefinitionCmd::Show { name } => definition(
                &r.get_role_definition(pb::GetRoleDefinitionRequest { role: name }).await.map_err(err)?.into_inner(),
            ),
            DefinitionCmd::Create { role_definition } => {
                let request =
                    pb::CreateRoleDefinitionRequest { role_definition_json: inline_or_file(&role_definition)? };
                definition(&r.create_role_definition(request).await.map_err(err)?.into_inner())
            }
            DefinitionCmd::Update { role_definition } => {
                let request =
                    pb::CreateRoleDefinitionRequest { role_definition_json: inline_or_file(&role_definition)? };
                definition(&r.update_role_definition(request).await.map_err(err)?.into_inner())
            }
            DefinitionCmd::Delete { name } => {
                r.delete_role_definition(pb::DeleteRoleDefinitionRequest { role: name }).await.map_err(err)?;
                return Ok(());
            }
        },
        RoleCmd::Assignment { command } => match command {
            AssignmentCmd::Create { assignee, role, scope } => assignment(
                &r.create_role_assignment(pb::CreateRoleAssignmentRequest { assignee, role, scope })
                    .await
                    .map_err(err)?
                    .into_inner(),
            ),
            AssignmentCmd::List { assignee, role, scope } => {
                let request = pb::ListRoleAssignmentsRequest {
                    assignee: assignee.unwrap_or_default(),
                    role: role.unwrap_or_default(),
                    scope: scope.unwrap_or_default(),
                };
                let list = r.list_role_assignments(request).await.map_err(err)?.into_inner();
                Value::Array(list.role_assignments.iter().map(assignment).collect())
            }
            AssignmentCmd::Delete { ids, assignee, role, scope } => {
                if ids.is_none() && (assignee.is_none() || role.is_none() || scope.is_none()) {
                    anyhow::bail!("name the assignment: --ids, or --assignee, --role and --scope together");
                }
                let request = pb::DeleteRoleAssignmentRequest {
                    id: ids.unwrap_or_default(),
                    assignee: assignee.unwrap_or_default(),
                    role: role.unwrap_or_default(),
                    scope: scope.unwrap_or_default(),
                };
                r.delete_role_assignment(request).await.map_err(err)?;
                return Ok(());
            }
        },
    };
    print_value(f, &value);
    Ok(())
}
