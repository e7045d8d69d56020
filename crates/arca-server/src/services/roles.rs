//! `arca.v1.RoleService`: role definitions and role assignments, as `az role`.

use std::sync::Arc;

use arca_core::identity::{parse_uuid, uuid, AssignmentRecord, IdentityView};
use arca_core::{Command, Outcome};
use arca_proto::v1 as pb;
use arca_proto::v1::role_service_server::RoleService;
use arca_rbac::{RoleDefinition, Scope};
use arca_types::limits::ROLE_DEFINITION_BYTES_MAX;
use arca_types::{ArcaError, ErrorCode};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{Api, Call, Target, WRITE};
use crate::convert::ts;
use crate::keyspace::Keyspace;
use crate::services::principals::resolve;

pub struct Roles(pub Arc<Api>);

fn definition_message(r: &RoleDefinition) -> pb::RoleDefinition {
    pb::RoleDefinition {
        id: r.id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        actions: r.actions.clone(),
        not_actions: r.not_actions.clone(),
        data_actions: r.data_actions.clone(),
        not_data_actions: r.not_data_actions.clone(),
        assignable_scopes: r.assignable_scopes.iter().map(Scope::to_string).collect(),
        custom: r.custom,
    }
}

fn assignment_message(keyspace: &Keyspace, a: &AssignmentRecord) -> pb::RoleAssignment {
    pb::RoleAssignment {
        id: uuid(&a.id),
        principal_id: uuid(&a.principal),
        principal_type: a.principal_kind.azure_name().to_owned(),
        role_definition_id: a.role_id.clone(),
        role_definition_name: crate::identity::role(keyspace, &a.role_id).map(|r| r.name).unwrap_or_default(),
        scope: a.scope.to_string(),
        created: ts(a.created),
    }
}

/// A role by id or name: built-in, or custom.
fn find_role(keyspace: &Keyspace, raw: &str) -> Result<RoleDefinition, ArcaError> {
    let not_found =
        || ArcaError::new(ErrorCode::RoleDefinitionNotFound, "no role has that id or name (arca role definition list)");
    if let Some(r) = arca_rbac::role::find_built_in(raw) {
        return Ok(r.clone());
    }
    if let Some(id) = arca_rbac::role::parse_guid(raw) {
        return keyspace.custom_role(&id)?.ok_or_else(not_found);
    }
    match keyspace.recording_view().custom_role_named(raw)? {
        Some(id) => keyspace.custom_role(&id)?.ok_or_else(not_found),
        None => Err(not_found()),
    }
}

fn scope_of(raw: &str) -> Result<Scope, ArcaError> {
    if raw.is_empty() {
        Ok(Scope::Cluster)
    } else {
        Scope::parse(raw)
    }
}

impl Roles {
    /// Authorizes `action` at every scope of `scopes` (a custom role's assignable scopes): the first
    /// with a read barrier and the audit record, the rest on the state that barrier gave.
    async fn authorize_each(&self, call: &mut Call, action: Action, scopes: &[Scope]) -> Result<Keyspace, ArcaError> {
        let first =
            scopes.first().ok_or_else(|| ArcaError::bad_parameter("AssignableScopes", "a role needs a scope"))?;
        let keyspace = self.0.authorize_at(call, action, first, None, WRITE).await?;
        for scope in &scopes[1..] {
            self.0.permits(&keyspace, call, action, scope)?;
        }
        Ok(keyspace)
    }

    async fn put(&self, call: &mut Call, json: &str, update: bool) -> Result<pb::RoleDefinition, ArcaError> {
        if json.len() > ROLE_DEFINITION_BYTES_MAX {
            return Err(ArcaError::bad_parameter(
                "role_definition_json",
                format!("a role definition may have at most {ROLE_DEFINITION_BYTES_MAX} bytes"),
            ));
        }
        let minted = uuid(&self.0.engine.seal.entropy().bytes16());
        let role = arca_rbac::role::parse_custom(json, &minted)?;
        if update && role.id == minted {
            return Err(ArcaError::bad_parameter(
                "role_definition_json",
                "an update names the role to change by its Id",
            ));
        }
        // An update changes what every assignment of the role grants: the caller must be allowed to
        // write roles wherever the role could be assigned before, as well as where it can be after.
        let mut scopes = role.assignable_scopes.clone();
        if update {
            let ks = self.0.engine.seal.keyspace()?;
            self.0.engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
            if let Some(old) = ks.custom_role(&role.id)? {
                scopes.extend(old.assignable_scopes);
            }
        }
        self.authorize_each(call, Action::RoleDefinitionWrite, &scopes).await?;
        match self
            .0
            .engine
            .execute(&Command::PutRoleDefinition { role, update }, call.client_request().as_ref())
            .await?
        {
            Outcome::Role(r) => Ok(definition_message(&r)),
            _ => Err(ArcaError::internal("a role command produced another kind of outcome")),
        }
    }

