//! The rules of principals, credentials, group membership, custom roles and role assignments.

use arca_rbac::{RoleDefinition, Scope};
use arca_types::limits::*;
use arca_types::{ArcaError, DisplayName, ErrorCode};

use crate::decide::{Decision, Mutation, Outcome};
use crate::identity::*;
use crate::view::StateView;

fn not_found(id: &PrincipalId) -> ArcaError {
    ArcaError::new(ErrorCode::PrincipalNotFound, format!("no principal has the id {}", uuid(id)))
}

fn principal(view: &dyn StateView, id: &PrincipalId) -> Result<PrincipalRecord, ArcaError> {
    view.principal(id)?.ok_or_else(|| not_found(id))
}

fn done(mutations: Vec<Mutation>, outcome: Outcome) -> Result<Decision, ArcaError> {
    Ok(Decision { mutations, outcome })
}

/// Checks a new credential's validity window and kind against the principal it is for.
fn check_credential(
    view: &dyn StateView,
    record_kind: PrincipalKind,
    credential: &Credential,
    now: i64,
) -> Result<(), ArcaError> {
    if let Some(trust) = credential.kind.trust() {
        let (issuer, subject) = (trust.issuer, trust.subject);
        if record_kind == PrincipalKind::Agent {
            return Err(ArcaError::bad_parameter("id", "an agent signs in with its own certificate only"));
        }
        check_federated(record_kind, &trust)?;
        // A person or a provider's group is one Arca principal: the sign-in finds it by issuer and subject.
        if matches!(record_kind, PrincipalKind::User | PrincipalKind::Group) {
            if let Some(holder) = view.principal_by_external(record_kind, issuer, subject)? {
                let still =
                    view.principal(&holder)?.is_some_and(|p| p.external_names().any(|n| n == (issuer, subject)));
                if still {
                    return Err(ArcaError::new(
                        ErrorCode::Conflict,
                        format!(
                            "{} {} already stands for this issuer's {subject:?}; one {} per sign-in name",
                            record_kind.azure_name(),
                            uuid(&holder),
                            record_kind.azure_name()
                        ),
                    ));
                }
            }
        }
    } else if let Some(BindingRef { agent, executable, service_account, .. }) = credential.kind.binding() {
        if record_kind != PrincipalKind::ManagedIdentity {
            return Err(ArcaError::bad_parameter(
                "id",
                format!("only a managed identity is bound to agents; this is a {}", record_kind.azure_name()),
            ));
        }
        if view.principal(agent)?.is_none_or(|a| a.kind != PrincipalKind::Agent) {
            return Err(ArcaError::bad_parameter("agent", format!("{} is not an agent", uuid(agent))));
        }
        if let Some(path) = executable {
            check_executable(path)?;
        }
        if let Some(sa) = service_account {
            check_service_account(sa)?;
        }
    } else if !record_kind.has_own_credentials() {
        return Err(ArcaError::bad_parameter(
            "credential",
            format!(
                "a {} has no secrets or certificates of its own; only service principals and agents do",
                record_kind.azure_name()
            ),
        ));
    }
    let lifetime = credential.end.saturating_sub(credential.start);
    if credential.end <= now || lifetime <= 0 {
        return Err(ArcaError::bad_parameter(
            "end_date",
            "the credential would never be valid: its end is not after its start and now",
        ));
    }
    if lifetime > CREDENTIAL_LIFETIME_S_MAX {
        return Err(ArcaError::bad_parameter(
            "years",
            format!("a credential may last at most {} days", CREDENTIAL_LIFETIME_S_MAX / SECONDS_PER_DAY),
        ));
    }
    Ok(())
}

