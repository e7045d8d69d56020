//! Role definitions: Azure's built-in Key Vault roles with exactly their published permissions, the
//! Azure control-plane roles Arca needs for vaults and role assignments, Arca's own cluster and
//! identity roles, and custom roles in the JSON shape `az role definition create` takes.

use std::sync::LazyLock;

use arca_types::ArcaError;
use serde::{Deserialize, Serialize};

use crate::action::{check_pattern, ACTIONS, DATA_ACTIONS};
use crate::scope::Scope;

/// Longest role name, in characters (Azure's limit).
pub const ROLE_NAME_CHARS_MAX: usize = 512;
/// Longest role description, in characters (Azure's limit).
pub const ROLE_DESCRIPTION_CHARS_MAX: usize = 2048;
/// Most action patterns one custom role may list, across its four lists.
pub const ROLE_PATTERNS_MAX: usize = 200;
/// Most assignable scopes one custom role may list (Azure allows 2,000; a cluster has fewer vaults).
pub const ROLE_ASSIGNABLE_SCOPES_MAX: usize = 2000;

/// A role: what it permits, and where it may be assigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDefinition {
    /// A GUID: Azure's own for Azure's roles.
    pub id: String,
    pub name: String,
    pub description: String,
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
    pub assignable_scopes: Vec<Scope>,
    pub custom: bool,
    /// Azure's condition on Key Vault Data Access Administrator: the role assignments it writes or
    /// deletes may only name these roles.
    pub assignable_roles: Option<Vec<String>>,
}

const ONLY_RBAC: &str = " Only works for key vaults that use the 'Azure role-based access control' permission model.";

/// The control actions Azure's Key Vault roles share (Arca checks only those it knows).
const COMMON_ACTIONS: &[&str] = &[
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
];

pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
pub const KEY_VAULT_READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
pub const KEY_VAULT_SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
pub const KEY_VAULT_CERTIFICATES_OFFICER: &str = "a4417e6f-fecd-4de8-b567-7b0420556985";
pub const KEY_VAULT_CERTIFICATE_USER: &str = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba";
pub const KEY_VAULT_CRYPTO_OFFICER: &str = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603";
pub const KEY_VAULT_CRYPTO_USER: &str = "12338af0-0e69-4776-bea7-57ae8d297424";
pub const KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER: &str = "e147488a-f6f5-4113-8e2d-b22465e65bf6";
pub const KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER: &str = "08bbd89e-9f13-488c-ac41-acfcb10c90ab";
pub const KEY_VAULT_DATA_ACCESS_ADMINISTRATOR: &str = "8b54135c-b56d-4d72-a534-26097cfdc8d8";
pub const KEY_VAULT_CONTRIBUTOR: &str = "f25e0fa2-a7c8-4377-a976-54943a77a395";
pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
/// Arca's own roles (ids minted for Arca).
pub const CLUSTER_OPERATOR: &str = "6f1c2b0e-3d4a-4c5b-9e8f-a1b2c3d4e5f6";
pub const IDENTITY_ADMINISTRATOR: &str = "7a2d3c1f-4e5b-4d6c-8f9a-b2c3d4e5f6a7";

