//! Where a role assignment applies: the whole cluster (`/`), one vault (`/vaults/{vault}`) or one
//! object in it (`/vaults/{vault}/secrets/{name}`, `.../keys/{name}`, `.../certificates/{name}`).
//! An assignment at a scope applies to everything below it.

use arca_types::{ArcaError, ObjectName, VaultName};
use serde::{Deserialize, Serialize};

/// The kinds of object a scope can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    Secrets,
    Keys,
    Certificates,
}

impl ObjectKind {
    pub fn segment(self) -> &'static str {
        match self {
            ObjectKind::Secrets => "secrets",
            ObjectKind::Keys => "keys",
            ObjectKind::Certificates => "certificates",
        }
    }

    fn parse(segment: &str) -> Option<Self> {
        match segment.to_ascii_lowercase().as_str() {
            "secrets" => Some(ObjectKind::Secrets),
            "keys" => Some(ObjectKind::Keys),
            "certificates" => Some(ObjectKind::Certificates),
            _ => None,
        }
    }
}

/// A scope, with names in their canonical (lowercase) form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    Cluster,
    Vault(VaultName),
    Object { vault: VaultName, kind: ObjectKind, name: String },
}

fn bad_scope(raw: &str) -> ArcaError {
    let shown: String = raw.chars().take(64).collect();
    ArcaError::bad_parameter(
        "scope",
        format!(
            "scope '{shown}' is not one Arca knows; use '/', '/vaults/NAME' or '/vaults/NAME/secrets|keys|certificates/NAME'"
        ),
    )
}

impl Scope {
    /// Parses `/`, `/vaults/{vault}` or `/vaults/{vault}/{secrets|keys|certificates}/{name}`. Names
    /// are validated as the API validates them and kept lowercase: `/vaults/Demo` is `/vaults/demo`.
    pub fn parse(raw: &str) -> Result<Scope, ArcaError> {
        if raw == "/" {
            return Ok(Scope::Cluster);
        }
        let rest = raw.strip_prefix('/').ok_or_else(|| bad_scope(raw))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [vaults, vault] if vaults.eq_ignore_ascii_case("vaults") => Ok(Scope::Vault(VaultName::parse(vault)?)),
            [vaults, vault, kind, name] if vaults.eq_ignore_ascii_case("vaults") => {
                let kind = ObjectKind::parse(kind).ok_or_else(|| bad_scope(raw))?;
                let name = ObjectName::parse("scope", name)?;
                Ok(Scope::Object { vault: VaultName::parse(vault)?, kind, name: name.canonical() })
            }
            _ => Err(bad_scope(raw)),
        }
    }

    /// The scope of one object.
    pub fn object(vault: &VaultName, kind: ObjectKind, name: &ObjectName) -> Scope {
        Scope::Object { vault: vault.clone(), kind, name: name.canonical() }
    }

    /// Whether an assignment at `self` applies at `other`: `self` is `other` or above it.
    pub fn contains(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::Cluster, _) => true,
            (Scope::Vault(a), Scope::Vault(b)) => a == b,
            (Scope::Vault(a), Scope::Object { vault, .. }) => a == vault,
            (Scope::Object { .. }, Scope::Object { .. }) => self == other,
            _ => false,
        }
    }

    /// How deep the scope is: 0 for the cluster, 1 for a vault, 2 for an object.
    pub fn depth(&self) -> u8 {
        match self {
            Scope::Cluster => 0,
            Scope::Vault(_) => 1,
            Scope::Object { .. } => 2,
        }
    }

    pub fn vault(&self) -> Option<&VaultName> {
        match self {
            Scope::Cluster => None,
            Scope::Vault(v) | Scope::Object { vault: v, .. } => Some(v),
        }
    }
}

impl Scope {
    /// The scope as error messages show it: an object's name, which may be sensitive, is left out.
    pub fn redacted(&self) -> String {
        match self {
            Scope::Object { vault, kind, .. } => format!("/vaults/{vault}/{}/<name>", kind.segment()),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Cluster => f.write_str("/"),
            Scope::Vault(v) => write!(f, "/vaults/{v}"),
            Scope::Object { vault, kind, name } => write!(f, "/vaults/{vault}/{}/{name}", kind.segment()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_print_and_inherit_downward() {
        let cluster = Scope::parse("/").unwrap();
        let vault = Scope::parse("/vaults/Demo").unwrap();
        let secret = Scope::parse("/VAULTS/demo/Secrets/DB-Password").unwrap();
        let other = Scope::parse("/vaults/demo/keys/db-password").unwrap();
        assert_eq!(vault.to_string(), "/vaults/demo");
        assert_eq!(secret.to_string(), "/vaults/demo/secrets/db-password");
        assert!(cluster.contains(&secret) && vault.contains(&secret) && secret.contains(&secret));
        assert!(!secret.contains(&vault) && !secret.contains(&other) && !vault.contains(&cluster));
        assert!(!Scope::parse("/vaults/demo2").unwrap().contains(&secret));
        assert_eq!((cluster.depth(), vault.depth(), secret.depth()), (0, 1, 2));
    }

    #[test]
    fn malformed_scopes_are_refused_with_the_shapes_that_work() {
        for bad in [
            "",
            "vaults/demo",
            "/vaults",
            "/vaults/",
            "/vaults/demo/",
            "/vaults/demo/secrets",
            "/vaults/demo/blobs/x",
            "/vaults/demo/secrets/x/y",
            "/vaults/d/secrets/x",
            "/vaults/demo/secrets/bad_name",
            "//",
            "/subscriptions/x",
        ] {
            let e = Scope::parse(bad).unwrap_err();
            assert!(e.message.contains("scope") || e.message.contains("vault name"), "{bad}: {e:?}");
        }
    }
}