pub fn create_principal(
    view: &dyn StateView,
    id: PrincipalId,
    kind: PrincipalKind,
    name: &DisplayName,
    app_id: Option<[u8; 16]>,
    credential: Option<&Credential>,
    now: i64,
) -> Result<Decision, ArcaError> {
    if kind.is_application() != app_id.is_some() {
        return Err(ArcaError::internal("a principal's client id does not match its kind"));
    }
    if view.principal_named(name)?.is_some() {
        return Err(ArcaError::new(
            ErrorCode::Conflict,
            format!("a principal named '{name}' (or a name that looks the same) already exists; choose another name"),
        ));
    }
    if view.principal(&id)?.is_some() || app_id.map(|a| view.principal_by_app(&a)).transpose()?.flatten().is_some() {
        return Err(ArcaError::unavailable("a freshly minted id is already taken; retry"));
    }
    if let Some(c) = credential {
        check_credential(view, kind, c, now)?;
    }
    let record = PrincipalRecord {
        id,
        kind,
        name: name.clone(),
        app_id,
        created: now,
        token_generation: 0,
        credentials: credential.cloned().into_iter().collect(),
        groups: Vec::new(),
        members: Vec::new(),
    };
    done(vec![Mutation::PutPrincipal(record.clone())], Outcome::Principal(record))
}

/// Deletes a principal with its role assignments and group memberships (Azure leaves assignments
/// to deleted principals behind as "Identity not found"; Arca removes them with it).
pub fn delete_principal(view: &dyn StateView, id: &PrincipalId) -> Result<Decision, ArcaError> {
    let record = principal(view, id)?;
    let mut mutations = Vec::new();
    for other_id in record.groups.iter().chain(&record.members) {
        if let Some(mut other) = view.principal(other_id)? {
            other.groups.retain(|g| g != id);
            other.members.retain(|m| m != id);
            mutations.push(Mutation::PutPrincipal(other));
        }
    }
    for assignment in view.assignments_of(id)? {
        mutations.push(Mutation::DeleteAssignment(assignment));
    }
    mutations.push(Mutation::DeletePrincipal(record.clone()));
    done(mutations, Outcome::Principal(record))
}

/// Adds a credential. Without `append`, it replaces every credential of its kind (as `az ad sp
/// credential reset` does); with it, at most two of a kind may be valid at once, for overlap rotation.
/// Expired credentials of the kind are dropped either way.
pub fn reset_credential(
    view: &dyn StateView,
    id: &PrincipalId,
    credential: &Credential,
    append: bool,
    now: i64,
) -> Result<Decision, ArcaError> {
    let mut record = principal(view, id)?;
    check_credential(view, record.kind, credential, now)?;
    let family = credential.kind.family();
    let same_kind = |c: &Credential| c.kind.family() == family;
    let live = |r: &PrincipalRecord| r.credentials.iter().filter(|c| same_kind(c) && c.end > now).count();
    let before = live(&record);
    record.credentials.retain(|c| !same_kind(c) || (append && c.end > now));
    // A credential replaced is a credential revoked: what was won with it stops working too.
    if live(&record) < before {
        record.token_generation = record.token_generation.saturating_add(1);
    }
    let most = match credential.kind {
        CredentialKind::AgentBinding { .. } | CredentialKind::AgentWorkload(_) => AGENT_BINDINGS_PER_IDENTITY_MAX,
        CredentialKind::Federated { .. } | CredentialKind::Federation(_) => FEDERATED_CREDENTIALS_MAX,
        _ => CREDENTIALS_PER_KIND_MAX,
    };
    if record.credentials.iter().filter(|c| same_kind(c)).count() >= most {
        return Err(ArcaError::new(
            ErrorCode::Conflict,
            format!(
                "the {} already has {most} {family} that have not expired; delete one (arca ad sp credential \
                 delete) or reset without --append",
                record.kind.azure_name()
            ),
        ));
    }
    // A binding that requires a service account narrows nothing while a binding to the same agent
    // without one still serves the same workloads: the identity would go on to any pod of the uid.
    if let Some(BindingRef { agent, service_account: Some(_), .. }) = credential.kind.binding() {
        let wider = record
            .credentials
            .iter()
            .filter(|c| c.end > now)
            .filter_map(|c| c.kind.binding())
            .any(|b| b.agent == agent && b.service_account.is_none());
        if wider {
            return Err(ArcaError::new(
                ErrorCode::Conflict,
                "the identity is bound to this agent without a service account, which would still serve every \
                 workload it names; delete that binding first (arca ad sp credential delete)",
            ));
        }
    }
    if let Some(new) = credential.kind.trust() {
        let taken = record
            .credentials
            .iter()
            .filter_map(|c| c.kind.trust())
            .any(|t| t.name.eq_ignore_ascii_case(new.name) || (t.issuer == new.issuer && t.subject == new.subject));
        if taken {
            return Err(ArcaError::new(
                ErrorCode::Conflict,
                "a federated credential with this name, or with this issuer and subject, already exists; delete it \
                 first",
            ));
        }
    }
    if let CredentialKind::Certificate { thumbprint_sha256, .. } = &credential.kind {
        let taken = record.credentials.iter().any(
            |c| matches!(&c.kind, CredentialKind::Certificate { thumbprint_sha256: t, .. } if t == thumbprint_sha256),
        );
        if taken {
            return Err(ArcaError::new(
                ErrorCode::Conflict,
                "this certificate is already registered for the service principal",
            ));
        }
    }
    record.credentials.push(credential.clone());
    done(vec![Mutation::PutPrincipal(record.clone())], Outcome::Principal(record))
}

