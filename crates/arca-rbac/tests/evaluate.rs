//! The evaluator against Azure's published roles: every built-in role × every action Arca checks,
//! compared with what Azure's role table says, and the rules of scopes, subtraction and conditions.

use arca_rbac::role::*;
use arca_rbac::{
    evaluate, AccessRequest, Assignment, Decision, Operation, RoleDefinition, Scope, ACTIONS, DATA_ACTIONS,
};

fn role(id: &str) -> Option<RoleDefinition> {
    find_built_in(id).cloned()
}

fn assignment(id: &str, principal: &str, role_id: &str, scope: &str) -> Assignment {
    Assignment {
        id: id.into(),
        principal_id: principal.into(),
        role_id: role_id.into(),
        scope: Scope::parse(scope).unwrap(),
    }
}

fn allowed(assignments: &[Assignment], principals: &[&str], op: Operation<'_>, scope: &str) -> bool {
    let principals: Vec<String> = principals.iter().map(|p| p.to_string()).collect();
    let scope = Scope::parse(scope).unwrap();
    let request = AccessRequest { principals: &principals, operation: op, scope: &scope, assigned_role: None };
    evaluate(&request, assignments, &role).is_allowed()
}

/// The data actions each role allows, written out from Azure's table (not derived from the patterns).
fn expected(role_id: &str) -> Vec<&'static str> {
    let secrets_user = ["secrets/readMetadata/action", "secrets/getSecret/action"];
    let key_read = ["keys/read"];
    let all_secrets = [
        "secrets/readMetadata/action",
        "secrets/getSecret/action",
        "secrets/setSecret/action",
        "secrets/update/action",
        "secrets/delete",
        "secrets/backup/action",
        "secrets/restore/action",
        "secrets/recover/action",
        "secrets/purge/action",
    ];
    let all_keys = [
        "keys/read",
        "keys/create/action",
        "keys/import/action",
        "keys/update/action",
        "keys/delete",
        "keys/backup/action",
        "keys/restore/action",
        "keys/recover/action",
        "keys/purge/action",
        "keys/encrypt/action",
        "keys/decrypt/action",
        "keys/wrap/action",
        "keys/unwrap/action",
        "keys/sign/action",
        "keys/verify/action",
        "keys/release/action",
        "keys/rotate/action",
        "keyrotationpolicies/read",
        "keyrotationpolicies/write",
    ];
    let all_certs = [
        "certificates/read",
        "certificates/create/action",
        "certificates/import/action",
        "certificates/update/action",
        "certificates/delete",
        "certificates/backup/action",
        "certificates/restore/action",
        "certificates/recover/action",
        "certificates/purge/action",
        "certificatecas/read",
        "certificatecas/write",
        "certificatecas/delete",
        "certificatecontacts/write",
    ];
    let list: Vec<&str> = match role_id {
        KEY_VAULT_ADMINISTRATOR => DATA_ACTIONS.iter().map(|a| &a["Microsoft.KeyVault/vaults/".len()..]).collect(),
        KEY_VAULT_READER => vec![
            "secrets/readMetadata/action",
            "keys/read",
            "keyrotationpolicies/read",
            "certificates/read",
            "certificatecas/read",
            "certificatecontacts/read",
        ],
        KEY_VAULT_SECRETS_OFFICER => all_secrets.to_vec(),
        KEY_VAULT_SECRETS_USER => secrets_user.to_vec(),
        KEY_VAULT_CERTIFICATES_OFFICER => all_certs.to_vec(),
        KEY_VAULT_CERTIFICATE_USER => [&["certificates/read"][..], &secrets_user, &key_read].concat(),
        KEY_VAULT_CRYPTO_OFFICER => all_keys.to_vec(),
        KEY_VAULT_CRYPTO_USER => vec![
            "keys/read",
            "keys/update/action",
            "keys/backup/action",
            "keys/encrypt/action",
            "keys/decrypt/action",
            "keys/wrap/action",
            "keys/unwrap/action",
            "keys/sign/action",
            "keys/verify/action",
        ],
        KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER => vec!["keys/read", "keys/wrap/action", "keys/unwrap/action"],
        KEY_VAULT_CRYPTO_SERVICE_RELEASE_USER => vec!["keys/release/action"],
        _ => vec![],
    };
    let mut list: Vec<&str> = list
        .into_iter()
        .map(|a| {
            DATA_ACTIONS.iter().find(|d| d.ends_with(&format!("/vaults/{a}"))).copied().unwrap_or_else(|| panic!("{a}"))
        })
        .collect();
    list.sort();
    list
}

