//! Queries: the read rules (disabled secrets, deleted objects) applied to a [`StateView`].

use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName, VersionId};

use crate::decide::live_vault;
use crate::decide::secrets::live_secret;
use crate::records::*;
use crate::view::{Page, StateView};

/// A secret version together with what a response needs to describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub vault: VaultRecord,
    pub secret: ObjectHeader,
    pub version: SecretVersionRecord,
}

fn not_found() -> ArcaError {
    ArcaError::new(ErrorCode::SecretNotFound, "the secret (or the requested version) does not exist or is deleted")
}

pub fn get_vault(view: &dyn StateView, name: &VaultName) -> Result<VaultRecord, ArcaError> {
    live_vault(view, name)
}

pub fn get_deleted_vault(view: &dyn StateView, name: &VaultName) -> Result<VaultRecord, ArcaError> {
    match view.vault(name)? {
        Some(v) if v.deleted.is_some() => Ok(v),
        _ => Err(ArcaError::new(ErrorCode::VaultNotFound, format!("no deleted vault named '{name}'"))),
    }
}

/// Lists vaults, live or deleted, one page at a time.
pub fn list_vaults(
    view: &dyn StateView,
    deleted: bool,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Page<VaultRecord>, ArcaError> {
    let page = view.vaults(after, limit)?;
    Ok(Page { items: page.items.into_iter().filter(|v| v.deleted.is_some() == deleted).collect(), next: page.next })
}

/// Reads a secret version with its value. A disabled version refuses with `SecretDisabled`; nbf and exp
/// are informational, as in Azure.
pub fn get_secret(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    version: Option<&VersionId>,
) -> Result<SecretView, ArcaError> {
    let view_of = secret_metadata(view, vault, name, version)?;
    if !view_of.version.attributes.enabled {
        return Err(ArcaError::new(
            ErrorCode::SecretDisabled,
            "the secret version is disabled; enable it with an update before reading its value",
        ));
    }
    Ok(view_of)
}

/// Reads a secret version without the disabled check (for metadata-only answers such as update).
pub fn secret_metadata(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    version: Option<&VersionId>,
) -> Result<SecretView, ArcaError> {
    let vault = live_vault(view, vault)?;
    let secret = live_secret(view, &vault, name)?;
    let id = version.unwrap_or_else(|| secret.latest()).clone();
    let version = view.secret_version(&vault, name, &id)?.ok_or_else(not_found)?;
    Ok(SecretView { vault, secret, version })
}

/// Every version of a live secret, oldest first.
pub fn secret_versions(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
) -> Result<(VaultRecord, ObjectHeader, Vec<SecretVersionRecord>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let secret = live_secret(view, &vault, name)?;
    let versions = all_versions(view, &vault, &secret)?;
    Ok((vault, secret, versions))
}

fn all_versions(
    view: &dyn StateView,
    vault: &VaultRecord,
    secret: &ObjectHeader,
) -> Result<Vec<SecretVersionRecord>, ArcaError> {
    version_ids(view, ObjectKind::Secret, vault, secret)?
        .iter()
        .map(|id| {
            view.secret_version(vault, &secret.name, id)?
                .ok_or_else(|| ArcaError::internal("a version named by a secret's version index is missing"))
        })
        .collect()
}

/// Every version id of an object in creation order, read from its version index a page at a time.
///
/// The index only grows while its header exists, and reads are not taken at one point in time: a
/// version set after the header was read may already be indexed. So exactly the header's count is
/// read, and its last entry must be the header's latest version; an index shorter than that means the
/// object was purged meanwhile (answered as not found).
pub fn version_ids(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    header: &ObjectHeader,
) -> Result<Vec<VersionId>, ArcaError> {
    const PAGE: usize = 1000;
    let count = header.version_count as usize;
    let mut ids = Vec::with_capacity(count.min(PAGE));
    let mut after = None;
    while ids.len() < count {
        let want = (count - ids.len()).min(PAGE);
        let page = view.version_ids(kind, vault, &header.name, after, want)?;
        let short = page.len() < want;
        for (seq, id) in page.into_iter().take(want) {
            if seq as usize != ids.len() {
                return Err(ArcaError::internal("an object's version index has a gap"));
            }
            after = Some(seq);
            ids.push(id);
        }
        if short {
            return Err(match kind {
                ObjectKind::Secret => not_found(),
                ObjectKind::Key => key_not_found(),
            });
        }
    }
    if ids.last() != Some(header.latest()) {
        return Err(ArcaError::internal("an object's version index does not match its header"));
    }
    Ok(ids)
}

/// A deleted secret with its latest version (value included only if the caller chooses to show it).
pub fn get_deleted_secret(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<SecretView, ArcaError> {
    let vault = live_vault(view, vault)?;
    let secret = match view.header(ObjectKind::Secret, &vault, name)? {
        Some(s) if s.deleted.is_some() => s,
        _ => return Err(ArcaError::new(ErrorCode::SecretNotFound, "no deleted secret has this name")),
    };
    let version = view
        .secret_version(&vault, name, secret.latest())?
        .ok_or_else(|| ArcaError::internal("the latest version named by a secret header is missing"))?;
    Ok(SecretView { vault, secret, version })
}

/// Lists secrets (live or deleted) of a vault with their latest version's metadata.
pub fn list_secrets(
    view: &dyn StateView,
    vault: &VaultName,
    deleted: bool,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Page<SecretView>, ArcaError> {
    let vault = live_vault(view, vault)?;
    let page = view.headers(ObjectKind::Secret, &vault, after, limit)?;
    let mut items = Vec::new();
    for secret in page.items.into_iter().filter(|s| s.deleted.is_some() == deleted) {
        let version = view
            .secret_version(&vault, &secret.name, secret.latest())?
            .ok_or_else(|| ArcaError::internal("the latest version named by a secret header is missing"))?;
        items.push(SecretView { vault: vault.clone(), secret, version });
    }
    Ok(Page { items, next: page.next })
}

/// Everything a backup blob must hold: the header and every version, refused above Azure's 500.
pub fn backup_secret(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
) -> Result<(ObjectHeader, Vec<SecretVersionRecord>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let secret = live_secret(view, &vault, name)?;
    if secret.version_count as usize > arca_types::limits::BACKUP_VERSIONS_MAX {
        return Err(ArcaError::bad_parameter(
            "name",
            format!(
                "the secret has more than {} versions, which is more than a backup can hold",
                arca_types::limits::BACKUP_VERSIONS_MAX
            ),
        ));
    }
    let versions = all_versions(view, &vault, &secret)?;
    Ok((secret, versions))
}

/// A key version together with what a response needs to describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyView {
    pub vault: VaultRecord,
    pub key: ObjectHeader,
    pub version: KeyVersionRecord,
}

fn key_not_found() -> ArcaError {
    ArcaError::new(ErrorCode::KeyNotFound, "the key (or the requested version) does not exist or is deleted")
}

/// Reads a live key version (disabled versions too: their public part is not secret).
pub fn get_key(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    version: Option<&VersionId>,
) -> Result<KeyView, ArcaError> {
    let vault = live_vault(view, vault)?;
    let key = crate::decide::objects::live_header(view, ObjectKind::Key, &vault, name)?;
    let id = version.unwrap_or_else(|| key.latest()).clone();
    let version = view.key_version(&vault, name, &id)?.ok_or_else(key_not_found)?;
    Ok(KeyView { vault, key, version })
}

fn all_key_versions(
    view: &dyn StateView,
    vault: &VaultRecord,
    key: &ObjectHeader,
) -> Result<Vec<KeyVersionRecord>, ArcaError> {
    version_ids(view, ObjectKind::Key, vault, key)?
        .iter()
        .map(|id| {
            view.key_version(vault, &key.name, id)?
                .ok_or_else(|| ArcaError::internal("a version named by a key's version index is missing"))
        })
        .collect()
}

/// Every version of a live key, oldest first.
pub fn key_versions(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<Vec<KeyView>, ArcaError> {
    let vault = live_vault(view, vault)?;
    let key = crate::decide::objects::live_header(view, ObjectKind::Key, &vault, name)?;
    Ok(all_key_versions(view, &vault, &key)?
        .into_iter()
        .map(|version| KeyView { vault: vault.clone(), key: key.clone(), version })
        .collect())
}

/// A deleted key with its latest version.
pub fn get_deleted_key(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<KeyView, ArcaError> {
    let vault = live_vault(view, vault)?;
    let key = crate::decide::objects::get_deleted(view, ObjectKind::Key, &vault, name)?;
    let version = view
        .key_version(&vault, name, key.latest())?
        .ok_or_else(|| ArcaError::internal("the latest version named by a key header is missing"))?;
    Ok(KeyView { vault, key, version })
}

/// Lists keys (live or deleted) of a vault with their latest version.
pub fn list_keys(
    view: &dyn StateView,
    vault: &VaultName,
    deleted: bool,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Page<KeyView>, ArcaError> {
    let vault = live_vault(view, vault)?;
    let page = view.headers(ObjectKind::Key, &vault, after, limit)?;
    let mut items = Vec::new();
    for key in page.items.into_iter().filter(|s| s.deleted.is_some() == deleted) {
        let version = view
            .key_version(&vault, &key.name, key.latest())?
            .ok_or_else(|| ArcaError::internal("the latest version named by a key header is missing"))?;
        items.push(KeyView { vault: vault.clone(), key, version });
    }
    Ok(Page { items, next: page.next })
}

/// Everything a key backup holds: header, every version, and the rotation policy.
pub fn backup_key(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
) -> Result<(ObjectHeader, Vec<KeyVersionRecord>, Option<RotationPolicy>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let key = crate::decide::objects::live_header(view, ObjectKind::Key, &vault, name)?;
    if key.version_count as usize > arca_types::limits::BACKUP_VERSIONS_MAX {
        return Err(ArcaError::bad_parameter("name", "the key has more versions than a backup can hold"));
    }
    let versions = all_key_versions(view, &vault, &key)?;
    let policy = view.policy(&vault, name)?.map(|p| p.policy);
    Ok((key, versions, policy))
}

/// A live key's rotation policy; a key without one answers an empty policy, as Azure does.
pub fn get_policy(view: &dyn StateView, vault: &VaultName, name: &ObjectName) -> Result<PolicyRecord, ArcaError> {
    let vault = live_vault(view, vault)?;
    let key = crate::decide::objects::live_header(view, ObjectKind::Key, &vault, name)?;
    Ok(view.policy(&vault, name)?.unwrap_or(PolicyRecord {
        vault: vault.name.clone(),
        vault_id: vault.id,
        name: key.name,
        policy: RotationPolicy::default(),
        notified_version: None,
    }))
}