/// An agent registers a new certificate: its enrollment secret goes (so enrolling works once), and of
/// its certificates only the newest unexpired one stays beside the new one, so a certificate the
/// agent no longer holds stops working within one rotation.
pub fn register_agent_certificate(
    view: &dyn StateView,
    id: &PrincipalId,
    credential: &Credential,
    now: i64,
) -> Result<Decision, ArcaError> {
    let mut record = principal(view, id)?;
    if record.kind != PrincipalKind::Agent {
        return Err(ArcaError::new(ErrorCode::ForbiddenByRbac, "only an agent registers its own certificates"));
    }
    if !matches!(credential.kind, CredentialKind::Certificate { .. }) {
        return Err(ArcaError::internal("an agent registers certificates only"));
    }
    check_credential(view, record.kind, credential, now)?;
    let newest = record
        .credentials
        .iter()
        .filter(|c| matches!(c.kind, CredentialKind::Certificate { .. }) && c.end > now)
        .max_by_key(|c| (c.start, c.end))
        .cloned();
    // The same certificate again (a retried request): already done.
    if newest.as_ref().is_some_and(|c| c.kind == credential.kind) {
        return done(Vec::new(), Outcome::Principal(record));
    }
    // Enrolling ends the enrollment secret, and every token won with it.
    if record.credentials.iter().any(Credential::is_secret) {
        record.token_generation = record.token_generation.saturating_add(1);
    }
    record.credentials = newest.into_iter().chain([credential.clone()]).collect();
    done(vec![Mutation::PutPrincipal(record.clone())], Outcome::Principal(record))
}

/// A federated credential's fields, as Azure bounds them: a name of 3-120 letters, digits, `-` and
/// `_`; an issuer, a subject and exactly one audience of at most 600 characters; a JWKS of at most
/// 16 KiB (its keys are read by the caller, who can parse it), or none: the keys are then fetched
/// by discovery from the issuer, which must be an `https://` URL. A group's credential names a
/// value of the provider's `groups` claim as its subject, with no audience and no JWKS: the
/// member's own sign-in is what is checked.
fn check_federated(kind: PrincipalKind, trust: &TrustRef<'_>) -> Result<(), ArcaError> {
    let TrustRef { name, issuer, subject, audiences, jwks, claims } = *trust;
    let name_ok =
        (3..=120).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(ArcaError::bad_parameter("name", "name must be 3-120 characters of A-Z a-z 0-9 - _"));
    }
    check_external_field("issuer", issuer)?;
    check_external_field("subject", subject)?;
    check_bound_claims(claims)?;
    if kind == PrincipalKind::Group {
        if !audiences.is_empty() || !jwks.is_empty() || !claims.is_empty() {
            return Err(ArcaError::bad_parameter(
                "audiences",
                "a group's federated credential names an issuer and a groups-claim value only (no audience, no JWKS, \
                 no claims)",
            ));
        }
        return Ok(());
    }
    let audience_ok = |a: &String| !a.is_empty() && a.chars().count() <= FEDERATED_FIELD_CHARS_MAX;
    if audiences.len() != 1 || !audiences.iter().all(audience_ok) {
        return Err(ArcaError::bad_parameter(
            "audiences",
            format!("name exactly one audience of 1-{FEDERATED_FIELD_CHARS_MAX} characters"),
        ));
    }
    check_key_source(issuer, jwks, "jwks_json", "the provider's JWKS")
}

