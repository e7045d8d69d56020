//! Rendering responses as JSON (Azure CLI field names where they exist) or as a plain table.

use arca_client::pb;
use clap::ValueEnum;
use serde_json::{json, Map, Value};

/// Prints a line to stdout. A reader that went away (`arca … | head`) ends the program quietly, as
/// Unix tools do, instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Json,
    Table,
}

fn secs(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.seconds))
}

pub fn vault(v: &pb::Vault) -> Value {
    json!({
        "name": v.name,
        "uri": v.uri,
        "sku": if v.sku == pb::Sku::Premium as i32 { "premium" } else { "standard" },
        "softDeleteRetentionInDays": v.soft_delete_retention_days,
        "enablePurgeProtection": v.purge_protection_enabled,
        "tags": v.tags,
        "created": secs(&v.create_time),
        "updated": secs(&v.update_time),
        "deletedDate": secs(&v.delete_time),
        "scheduledPurgeDate": secs(&v.scheduled_purge_time),
        "recoveryLevel": v.recovery_level,
        "networkAcls": v.network_acls.as_ref().map(|n| json!({
            "defaultAction": if n.default_action == pb::DefaultAction::Deny as i32 { "Deny" } else { "Allow" },
            "ipRules": n.ip_rules.iter().map(|r| json!({ "value": r })).collect::<Vec<_>>(),
        })),
    })
}

pub fn secret(s: &pb::Secret) -> Value {
    let a = s.attributes.clone().unwrap_or_default();
    let mut out = json!({
        "id": s.id,
        "name": s.name,
        "version": s.version,
        "contentType": if s.content_type.is_empty() { Value::Null } else { json!(s.content_type) },
        "tags": s.tags,
        "managed": s.managed,
        "attributes": {
            "enabled": a.enabled,
            "notBefore": secs(&a.not_before),
            "expires": secs(&a.expires),
            "created": secs(&a.create_time),
            "updated": secs(&a.update_time),
            "recoveryLevel": a.recovery_level,
            "recoverableDays": a.recoverable_days,
        },
    });
    if !s.value.is_empty() {
        out["value"] = json!(s.value);
    }
    out
}

pub fn deleted(d: &pb::DeletedSecret) -> Value {
    let mut out = d.secret.as_ref().map_or(json!({}), secret);
    out["recoveryId"] = json!(d.recovery_id);
    out["deletedDate"] = secs(&d.delete_time);
    out["scheduledPurgeDate"] = secs(&d.scheduled_purge_time);
    out
}

pub fn seal(s: &pb::SealStatus) -> Value {
    json!({
        "initialized": s.initialized,
        "sealed": s.sealed,
        "threshold": s.threshold,
        "shares": s.shares,
        "progress": s.progress,
        "nodeId": s.node_id,
        "keyringTerm": s.keyring_term,
        "nonce": if s.nonce.is_empty() { None } else { Some(&s.nonce) },
    })
}

pub fn join_token(t: &pb::JoinToken) -> Value {
    json!({
        "token": t.token,
        "tokenId": t.token_id,
        "clusterId": t.cluster_id,
        "expiresAt": t.expires_at.as_ref().map(|e| e.seconds),
    })
}