fn v(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[allow(clippy::too_many_arguments)]
fn built_in(
    id: &str,
    name: &str,
    description: &str,
    actions: &[&str],
    not_actions: &[&str],
    data_actions: &[&str],
    assignable_roles: Option<&[&str]>,
) -> RoleDefinition {
    RoleDefinition {
        id: id.to_owned(),
        name: name.to_owned(),
        description: description.to_owned(),
        actions: v(actions),
        not_actions: v(not_actions),
        data_actions: v(data_actions),
        not_data_actions: Vec::new(),
        assignable_scopes: vec![Scope::Cluster],
        custom: false,
        assignable_roles: assignable_roles.map(v),
    }
}

const KV: &str = "Microsoft.KeyVault/vaults";

static BUILT_IN: LazyLock<Vec<RoleDefinition>> = LazyLock::new(|| {
    let with_note = |d: &str| format!("{d}{ONLY_RBAC}");
    let crypto_user: Vec<String> = [
        "keys/read",
        "keys/update/action",
        "keys/backup/action",
        "keys/encrypt/action",
        "keys/decrypt/action",
        "keys/wrap/action",
        "keys/unwrap/action",
        "keys/sign/action",
        "keys/verify/action",
    ]
    .iter()
    .map(|a| format!("{KV}/{a}"))
    .collect();
    let crypto_user: Vec<&str> = crypto_user.iter().map(String::as_str).collect();
    vec![
        built_in(KEY_VAULT_ADMINISTRATOR, "Key Vault Administrator",
            &with_note("Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments."),
            COMMON_ACTIONS, &[], &["Microsoft.KeyVault/vaults/*"], None),
        built_in(KEY_VAULT_READER, "Key Vault Reader",
            &with_note("Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material."),
            COMMON_ACTIONS, &[], &["Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"], None),
        built_in(KEY_VAULT_SECRETS_OFFICER, "Key Vault Secrets Officer",
            &with_note("Perform any action on the secrets of a key vault, except manage permissions."),
            COMMON_ACTIONS, &[], &["Microsoft.KeyVault/vaults/secrets/*"], None),
        built_in(KEY_VAULT_SECRETS_USER, "Key Vault Secrets User", &with_note("Read secret contents."), &[], &[],
            &["Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"], None),
        built_in(KEY_VAULT_CERTIFICATES_OFFICER, "Key Vault Certificates Officer",
            &with_note("Perform any action on the certificates of a key vault, except manage permissions."),
            COMMON_ACTIONS, &[],
            &["Microsoft.KeyVault/vaults/certificatecas/*", "Microsoft.KeyVault/vaults/certificates/*", "Microsoft.KeyVault/vaults/certificatecontacts/write"], None),
        built_in(KEY_VAULT_CERTIFICATE_USER, "Key Vault Certificate User", &with_note("Read certificate contents."), &[], &[],
            &["Microsoft.KeyVault/vaults/certificates/read", "Microsoft.KeyVault/vaults/secrets/getSecret/action",
              "Microsoft.KeyVault/vaults/secrets/readMetadata/action", "Microsoft.KeyVault/vaults/keys/read"], None),
        built_in(KEY_VAULT_CRYPTO_OFFICER, "Key Vault Crypto Officer",
            &with_note("Perform any action on the keys of a key vault, except manage permissions."),
            COMMON_ACTIONS, &[], &["Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"], None),
        built_in(KEY_VAULT_CRYPTO_USER, "Key Vault Crypto User", &with_note("Perform cryptographic operations using keys."),
            &[], &[], &crypto_user, None),
        built_in(KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, "Key Vault Crypto Service Encryption User",
            &with_note("Read metadata of keys and perform wrap/unwrap operations."),
            &["Microsoft.EventGrid/eventSubscriptions/write", "Microsoft.EventGrid/eventSubscriptions/read", "Microsoft.EventGrid/eventSubscriptions/delete"],
            &[], &["Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action", "Microsoft.KeyVault/vaults/keys/unwrap/action"], None),
        built_in(KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER, "Key Vault Crypto Service Release User", &with_note("Release keys."),
            &[], &[], &["Microsoft.KeyVault/vaults/keys/release/action"], None),
        built_in(KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, "Key Vault Data Access Administrator",
            "Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles. Includes an ABAC condition to constrain role assignments.",
            &["Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization/roleAssignments/delete", "Microsoft.Authorization/*/read",
              "Microsoft.Resources/deployments/*", "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Resources/subscriptions/read",
              "Microsoft.Management/managementGroups/read", "Microsoft.Resources/deployments/*", "Microsoft.Support/*", "Microsoft.KeyVault/vaults/*/read"],
            &[], &[],
            Some(&[KEY_VAULT_ADMINISTRATOR, KEY_VAULT_CERTIFICATES_OFFICER, KEY_VAULT_CRYPTO_OFFICER, KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                   KEY_VAULT_CRYPTO_USER, KEY_VAULT_READER, KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER])),
        built_in(KEY_VAULT_CONTRIBUTOR, "Key Vault Contributor", "Lets you manage key vaults, but not access to them.",
            &["Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*", "Microsoft.KeyVault/*", "Microsoft.Resources/deployments/*",
              "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*"],
            &["Microsoft.KeyVault/locations/deletedVaults/purge/action", "Microsoft.KeyVault/hsmPools/*", "Microsoft.KeyVault/managedHsms/*"],
            &[], None),
        built_in(USER_ACCESS_ADMINISTRATOR, "User Access Administrator", "Lets you manage user access to Azure resources.",
            &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], &[], &[], None),
        built_in(CLUSTER_OPERATOR, "Cluster Operator",
            "Arca: run the cluster (status, join tokens, removing nodes, forcing a failover that loses the writes the secondary lacks, listing the divergence a displaced primary filed, seal, keyring rotation, tokens) and draw random bytes. Cannot read or change anything in a vault (nor export a divergence record's secret values), or manage access.",
            &["Arca/cluster/*", "Arca/rng/action"], &["Arca/cluster/divergence/export/action"], &[], None),
        built_in(IDENTITY_ADMINISTRATOR, "Identity Administrator",
            "Arca: create, read and delete users, groups, service principals and managed identities, and reset their credentials. Cannot assign roles.",
            &["Arca/principals/*"], &[], &[], None),
    ]
});

