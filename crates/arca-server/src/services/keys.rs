//! `arca.v1.KeyService`: key management. Keys are generated (or imported and checked) on the node
//! that received the request, before the proposal; the Raft log and the state store only ever see the
//! material inside barrier ciphertext.

use std::sync::Arc;

use arca_core::read::{self, KeyView};
use arca_core::{Command, Outcome};
use arca_crypto::keys::{self, KeyMaterial, LoadedKey, PrivateJwk};
use arca_proto::v1 as pb;
use arca_proto::v1::key_service_server::KeyService;
use arca_types::keys::{parse_kty, Curve, KeyFamily, KeyOp, KeySpec};
use arca_types::limits::{KEY_IMPORT_BYTES_MAX, RANDOM_BYTES_MAX, RANDOM_BYTES_MIN};
use arca_types::{ArcaError, ObjectName, VaultName, VersionId};
use base64::Engine as _;
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{
    next_token, offset_window, page_size, page_token, parse_consistency, Api, Call, Freshness, Target, LOCAL, WRITE,
};
use crate::convert;
use crate::keyspace::Keyspace;
use arca_rbac::ObjectKind;

pub struct Keys(pub Arc<Api>);

pub fn parse_ops(raw: &[String]) -> Result<Option<Vec<KeyOp>>, ArcaError> {
    if raw.is_empty() {
        return Ok(None);
    }
    raw.iter().map(|s| KeyOp::parse(s)).collect::<Result<Vec<_>, _>>().map(Some)
}

/// The spec a create request asks for, with Azure's defaults (RSA 2048, EC P-256, oct 256).
fn requested_spec(r: &pb::CreateKeyRequest) -> Result<(KeySpec, bool), ArcaError> {
    let (family, hsm) = parse_kty(&r.kty)?;
    let bits =
        || u16::try_from(r.key_size).map_err(|_| ArcaError::bad_parameter("key_size", "key_size is out of range"));
    let no_size = |what: &str| {
        if r.key_size != 0 {
            return Err(ArcaError::bad_parameter("key_size", format!("{what} keys take a curve (crv), not key_size")));
        }
        Ok(())
    };
    let spec = match family {
        KeyFamily::Rsa => {
            if !r.crv.is_empty() {
                return Err(ArcaError::bad_parameter("crv", "RSA keys take key_size, not crv"));
            }
            if ![0, 65537].contains(&r.public_exponent) {
                return Err(ArcaError::bad_parameter(
                    "public_exponent",
                    "Arca generates RSA keys with exponent 65537 only",
                ));
            }
            KeySpec::Rsa { bits: if r.key_size == 0 { 2048 } else { bits()? } }
        }
        KeyFamily::Oct => KeySpec::Oct { bits: if r.key_size == 0 { 256 } else { bits()? } },
        KeyFamily::Ec => {
            no_size("EC")?;
            let curve = if r.crv.is_empty() { Curve::P256 } else { Curve::parse(&r.crv)? };
            KeySpec::Ec(curve)
        }
        KeyFamily::Okp => {
            no_size("OKP")?;
            if !r.crv.is_empty() && Curve::parse(&r.crv)? != Curve::Ed25519 {
                return Err(ArcaError::bad_parameter("crv", "OKP keys use crv Ed25519"));
            }
            KeySpec::Ed25519
        }
    };
    if family != KeyFamily::Rsa && r.public_exponent != 0 {
        return Err(ArcaError::bad_parameter("public_exponent", "only RSA keys take public_exponent"));
    }
    Ok((spec.validate()?, hsm))
}

/// Runs RSA work (generation takes up to seconds, a private-key operation milliseconds) on the
/// blocking pool so it never stalls the async workers that carry Raft heartbeats; everything else is
/// microseconds and runs inline (which also keeps the deterministic simulation free of real threads).
pub async fn blocking<T: Send + 'static>(
    heavy: bool,
    f: impl FnOnce() -> Result<T, ArcaError> + Send + 'static,
) -> Result<T, ArcaError> {
    if !heavy {
        return f();
    }
    tokio::task::spawn_blocking(f).await.map_err(|e| ArcaError::internal(format!("a crypto task failed: {e}")))?
}

