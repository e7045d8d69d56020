//! The sequential specification of one secret: a register with versions, content type, soft delete,
//! recovery, purge, backup and restore, as Arca's rules (and Azure Key Vault's) define them.

use std::collections::BTreeMap;

use crate::history::{Call, Ret};

/// What a backup captured: the latest value, its content type and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Latest {
    pub value: String,
    pub content_type: Option<String>,
    /// `None` when the set that made it has an unknown outcome (its version id was never seen).
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Life {
    #[default]
    Absent,
    Active(Latest),
    Deleted(Latest),
}

/// The state of one secret plus what the backups taken of it hold. A vault's history uses only
/// `vault_tag` (vault operations and secret operations are recorded under different keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SecretState {
    pub life: Life,
    pub backups: BTreeMap<u32, Latest>,
    pub vault_tag: Option<String>,
    /// For a key's history: whether it exists, and its latest version (`None` when the create or
    /// rotation that made it has an unknown outcome).
    pub key: Option<Option<String>>,
}

/// The error a call gets in a state where it cannot act (and changes nothing), as Arca's rules and
/// Azure Key Vault's answer it; `None` where the call takes effect.
fn refusal(call: &Call, life: &Life) -> Option<Ret> {
    match (call, life) {
        (Call::Set { .. } | Call::Restore { .. }, Life::Deleted(_)) => Some(Ret::DeletedButRecoverable),
        (Call::Restore { .. }, Life::Active(_)) => Some(Ret::Conflict),
        (Call::Get | Call::Update { .. } | Call::Delete | Call::Backup { .. }, Life::Absent | Life::Deleted(_))
        | (Call::Recover | Call::Purge, Life::Absent | Life::Active(_)) => Some(Ret::NotFound),
        _ => None,
    }
}

fn version_matches(expected: &Option<String>, got: &str) -> bool {
    expected.as_deref().is_none_or(|v| v == got)
}