/// Every built-in role.
pub fn built_in_roles() -> &'static [RoleDefinition] {
    &BUILT_IN
}

/// A built-in role by id or by name (either case).
pub fn find_built_in(id_or_name: &str) -> Option<&'static RoleDefinition> {
    BUILT_IN.iter().find(|r| r.id.eq_ignore_ascii_case(id_or_name) || r.name.eq_ignore_ascii_case(id_or_name))
}

/// A custom role as `az role definition create --role-definition` takes it. Keys may start with an
/// upper- or lower-case letter, as the Azure CLI accepts both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomRoleJson {
    #[serde(alias = "Name", alias = "roleName")]
    name: String,
    #[serde(default, alias = "Id")]
    id: Option<String>,
    #[serde(default, alias = "IsCustom")]
    #[allow(dead_code)]
    is_custom: Option<bool>,
    #[serde(default, alias = "Description")]
    description: String,
    #[serde(default, alias = "Actions")]
    actions: Vec<String>,
    #[serde(default, alias = "NotActions", alias = "notActions")]
    not_actions: Vec<String>,
    #[serde(default, alias = "DataActions", alias = "dataActions")]
    data_actions: Vec<String>,
    #[serde(default, alias = "NotDataActions", alias = "notDataActions")]
    not_data_actions: Vec<String>,
    #[serde(alias = "AssignableScopes", alias = "assignableScopes")]
    assignable_scopes: Vec<String>,
}

fn invalid(why: impl std::fmt::Display) -> ArcaError {
    ArcaError::bad_parameter("role_definition", format!("the role definition is not valid: {why}"))
}

fn check_patterns(list: &[String], known: &[&str], what: &str) -> Result<(), ArcaError> {
    for pattern in list {
        if pattern.matches('*').count() > 1 {
            return Err(invalid(format_args!("{what} '{pattern}' has more than one wildcard")));
        }
        check_pattern(pattern, known).map_err(|e| invalid(format_args!("{what}: {e}")))?;
    }
    Ok(())
}

