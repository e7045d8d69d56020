//! `arca key …`: key management and the crypto service (like `az keyvault key …`). Binary inputs are
//! base64 (`--value`) or raw files (`--file`); binary outputs are base64 in the JSON.

use std::path::PathBuf;

use anyhow::{bail, Context};
use arca_client::jwk;
use arca_client::{pb, ArcaClient, ClientError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use sha2::Digest;

use crate::output::{print_value, Format};
use crate::{all_pages, parse_tags, ts, update_mask};

#[derive(Args, Clone)]
pub struct KeyRef {
    #[arg(long)]
    vault_name: String,
    #[arg(long, short = 'n')]
    name: String,
    /// A version id; the latest version when absent.
    #[arg(long)]
    version: Option<String>,
}

#[derive(Args, Clone)]
pub struct Input {
    /// Base64 bytes.
    #[arg(long, conflicts_with = "file")]
    value: Option<String>,
    /// A file of raw bytes.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
}

#[derive(Args, Clone)]
pub struct ReadArgs {
    /// Serve from the node's local replica if it heard from the leader within this many milliseconds
    /// (default: confirm with the leader first).
    #[arg(long)]
    max_staleness_ms: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Encoding {
    Pem,
    Der,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Generate a key (a new version if the name exists).
    Create {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
        /// RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM, OKP, OKP-HSM.
        #[arg(long)]
        kty: String,
        /// RSA: 2048, 3072, 4096. oct: 128, 192, 256.
        #[arg(long)]
        size: Option<i32>,
        /// EC: P-256, P-384, P-521, P-256K. OKP: Ed25519.
        #[arg(long)]
        curve: Option<String>,
        /// Allowed operations (default: all the type allows).
        #[arg(long, num_args = 1..)]
        ops: Vec<String>,
        #[arg(long = "tags", num_args = 1..)]
        tags: Vec<String>,
        #[arg(long)]
        disabled: bool,
        #[arg(long)]
        not_before: Option<i64>,
        #[arg(long)]
        expires: Option<i64>,
    },
    /// Import a private JWK (JSON file), or a BYOK blob made for one of the vault's key-exchange keys.
    Import {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
        /// A JSON file holding the private JWK.
        #[arg(long, conflicts_with = "byok_file")]
        jwk_file: Option<PathBuf>,
        /// A BYOK blob file (JSON); needs --kty for the key inside.
        #[arg(long, requires = "kty")]
        byok_file: Option<PathBuf>,
        #[arg(long)]
        kty: Option<String>,
        #[arg(long, num_args = 1..)]
        ops: Vec<String>,
        /// Mark the key -HSM (premium vaults).
        #[arg(long)]
        hsm: bool,
        #[arg(long = "tags", num_args = 1..)]
        tags: Vec<String>,
    },
    Show {
        #[command(flatten)]
        r: KeyRef,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Write the public key to a file (PEM or DER SubjectPublicKeyInfo), for OpenSSL and friends.
    Download {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long, short = 'f')]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = Encoding::Pem)]
        encoding: Encoding,
    },
    List {
        #[arg(long)]
        vault_name: String,
        #[arg(long)]
        max_results: Option<i32>,
    },
    ListVersions {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    SetAttributes {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long, num_args = 1..)]
        ops: Option<Vec<String>>,
        #[arg(long = "tags", num_args = 1..)]
        tags: Option<Vec<String>>,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        not_before: Option<i64>,
        #[arg(long)]
        expires: Option<i64>,
    },
    Delete {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    ShowDeleted {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    ListDeleted {
        #[arg(long)]
        vault_name: String,
    },
    Recover {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    Purge {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    Backup {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    Restore {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// A new version of the same type, size/curve and operations.
    Rotate {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Show or set the rotation policy (Azure's JSON, ISO-8601 durations).
    RotationPolicy {
        #[command(subcommand)]
        command: PolicyCmd,
    },
    /// 1-128 random bytes.
    Random {
        #[arg(long)]
        count: i32,
    },
    Encrypt {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[command(flatten)]
        input: Input,
        /// Base64 IV (CBC only).
        #[arg(long)]
        iv: Option<String>,
        /// Base64 additional authenticated data (GCM only).
        #[arg(long)]
        aad: Option<String>,
        #[command(flatten)]
        read: ReadArgs,
    },
    Decrypt {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[command(flatten)]
        input: Input,
        #[arg(long)]
        iv: Option<String>,
        #[arg(long)]
        aad: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        /// Write the plaintext to this file instead of printing it base64-encoded.
        #[arg(long)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    WrapKey {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[command(flatten)]
        input: Input,
        #[command(flatten)]
        read: ReadArgs,
    },
    UnwrapKey {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[command(flatten)]
        input: Input,
        #[arg(long)]
        out_file: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Sign a digest (--digest, base64), or a file hashed here with the algorithm's hash (--data-file;
    /// EdDSA signs the file's bytes).
    Sign {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[arg(long, conflicts_with = "data_file")]
        digest: Option<String>,
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// Also write the raw signature to this file.
        #[arg(long)]
        signature_file: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    Verify {
        #[command(flatten)]
        r: KeyRef,
        #[arg(long)]
        algorithm: String,
        #[arg(long, conflicts_with = "data_file")]
        digest: Option<String>,
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// Base64 signature.
        #[arg(long, conflicts_with = "signature_file")]
        signature: Option<String>,
        #[arg(long)]
        signature_file: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    Show {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Set the policy from Azure's JSON: {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},
    /// "action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}.
    Update {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'n')]
        name: String,
        /// The policy JSON, or @file.
        #[arg(long)]
        value: String,
    },
}

fn b64(bytes: &[u8]) -> Value {
    json!(STANDARD.encode(bytes))
}

fn from_b64(field: &str, s: &str) -> anyhow::Result<Vec<u8>> {
    STANDARD.decode(s.trim()).with_context(|| format!("--{field} is not base64"))
}

fn opt_b64(field: &str, s: Option<String>) -> anyhow::Result<Vec<u8>> {
    s.map(|s| from_b64(field, &s)).transpose().map(Option::unwrap_or_default)
}

fn read_input(input: Input) -> anyhow::Result<Vec<u8>> {
    match (input.value, input.file) {
        (Some(v), None) => from_b64("value", &v),
        (None, Some(p)) => std::fs::read(&p).with_context(|| format!("read {}", p.display())),
        _ => bail!("pass the input with --value (base64) or --file"),
    }
}

fn read_options(read: &ReadArgs) -> Option<pb::ReadOptions> {
    read.max_staleness_ms.map(|ms| pb::ReadOptions {
        consistency: pb::Consistency::BoundedStaleness as i32,
        max_staleness: Some(prost_types::Duration {
            seconds: (ms / 1000) as i64,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        }),
    })
}

/// The digest to sign or verify: given, or computed from a file with the algorithm's hash.
fn digest(algorithm: &str, digest: Option<String>, data_file: Option<PathBuf>) -> anyhow::Result<Vec<u8>> {
    match (digest, data_file) {
        (Some(d), None) => from_b64("digest", &d),
        (None, Some(p)) => {
            let data = std::fs::read(&p).with_context(|| format!("read {}", p.display()))?;
            Ok(match algorithm {
                "EdDSA" => data,
                a if a.ends_with("384") => sha2::Sha384::digest(&data).to_vec(),
                a if a.ends_with("512") => sha2::Sha512::digest(&data).to_vec(),
                _ => sha2::Sha256::digest(&data).to_vec(),
            })
        }
        _ => bail!("pass --digest (base64) or --data-file"),
    }
}

fn key_json(k: &pb::Key) -> Value {
    let a = k.attributes.clone().unwrap_or_default();
    let secs = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(Value::Null, |t| json!(t.seconds));
    json!({
        "kid": k.id,
        "name": k.name,
        "version": k.version,
        "key": k.key.as_ref().map(jwk::jwk_to_json),
        "keySize": k.key_size,
        "tags": k.tags,
        "managed": k.managed,
        "attributes": {
            "enabled": a.enabled,
            "notBefore": secs(&a.not_before),
            "expires": secs(&a.expires),
            "created": secs(&a.create_time),
            "updated": secs(&a.update_time),
            "recoveryLevel": a.recovery_level,
            "recoverableDays": a.recoverable_days,
            "exportable": a.exportable,
        },
    })
}

fn deleted_json(d: &pb::DeletedKey) -> Value {
    let mut out = d.key.as_ref().map_or(json!({}), key_json);
    out["recoveryId"] = json!(d.recovery_id);
    out["deletedDate"] = d.delete_time.as_ref().map_or(Value::Null, |t| json!(t.seconds));
    out["scheduledPurgeDate"] = d.scheduled_purge_time.as_ref().map_or(Value::Null, |t| json!(t.seconds));
    out
}

fn policy_json(p: &pb::KeyRotationPolicy) -> Value {
    use pb::lifetime_action::Trigger;
    let actions: Vec<Value> = p
        .lifetime_actions
        .iter()
        .map(|a| {
            let trigger = match &a.trigger {
                Some(Trigger::TimeAfterCreate(d)) => json!({ "timeAfterCreate": jwk::seconds_to_iso8601(d.seconds) }),
                Some(Trigger::TimeBeforeExpiry(d)) => json!({ "timeBeforeExpiry": jwk::seconds_to_iso8601(d.seconds) }),
                None => Value::Null,
            };
            let kind = if a.action == pb::LifetimeActionType::Notify as i32 { "Notify" } else { "Rotate" };
            json!({ "trigger": trigger, "action": { "type": kind } })
        })
        .collect();
    json!({
        "id": p.id,
        "lifetimeActions": actions,
        "attributes": {
            "expiryTime": p.expiry_time.as_ref().map(|d| jwk::seconds_to_iso8601(d.seconds)),
            "created": p.create_time.as_ref().map(|t| t.seconds),
            "updated": p.update_time.as_ref().map(|t| t.seconds),
        },
    })
}

fn policy_from_json(text: &str) -> anyhow::Result<pb::KeyRotationPolicy> {
    use pb::lifetime_action::Trigger;
    let v: Value = serde_json::from_str(text).context("the policy is not JSON")?;
    let duration = |s: &Value| -> anyhow::Result<prost_types::Duration> {
        let s = s.as_str().context("durations are ISO-8601 strings such as P90D")?;
        Ok(prost_types::Duration { seconds: jwk::iso8601_seconds(s).map_err(anyhow::Error::msg)?, nanos: 0 })
    };
    let mut actions = Vec::new();
    for a in v.get("lifetimeActions").and_then(Value::as_array).cloned().unwrap_or_default() {
        let t = a.get("trigger").context("a lifetime action needs a trigger")?;
        let trigger = match (t.get("timeAfterCreate"), t.get("timeBeforeExpiry")) {
            (Some(d), None) => Trigger::TimeAfterCreate(duration(d)?),
            (None, Some(d)) => Trigger::TimeBeforeExpiry(duration(d)?),
            _ => bail!("a trigger has exactly one of timeAfterCreate and timeBeforeExpiry"),
        };
        let kind = a.pointer("/action/type").and_then(Value::as_str).context("a lifetime action needs action.type")?;
        let action = match kind.to_ascii_lowercase().as_str() {
            "rotate" => pb::LifetimeActionType::Rotate,
            "notify" => pb::LifetimeActionType::Notify,
            other => bail!("action type '{other}' is not Rotate or Notify"),
        };
        actions.push(pb::LifetimeAction { trigger: Some(trigger), action: action as i32 });
    }
    let expiry_time = v.pointer("/attributes/expiryTime").filter(|e| !e.is_null()).map(duration).transpose()?;
    Ok(pb::KeyRotationPolicy { lifetime_actions: actions, expiry_time, ..Default::default() })
}

pub async fn key(client: &ArcaClient, command: KeyCmd, f: Format) -> anyhow::Result<()> {
    let mut k = client.keys();
    let mut c = client.crypto();
    let err = ClientError::from;
    let out: Value = match command {
        KeyCmd::Create { vault_name, name, kty, size, curve, ops, tags, disabled, not_before, expires } => {
            let r = pb::CreateKeyRequest {
                vault: vault_name,
                name,
                kty,
                key_size: size.unwrap_or(0),
                crv: curve.unwrap_or_default(),
                key_ops: ops,
                tags: parse_tags(&tags)?,
                enabled: Some(!disabled),
                not_before: ts(not_before),
                expires: ts(expires),
                public_exponent: 0,
            };
            key_json(&k.create_key(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::Import { vault_name, name, jwk_file, byok_file, kty, ops, hsm, tags } => {
            let mut jwk = match (jwk_file, byok_file) {
                (Some(p), None) => {
                    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
                    jwk::jwk_from_json(&text).map_err(anyhow::Error::msg)?
                }
                (None, Some(p)) => pb::JsonWebKey {
                    key_hsm: std::fs::read(&p).with_context(|| format!("read {}", p.display()))?,
                    ..Default::default()
                },
                _ => bail!("pass --jwk-file or --byok-file"),
            };
            if let Some(kty) = kty {
                jwk.kty = kty;
            }
            if !ops.is_empty() {
                jwk.key_ops = ops;
            }
            let r = pb::ImportKeyRequest {
                vault: vault_name,
                name,
                key: Some(jwk),
                hsm,
                tags: parse_tags(&tags)?,
                enabled: Some(true),
                not_before: None,
                expires: None,
            };
            key_json(&k.import_key(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::Show { r, read } => {
            let req = pb::GetKeyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                read_options: read_options(&read),
            };
            key_json(&k.get_key(req).await.map_err(err)?.into_inner())
        }
        KeyCmd::Download { r, file, encoding } => {
            let req = pb::GetKeyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                read_options: None,
            };
            let key = k.get_key(req).await.map_err(err)?.into_inner();
            if key.public_key_der.is_empty() {
                bail!("oct keys have no public key to download");
            }
            let body = match encoding {
                Encoding::Pem => jwk::pem("PUBLIC KEY", &key.public_key_der).into_bytes(),
                Encoding::Der => key.public_key_der.clone(),
            };
            std::fs::write(&file, body).with_context(|| format!("write {}", file.display()))?;
            json!({ "kid": key.id, "file": file.display().to_string() })
        }
        KeyCmd::List { vault_name, max_results } => {
            all_pages(max_results, |page_token| {
                let (mut k, vault) = (k.clone(), vault_name.clone());
                async move {
                    let r = k
                        .list_keys(pb::ListKeysRequest { vault, page_size: 100, page_token, read_options: None })
                        .await?;
                    let r = r.into_inner();
                    Ok((r.keys.iter().map(key_json).collect(), r.next_page_token))
                }
            })
            .await?
        }
        KeyCmd::ListVersions { vault_name, name } => {
            all_pages(None, |page_token| {
                let (mut k, vault, name) = (k.clone(), vault_name.clone(), name.clone());
                async move {
                    let r = pb::ListKeyVersionsRequest { vault, name, page_size: 100, page_token, read_options: None };
                    let r = k.list_key_versions(r).await?.into_inner();
                    Ok((r.keys.iter().map(key_json).collect(), r.next_page_token))
                }
            })
            .await?
        }
        KeyCmd::SetAttributes { r, ops, tags, enabled, not_before, expires } => {
            let mask = update_mask(&[
                (ops.is_some(), "key_ops", "--ops"),
                (tags.is_some(), "tags", "--tags"),
                (enabled.is_some(), "enabled", "--enabled"),
                (not_before.is_some(), "not_before", "--not-before"),
                (expires.is_some(), "expires", "--expires"),
            ])?;
            let req = pb::UpdateKeyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                key_ops: ops.unwrap_or_default(),
                tags: parse_tags(&tags.unwrap_or_default())?,
                enabled: enabled.unwrap_or(true),
                not_before: ts(not_before),
                expires: ts(expires),
                update_mask: Some(mask),
            };
            key_json(&k.update_key(req).await.map_err(err)?.into_inner())
        }
        KeyCmd::Delete { vault_name, name } => deleted_json(
            &k.delete_key(pb::DeleteKeyRequest { vault: vault_name, name }).await.map_err(err)?.into_inner(),
        ),
        KeyCmd::ShowDeleted { vault_name, name } => {
            let r = pb::GetDeletedKeyRequest { vault: vault_name, name, read_options: None };
            deleted_json(&k.get_deleted_key(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::ListDeleted { vault_name } => {
            all_pages(None, |page_token| {
                let (mut k, vault) = (k.clone(), vault_name.clone());
                async move {
                    let r = pb::ListDeletedKeysRequest { vault, page_size: 100, page_token, read_options: None };
                    let r = k.list_deleted_keys(r).await?.into_inner();
                    Ok((r.keys.iter().map(deleted_json).collect(), r.next_page_token))
                }
            })
            .await?
        }
        KeyCmd::Recover { vault_name, name } => {
            let r = pb::RecoverDeletedKeyRequest { vault: vault_name, name };
            key_json(&k.recover_deleted_key(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::Purge { vault_name, name } => {
            k.purge_deleted_key(pb::PurgeDeletedKeyRequest { vault: vault_name, name }).await.map_err(err)?;
            json!({ "purged": true })
        }
        KeyCmd::Backup { vault_name, name, file } => {
            let blob = k.backup_key(pb::BackupKeyRequest { vault: vault_name, name }).await.map_err(err)?.into_inner();
            crate::write_private(&file, &blob.value)?;
            json!({ "file": file.display().to_string(), "bytes": blob.value.len() })
        }
        KeyCmd::Restore { vault_name, file } => {
            let backup = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            key_json(
                &k.restore_key(pb::RestoreKeyRequest { vault: vault_name, backup }).await.map_err(err)?.into_inner(),
            )
        }
        KeyCmd::Rotate { vault_name, name } => {
            key_json(&k.rotate_key(pb::RotateKeyRequest { vault: vault_name, name }).await.map_err(err)?.into_inner())
        }
        KeyCmd::RotationPolicy { command: PolicyCmd::Show { vault_name, name } } => {
            let r = pb::GetKeyRotationPolicyRequest { vault: vault_name, name, read_options: None };
            policy_json(&k.get_key_rotation_policy(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::RotationPolicy { command: PolicyCmd::Update { vault_name, name, value } } => {
            let text = match value.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("read {path}"))?,
                None => value,
            };
            let policy = Some(policy_from_json(&text)?);
            let r = pb::UpdateKeyRotationPolicyRequest { vault: vault_name, name, policy };
            policy_json(&k.update_key_rotation_policy(r).await.map_err(err)?.into_inner())
        }
        KeyCmd::Random { count } => {
            let r = k.get_random_bytes(pb::GetRandomBytesRequest { count }).await.map_err(err)?.into_inner();
            json!({ "value": STANDARD.encode(r.value) })
        }
        KeyCmd::Encrypt { r, algorithm, input, iv, aad, read } => {
            let req = pb::EncryptRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                algorithm,
                plaintext: read_input(input)?,
                iv: opt_b64("iv", iv)?,
                aad: opt_b64("aad", aad)?,
                read_options: read_options(&read),
            };
            let o = c.encrypt(req).await.map_err(err)?.into_inner();
            json!({ "kid": o.kid, "result": b64(&o.ciphertext), "iv": b64(&o.iv), "tag": b64(&o.tag), "servedBy": o.served_by })
        }
        KeyCmd::Decrypt { r, algorithm, input, iv, aad, tag, out_file, read } => {
            let req = pb::DecryptRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                algorithm,
                ciphertext: read_input(input)?,
                iv: opt_b64("iv", iv)?,
                aad: opt_b64("aad", aad)?,
                tag: opt_b64("tag", tag)?,
                read_options: read_options(&read),
            };
            let o = c.decrypt(req).await.map_err(err)?.into_inner();
            output_bytes(o.kid, &o.plaintext, out_file, o.served_by)?
        }
        KeyCmd::WrapKey { r, algorithm, input, read } => {
            let req = pb::WrapKeyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                algorithm,
                key: read_input(input)?,
                read_options: read_options(&read),
            };
            let o = c.wrap_key(req).await.map_err(err)?.into_inner();
            json!({ "kid": o.kid, "result": b64(&o.wrapped_key), "servedBy": o.served_by })
        }
        KeyCmd::UnwrapKey { r, algorithm, input, out_file, read } => {
            let req = pb::UnwrapKeyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                algorithm,
                wrapped_key: read_input(input)?,
                read_options: read_options(&read),
            };
            let o = c.unwrap_key(req).await.map_err(err)?.into_inner();
            output_bytes(o.kid, &o.key, out_file, o.served_by)?
        }
        KeyCmd::Sign { r, algorithm, digest: d, data_file, signature_file, read } => {
            let req = pb::SignRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                digest: digest(&algorithm, d, data_file)?,
                algorithm,
                read_options: read_options(&read),
            };
            let o = c.sign(req).await.map_err(err)?.into_inner();
            if let Some(p) = signature_file {
                std::fs::write(&p, &o.signature).with_context(|| format!("write {}", p.display()))?;
            }
            json!({ "kid": o.kid, "result": b64(&o.signature), "servedBy": o.served_by })
        }
        KeyCmd::Verify { r, algorithm, digest: d, data_file, signature, signature_file, read } => {
            let signature = match (signature, signature_file) {
                (Some(s), None) => from_b64("signature", &s)?,
                (None, Some(p)) => std::fs::read(&p).with_context(|| format!("read {}", p.display()))?,
                _ => bail!("pass --signature (base64) or --signature-file"),
            };
            let req = pb::VerifyRequest {
                vault: r.vault_name,
                name: r.name,
                version: r.version.unwrap_or_default(),
                digest: digest(&algorithm, d, data_file)?,
                algorithm,
                signature,
                read_options: read_options(&read),
            };
            let o = c.verify(req).await.map_err(err)?.into_inner();
            json!({ "kid": o.kid, "value": o.valid, "servedBy": o.served_by })
        }
    };
    print_value(f, &out);
    Ok(())
}

fn output_bytes(kid: String, bytes: &[u8], out_file: Option<PathBuf>, served_by: u64) -> anyhow::Result<Value> {
    match out_file {
        Some(p) => {
            crate::write_private(&p, bytes)?;
            Ok(json!({ "kid": kid, "file": p.display().to_string(), "servedBy": served_by }))
        }
        None => Ok(json!({ "kid": kid, "result": b64(bytes), "servedBy": served_by })),
    }
}
