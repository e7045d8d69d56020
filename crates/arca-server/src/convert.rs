//! Conversions between records and protobuf messages.

use std::collections::BTreeMap;

use arca_core::read::{KeyView, SecretView};
use arca_core::{LifetimeAction, LifetimeActionType, PolicyRecord, RotationPolicy, Sku, Trigger, VaultRecord};
use arca_crypto::keys::LoadedKey;
use arca_proto::v1 as pb;
use arca_types::ArcaError;
use prost_types::Timestamp;

pub fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

pub fn from_ts(field: &str, t: Option<&Timestamp>) -> Result<Option<i64>, ArcaError> {
    match t {
        None => Ok(None),
        Some(t) if t.seconds < 0 || !(0..1_000_000_000).contains(&t.nanos) => {
            Err(ArcaError::bad_parameter(field, format!("{field} must be a valid time after 1970-01-01")))
        }
        Some(t) => Ok(Some(t.seconds)),
    }
}

pub fn tags(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub fn vault_uri(name: &str, suffix: &str) -> String {
    format!("https://{name}.{suffix}")
}

pub fn vault(v: &VaultRecord, suffix: &str) -> pb::Vault {
    pb::Vault {
        name: v.name.to_string(),
        uri: vault_uri(v.name.as_str(), suffix),
        sku: match v.sku {
            Sku::Standard => pb::Sku::Standard as i32,
            Sku::Premium => pb::Sku::Premium as i32,
        },
        soft_delete_retention_days: v.retention_days as i32,
        purge_protection_enabled: v.purge_protection,
        tags: v.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        create_time: ts(v.created),
        update_time: ts(v.updated),
        delete_time: v.deleted.and_then(|d| ts(d.deleted_at)),
        scheduled_purge_time: v.deleted.and_then(|d| ts(d.scheduled_purge_at)),
        recovery_level: v.recovery_level().azure_name().to_owned(),
        network_acls: None,
    }
}

/// A secret message; `with_value` decides whether the value is included.
pub fn secret(view: &SecretView, suffix: &str, with_value: bool) -> pb::Secret {
    let v = &view.version;
    let name = view.secret.name.as_str();
    pb::Secret {
        id: format!("{}/secrets/{}/{}", vault_uri(view.vault.name.as_str(), suffix), name, v.version),
        vault: view.vault.name.to_string(),
        name: name.to_owned(),
        version: v.version.to_string(),
        value: if with_value { v.value.expose().to_owned() } else { String::new() },
        content_type: v.content_type.clone().unwrap_or_default(),
        tags: v.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        attributes: Some(pb::SecretAttributes {
            enabled: v.attributes.enabled,
            not_before: v.attributes.not_before.and_then(ts),
            expires: v.attributes.expires.and_then(ts),
            create_time: ts(v.attributes.created),
            update_time: ts(v.attributes.updated),
            recovery_level: view.vault.recovery_level().azure_name().to_owned(),
            recoverable_days: view.vault.retention_days as i32,
        }),
        managed: false,
    }
}

pub fn deleted_secret(view: &SecretView, suffix: &str) -> pb::DeletedSecret {
    let deletion = view.secret.deleted;
    pb::DeletedSecret {
        secret: Some(secret(view, suffix, false)),
        recovery_id: format!(
            "{}/deletedsecrets/{}",
            vault_uri(view.vault.name.as_str(), suffix),
            view.secret.name.as_str()
        ),
        delete_time: deletion.and_then(|d| ts(d.deleted_at)),
        scheduled_purge_time: deletion.and_then(|d| ts(d.scheduled_purge_at)),
    }
}

/// The Azure-shaped id of a key version: `https://{vault-host}/keys/{name}/{version}`.
pub fn kid(view: &KeyView, suffix: &str) -> String {
    format!("{}/keys/{}/{}", vault_uri(view.vault.name.as_str(), suffix), view.key.name.as_str(), view.version.version)
}

/// A key message with the public JWK only.
pub fn key(view: &KeyView, suffix: &str, loaded: &LoadedKey) -> pb::Key {
    let v = &view.version;
    let public = loaded.public_jwk();
    let id = kid(view, suffix);
    pb::Key {
        id: id.clone(),
        vault: view.vault.name.to_string(),
        name: view.key.name.as_str().to_owned(),
        version: v.version.to_string(),
        key: Some(pb::JsonWebKey {
            kid: id,
            kty: v.spec.kty(v.hsm),
            key_ops: v.key_ops.iter().map(|op| op.name().to_owned()).collect(),
            n: public.n,
            e: public.e,
            crv: public.crv.map(|c| c.jwk_name().to_owned()).unwrap_or_default(),
            x: public.x,
            y: public.y,
            ..pb::JsonWebKey::default()
        }),
        tags: v.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        attributes: Some(pb::KeyAttributes {
            enabled: v.attributes.enabled,
            not_before: v.attributes.not_before.and_then(ts),
            expires: v.attributes.expires.and_then(ts),
            create_time: ts(v.attributes.created),
            update_time: ts(v.attributes.updated),
            recovery_level: view.vault.recovery_level().azure_name().to_owned(),
            recoverable_days: view.vault.retention_days as i32,
            exportable: false,
        }),
        managed: false,
        public_key_der: loaded.public_key_der().unwrap_or_default(),
        key_size: i32::from(v.spec.bits()),
    }
}

pub fn deleted_key(view: &KeyView, suffix: &str, loaded: &LoadedKey) -> pb::DeletedKey {
    let deletion = view.key.deleted;
    pb::DeletedKey {
        key: Some(key(view, suffix, loaded)),
        recovery_id: format!("{}/deletedkeys/{}", vault_uri(view.vault.name.as_str(), suffix), view.key.name.as_str()),
        delete_time: deletion.and_then(|d| ts(d.deleted_at)),
        scheduled_purge_time: deletion.and_then(|d| ts(d.scheduled_purge_at)),
    }
}

/// Seconds from a protobuf duration (whole seconds; Azure's policies are in days).
pub fn seconds(field: &str, d: &prost_types::Duration) -> Result<i64, ArcaError> {
    if d.seconds <= 0 || d.nanos != 0 {
        return Err(ArcaError::bad_parameter(field, format!("{field} must be a positive whole number of seconds")));
    }
    Ok(d.seconds)
}

pub fn duration(seconds: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos: 0 })
}

