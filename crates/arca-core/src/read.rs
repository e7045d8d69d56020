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
    secret_versions_in(view, vault, name, |_| Ok(0..usize::MAX))
}

/// The versions of a live secret at the creation positions `window` picks, given how many there are
/// (a page of a listing): only that page's index entries and records are read, so a page costs the
/// same at the 10,000th version as at the first.
pub fn secret_versions_in(
    view: &dyn StateView,
    vault: &VaultName,
    name: &ObjectName,
    window: impl FnOnce(usize) -> Result<std::ops::Range<usize>, ArcaError>,
) -> Result<(VaultRecord, ObjectHeader, Vec<SecretVersionRecord>), ArcaError> {
    let vault = live_vault(view, vault)?;
    let secret = live_secret(view, &vault, name)?;
    let range = window(secret.version_count as usize)?;
    let versions = versions_at(view, &vault, &secret, range)?;
    Ok((vault, secret, versions))
}

fn all_versions(
    view: &dyn StateView,
    vault: &VaultRecord,
    secret: &ObjectHeader,
) -> Result<Vec<SecretVersionRecord>, ArcaError> {
    versions_at(view, vault, secret, 0..usize::MAX)
}

fn versions_at(
    view: &dyn StateView,
    vault: &VaultRecord,
    secret: &ObjectHeader,
    range: std::ops::Range<usize>,
) -> Result<Vec<SecretVersionRecord>, ArcaError> {
    version_ids_at(view, ObjectKind::Secret, vault, secret, range)?
        .iter()
        // Reads are not taken at one point in time: a record gone since its index entry was read
        // means the secret was purged meanwhile.
        .map(|id| view.secret_version(vault, &secret.name, id)?.ok_or_else(not_found))
        .collect()
}

/// Every version id of an object in creation order, read from its version index a page at a time.
pub fn version_ids(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    header: &ObjectHeader,
) -> Result<Vec<VersionId>, ArcaError> {
    version_ids_at(view, kind, vault, header, 0..usize::MAX)
}

/// The version ids of an object at creation positions `range` (clipped to the header's count), read
/// from its version index a page at a time.
///
/// The index only grows while its header exists, and reads are not taken at one point in time: a
/// version set after the header was read may already be indexed. So no more than the header's count
/// is read, and the index entry at the header's last position must be its latest version; an index
/// shorter than that, or ending elsewhere, means the object was purged (and perhaps created again)
/// meanwhile, answered as not found.
pub fn version_ids_at(
    view: &dyn StateView,
    kind: ObjectKind,
    vault: &VaultRecord,
    header: &ObjectHeader,
    range: std::ops::Range<usize>,
) -> Result<Vec<VersionId>, ArcaError> {
    const PAGE: usize = 1000;
    let gone = || match kind {
        ObjectKind::Secret => not_found(),
        ObjectKind::Key => key_not_found(),
    };
    let count = header.version_count as usize;
    let (start, end) = (range.start.min(count), range.end.min(count));
    if start >= end {
        return Ok(Vec::new());
    }
    let mut ids = Vec::with_capacity((end - start).min(PAGE));
    // `start` is below the count, itself a u32.
    let mut after = start.checked_sub(1).and_then(|a| u32::try_from(a).ok());
    while start + ids.len() < end {
        let want = (end - start - ids.len()).min(PAGE);
        let page = view.version_ids(kind, vault, &header.name, after, want)?;
        let short = page.len() < want;
        for (seq, id) in page.into_iter().take(want) {
            if seq as usize != start + ids.len() {
                return Err(ArcaError::internal("an object's version index has a gap"));
            }
            after = Some(seq);
            ids.push(id);
        }
        if short {
            return Err(gone());
        }
    }
    // The index read must be the header's: its last entry is the header's latest version. A page
    // short of the end checks that entry too (one more small read), or a secret purged and created
    // again meanwhile could lend this header its versions.
    let last = if end == count {
        ids.last().cloned()
    } else {
        let after = (count - 1).checked_sub(1).and_then(|a| u32::try_from(a).ok());
        match view.version_ids(kind, vault, &header.name, after, 1)?.pop() {
            Some((seq, id)) if seq as usize == count - 1 => Some(id),
            _ => None,
        }
    };
    if last.as_ref() != Some(header.latest()) {
        return Err(gone());
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
            // A record gone since its index entry was read: the key was purged meanwhile.
            view.key_version(vault, &key.name, id)?.ok_or_else(key_not_found)
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