    async fn assignment_named(
        &self,
        keyspace: &Keyspace,
        r: &pb::DeleteRoleAssignmentRequest,
    ) -> Result<AssignmentRecord, ArcaError> {
        let view = keyspace.recording_view();
        let not_found = || ArcaError::new(ErrorCode::RoleAssignmentNotFound, "no role assignment matches");
        if !r.id.is_empty() {
            return view.assignment(&parse_uuid("id", &r.id)?)?.ok_or_else(not_found);
        }
        let principal = resolve(keyspace, "assignee", &r.assignee)?;
        let role = find_role(keyspace, &r.role)?;
        let scope = scope_of(&r.scope)?;
        let id = view.assignment_of(&principal.id, &role.id, &scope)?.ok_or_else(not_found)?;
        view.assignment(&id)?.ok_or_else(not_found)
    }
}

#[tonic::async_trait]
impl RoleService for Roles {
    async fn list_role_definitions(
        &self,
        request: Request<pb::ListRoleDefinitionsRequest>,
    ) -> Result<Response<pb::ListRoleDefinitionsResponse>, Status> {
        let mut call = self.0.begin(&request, "RoleDefinitionList");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::RoleDefinitionRead, Target::Cluster, WRITE).await?;
            let mut roles: Vec<RoleDefinition> =
                if r.custom_only { Vec::new() } else { arca_rbac::built_in_roles().to_vec() };
            roles.extend(ks.recording_view().custom_roles()?);
            Ok(pb::ListRoleDefinitionsResponse { role_definitions: roles.iter().map(definition_message).collect() })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_role_definition(
        &self,
        request: Request<pb::GetRoleDefinitionRequest>,
    ) -> Result<Response<pb::RoleDefinition>, Status> {
        let mut call = self.0.begin(&request, "RoleDefinitionGet");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.authorize(&mut call, Action::RoleDefinitionRead, Target::Cluster, WRITE).await?;
            find_role(&ks, &r.role).map(|role| definition_message(&role))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn create_role_definition(
        &self,
        request: Request<pb::CreateRoleDefinitionRequest>,
    ) -> Result<Response<pb::RoleDefinition>, Status> {
        let mut call = self.0.begin(&request, "RoleDefinitionCreate");
        let r = request.into_inner();
        let result = self.put(&mut call, &r.role_definition_json, false).await;
        self.0.finish(call, result)
    }

    async fn update_role_definition(
        &self,
        request: Request<pb::CreateRoleDefinitionRequest>,
    ) -> Result<Response<pb::RoleDefinition>, Status> {
        let mut call = self.0.begin(&request, "RoleDefinitionUpdate");
        let r = request.into_inner();
        let result = self.put(&mut call, &r.role_definition_json, true).await;
        self.0.finish(call, result)
    }

    async fn delete_role_definition(
        &self,
        request: Request<pb::DeleteRoleDefinitionRequest>,
    ) -> Result<Response<pb::DeleteRoleDefinitionResponse>, Status> {
        let mut call = self.0.begin(&request, "RoleDefinitionDelete");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.engine.seal.keyspace()?;
            self.0.engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
            // Unknown roles are refused as not found only to callers who may delete at the cluster.
            let role = match find_role(&ks, &r.role) {
                Ok(role) => role,
                Err(e) => {
                    self.0.authorize(&mut call, Action::RoleDefinitionDelete, Target::Cluster, WRITE).await?;
                    return Err(e);
                }
            };
            self.authorize_each(&mut call, Action::RoleDefinitionDelete, &role.assignable_scopes).await?;
            self.0
                .engine
                .execute(&Command::DeleteRoleDefinition { id: role.id }, call.client_request().as_ref())
                .await?;
            Ok(pb::DeleteRoleDefinitionResponse {})
        }
        .await;
        self.0.finish(call, result)
    }