pub fn cluster(c: &pb::ClusterStatus) -> Value {
    json!({
        "clusterId": c.cluster_id,
        "nodeId": c.node_id,
        "state": c.state,
        "leaderId": c.leader_id,
        "term": c.term,
        "lastLogIndex": c.last_log_index,
        "commitIndex": c.commit_index,
        "appliedIndex": c.applied_index,
        "epoch": c.epoch,
        "epochPrimary": c.epoch_primary,
        "failoverEnabled": c.failover_enabled,
        "witnessId": c.witness_id,
        "witnessAddr": c.witness_addr,
        "leaseRemainingMs": c.lease_remaining_ms,
        "nodes": c.nodes.iter().map(|n| json!({
            "nodeId": n.node_id,
            "apiAddr": n.api_addr,
            "clusterAddr": n.cluster_addr,
            "role": n.role,
            "leader": n.leader,
            "region": n.region,
            "matchedIndex": n.matched_index,
            "lag": n.lag,
            "lagMs": n.lag_ms,
        })).collect::<Vec<_>>(),
        "regions": c.regions.iter().map(|r| json!({
            "name": r.name,
            "role": r.role,
            "nodeIds": r.node_ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            "lag": r.lag,
            "lagMs": r.lag_ms,
        })).collect::<Vec<_>>(),
    })
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn table_rows(items: &[Map<String, Value>]) {
    let columns: Vec<String> = items
        .first()
        .map(|m| m.keys().filter(|k| !matches!(items[0][*k], Value::Object(_) | Value::Array(_))).cloned().collect())
        .unwrap_or_default();
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| items.iter().map(|m| cell(m.get(c).unwrap_or(&Value::Null)).len()).max().unwrap_or(0).max(c.len()))
        .collect();
    let line =
        |vals: Vec<String>| vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect::<Vec<_>>().join("  ");
    out!("{}", line(columns.clone()));
    out!("{}", line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for m in items {
        out!("{}", line(columns.iter().map(|c| cell(m.get(c).unwrap_or(&Value::Null))).collect()));
    }
}

pub fn print_value(format: Format, value: &Value) {
    match format {
        Format::Json => out!("{}", serde_json::to_string_pretty(value).unwrap_or_default()),
        Format::Table => match value {
            Value::Array(items) => {
                let maps: Vec<Map<String, Value>> = items.iter().filter_map(|i| i.as_object().cloned()).collect();
                table_rows(&maps);
            }
            Value::Object(map) => {
                // Scalars as "key  value" lines, then each list of records as a table of its own.
                let tables: Vec<(&String, Vec<Map<String, Value>>)> = map
                    .iter()
                    .filter_map(|(k, v)| match v {
                        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
                            Some((k, items.iter().filter_map(|i| i.as_object().cloned()).collect()))
                        }
                        _ => None,
                    })
                    .collect();
                let scalars: Vec<(&String, &Value)> =
                    map.iter().filter(|(k, _)| !tables.iter().any(|(t, _)| t == k)).collect();
                let width = scalars.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in scalars {
                    out!("{k:<width$}  {}", cell(v));
                }
                for (k, rows) in tables {
                    out!("");
                    out!("{k}:");
                    table_rows(&rows);
                }
            }
            other => out!("{}", cell(other)),
        },
    }
}

/// What `arca cluster failover --force` won, and what it lost.
pub fn failover(won: &pb::FailoverResponse) -> Value {
    json!({
        "epoch": won.epoch,
        "primary": won.primary,
        "founder": won.founder,
        "lastLogIndex": won.last_log_index,
        "primarySilentMs": won.primary_silent_ms,
        "dataLoss": won.data_loss,
    })
}

/// What `arca cluster switchover` handed over (or withdrew), and what happens next.
pub fn switchover(h: &pb::SwitchoverResponse) -> Value {
    json!({
        "epoch": h.epoch,
        "from": h.from_region,
        "to": h.to_region,
        "index": h.index,
        "detail": h.detail,
    })
}

/// A divergence record; its entries only when it holds them (show, export), secret values only on
/// export.
pub fn divergence(d: &pb::Divergence) -> Value {
    let mut out = json!({
        "epoch": d.epoch,
        "nodeId": d.node_id,
        "region": d.region,
        "filedAt": d.filed_at,
        "forkIndex": d.fork_index,
        "entries": d.entries,
        "committedEntries": d.committed_entries,
        "entriesLeftOut": d.entries_left_out,
    });
    if !d.changes.is_empty() {
        out["changes"] = d
            .changes
            .iter()
            .map(|e| {
                json!({
                    "index": e.index,
                    "term": e.term,
                    "committed": e.committed,
                    "changes": e.changes.iter().map(|c| {
                        let mut change = json!({
                            "kind": c.kind,
                            "vault": c.vault,
                            "name": c.name,
                            "version": c.version,
                            "operation": c.operation,
                        });
                        if !c.value.is_empty() {
                            change["value"] = json!(c.value);
                            change["contentType"] = json!(c.content_type);
                        }
                        change
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    out
}

/// One cluster event, as a line of JSON.
pub fn cluster_event(e: &pb::ClusterEvent) -> Value {
    json!({
        "kind": e.kind,
        "epoch": e.epoch,
        "primary": e.primary,
        "nodeId": e.node_id,
        "atUnixMs": e.at_unix_ms,
        "detail": e.detail,
    })
}