#[derive(serde::Deserialize)]
struct ByokBlob {
    schema_version: String,
    header: ByokHeader,
    ciphertext: String,
}

#[derive(serde::Deserialize)]
struct ByokHeader {
    kid: String,
    alg: String,
    enc: String,
}

/// What an import request's JWK says, checked before any key material is parsed.
pub struct JwkImport {
    pub family: KeyFamily,
    pub kty_hsm: bool,
    pub key_ops: Option<Vec<KeyOp>>,
    pub crv: Option<Curve>,
}

/// Checks a JWK's size, `kty`, `key_ops` and `crv`.
pub fn check_jwk(jwk: &pb::JsonWebKey) -> Result<JwkImport, ArcaError> {
    let members =
        [&jwk.n, &jwk.e, &jwk.d, &jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi, &jwk.k, &jwk.x, &jwk.y, &jwk.key_hsm];
    if members.iter().map(|m| m.len()).sum::<usize>() > KEY_IMPORT_BYTES_MAX {
        return Err(ArcaError::bad_parameter("key", format!("the JWK is larger than {KEY_IMPORT_BYTES_MAX} bytes")));
    }
    let (family, kty_hsm) = parse_kty(&jwk.kty).map_err(|e| ArcaError { field: Some("key.kty".into()), ..e })?;
    let key_ops = parse_ops(&jwk.key_ops)?;
    let crv = if jwk.crv.is_empty() { None } else { Some(Curve::parse(&jwk.crv)?) };
    Ok(JwkImport { family, kty_hsm, key_ops, crv })
}

/// Turns a checked JWK that carries its private members in the clear into key material.
pub fn plain_jwk(jwk: &pb::JsonWebKey, import: &JwkImport) -> Result<(KeySpec, KeyMaterial), ArcaError> {
    keys::import_jwk(&PrivateJwk {
        family: Some(import.family),
        crv: import.crv,
        n: &jwk.n,
        e: &jwk.e,
        d: &jwk.d,
        p: &jwk.p,
        q: &jwk.q,
        dp: &jwk.dp,
        dq: &jwk.dq,
        qi: &jwk.qi,
        k: &jwk.k,
        x: &jwk.x,
        y: &jwk.y,
    })
}

/// Reads a BYOK blob: the key-exchange key it names and the ciphertext it carries.
pub fn parse_byok_blob(blob: &[u8]) -> Result<(ObjectName, Option<VersionId>, Vec<u8>), ArcaError> {
    let bad = |m: &str| ArcaError::bad_parameter("key.key_hsm", m.to_owned());
    let blob: ByokBlob = serde_json::from_slice(blob)
        .map_err(|_| bad("key_hsm is not a BYOK blob (JSON with schema_version, header{kid, alg, enc}, ciphertext)"))?;
    if blob.schema_version != "1.0.0" || blob.header.alg != "dir" || blob.header.enc != "CKM_RSA_AES_KEY_WRAP" {
        return Err(bad("Arca reads BYOK blobs of schema 1.0.0 with alg 'dir' and enc 'CKM_RSA_AES_KEY_WRAP'"));
    }
    let ciphertext = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(blob.ciphertext.trim_end_matches('='))
        .map_err(|_| bad("the BYOK ciphertext is not base64url"))?;
    let (kek_name, kek_version) = kid_parts(&blob.header.kid)?;
    Ok((kek_name, kek_version, ciphertext))
}