#[test]
fn every_built_in_role_allows_exactly_the_data_actions_of_azures_table() {
    for definition in built_in_roles() {
        let assignments = [assignment("a1", "p", &definition.id, "/vaults/demo")];
        let mut got: Vec<&str> = DATA_ACTIONS
            .iter()
            .copied()
            .filter(|a| allowed(&assignments, &["p"], Operation::Data(a), "/vaults/demo/secrets/x"))
            .collect();
        got.sort();
        assert_eq!(got, expected(&definition.id), "{}", definition.name);
    }
}

#[test]
fn data_roles_never_grant_control_actions_and_control_roles_never_grant_data() {
    let control_only = [
        KEY_VAULT_CONTRIBUTOR,
        USER_ACCESS_ADMINISTRATOR,
        CLUSTER_OPERATOR,
        IDENTITY_ADMINISTRATOR,
        KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
    ];
    for definition in built_in_roles() {
        let assignments = [assignment("a1", "p", &definition.id, "/")];
        for action in ACTIONS.iter().filter(|a| a.starts_with("Arca/")) {
            let got = allowed(&assignments, &["p"], Operation::Control(action), "/");
            let expect = match definition.id.as_str() {
                // Not the divergence's secret values.
                CLUSTER_OPERATOR => {
                    (action.starts_with("Arca/cluster/") && *action != "Arca/cluster/divergence/export/action")
                        || *action == "Arca/rng/action"
                }
                IDENTITY_ADMINISTRATOR => action.starts_with("Arca/principals/"),
                // Azure's `*/read`: every read, and no `/action` listing credentials.
                USER_ACCESS_ADMINISTRATOR => action.ends_with("/read"),
                _ => false,
            };
            assert_eq!(got, expect, "{} / {action}", definition.name);
        }
        if control_only.contains(&definition.id.as_str()) {
            for action in DATA_ACTIONS {
                assert!(
                    !allowed(&assignments, &["p"], Operation::Data(action), "/vaults/vlt/keys/k"),
                    "{} / {action}",
                    definition.name
                );
            }
        }
    }
    // A data action's name is never taken as a control action, even when the strings look alike.
    let admin = [assignment("a1", "p", KEY_VAULT_ADMINISTRATOR, "/")];
    assert!(!allowed(&admin, &["p"], Operation::Control("Microsoft.KeyVault/vaults/write"), "/vaults/vlt"));
    assert!(!allowed(&admin, &["p"], Operation::Control("Arca/cluster/seal/action"), "/"));
    assert!(!allowed(
        &admin,
        &["p"],
        Operation::Control("Microsoft.Authorization/roleAssignments/write"),
        "/vaults/vlt"
    ));
}

#[test]
fn assignments_inherit_downward_only_and_deny_by_default() {
    let a = [
        assignment("vault", "app", KEY_VAULT_SECRETS_USER, "/vaults/one"),
        assignment("object", "other", KEY_VAULT_SECRETS_USER, "/vaults/one/secrets/db"),
    ];
    let get = Operation::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action");
    assert!(allowed(&a, &["app"], get, "/vaults/one/secrets/db"));
    assert!(allowed(&a, &["app"], get, "/vaults/ONE/secrets/anything"));
    assert!(!allowed(&a, &["app"], get, "/vaults/two/secrets/db"), "another vault");
    assert!(allowed(&a, &["other"], get, "/vaults/one/secrets/db"));
    assert!(!allowed(&a, &["other"], get, "/vaults/one/secrets/db2"), "another object");
    assert!(!allowed(&a, &["other"], get, "/vaults/one"), "an object assignment does not reach up to its vault");
    assert!(!allowed(&a, &["other"], get, "/vaults/one/keys/db"), "a key is not a secret of the same name");
    assert!(!allowed(&a, &["nobody"], get, "/vaults/one/secrets/db"));
    assert!(!allowed(&[], &["app"], get, "/vaults/one/secrets/db"));
    // A group's assignment applies to its members (the caller's principals include its groups).
    let g = [assignment("g", "group-1", KEY_VAULT_SECRETS_USER, "/")];
    assert!(allowed(&g, &["app", "group-1"], get, "/vaults/any/secrets/x"));
    assert!(!allowed(&g, &["app"], get, "/vaults/any/secrets/x"));
}

