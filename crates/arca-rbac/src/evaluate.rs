//! The decision: may these principals perform this operation at this scope?

use crate::action::{matches, Operation};
use crate::role::RoleDefinition;
use crate::scope::Scope;

/// A role given to a principal (a user, group, service principal or managed identity) at a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub id: String,
    pub principal_id: String,
    pub role_id: String,
    pub scope: Scope,
}

/// One request to decide.
#[derive(Debug, Clone)]
pub struct AccessRequest<'a> {
    /// The caller's principal id and the ids of every group it belongs to.
    pub principals: &'a [String],
    pub operation: Operation<'a>,
    pub scope: &'a Scope,
    /// For writing or deleting a role assignment: the role it names (roles whose definition limits
    /// which roles they may assign check it).
    pub assigned_role: Option<&'a str>,
}

/// What was decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The assignment (and its role) that allowed the request.
    Allowed { assignment_id: String, role_id: String, role_name: String },
    /// No assignment allows it.
    Denied,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Whether `role` grants `operation` (and, for role assignments, may name `assigned_role`).
pub fn role_permits(role: &RoleDefinition, operation: Operation<'_>, assigned_role: Option<&str>) -> bool {
    let (grants, subtracts) = match operation {
        Operation::Data(_) => (&role.data_actions, &role.not_data_actions),
        Operation::Control(_) => (&role.actions, &role.not_actions),
    };
    let action = operation.name();
    let permitted = grants.iter().any(|p| matches(p, action)) && !subtracts.iter().any(|p| matches(p, action));
    // Azure's condition constrains writing and deleting assignments only; reads stay as granted.
    let constrained =
        ["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(action));
    match (&role.assignable_roles, assigned_role) {
        (Some(allowed), Some(target)) if constrained => {
            permitted && allowed.iter().any(|id| id.eq_ignore_ascii_case(target))
        }
        (Some(_), None) if constrained => false,
        _ => permitted,
    }
}

/// Decides `request` against `assignments`, looking roles up with `role`. Deny by default. Of the
/// assignments that allow the request, the one at the most specific scope is named (then the lowest
/// id), so the audit record says the same thing on every node.
pub fn evaluate(
    request: &AccessRequest<'_>,
    assignments: &[Assignment],
    role: &dyn Fn(&str) -> Option<RoleDefinition>,
) -> Decision {
    let mut candidates: Vec<&Assignment> = assignments
        .iter()
        .filter(|a| request.principals.iter().any(|p| p.eq_ignore_ascii_case(&a.principal_id)))
        .filter(|a| a.scope.contains(request.scope))
        .collect();
    candidates.sort_by(|a, b| b.scope.depth().cmp(&a.scope.depth()).then_with(|| a.id.cmp(&b.id)));
    for assignment in candidates {
        let Some(definition) = role(&assignment.role_id) else { continue };
        if role_permits(&definition, request.operation, request.assigned_role) {
            return Decision::Allowed {
                assignment_id: assignment.id.clone(),
                role_id: definition.id.clone(),
                role_name: definition.name.clone(),
            };
        }
    }
    Decision::Denied
}