/// Parses and validates a custom role from its JSON. `id` is the GUID minted for a new role (one in
/// the JSON must be a GUID and wins, so an update keeps its id). Every action must be one Arca
/// knows, data actions and control actions each in their own lists; names of built-in roles are taken.
pub fn parse_custom(json: &str, id: &str) -> Result<RoleDefinition, ArcaError> {
    let raw: CustomRoleJson = serde_json::from_str(json).map_err(invalid)?;
    let name = raw.name.trim().to_owned();
    let chars = name.chars().count();
    if chars == 0 || chars > ROLE_NAME_CHARS_MAX {
        return Err(invalid(format_args!("Name must have 1-{ROLE_NAME_CHARS_MAX} characters, it has {chars}")));
    }
    arca_types::display_name::check_characters("Name", &name).map_err(|e| invalid(e.message))?;
    let key = arca_types::display_name::comparison_key(&name);
    if built_in_roles().iter().any(|r| arca_types::display_name::comparison_key(&r.name) == key) {
        return Err(invalid(format_args!("'{name}' is (or looks like) the name of a built-in role")));
    }
    if raw.description.chars().count() > ROLE_DESCRIPTION_CHARS_MAX {
        return Err(invalid(format_args!("Description may have at most {ROLE_DESCRIPTION_CHARS_MAX} characters")));
    }
    let patterns = raw.actions.len() + raw.not_actions.len() + raw.data_actions.len() + raw.not_data_actions.len();
    if patterns > ROLE_PATTERNS_MAX {
        return Err(invalid(format_args!("at most {ROLE_PATTERNS_MAX} actions are allowed, it lists {patterns}")));
    }
    if raw.actions.is_empty() && raw.data_actions.is_empty() {
        return Err(invalid("it grants nothing: list at least one of Actions or DataActions"));
    }
    check_patterns(&raw.actions, ACTIONS, "Actions")?;
    check_patterns(&raw.not_actions, ACTIONS, "NotActions")?;
    check_patterns(&raw.data_actions, DATA_ACTIONS, "DataActions")?;
    check_patterns(&raw.not_data_actions, DATA_ACTIONS, "NotDataActions")?;
    if raw.assignable_scopes.is_empty() || raw.assignable_scopes.len() > ROLE_ASSIGNABLE_SCOPES_MAX {
        return Err(invalid(format_args!("AssignableScopes must list 1-{ROLE_ASSIGNABLE_SCOPES_MAX} scopes")));
    }
    let assignable_scopes =
        raw.assignable_scopes.iter().map(|s| Scope::parse(s.trim())).collect::<Result<Vec<_>, _>>()?;
    let id = match raw.id {
        Some(given) => parse_guid(&given).ok_or_else(|| invalid("Id must be a GUID"))?,
        None => id.to_owned(),
    };
    if find_built_in(&id).is_some() {
        return Err(invalid("Id is a built-in role's"));
    }
    Ok(RoleDefinition {
        id,
        name,
        description: raw.description,
        actions: raw.actions,
        not_actions: raw.not_actions,
        data_actions: raw.data_actions,
        not_data_actions: raw.not_data_actions,
        assignable_scopes,
        custom: true,
        assignable_roles: None,
    })
}

