//! Role-based access control, pure: Azure Key Vault's actions and built-in roles, scopes, custom role
//! definitions, and the evaluator that decides whether a principal may perform an action at a scope.
//!
//! **Architecture Invariant:** no IO, no clock, no crypto, no knowledge of how principals or
//! assignments are stored. The caller hands [`evaluate`] every assignment that could apply and gets a
//! [`Decision`] naming the assignment that allowed the request, or a refusal. Deny by default: an
//! action no assignment grants is refused.
//!
//! Azure's two families of actions stay apart: `dataActions` (what a role may do to the contents of a
//! vault: secrets, keys, certificates) only ever match data actions, and `actions` (managing vaults,
//! role assignments and the cluster) only ever match control actions, so a role granting
//! `Microsoft.KeyVault/vaults/*` data actions never manages the cluster.
#![forbid(unsafe_code)]

pub mod action;
pub mod evaluate;
pub mod role;
pub mod scope;

pub use action::{Operation, ACTIONS, DATA_ACTIONS};
pub use evaluate::{evaluate, AccessRequest, Assignment, Decision};
pub use role::{built_in_roles, RoleDefinition};
pub use scope::{ObjectKind, Scope};