/// The `{name}/{version}` a kid names, from `https://{vault-host}/keys/{name}/{version}` or `{name}/{version}`.
fn kid_parts(kid: &str) -> Result<(ObjectName, Option<VersionId>), ArcaError> {
    let bad = || ArcaError::bad_parameter("key.key_hsm", "the BYOK header's kid does not name a key of this vault");
    let path = kid.split_once("/keys/").map_or(kid, |(_, rest)| rest);
    let mut parts = path.trim_end_matches('/').split('/');
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
    let version = parts.next().map(VersionId::parse).transpose().map_err(|_| bad())?;
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((ObjectName::parse("key.key_hsm", name).map_err(|_| bad())?, version))
}

impl Keys {
    fn suffix(&self) -> &str {
        &self.0.engine.vault_suffix
    }

    /// Authorizes at the key (after a read barrier as fresh as `freshness`), parses the names, and
    /// records the object for audit.
    async fn open(
        &self,
        call: &mut Call,
        action: Action,
        vault: &str,
        name: &str,
        freshness: Freshness,
    ) -> Result<(Keyspace, VaultName, ObjectName), ArcaError> {
        self.0.touch(call, name);
        let ks =
            self.0.authorize(call, action, Target::Object { vault, kind: ObjectKind::Keys, name }, freshness).await?;
        Ok((ks, VaultName::parse(vault)?, ObjectName::parse("name", name)?))
    }

    /// One page of keys (or deleted keys), showing only those the caller may read.
    async fn list_page(
        &self,
        call: &mut Call,
        vault: &str,
        raw_page_size: i32,
        raw_page_token: &str,
        read_options: Option<&pb::ReadOptions>,
        deleted: bool,
    ) -> Result<arca_core::view::Page<KeyView>, ArcaError> {
        let freshness = Some(parse_consistency(read_options)?);
        let (ks, visible) = self.0.authorize_list(call, Action::KeyRead, vault, ObjectKind::Keys, freshness).await?;
        let vault = VaultName::parse(vault)?;
        let limit = page_size(raw_page_size)?;
        let after = page_token(raw_page_token)?;
        let mut page = read::list_keys(&ks.recording_view(), &vault, deleted, after.as_deref(), limit)?;
        page.items.retain(|v| visible.shows(&v.key.name.canonical()));
        Ok(page)
    }

    fn loaded(&self, view: &KeyView) -> Result<Arc<LoadedKey>, ArcaError> {
        self.0.engine.key_cache.get(view)
    }

    fn key_message(&self, view: &KeyView) -> Result<pb::Key, ArcaError> {
        Ok(convert::key(view, self.suffix(), &*self.loaded(view)?))
    }