/// The lowercase form of a GUID (`8-4-4-4-12` hex digits), or `None`.
pub fn parse_guid(raw: &str) -> Option<String> {
    let raw = raw.trim().rsplit('/').next()?;
    let groups: Vec<&str> = raw.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups.iter().zip(shape).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    ok.then(|| raw.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_have_unique_ids_and_names_and_guid_ids() {
        let mut ids = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for r in built_in_roles() {
            assert_eq!(parse_guid(&r.id).as_deref(), Some(r.id.as_str()), "{}", r.name);
            assert!(ids.insert(r.id.clone()) && names.insert(r.name.to_ascii_lowercase()), "{}", r.name);
        }
        assert_eq!(find_built_in("key vault secrets user").unwrap().id, KEY_VAULT_SECRETS_USER);
        assert_eq!(find_built_in("4633458B-17DE-408A-B874-0445C86B69E6").unwrap().name, "Key Vault Secrets User");
    }

    #[test]
    fn a_custom_role_in_azure_cli_shape_parses() {
        let json = r#"{"Name": "Secret Reader", "IsCustom": true, "Description": "reads",
            "Actions": [], "NotActions": [],
            "DataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
            "NotDataActions": ["Microsoft.KeyVault/vaults/secrets/purge/action"],
            "AssignableScopes": ["/vaults/demo"]}"#;
        let role = parse_custom(json, "11111111-2222-3333-4444-555555555555").unwrap();
        assert!(role.custom && role.name == "Secret Reader");
        assert_eq!(role.assignable_scopes, vec![Scope::parse("/vaults/demo").unwrap()]);
        let camel =
            r#"{"name": "x", "dataActions": ["Microsoft.KeyVault/vaults/keys/read"], "assignableScopes": ["/"]}"#;
        assert!(parse_custom(camel, "11111111-2222-3333-4444-555555555555").is_ok());
    }

    #[test]
    fn bad_custom_roles_are_refused_naming_what_is_wrong() {
        let id = "11111111-2222-3333-4444-555555555555";
        let cases = [
            (r#"{"Name": "Key Vault Аdministrator", "DataActions": ["*"], "AssignableScopes": ["/"]}"#, "built-in"),
            (r#"{"Name": "admin\u202eistrator", "DataActions": ["*"], "AssignableScopes": ["/"]}"#, "not allowed"),
            (
                r#"{"Name": "x", "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecrets/action"], "AssignableScopes": ["/"]}"#,
                "matches no action",
            ),
            (r#"{"Name": "x", "DataActions": ["Arca/cluster/*"], "AssignableScopes": ["/"]}"#, "matches no action"),
            (
                r#"{"Name": "x", "Actions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"], "AssignableScopes": ["/"]}"#,
                "matches no action",
            ),
            (r#"{"Name": "x", "DataActions": ["*/secrets/*"], "AssignableScopes": ["/"]}"#, "more than one wildcard"),
            (r#"{"Name": "x", "AssignableScopes": ["/"]}"#, "grants nothing"),
            (r#"{"Name": "x", "DataActions": ["*"], "AssignableScopes": []}"#, "AssignableScopes"),
            (r#"{"Name": "x", "DataActions": ["*"], "AssignableScopes": ["/subscriptions/1"]}"#, "scope"),
            (r#"{"Name": "Key Vault Reader", "DataActions": ["*"], "AssignableScopes": ["/"]}"#, "built-in"),
            (r#"{"Name": "", "DataActions": ["*"], "AssignableScopes": ["/"]}"#, "1-512"),
            (r#"{"Name": "x", "DataActions": ["*"], "AssignableScopes": ["/"], "Condition": "true"}"#, "unknown field"),
            (r#"{"Name": "x", "Id": "nope", "DataActions": ["*"], "AssignableScopes": ["/"]}"#, "GUID"),
            (
                r#"{"Name": "x", "Id": "00482a5a-887f-4fb3-b363-3b7fe8e74483", "DataActions": ["*"], "AssignableScopes": ["/"]}"#,
                "built-in",
            ),
        ];
        for (json, expected) in cases {
            let e = parse_custom(json, id).unwrap_err();
            assert!(e.message.contains(expected), "{json}: {}", e.message);
        }
        let long = format!(
            r#"{{"Name": "{}", "DataActions": ["*"], "AssignableScopes": ["/"]}}"#,
            "n".repeat(ROLE_NAME_CHARS_MAX)
        );
        assert!(parse_custom(&long, id).is_ok());
        let longer = format!(
            r#"{{"Name": "{}", "DataActions": ["*"], "AssignableScopes": ["/"]}}"#,
            "n".repeat(ROLE_NAME_CHARS_MAX + 1)
        );
        assert!(parse_custom(&longer, id).is_err());
    }
}