/// Claims a federated credential binds: at most [`BOUND_CLAIMS_MAX`], each named once (a name, or a
/// JSON pointer starting with `/`), never one the credential binds by itself (`iss`, `sub`, `aud`)
/// or a time, each with 1 to [`BOUND_CLAIM_VALUES_MAX`] values of at most
/// [`FEDERATED_FIELD_CHARS_MAX`] characters.
fn check_bound_claims(claims: &[BoundClaim]) -> Result<(), ArcaError> {
    let bad = |why: String| Err(ArcaError::bad_parameter("claims", why));
    if claims.len() > BOUND_CLAIMS_MAX {
        return bad(format!("bind at most {BOUND_CLAIMS_MAX} claims"));
    }
    let bytes: usize = claims.iter().map(|c| c.claim.len() + c.values.iter().map(String::len).sum::<usize>()).sum();
    if bytes > BOUND_CLAIMS_BYTES_MAX {
        return bad(format!("the bound claims come to more than {} KiB", BOUND_CLAIMS_BYTES_MAX / 1024));
    }
    for (i, bound) in claims.iter().enumerate() {
        let name = bound.claim.as_str();
        let plain = name.trim_start_matches('/');
        if name.is_empty()
            || name.chars().count() > BOUND_CLAIM_NAME_CHARS_MAX
            || name.chars().any(char::is_control)
            || ["iss", "sub", "aud", "exp", "nbf", "iat"].contains(&plain)
        {
            return bad(format!(
                "a bound claim is named by 1-{BOUND_CLAIM_NAME_CHARS_MAX} characters (a JSON pointer starts with /), \
                 and never iss, sub, aud or a time, which the credential binds itself"
            ));
        }
        if claims[..i].iter().any(|c| c.claim == bound.claim) {
            return bad(format!("the claim {name:?} is bound twice; give it several values instead"));
        }
        let value_ok = |v: &String| {
            !v.is_empty() && v.chars().count() <= FEDERATED_FIELD_CHARS_MAX && !v.chars().any(char::is_control)
        };
        if bound.values.is_empty() || bound.values.len() > BOUND_CLAIM_VALUES_MAX || !bound.values.iter().all(value_ok)
        {
            return bad(format!(
                "the claim {name:?} needs 1-{BOUND_CLAIM_VALUES_MAX} values of 1-{FEDERATED_FIELD_CHARS_MAX} \
                 characters"
            ));
        }
    }
    Ok(())
}

/// A service account a binding requires: issuer, subject and audience of 1-600 characters with no
/// control characters, and a JWKS of at most 16 KiB or none (the issuer's keys by discovery, from an
/// https:// issuer).
fn check_service_account(sa: &ServiceAccount) -> Result<(), ArcaError> {
    check_external_field("service_account_issuer", &sa.issuer)?;
    check_external_field("service_account", &sa.subject)?;
    check_external_field("service_account_audience", &sa.audience)?;
    check_key_source(
        &sa.issuer,
        &sa.jwks,
        "service_account_jwks_json",
        "the service account issuer's JWKS (kubectl get --raw /openid/v1/jwks)",
    )
}

/// A federated credential's or service account's text field: 1-600 characters, no control characters.
fn check_external_field(field: &str, value: &str) -> Result<(), ArcaError> {
    if value.is_empty() || value.chars().count() > FEDERATED_FIELD_CHARS_MAX || value.chars().any(char::is_control) {
        return Err(ArcaError::bad_parameter(
            field,
            format!("{field} must be 1-{FEDERATED_FIELD_CHARS_MAX} characters, none of them control characters"),
        ));
    }
    Ok(())
}

/// Where the keys that check a provider's tokens come from: the JWKS given (at most 16 KiB, named
/// `jwks_field` in errors), or, when it is empty, the issuer's own by discovery, which needs an
/// `https://` issuer with a host. `how` says, in a refusal, how to give the keys.
fn check_key_source(issuer: &str, jwks: &str, jwks_field: &str, how: &str) -> Result<(), ArcaError> {
    if jwks.len() > FEDERATED_JWKS_BYTES_MAX {
        return Err(ArcaError::bad_parameter(
            jwks_field,
            format!("the issuer's JWKS may be at most {} KiB", FEDERATED_JWKS_BYTES_MAX / 1024),
        ));
    }
    let discoverable = issuer.strip_prefix("https://").is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if jwks.is_empty() && !discoverable {
        return Err(ArcaError::bad_parameter(
            jwks_field,
            format!("give {how}, or an https:// issuer whose keys Arca fetches by OIDC discovery"),
        ));
    }
    Ok(())
}

