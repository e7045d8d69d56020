//! The vocabulary of actions, with Azure's names, and Azure's wildcard matching of action patterns.

/// Every data action Arca checks (Azure's names under `Microsoft.KeyVault/vaults/`). A custom role's
/// `dataActions` pattern must match at least one of them.
pub const DATA_ACTIONS: &[&str] = &[
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "Microsoft.KeyVault/vaults/secrets/setSecret/action",
    "Microsoft.KeyVault/vaults/secrets/update/action",
    "Microsoft.KeyVault/vaults/secrets/delete",
    "Microsoft.KeyVault/vaults/secrets/backup/action",
    "Microsoft.KeyVault/vaults/secrets/restore/action",
    "Microsoft.KeyVault/vaults/secrets/recover/action",
    "Microsoft.KeyVault/vaults/secrets/purge/action",
    "Microsoft.KeyVault/vaults/keys/read",
    "Microsoft.KeyVault/vaults/keys/create/action",
    "Microsoft.KeyVault/vaults/keys/import/action",
    "Microsoft.KeyVault/vaults/keys/update/action",
    "Microsoft.KeyVault/vaults/keys/delete",
    "Microsoft.KeyVault/vaults/keys/backup/action",
    "Microsoft.KeyVault/vaults/keys/restore/action",
    "Microsoft.KeyVault/vaults/keys/recover/action",
    "Microsoft.KeyVault/vaults/keys/purge/action",
    "Microsoft.KeyVault/vaults/keys/encrypt/action",
    "Microsoft.KeyVault/vaults/keys/decrypt/action",
    "Microsoft.KeyVault/vaults/keys/wrap/action",
    "Microsoft.KeyVault/vaults/keys/unwrap/action",
    "Microsoft.KeyVault/vaults/keys/sign/action",
    "Microsoft.KeyVault/vaults/keys/verify/action",
    "Microsoft.KeyVault/vaults/keys/release/action",
    "Microsoft.KeyVault/vaults/keys/rotate/action",
    "Microsoft.KeyVault/vaults/keyrotationpolicies/read",
    "Microsoft.KeyVault/vaults/keyrotationpolicies/write",
    "Microsoft.KeyVault/vaults/certificates/read",
    "Microsoft.KeyVault/vaults/certificates/create/action",
    "Microsoft.KeyVault/vaults/certificates/import/action",
    "Microsoft.KeyVault/vaults/certificates/update/action",
    "Microsoft.KeyVault/vaults/certificates/delete",
    "Microsoft.KeyVault/vaults/certificates/backup/action",
    "Microsoft.KeyVault/vaults/certificates/restore/action",
    "Microsoft.KeyVault/vaults/certificates/recover/action",
    "Microsoft.KeyVault/vaults/certificates/purge/action",
    "Microsoft.KeyVault/vaults/certificatecas/read",
    "Microsoft.KeyVault/vaults/certificatecas/write",
    "Microsoft.KeyVault/vaults/certificatecas/delete",
    "Microsoft.KeyVault/vaults/certificatecontacts/read",
    "Microsoft.KeyVault/vaults/certificatecontacts/write",
];

/// Every control action Arca checks: managing vaults (Azure's management-plane names), role
/// assignments and definitions, principals, and the cluster itself (Arca's own, under `Arca/`). A
/// custom role's `actions` pattern must match at least one of them.
pub const ACTIONS: &[&str] = &[
    "Microsoft.KeyVault/vaults/read",
    "Microsoft.KeyVault/vaults/write",
    "Microsoft.KeyVault/vaults/delete",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/deletedVaults/purge/action",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Authorization/roleDefinitions/read",
    "Microsoft.Authorization/roleDefinitions/write",
    "Microsoft.Authorization/roleDefinitions/delete",
    "Arca/principals/read",
    "Arca/principals/write",
    "Arca/principals/delete",
    "Arca/principals/credentials/write",
    "Arca/cluster/read",
    "Arca/cluster/joinTokens/write",
    "Arca/cluster/nodes/delete",
    "Arca/cluster/failover/action",
    // Divergence records: listing and showing name objects and versions; exporting reveals the
    // secret values a displaced primary held.
    "Arca/cluster/divergence/list/action",
    "Arca/cluster/divergence/export/action",
    "Arca/cluster/seal/action",
    "Arca/cluster/keyring/rotate/action",
    // A listing of credentials is an `/action`, as Azure names listKeys, so that `*/read` (Reader,
    // User Access Administrator) does not reach it.
    "Arca/cluster/tokens/list/action",
    "Arca/cluster/tokens/delete",
    "Arca/rng/action",
];