#[test]
fn not_data_actions_subtract_but_never_deny_what_another_role_grants() {
    let custom = arca_rbac::role::parse_custom(
        r#"{"Name": "No purge", "DataActions": ["Microsoft.KeyVault/vaults/secrets/*"],
            "NotDataActions": ["Microsoft.KeyVault/vaults/secrets/purge/action"], "AssignableScopes": ["/"]}"#,
        "99999999-0000-0000-0000-000000000001",
    )
    .unwrap();
    let lookup = |id: &str| if id == custom.id { Some(custom.clone()) } else { role(id) };
    let purge = Operation::Data("Microsoft.KeyVault/vaults/secrets/purge/action");
    let principals = vec!["p".to_string()];
    let scope = Scope::parse("/vaults/vlt/secrets/s").unwrap();
    let request = AccessRequest { principals: &principals, operation: purge, scope: &scope, assigned_role: None };
    let only_custom = [assignment("a", "p", &custom.id, "/")];
    assert_eq!(evaluate(&request, &only_custom, &lookup), Decision::Denied);
    let both = [assignment("a", "p", &custom.id, "/"), assignment("b", "p", KEY_VAULT_SECRETS_OFFICER, "/vaults/vlt")];
    match evaluate(&request, &both, &lookup) {
        Decision::Allowed { assignment_id, role_name, .. } => {
            assert_eq!((assignment_id.as_str(), role_name.as_str()), ("b", "Key Vault Secrets Officer"))
        }
        Decision::Denied => panic!("Secrets Officer grants purge"),
    }
}

#[test]
fn the_most_specific_allowing_assignment_is_named() {
    let a = [
        assignment("z-cluster", "p", KEY_VAULT_SECRETS_USER, "/"),
        assignment("y-vault", "p", KEY_VAULT_SECRETS_USER, "/vaults/vlt"),
        assignment("x-object", "p", KEY_VAULT_SECRETS_USER, "/vaults/vlt/secrets/s"),
    ];
    let principals = vec!["p".to_string()];
    let scope = Scope::parse("/vaults/vlt/secrets/s").unwrap();
    let op = Operation::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action");
    let request = AccessRequest { principals: &principals, operation: op, scope: &scope, assigned_role: None };
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let shuffled: Vec<Assignment> = order.iter().map(|i| a[*i].clone()).collect();
        assert!(
            matches!(evaluate(&request, &shuffled, &role), Decision::Allowed { assignment_id, .. } if assignment_id == "x-object")
        );
    }
}

#[test]
fn the_data_access_administrator_assigns_only_the_eight_roles_azure_lets_it() {
    let a = [assignment("daa", "p", KEY_VAULT_DATA_ACCESS_ADMINISTRATOR, "/vaults/vlt")];
    let principals = vec!["p".to_string()];
    let scope = Scope::parse("/vaults/vlt").unwrap();
    for (action, _) in
        [("Microsoft.Authorization/roleAssignments/write", 0), ("Microsoft.Authorization/roleAssignments/delete", 1)]
    {
        for definition in built_in_roles() {
            let request = AccessRequest {
                principals: &principals,
                operation: Operation::Control(action),
                scope: &scope,
                assigned_role: Some(&definition.id),
            };
            let expect = [
                KEY_VAULT_ADMINISTRATOR,
                KEY_VAULT_CERTIFICATES_OFFICER,
                KEY_VAULT_CRYPTO_OFFICER,
                KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
                KEY_VAULT_CRYPTO_USER,
                KEY_VAULT_READER,
                KEY_VAULT_SECRETS_OFFICER,
                KEY_VAULT_SECRETS_USER,
            ]
            .contains(&definition.id.as_str());
            assert_eq!(evaluate(&request, &a, &role).is_allowed(), expect, "{action} {}", definition.name);
        }
        // Without naming the role it would assign, the condition cannot be met.
        let request = AccessRequest {
            principals: &principals,
            operation: Operation::Control(action),
            scope: &scope,
            assigned_role: None,
        };
        assert!(!evaluate(&request, &a, &role).is_allowed());
    }
    // Its reads are not limited by the condition.
    let read = AccessRequest {
        principals: &principals,
        operation: Operation::Control("Microsoft.Authorization/roleAssignments/read"),
        scope: &scope,
        assigned_role: None,
    };
    assert!(evaluate(&read, &a, &role).is_allowed());
    // And it cannot act outside the vault it was given.
    let elsewhere = Scope::parse("/vaults/wlt").unwrap();
    let request = AccessRequest {
        principals: &principals,
        operation: Operation::Control("Microsoft.Authorization/roleAssignments/write"),
        scope: &elsewhere,
        assigned_role: Some(KEY_VAULT_SECRETS_USER),
    };
    assert!(!evaluate(&request, &a, &role).is_allowed());
}