/// An executable a binding names: an absolute path, no longer than Linux's PATH_MAX, with no NUL.
pub fn check_executable(path: &str) -> Result<(), ArcaError> {
    if !path.starts_with('/') || path.len() > EXECUTABLE_PATH_BYTES_MAX || path.contains('\0') {
        return Err(ArcaError::bad_parameter(
            "executable",
            format!("executable must be an absolute path of at most {EXECUTABLE_PATH_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

pub fn delete_credential(view: &dyn StateView, id: &PrincipalId, key_id: &[u8; 16]) -> Result<Decision, ArcaError> {
    let mut record = principal(view, id)?;
    let before = record.credentials.len();
    record.credentials.retain(|c| &c.key_id != key_id);
    if record.credentials.len() == before {
        return Err(ArcaError::bad_parameter("key_id", "the service principal has no credential with that key id"));
    }
    // What was won with the credential stops working on the next request, as the credential does.
    record.token_generation = record.token_generation.saturating_add(1);
    done(vec![Mutation::PutPrincipal(record.clone())], Outcome::Principal(record))
}

/// Adds (or removes) a member to a group. Groups do not nest.
pub fn set_membership(
    view: &dyn StateView,
    group_id: &PrincipalId,
    member_id: &PrincipalId,
    add: bool,
) -> Result<Decision, ArcaError> {
    let mut group = principal(view, group_id)?;
    let mut member = principal(view, member_id)?;
    if group.kind != PrincipalKind::Group {
        return Err(ArcaError::bad_parameter(
            "group",
            format!("{} is a {}, not a group", uuid(group_id), group.kind.azure_name()),
        ));
    }
    if member.kind == PrincipalKind::Group {
        return Err(ArcaError::bad_parameter("member", "groups do not nest: add the group's members instead"));
    }
    let is_member = group.members.contains(member_id);
    if add && !is_member {
        if group.members.len() >= GROUP_MEMBERS_MAX {
            return Err(ArcaError::bad_parameter(
                "group",
                format!("a group may have at most {GROUP_MEMBERS_MAX} members"),
            ));
        }
        if member.groups.len() >= GROUPS_PER_PRINCIPAL_MAX {
            return Err(ArcaError::bad_parameter(
                "member",
                format!("a principal may be in at most {GROUPS_PER_PRINCIPAL_MAX} groups"),
            ));
        }
        group.members.push(*member_id);
        member.groups.push(*group_id);
    } else if !add && is_member {
        group.members.retain(|m| m != member_id);
        member.groups.retain(|g| g != group_id);
    } else {
        // Already as asked: nothing to write.
        return done(Vec::new(), Outcome::Principal(group));
    }
    done(vec![Mutation::PutPrincipal(member), Mutation::PutPrincipal(group.clone())], Outcome::Principal(group))
}

/// Every access token the principal holds so far stops working.
pub fn revoke_tokens(view: &dyn StateView, id: &PrincipalId) -> Result<Decision, ArcaError> {
    let mut record = principal(view, id)?;
    record.token_generation = record.token_generation.saturating_add(1);
    done(vec![Mutation::PutPrincipal(record.clone())], Outcome::Principal(record))
}

fn role_or_not_found(view: &dyn StateView, role_id: &str) -> Result<RoleDefinition, ArcaError> {
    crate::identity::role(view, role_id)?
        .ok_or_else(|| ArcaError::new(ErrorCode::RoleDefinitionNotFound, format!("no role has the id '{role_id}'")))
}

pub fn create_assignment(
    view: &dyn StateView,
    id: [u8; 16],
    principal_id: &PrincipalId,
    role_id: &str,
    scope: &Scope,
    now: i64,
) -> Result<Decision, ArcaError> {
    let record = principal(view, principal_id)?;
    let role = role_or_not_found(view, role_id)?;
    if !role.assignable_scopes.iter().any(|s| s.contains(scope)) {
        return Err(ArcaError::bad_parameter(
            "scope",
            format!(
                "the role '{}' cannot be assigned at {}; it is assignable at its AssignableScopes only",
                role.name,
                scope.redacted()
            ),
        ));
    }
    if let Some(vault) = scope.vault() {
        if !view.vault(vault)?.is_some_and(|v| v.is_live()) {
            return Err(ArcaError::new(ErrorCode::VaultNotFound, format!("vault '{vault}' does not exist")));
        }
    }
    if view.assignment_of(principal_id, &role.id, scope)?.is_some() {
        return Err(ArcaError::new(
            ErrorCode::RoleAssignmentExists,
            format!("{} already holds '{}' at {}", uuid(principal_id), role.name, scope.redacted()),
        ));
    }
    if view.assignments_of(principal_id)?.len() >= ASSIGNMENTS_PER_PRINCIPAL_MAX {
        return Err(ArcaError::bad_parameter(
            "assignee",
            format!("a principal may hold at most {ASSIGNMENTS_PER_PRINCIPAL_MAX} role assignments"),
        ));
    }
    if view.assignment(&id)?.is_some() {
        return Err(ArcaError::unavailable("a freshly minted id is already taken; retry"));
    }
    let assignment = AssignmentRecord {
        id,
        principal: *principal_id,
        principal_kind: record.kind,
        role_id: role.id,
        scope: scope.clone(),
        created: now,
    };
    done(vec![Mutation::PutAssignment(assignment.clone())], Outcome::Assignment(assignment))
}

pub fn delete_assignment(view: &dyn StateView, id: &[u8; 16]) -> Result<Decision, ArcaError> {
    let assignment = view.assignment(id)?.ok_or_else(|| {
        ArcaError::new(ErrorCode::RoleAssignmentNotFound, format!("no role assignment has the id {}", uuid(id)))
    })?;
    done(vec![Mutation::DeleteAssignment(assignment.clone())], Outcome::Assignment(assignment))
}

/// Creates a custom role, or (with `update`) replaces one that exists.
pub fn put_role(view: &dyn StateView, role: &RoleDefinition, update: bool) -> Result<Decision, ArcaError> {
    if !role.custom {
        return Err(ArcaError::internal("only custom roles are stored"));
    }
    let existing = view.custom_role(&role.id)?;
    match (update, &existing) {
        (false, Some(_)) => {
            return Err(ArcaError::new(
                ErrorCode::Conflict,
                format!("a role with id {} exists; update it instead", role.id),
            ))
        }
        (true, None) => {
            return Err(ArcaError::new(
                ErrorCode::RoleDefinitionNotFound,
                format!("no custom role has the id '{}'", role.id),
            ))
        }
        _ => {}
    }
    if let Some(holder) = view.custom_role_named(&role.name)? {
        if holder != role.id {
            return Err(ArcaError::new(
                ErrorCode::Conflict,
                format!("a custom role named '{}' already exists", role.name),
            ));
        }
    }
    if existing.is_none() && view.custom_roles()?.len() >= CUSTOM_ROLES_MAX {
        return Err(ArcaError::bad_parameter(
            "role_definition",
            format!("a cluster may have at most {CUSTOM_ROLES_MAX} custom roles"),
        ));
    }
    let mut mutations = Vec::new();
    if let Some(old) = existing {
        mutations.push(Mutation::DeleteRole(old));
    }
    mutations.push(Mutation::PutRole(role.clone()));
    done(mutations, Outcome::Role(role.clone()))
}

pub fn delete_role(view: &dyn StateView, id: &str) -> Result<Decision, ArcaError> {
    if arca_rbac::role::find_built_in(id).is_some_and(|r| r.id.eq_ignore_ascii_case(id)) {
        return Err(ArcaError::bad_parameter("role", "built-in roles cannot be deleted"));
    }
    let role = view.custom_role(&id.to_ascii_lowercase())?.ok_or_else(|| {
        ArcaError::new(ErrorCode::RoleDefinitionNotFound, format!("no custom role has the id '{id}'"))
    })?;
    if view.role_in_use(&role.id)? {
        return Err(ArcaError::new(
            ErrorCode::RoleDefinitionHasAssignments,
            format!("the role '{}' is still assigned; delete its role assignments first", role.name),
        ));
    }
    done(vec![Mutation::DeleteRole(role.clone())], Outcome::Role(role))
}