/// What a request asks to do: a data action on the contents of a vault, or a control action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    Data(&'a str),
    Control(&'a str),
}

impl<'a> Operation<'a> {
    pub fn name(&self) -> &'a str {
        match *self {
            Operation::Data(a) | Operation::Control(a) => a,
        }
    }
}

/// Azure's wildcard matching: `*` stands for any run of characters (`/` included) and may appear
/// anywhere (`*`, `Microsoft.KeyVault/vaults/secrets/*`, `*/read`); letters compare without case.
pub fn matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.as_bytes(), action.as_bytes());
    // Iterative glob with backtracking to the last star: linear in practice, never recursive.
    let (mut pi, mut ai) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ai < a.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ai));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&a[ai]) {
            pi += 1;
            ai += 1;
        } else if let Some((sp, sa)) = star {
            pi = sp + 1;
            ai = sa + 1;
            star = Some((sp, sa + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Checks a role's action pattern: it must name (or match) at least one action of `known`. An
/// unknown action is refused rather than kept, so a typo never silently grants nothing (or, once
/// the action exists, something nobody reviewed).
pub fn check_pattern(pattern: &str, known: &[&str]) -> Result<(), String> {
    if pattern.is_empty() || pattern.len() > 256 {
        return Err("an action pattern must have 1-256 characters".to_owned());
    }
    if !pattern.bytes().all(|b| b.is_ascii_alphanumeric() || b"*/._-".contains(&b)) {
        return Err(format!("'{pattern}' may contain only letters, digits, '/', '.', '_', '-' and '*'"));
    }
    if known.iter().any(|a| matches(pattern, a)) {
        Ok(())
    } else {
        Err(format!("'{pattern}' matches no action Arca knows"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_azure_documents() {
        assert!(matches("*", "Microsoft.KeyVault/vaults/secrets/getSecret/action"));
        assert!(matches("Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/getSecret/action"));
        assert!(!matches("Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/keys/read"));
        assert!(matches("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read"));
        assert!(matches("*/read", "Microsoft.KeyVault/vaults/keyrotationpolicies/read"));
        assert!(!matches("*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"));
        assert!(matches(
            "microsoft.keyvault/VAULTS/secrets/GETSECRET/action",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action"
        ));
        assert!(!matches(
            "Microsoft.KeyVault/vaults/secrets/getSecret",
            "Microsoft.KeyVault/vaults/secrets/getSecret/action"
        ));
        assert!(!matches("", "x"));
        assert!(matches("a*b*c", "aXXbYYc") && !matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn a_pattern_must_name_a_known_action() {
        assert!(check_pattern("Microsoft.KeyVault/vaults/secrets/*", DATA_ACTIONS).is_ok());
        assert!(check_pattern("Microsoft.KeyVault/vaults/secrets/getSecrets/action", DATA_ACTIONS).is_err());
        assert!(check_pattern("Arca/cluster/*", DATA_ACTIONS).is_err(), "a control action is no data action");
        assert!(check_pattern("Arca/cluster/*", ACTIONS).is_ok());
        assert!(check_pattern("Microsoft.KeyVault/vaults/secrets/get Secret", DATA_ACTIONS).is_err());
    }

    #[test]
    fn every_known_action_is_well_formed_and_listed_once() {
        for list in [DATA_ACTIONS, ACTIONS] {
            let mut seen = std::collections::BTreeSet::new();
            for a in list {
                assert!(check_pattern(a, list).is_ok(), "{a}");
                assert!(seen.insert(a.to_ascii_lowercase()), "{a} twice");
            }
        }
        assert!(DATA_ACTIONS.iter().all(|a| a.starts_with("Microsoft.KeyVault/vaults/")));
    }
}
