//! Using a key next to the data: resolve the key version from the local replica (after the read
//! barrier), apply the usage rules (enabled, key_ops, validity window), and hand out the parsed key
//! from a bounded cache.
//!
//! The cache holds parsed keys ([`LoadedKey`]) by vault id and version id. A version's material never
//! changes, but an entry is still replaced whenever the version record was rewritten since it was
//! loaded (its `updated` time differs), and entries unused for [`IDLE_EVICT`] are dropped by the
//! background loop, so a deleted or purged key does not linger. Dropping a [`LoadedKey`] wipes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arca_core::read::KeyView;
use arca_crypto::keys::LoadedKey;
use arca_types::keys::KeyOp;
use arca_types::limits::KEY_CLOCK_SKEW_S;
use arca_types::{ArcaError, ErrorCode, VersionId};

/// Most parsed keys one node keeps.
pub const CACHE_ENTRIES_MAX: usize = 1024;
/// Entries unused this long are dropped.
pub const IDLE_EVICT: Duration = Duration::from_secs(300);

struct Entry {
    updated: i64,
    key: Arc<LoadedKey>,
    last_used: Instant,
}

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<([u8; 16], VersionId), Entry>>,
}

impl KeyCache {
    /// The parsed key of `view`'s version, loading (and caching) it if needed.
    pub fn get(&self, view: &KeyView) -> Result<Arc<LoadedKey>, ArcaError> {
        let id = (view.vault.id, view.version.version.clone());
        let updated = view.version.attributes.updated;
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = entries.get_mut(&id) {
                if e.updated == updated {
                    e.last_used = Instant::now();
                    return Ok(e.key.clone());
                }
            }
        }
        let key = Arc::new(LoadedKey::load(view.version.spec, &view.version.material)?);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_ENTRIES_MAX && !entries.contains_key(&id) {
            if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) {
                entries.remove(&oldest);
            }
        }
        entries.insert(id, Entry { updated, key: key.clone(), last_used: Instant::now() });
        Ok(key)
    }

    /// Drops every entry (sealing): each key is wiped as its last user lets go.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops entries unused for `idle`.
    pub fn evict_idle(&self, idle: Duration) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, e| e.last_used.elapsed() < idle);
    }
}

/// Where `now` falls against a version's validity window, allowing [`KEY_CLOCK_SKEW_S`] of skew
/// each side: usable from `not_before - skew` and until just before `expires + skew`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    NotYet,
    Open,
    Expired,
}

pub(crate) fn window_at(not_before: Option<i64>, expires: Option<i64>, now: i64) -> Window {
    if not_before.is_some_and(|nbf| now.saturating_add(KEY_CLOCK_SKEW_S) < nbf) {
        Window::NotYet
    } else if expires.is_some_and(|exp| now.saturating_sub(KEY_CLOCK_SKEW_S) >= exp) {
        Window::Expired
    } else {
        Window::Open
    }
}

/// The usage rules: a disabled key refuses everything; the version's key_ops must allow `op`; outside
/// nbf/exp (with [`KEY_CLOCK_SKEW_S`] of skew) only decrypt, unwrapKey and verify work.
pub fn check_use(view: &KeyView, op: KeyOp, now: i64) -> Result<(), ArcaError> {
    let v = &view.version;
    if !v.attributes.enabled {
        return Err(ArcaError::new(ErrorCode::KeyDisabled, "the key version is disabled; enable it with an update"));
    }
    if !v.key_ops.contains(&op) {
        return Err(arca_types::keys::forbidden_op(op));
    }
    if !op.allowed_outside_window() {
        match window_at(v.attributes.not_before, v.attributes.expires, now) {
            Window::Open => {}
            Window::NotYet => {
                return Err(ArcaError::new(
                    ErrorCode::KeyOperationForbidden,
                    format!("the key version is not valid yet (not_before is later); only decrypt, unwrapKey and verify work before then, not '{}'", op.name()),
                ))
            }
            Window::Expired => {
                return Err(ArcaError::new(
                    ErrorCode::KeyOperationForbidden,
                    format!(
                        "the key version has expired; only decrypt, unwrapKey and verify still work, not '{}'",
                        op.name()
                    ),
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validity_window_allows_its_skew_and_not_one_second_more() {
        let (nbf, exp) = (1_000_000, 2_000_000);
        assert_eq!(window_at(Some(nbf), None, nbf - KEY_CLOCK_SKEW_S), Window::Open);
        assert_eq!(window_at(Some(nbf), None, nbf - KEY_CLOCK_SKEW_S - 1), Window::NotYet);
        assert_eq!(window_at(None, Some(exp), exp + KEY_CLOCK_SKEW_S - 1), Window::Open);
        assert_eq!(window_at(None, Some(exp), exp + KEY_CLOCK_SKEW_S), Window::Expired);
        assert_eq!(window_at(None, None, i64::MIN), Window::Open);
        assert_eq!(window_at(Some(i64::MAX), Some(i64::MIN), i64::MAX), Window::Expired);
        assert_eq!(window_at(Some(i64::MAX), None, i64::MIN), Window::NotYet);
    }
}