impl SecretState {
    /// Applies `call` if `ret` is what the specification answers from this state; `None` if the
    /// answer is impossible here. `Ret::Unknown` matches any answer (the write happened, answer lost).
    pub fn step(&self, call: &Call, ret: &Ret) -> Option<SecretState> {
        let unknown = *ret == Ret::Unknown;
        let expect = |want: &Ret| unknown || want == ret;
        if let Some(want) = refusal(call, &self.life) {
            return expect(&want).then(|| self.clone());
        }
        if call.is_key_call() {
            return self.key_step(call, ret);
        }
        let mut next = self.clone();
        match (call, &self.life) {
            (Call::TagVault { value }, _) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                next.vault_tag = Some(value.clone());
            }
            (Call::GetVault, _) => {
                if !unknown && *ret != (Ret::Tag { value: self.vault_tag.clone() }) {
                    return None;
                }
            }
            (Call::Set { value }, _) => {
                let version = match ret {
                    Ret::Version { version } => Some(version.clone()),
                    Ret::Unknown => None,
                    _ => return None,
                };
                next.life = Life::Active(Latest { value: value.clone(), content_type: None, version });
            }
            (Call::Get, Life::Active(latest)) => match ret {
                Ret::Value { value, content_type, version } => {
                    if *value != latest.value
                        || *content_type != latest.content_type
                        || !version_matches(&latest.version, version)
                    {
                        return None;
                    }
                    if latest.version.is_none() {
                        // Learn the version id the unknown set minted.
                        next.life = Life::Active(Latest { version: Some(version.clone()), ..latest.clone() });
                    }
                }
                Ret::Unknown => {}
                _ => return None,
            },
            (Call::Update { content_type }, Life::Active(latest)) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                next.life = Life::Active(Latest { content_type: Some(content_type.clone()), ..latest.clone() });
            }
            (Call::Delete, Life::Active(latest)) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                next.life = Life::Deleted(latest.clone());
            }
            (Call::Recover, Life::Deleted(latest)) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                next.life = Life::Active(latest.clone());
            }
            (Call::Purge, Life::Deleted(_)) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                next.life = Life::Absent;
            }
            (Call::Backup { backup }, Life::Active(latest)) => {
                if !expect(&Ret::Ok) {
                    return None;
                }
                if !unknown {
                    next.backups.insert(*backup, latest.clone());
                }
            }
            (Call::Restore { backup }, Life::Absent) => {
                let captured = self.backups.get(backup)?;
                match ret {
                    Ret::Version { version } if version_matches(&captured.version, version) => {}
                    Ret::Unknown => {}
                    _ => return None,
                }
                next.life = Life::Active(captured.clone());
            }
            // Every other pair is a refusal, answered above.
            _ => return None,
        }
        Some(next)
    }

    /// A key: create and rotate make a new latest version; wrap must use the latest version; unwrap
    /// of an earlier wrap, with the version it named, must give the data back. Keys are never deleted
    /// in the workload, so an existing key never answers NotFound.
    fn key_step(&self, call: &Call, ret: &Ret) -> Option<SecretState> {
        let unknown = *ret == Ret::Unknown;
        let mut next = self.clone();
        match (call, &self.key) {
            (Call::CreateKey, _) | (Call::RotateKey, Some(_)) => match ret {
                Ret::Version { version } => next.key = Some(Some(version.clone())),
                Ret::Unknown => next.key = Some(None),
                // A rotation that lost to a concurrent new version changes nothing.
                Ret::Conflict if *call == Call::RotateKey => {}
                _ => return None,
            },
            (Call::RotateKey | Call::Wrap { .. } | Call::Unwrap { .. }, None) => {
                if !unknown && *ret != Ret::NotFound {
                    return None;
                }
            }
            (Call::Wrap { .. }, Some(latest)) => match ret {
                Ret::Version { version } if version_matches(latest, version) => next.key = Some(Some(version.clone())),
                Ret::Unknown => {}
                _ => return None,
            },
            (Call::Unwrap { .. }, Some(_)) => {
                if !unknown && *ret != Ret::Ok {
                    return None;
                }
            }
            _ => return None,
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &str) -> Call {
        Call::Set { value: v.into() }
    }

    fn version(v: &str) -> Ret {
        Ret::Version { version: v.into() }
    }

    #[test]
    fn the_lifecycle_follows_the_rules() {
        let s = SecretState::default();
        assert!(s.step(&Call::Get, &Ret::NotFound).is_some());
        let s = s.step(&set("a"), &version("1")).unwrap();
        let got = Ret::Value { value: "a".into(), content_type: None, version: "1".into() };
        assert!(s.step(&Call::Get, &got).is_some());
        assert!(s.step(&Call::Get, &Ret::NotFound).is_none(), "a live secret is found");
        let s = s.step(&Call::Backup { backup: 1 }, &Ret::Ok).unwrap();
        let s = s.step(&Call::Delete, &Ret::Ok).unwrap();
        assert!(s.step(&set("b"), &version("2")).is_none(), "a soft-deleted name refuses set");
        assert!(s.step(&set("b"), &Ret::DeletedButRecoverable).is_some());
        assert!(s.step(&Call::Restore { backup: 1 }, &Ret::DeletedButRecoverable).is_some());
        let s = s.step(&Call::Purge, &Ret::Ok).unwrap();
        assert!(s.step(&Call::Recover, &Ret::NotFound).is_some());
        let s = s.step(&Call::Restore { backup: 1 }, &version("1")).unwrap();
        assert!(s.step(&Call::Get, &got).is_some(), "restore brings back what the backup held");
    }

    #[test]
    fn a_wrap_uses_the_latest_key_version_and_an_unwrap_gives_the_data_back() {
        let s = SecretState::default();
        assert!(s.step(&Call::Wrap { data: 1 }, &Ret::NotFound).is_some());
        assert!(s.step(&Call::Wrap { data: 1 }, &version("v1")).is_none());
        let s = s.step(&Call::CreateKey, &version("v1")).unwrap();
        assert!(s.step(&Call::Wrap { data: 1 }, &version("v1")).is_some());
        let s = s.step(&Call::RotateKey, &version("v2")).unwrap();
        assert!(s.step(&Call::Wrap { data: 1 }, &version("v1")).is_none(), "a stale version was used");
        assert!(s.step(&Call::Wrap { data: 1 }, &version("v2")).is_some());
        assert!(s.step(&Call::Unwrap { wrap: 1 }, &Ret::Ok).is_some());
        assert!(s.step(&Call::Unwrap { wrap: 1 }, &Ret::Conflict).is_none(), "wrong data back");
        assert!(s.step(&Call::Unwrap { wrap: 1 }, &Ret::NotFound).is_none(), "an acknowledged key vanished");
        // An unknown rotation: any next version is possible, and a wrap teaches which.
        let s = s.step(&Call::RotateKey, &Ret::Unknown).unwrap();
        let s = s.step(&Call::Wrap { data: 2 }, &version("v3")).unwrap();
        assert!(s.step(&Call::Wrap { data: 3 }, &version("v2")).is_none());
    }

    #[test]
    fn a_vault_tag_reads_what_was_last_written() {
        let s = SecretState::default();
        assert!(s.step(&Call::GetVault, &Ret::Tag { value: None }).is_some());
        let s = s.step(&Call::TagVault { value: "a".into() }, &Ret::Ok).unwrap();
        assert!(s.step(&Call::GetVault, &Ret::Tag { value: Some("a".into()) }).is_some());
        assert!(s.step(&Call::GetVault, &Ret::Tag { value: None }).is_none());
    }

    #[test]
    fn an_unknown_set_may_or_may_not_have_happened_and_its_version_is_learned() {
        let s = SecretState::default().step(&set("a"), &Ret::Unknown).unwrap();
        let got = Ret::Value { value: "a".into(), content_type: None, version: "7".into() };
        let s = s.step(&Call::Get, &got).unwrap();
        let other = Ret::Value { value: "a".into(), content_type: None, version: "8".into() };
        assert!(s.step(&Call::Get, &other).is_none());
    }
}