    async fn run(&self, call: &Call, command: Command) -> Result<KeyView, ArcaError> {
        match self.0.engine.execute(&command, call.client_request().as_ref()).await? {
            Outcome::Key { vault, key, version } => Ok(KeyView { vault, key, version }),
            _ => Err(ArcaError::internal("a key command produced another kind of outcome")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_version(
        &self,
        call: &Call,
        vault: VaultName,
        name: ObjectName,
        spec: KeySpec,
        hsm: bool,
        material: KeyMaterial,
        key_ops: Option<Vec<KeyOp>>,
        tags: &std::collections::HashMap<String, String>,
        enabled: Option<bool>,
        not_before: Option<&prost_types::Timestamp>,
        expires: Option<&prost_types::Timestamp>,
    ) -> Result<pb::Key, ArcaError> {
        let command = Command::CreateKey {
            vault,
            name,
            version: VersionId::from_bytes(self.0.engine.seal.entropy().bytes16()),
            spec,
            hsm,
            material,
            key_ops,
            tags: convert::tags(tags),
            enabled: enabled.unwrap_or(true),
            not_before: convert::from_ts("not_before", not_before)?,
            expires: convert::from_ts("expires", expires)?,
            rotate_from: None,
        };
        let view = self.run(call, command).await?;
        self.key_message(&view)
    }

    /// Opens a BYOK blob with the vault's key-exchange key it names.
    async fn open_byok(
        &self,
        ks: &Keyspace,
        call: &Call,
        vault: &VaultName,
        family: KeyFamily,
        blob: &[u8],
    ) -> Result<(KeySpec, KeyMaterial), ArcaError> {
        let bad = |m: &str| ArcaError::bad_parameter("key.key_hsm", m.to_owned());
        let (kek_name, kek_version, ciphertext) = parse_byok_blob(blob)?;
        // The key-exchange key is used on the caller's behalf: the caller must be allowed to import
        // with it, or a blob wrapped for another team's key-exchange key would hand over its key.
        let kek_scope = arca_rbac::Scope::object(vault, ObjectKind::Keys, &kek_name);
        self.0.permits(ks, call, Action::KeyImport, &kek_scope)?;
        let kek = read::get_key(&ks.recording_view(), vault, &kek_name, kek_version.as_ref())
            .map_err(|_| bad("the BYOK header's kid does not name a key-exchange key of this vault"))?;
        if kek.version.key_ops != [KeyOp::Import] {
            return Err(bad(
                "the key the BYOK blob names is not a key-exchange key (key_ops must be exactly [\"import\"])",
            ));
        }
        crate::key_use::check_use(&kek, KeyOp::Import, self.0.engine.clock.now_unix())?;
        let loaded = self.loaded(&kek)?;
        blocking(true, move || loaded.open_byok(family, &ciphertext)).await
    }
}

#[tonic::async_trait]
impl KeyService for Keys {
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyCreate");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyCreate, &r.vault, &r.name, WRITE).await?;
            let (spec, hsm) = requested_spec(&r)?;
            let key_ops = parse_ops(&r.key_ops)?;
            if let Some(ops) = &key_ops {
                spec.check_ops(ops)?;
            }
            let material = blocking(spec.family() == KeyFamily::Rsa, move || keys::generate(spec)).await?;
            self.create_version(
                &call,
                vault,
                name,
                spec,
                hsm,
                material,
                key_ops,
                &r.tags,
                r.enabled,
                r.not_before.as_ref(),
                r.expires.as_ref(),
            )
            .await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn import_key(&self, request: Request<pb::ImportKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyImport");
        let r = request.into_inner();
        let result = async {
            let (ks, vault, name) = self.open(&mut call, Action::KeyImport, &r.vault, &r.name, WRITE).await?;
            let jwk = r.key.as_ref().ok_or_else(|| ArcaError::bad_parameter("key", "import needs a JWK in key"))?;
            let import = check_jwk(jwk)?;
            let (family, kty_hsm, key_ops) = (import.family, import.kty_hsm, import.key_ops.clone());
            let (spec, material) = if !jwk.key_hsm.is_empty() {
                self.open_byok(&ks, &call, &vault, family, &jwk.key_hsm).await?
            } else {
                let owned = jwk.clone();
                blocking(family == KeyFamily::Rsa, move || plain_jwk(&owned, &import)).await?
            };
            if let Some(ops) = &key_ops {
                spec.check_ops(ops)?;
            }
            self.create_version(
                &call,
                vault,
                name,
                spec,
                kty_hsm || r.hsm,
                material,
                key_ops,
                &r.tags,
                r.enabled,
                r.not_before.as_ref(),
                r.expires.as_ref(),
            )
            .await
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyGet");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) = self.open(&mut call, Action::KeyRead, &r.vault, &r.name, freshness).await?;
            let version = VersionId::parse_optional(&r.version)?;
            let view = read::get_key(&ks.recording_view(), &vault, &name, version.as_ref())?;
            self.key_message(&view)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_keys(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let mut call = self.0.begin(&request, "KeyList");
        let r = request.into_inner();
        let result = async {
            let page =
                self.list_page(&mut call, &r.vault, r.page_size, &r.page_token, r.read_options.as_ref(), false).await?;
            let keys = page.items.iter().map(|v| self.key_message(v)).collect::<Result<_, _>>()?;
            Ok(pb::ListKeysResponse { keys, next_page_token: next_token(page.next) })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_key_versions(
        &self,
        request: Request<pb::ListKeyVersionsRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let mut call = self.0.begin(&request, "KeyListVersions");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) = self.open(&mut call, Action::KeyRead, &r.vault, &r.name, freshness).await?;
            let versions = read::key_versions(&ks.recording_view(), &vault, &name)?;
            let (range, next_page_token) = offset_window(versions.len(), r.page_size, &r.page_token)?;
            let keys = versions[range].iter().map(|v| self.key_message(v)).collect::<Result<_, _>>()?;
            Ok(pb::ListKeysResponse { keys, next_page_token })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyUpdate");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyUpdate, &r.vault, &r.name, WRITE).await?;
            let has = crate::api::update_mask(
                r.update_mask.as_ref(),
                &["key_ops", "tags", "enabled", "not_before", "expires"],
            )?;
            let key_ops = if has("key_ops") {
                Some(parse_ops(&r.key_ops)?.ok_or_else(|| {
                    ArcaError::bad_parameter("key_ops", "key_ops cannot be emptied; name the operations to keep")
                })?)
            } else {
                None
            };
            let command = Command::UpdateKey {
                vault,
                name,
                version: VersionId::parse_optional(&r.version)?,
                key_ops,
                tags: has("tags").then(|| convert::tags(&r.tags)),
                enabled: has("enabled").then_some(r.enabled),
                not_before: if has("not_before") {
                    Some(convert::from_ts("not_before", r.not_before.as_ref())?)
                } else {
                    None
                },
                expires: if has("expires") { Some(convert::from_ts("expires", r.expires.as_ref())?) } else { None },
            };
            let view = self.run(&call, command).await?;
            self.key_message(&view)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn delete_key(&self, request: Request<pb::DeleteKeyRequest>) -> Result<Response<pb::DeletedKey>, Status> {
        let mut call = self.0.begin(&request, "KeyDelete");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyDelete, &r.vault, &r.name, WRITE).await?;
            let view = self.run(&call, Command::DeleteKey { vault, name }).await?;
            Ok(convert::deleted_key(&view, self.suffix(), &*self.loaded(&view)?))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_deleted_key(
        &self,
        request: Request<pb::GetDeletedKeyRequest>,
    ) -> Result<Response<pb::DeletedKey>, Status> {
        let mut call = self.0.begin(&request, "KeyGetDeleted");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) = self.open(&mut call, Action::KeyRead, &r.vault, &r.name, freshness).await?;
            let view = read::get_deleted_key(&ks.recording_view(), &vault, &name)?;
            Ok(convert::deleted_key(&view, self.suffix(), &*self.loaded(&view)?))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn list_deleted_keys(
        &self,
        request: Request<pb::ListDeletedKeysRequest>,
    ) -> Result<Response<pb::ListDeletedKeysResponse>, Status> {
        let mut call = self.0.begin(&request, "KeyListDeleted");
        let r = request.into_inner();
        let result = async {
            let page =
                self.list_page(&mut call, &r.vault, r.page_size, &r.page_token, r.read_options.as_ref(), true).await?;
            let keys = page
                .items
                .iter()
                .map(|v| Ok(convert::deleted_key(v, self.suffix(), &*self.loaded(v)?)))
                .collect::<Result<_, ArcaError>>()?;
            Ok(pb::ListDeletedKeysResponse { keys, next_page_token: next_token(page.next) })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn recover_deleted_key(
        &self,
        request: Request<pb::RecoverDeletedKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyRecover");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyRecover, &r.vault, &r.name, WRITE).await?;
            let view = self.run(&call, Command::RecoverKey { vault, name }).await?;
            self.key_message(&view)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn purge_deleted_key(&self, request: Request<pb::PurgeDeletedKeyRequest>) -> Result<Response<()>, Status> {
        let mut call = self.0.begin(&request, "KeyPurge");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyPurge, &r.vault, &r.name, WRITE).await?;
            self.0.engine.execute(&Command::PurgeKey { vault, name }, call.client_request().as_ref()).await.map(|_| ())
        }
        .await;
        self.0.finish(call, result)
    }

    async fn backup_key(
        &self,
        request: Request<pb::BackupKeyRequest>,
    ) -> Result<Response<pb::BackupKeyResponse>, Status> {
        let mut call = self.0.begin(&request, "KeyBackup");
        let r = request.into_inner();
        let result = async {
            let (ks, vault, name) = self.open(&mut call, Action::KeyBackup, &r.vault, &r.name, WRITE).await?;
            let (key, versions, policy) = read::backup_key(&ks.recording_view(), &vault, &name)?;
            Ok(pb::BackupKeyResponse { value: ks.key_backup_blob(key, versions, policy)? })
        }
        .await;
        self.0.finish(call, result)
    }

    async fn restore_key(&self, request: Request<pb::RestoreKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyRestore");
        let r = request.into_inner();
        let result = async {
            // The name to authorize at is inside the blob; one that does not open is refused at the
            // vault's scope first, so a caller without the right learns nothing of the blob.
            let opened = self.0.engine.seal.keyspace()?.open_key_backup(&r.backup);
            let target = match &opened {
                Ok((name, _, _)) => {
                    self.0.touch(&mut call, name.as_str());
                    Target::Object { vault: &r.vault, kind: ObjectKind::Keys, name: name.as_str() }
                }
                Err(_) => Target::Vault(&r.vault),
            };
            self.0.authorize(&mut call, Action::KeyRestore, target, WRITE).await?;
            let vault = VaultName::parse(&r.vault)?;
            let (name, versions, policy) = opened?;
            let view = self.run(&call, Command::RestoreKey { vault, name, versions, policy }).await?;
            self.key_message(&view)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn rotate_key(&self, request: Request<pb::RotateKeyRequest>) -> Result<Response<pb::Key>, Status> {
        let mut call = self.0.begin(&request, "KeyRotate");
        let r = request.into_inner();
        let result = async {
            let (ks, vault, name) = self.open(&mut call, Action::KeyRotate, &r.vault, &r.name, WRITE).await?;
            let view = rotate(&self.0.engine, &ks, vault, name, call.client_request().as_ref()).await?;
            self.key_message(&view)
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_key_rotation_policy(
        &self,
        request: Request<pb::GetKeyRotationPolicyRequest>,
    ) -> Result<Response<pb::KeyRotationPolicy>, Status> {
        let mut call = self.0.begin(&request, "KeyRotationPolicyGet");
        let r = request.into_inner();
        let result = async {
            let freshness = Some(parse_consistency(r.read_options.as_ref())?);
            let (ks, vault, name) = self.open(&mut call, Action::KeyPolicyRead, &r.vault, &r.name, freshness).await?;
            let record = read::get_policy(&ks.recording_view(), &vault, &name)?;
            Ok(convert::policy(&record, self.suffix()))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn update_key_rotation_policy(
        &self,
        request: Request<pb::UpdateKeyRotationPolicyRequest>,
    ) -> Result<Response<pb::KeyRotationPolicy>, Status> {
        let mut call = self.0.begin(&request, "KeyRotationPolicySet");
        let r = request.into_inner();
        let result = async {
            let (_, vault, name) = self.open(&mut call, Action::KeyPolicyWrite, &r.vault, &r.name, WRITE).await?;
            let policy = convert::policy_from(&r.policy.unwrap_or_default())?;
            match self
                .0
                .engine
                .execute(&Command::SetRotationPolicy { vault, name, policy }, call.client_request().as_ref())
                .await?
            {
                Outcome::Policy(record) => Ok(convert::policy(&record, self.suffix())),
                _ => Err(ArcaError::internal("a policy command produced another kind of outcome")),
            }
        }
        .await;
        self.0.finish(call, result)
    }

    async fn get_random_bytes(
        &self,
        request: Request<pb::GetRandomBytesRequest>,
    ) -> Result<Response<pb::GetRandomBytesResponse>, Status> {
        let mut call = self.0.begin(&request, "RandomBytesGet");
        let r = request.into_inner();
        let result = async {
            self.0.authorize(&mut call, Action::RandomBytes, Target::Cluster, LOCAL).await?;
            let count = u32::try_from(r.count).ok().filter(|c| (RANDOM_BYTES_MIN..=RANDOM_BYTES_MAX).contains(c));
            let count = count.ok_or_else(|| {
                ArcaError::bad_parameter(
                    "count",
                    format!("count must be {RANDOM_BYTES_MIN}-{RANDOM_BYTES_MAX}, it is {}", r.count),
                )
            })?;
            let mut value = vec![0u8; count as usize];
            keys::random_bytes(&mut value)?;
            Ok(pb::GetRandomBytesResponse { value })
        }
        .await;
        self.0.finish(call, result)
    }
}

/// Rotates a key: reads its latest version (linearizably), generates a key of the same type, and
/// proposes it as a new version guarded on the latest not having changed. Used by RotateKey and by
/// the leader's rotation loop.
pub async fn rotate(
    engine: &crate::engine::Engine,
    ks: &Keyspace,
    vault: VaultName,
    name: ObjectName,
    request: Option<&crate::keyspace::ClientRequest>,
) -> Result<KeyView, ArcaError> {
    engine.read_barrier(parse_consistency(None)?).await?;
    let latest = read::get_key(&ks.recording_view(), &vault, &name, None)?.version;
    let spec = latest.spec;
    let material = blocking(spec.family() == KeyFamily::Rsa, move || keys::generate(spec)).await?;
    let command = Command::CreateKey {
        vault,
        name,
        version: VersionId::from_bytes(engine.seal.entropy().bytes16()),
        spec,
        hsm: latest.hsm,
        material,
        key_ops: Some(latest.key_ops.clone()),
        tags: latest.tags.clone(),
        enabled: true,
        not_before: None,
        expires: None,
        rotate_from: Some(latest.version.clone()),
    };
    match engine.execute(&command, request).await? {
        Outcome::Key { vault, key, version } => Ok(KeyView { vault, key, version }),
        _ => Err(ArcaError::internal("a key command produced another kind of outcome")),
    }
}

/// One pass of the leader's lifetime-action loop: for every key with a rotation policy, rotate it or
/// write a `KeyNearExpiry` audit event when the policy says so at the replicated time. Returns how
/// many actions ran. Followers do nothing.
pub async fn run_lifetime_actions(api: &Api) -> Result<usize, ArcaError> {
    let engine = &api.engine;
    if !engine.raft()?.is_leader() {
        return Ok(0);
    }
    let ks = engine.seal.keyspace()?;
    let now = engine.clock.now_unix();
    let mut ran = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = arca_core::read::list_vaults(&ks.recording_view(), false, after.as_deref(), 100)?;
        for vault in &page.items {
            for record in ks.policies(vault)? {
                let Ok(latest) = read::get_key(&ks.recording_view(), &vault.name, &record.name, None) else { continue };
                let due = arca_core::decide::keys::due_actions(&record, &latest.version, now);
                if due.rotate {
                    let mut call =
                        api.system_call("KeyRotateByPolicy", Some(vault.name.canonical()), &[&record.name.canonical()]);
                    api.audit_request(&mut call)?;
                    let result = rotate(engine, &ks, vault.name.clone(), record.name.clone(), None).await;
                    api.finish_internal(call, result)?;
                    ran += 1;
                } else if due.notify {
                    let mut call =
                        api.system_call("KeyNearExpiry", Some(vault.name.canonical()), &[&record.name.canonical()]);
                    api.audit_request(&mut call)?;
                    let command = Command::MarkKeyNotified {
                        vault: vault.name.clone(),
                        name: record.name.clone(),
                        version: latest.version.version.clone(),
                    };
                    let result = engine.execute(&command, None).await;
                    api.finish_internal(call, result)?;
                    ran += 1;
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(ran),
        }
    }
}
