//! Conversions between records and protobuf messages.

use std::collections::BTreeMap;

use arca_core::read::SecretView;
use arca_core::{Sku, VaultRecord};
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