pub fn policy(record: &PolicyRecord, suffix: &str) -> pb::KeyRotationPolicy {
    use pb::lifetime_action::Trigger as T;
    pb::KeyRotationPolicy {
        id: format!("{}/keys/{}/rotationpolicy", vault_uri(record.vault.as_str(), suffix), record.name.as_str()),
        lifetime_actions: record
            .policy
            .lifetime_actions
            .iter()
            .map(|a| pb::LifetimeAction {
                trigger: Some(match a.trigger {
                    Trigger::AfterCreate(s) => T::TimeAfterCreate(prost_types::Duration { seconds: s, nanos: 0 }),
                    Trigger::BeforeExpiry(s) => T::TimeBeforeExpiry(prost_types::Duration { seconds: s, nanos: 0 }),
                }),
                action: match a.action {
                    LifetimeActionType::Rotate => pb::LifetimeActionType::Rotate as i32,
                    LifetimeActionType::Notify => pb::LifetimeActionType::Notify as i32,
                },
            })
            .collect(),
        expiry_time: record.policy.expiry_time.and_then(duration),
        create_time: (record.policy.created > 0).then(|| ts(record.policy.created)).flatten(),
        update_time: (record.policy.updated > 0).then(|| ts(record.policy.updated)).flatten(),
    }
}

pub fn policy_from(p: &pb::KeyRotationPolicy) -> Result<RotationPolicy, ArcaError> {
    use pb::lifetime_action::Trigger as T;
    let mut actions = Vec::new();
    for a in &p.lifetime_actions {
        let trigger = match &a.trigger {
            Some(T::TimeAfterCreate(d)) => Trigger::AfterCreate(seconds("time_after_create", d)?),
            Some(T::TimeBeforeExpiry(d)) => Trigger::BeforeExpiry(seconds("time_before_expiry", d)?),
            None => return Err(ArcaError::bad_parameter("lifetime_actions", "every lifetime action needs a trigger")),
        };
        let action = match pb::LifetimeActionType::try_from(a.action) {
            Ok(pb::LifetimeActionType::Rotate) => LifetimeActionType::Rotate,
            Ok(pb::LifetimeActionType::Notify) => LifetimeActionType::Notify,
            _ => return Err(ArcaError::bad_parameter("lifetime_actions", "an action is Rotate or Notify")),
        };
        actions.push(LifetimeAction { trigger, action });
    }
    Ok(RotationPolicy {
        lifetime_actions: actions,
        expiry_time: p.expiry_time.as_ref().map(|d| seconds("expiry_time", d)).transpose()?,
        created: 0,
        updated: 0,
    })
}

/// A vault's network rules as the API shows them.
pub fn network_acls(rules: &arca_core::network::NetworkRules) -> pb::NetworkAcls {
    use arca_core::network::DefaultAction;
    pb::NetworkAcls {
        default_action: match rules.default_action {
            DefaultAction::Allow => pb::DefaultAction::Allow as i32,
            DefaultAction::Deny => pb::DefaultAction::Deny as i32,
        },
        ip_rules: rules.ip_rules.iter().map(ToString::to_string).collect(),
    }
}