    async fn create_role_assignment(
        &self,
        request: Request<pb::CreateRoleAssignmentRequest>,
    ) -> Result<Response<pb::RoleAssignment>, Status> {
        let mut call = self.0.begin(&request, "RoleAssignmentCreate");
        let r = request.into_inner();
        let result = async {
            let scope = scope_of(&r.scope)?;
            let ks = self.0.engine.seal.keyspace()?;
            self.0.engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
            let role = find_role(&ks, &r.role);
            let role_id = role.as_ref().map(|r| r.id.clone()).ok();
            // The role named decides what a condition-limited administrator may assign.
            let ks =
                self.0.authorize_at(&mut call, Action::RoleAssignmentWrite, &scope, role_id.as_deref(), WRITE).await?;
            let role = role?;
            let principal = resolve(&ks, "assignee", &r.assignee)?;
            let command = Command::CreateRoleAssignment {
                id: self.0.engine.seal.entropy().bytes16(),
                principal: principal.id,
                role_id: role.id,
                scope,
            };
            match self.0.engine.execute(&command, call.client_request().as_ref()).await? {
                Outcome::Assignment(a) => Ok(assignment_message(&ks, &a)),
                _ => Err(ArcaError::internal("an assignment command produced another kind of outcome")),
            }
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_role_assignments(
        &self,
        request: Request<pb::ListRoleAssignmentsRequest>,
    ) -> Result<Response<pb::ListRoleAssignmentsResponse>, Status> {
        let mut call = self.0.begin(&request, "RoleAssignmentList");
        let r = request.into_inner();
        let result = async {
            let scope = scope_of(&r.scope)?;
            let ks = self.0.authorize_at(&mut call, Action::RoleAssignmentRead, &scope, None, WRITE).await?;
            let principal = (!r.assignee.is_empty()).then(|| resolve(&ks, "assignee", &r.assignee)).transpose()?;
            let role = (!r.role.is_empty()).then(|| find_role(&ks, &r.role)).transpose()?;
            let view = ks.recording_view();
            let mut out = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = view.assignments(after.as_deref(), 1000)?;
                for a in &page.items {
                    let keep = scope.contains(&a.scope)
                        && principal.as_ref().is_none_or(|p| p.id == a.principal)
                        && role.as_ref().is_none_or(|r| r.id == a.role_id);
                    if keep {
                        out.push(assignment_message(&ks, a));
                    }
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            Ok(pb::ListRoleAssignmentsResponse { role_assignments: out })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn delete_role_assignment(
        &self,
        request: Request<pb::DeleteRoleAssignmentRequest>,
    ) -> Result<Response<pb::DeleteRoleAssignmentResponse>, Status> {
        let mut call = self.0.begin(&request, "RoleAssignmentDelete");
        let r = request.into_inner();
        let result = async {
            let ks = self.0.engine.seal.keyspace()?;
            self.0.engine.read_barrier(crate::engine::Consistency::Linearizable).await?;
            let assignment = match self.assignment_named(&ks, &r).await {
                Ok(a) => a,
                Err(e) => {
                    // Whether an assignment exists is told only to callers who may delete one of the role
                    // named at the scope named.
                    let scope = scope_of(&r.scope).unwrap_or(Scope::Cluster);
                    let role = find_role(&ks, &r.role).ok().map(|role| role.id);
                    self.0
                        .authorize_at(&mut call, Action::RoleAssignmentDelete, &scope, role.as_deref(), WRITE)
                        .await?;
                    return Err(e);
                }
            };
            self.0
                .authorize_at(
                    &mut call,
                    Action::RoleAssignmentDelete,
                    &assignment.scope,
                    Some(&assignment.role_id),
                    WRITE,
                )
                .await?;
            self.0
                .engine
                .execute(&Command::DeleteRoleAssignment { id: assignment.id }, call.client_request().as_ref())
                .await?;
            Ok(pb::DeleteRoleAssignmentResponse {})
        }
        .await;
        self.0.finish(call, result)
    }
}
