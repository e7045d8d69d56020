//! `arca.v1.CryptoService`: encrypt, decrypt, wrap, unwrap, sign and verify, served by every unsealed
//! node from its own replica. Each call: authorize → read barrier (ReadIndex unless the request accepts
//! bounded staleness) → resolve the key version locally → usage rules → the operation with the cached,
//! parsed key. Batches take one barrier and answer every item on its own.

use std::sync::Arc;

use arca_core::read::{self, KeyView};
use arca_crypto::keys::LoadedKey;
use arca_proto::v1 as pb;
use arca_proto::v1::crypto_service_server::CryptoService;
use arca_rbac::ObjectKind;
use arca_types::keys::{EncryptionAlgorithm, KeyFamily, KeyOp, SignatureAlgorithm};
use arca_types::limits::{CRYPTO_BATCH_ITEMS_MAX, CRYPTO_INPUT_BYTES_MAX};
use arca_types::{ArcaError, ErrorCode, ObjectName, VaultName, VersionId};
use tonic::{Request, Response, Status};

use crate::access::Action;
use crate::api::{parse_consistency, Api, Call};
use crate::keyspace::Keyspace;
use crate::services::keys::blocking;

pub struct Crypto(pub Arc<Api>);

/// The key a request names, resolved and checked, ready to use.
pub struct Target {
    pub key: Arc<LoadedKey>,
    pub kid: String,
    pub served_by: u64,
}

fn input(field: &str, bytes: &[u8]) -> Result<(), ArcaError> {
    if bytes.len() > CRYPTO_INPUT_BYTES_MAX {
        return Err(ArcaError::bad_parameter(
            field,
            format!("{field} is {} bytes; the limit is {CRYPTO_INPUT_BYTES_MAX}", bytes.len()),
        ));
    }
    Ok(())
}

/// One crypto request type: which key it names, what it needs, and how it runs.
pub trait CryptoItem: Send + 'static {
    type Out: Send + 'static;
    type Item;
    const OPERATION: &'static str;
    const ACTION: Action;
    const OP: KeyOp;
    /// Whether the operation needs only the public key, so that (as Azure allows) `keys/read` is
    /// enough when the key is asymmetric: encrypt, wrap and verify.
    const PUBLIC_OP: bool = false;
    fn key_ref(&self) -> (&str, &str, &str);
    fn read_options(&self) -> Option<&pb::ReadOptions>;
    /// Parses the algorithm and checks sizes before any key is looked up.
    fn validate(&self) -> Result<(), ArcaError>;
    fn run(self, target: &Target) -> Result<Self::Out, ArcaError>;
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item;
}

/// A caller admitted only to read a key may use it only for a public-key operation: the key must be
/// asymmetric.
fn only_public(public_only: bool, target: &Target) -> Result<(), ArcaError> {
    if public_only && target.key.spec().family() == KeyFamily::Oct {
        return Err(ArcaError::new(
            ErrorCode::ForbiddenByRbac,
            "reading a key allows public-key operations on asymmetric keys only; this key is symmetric",
        ));
    }
    Ok(())
}

fn item_error(e: &ArcaError) -> pb::ItemError {
    pb::ItemError {
        code: crate::status::grpc_code(e.code) as i32,
        reason: e.code.reason(),
        message: e.message.clone(),
        field: e.field.clone().unwrap_or_default(),
    }
}

macro_rules! item_result {
    ($result:expr, $msg:ident, $module:ident) => {
        pb::$msg {
            result: Some(match $result {
                Ok(ok) => pb::$module::Result::Ok(ok),
                Err(e) => pb::$module::Result::Error(item_error(&e)),
            }),
        }
    };
}

impl CryptoItem for pb::EncryptRequest {
    type Out = pb::EncryptResponse;
    type Item = pb::EncryptResult;
    const OPERATION: &'static str = "KeyEncrypt";
    const ACTION: Action = Action::KeyEncrypt;
    const PUBLIC_OP: bool = true;
    const OP: KeyOp = KeyOp::Encrypt;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        EncryptionAlgorithm::parse(&self.algorithm)?;
        input("plaintext", &self.plaintext)?;
        input("aad", &self.aad)
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = EncryptionAlgorithm::parse(&self.algorithm)?;
        let out = t.key.encrypt(alg, &self.plaintext, Some(&self.iv), &self.aad)?;
        Ok(pb::EncryptResponse {
            kid: t.kid.clone(),
            ciphertext: out.ciphertext,
            iv: out.iv,
            tag: out.tag,
            served_by: t.served_by,
        })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, EncryptResult, encrypt_result)
    }
}

impl CryptoItem for pb::DecryptRequest {
    type Out = pb::DecryptResponse;
    type Item = pb::DecryptResult;
    const OPERATION: &'static str = "KeyDecrypt";
    const ACTION: Action = Action::KeyDecrypt;
    const OP: KeyOp = KeyOp::Decrypt;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        EncryptionAlgorithm::parse(&self.algorithm)?;
        input("ciphertext", &self.ciphertext)?;
        input("aad", &self.aad)
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = EncryptionAlgorithm::parse(&self.algorithm)?;
        let plain = t.key.decrypt(alg, &self.ciphertext, &self.iv, &self.aad, &self.tag)?;
        Ok(pb::DecryptResponse { kid: t.kid.clone(), plaintext: plain.to_vec(), served_by: t.served_by })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, DecryptResult, decrypt_result)
    }
}

impl CryptoItem for pb::WrapKeyRequest {
    type Out = pb::WrapKeyResponse;
    type Item = pb::WrapKeyResult;
    const OPERATION: &'static str = "KeyWrap";
    const ACTION: Action = Action::KeyWrap;
    const PUBLIC_OP: bool = true;
    const OP: KeyOp = KeyOp::WrapKey;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        EncryptionAlgorithm::parse(&self.algorithm)?;
        input("key", &self.key)
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = EncryptionAlgorithm::parse(&self.algorithm)?;
        let wrapped_key = t.key.wrap(alg, &self.key)?;
        Ok(pb::WrapKeyResponse { kid: t.kid.clone(), wrapped_key, served_by: t.served_by })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, WrapKeyResult, wrap_key_result)
    }
}

impl CryptoItem for pb::UnwrapKeyRequest {
    type Out = pb::UnwrapKeyResponse;
    type Item = pb::UnwrapKeyResult;
    const OPERATION: &'static str = "KeyUnwrap";
    const ACTION: Action = Action::KeyUnwrap;
    const OP: KeyOp = KeyOp::UnwrapKey;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        EncryptionAlgorithm::parse(&self.algorithm)?;
        input("wrapped_key", &self.wrapped_key)
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = EncryptionAlgorithm::parse(&self.algorithm)?;
        let key = t.key.unwrap(alg, &self.wrapped_key)?;
        Ok(pb::UnwrapKeyResponse { kid: t.kid.clone(), key: key.to_vec(), served_by: t.served_by })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, UnwrapKeyResult, unwrap_key_result)
    }
}

impl CryptoItem for pb::SignRequest {
    type Out = pb::SignResponse;
    type Item = pb::SignResult;
    const OPERATION: &'static str = "KeySign";
    const ACTION: Action = Action::KeySign;
    const OP: KeyOp = KeyOp::Sign;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        SignatureAlgorithm::parse(&self.algorithm)?.check_input(self.digest.len())
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = SignatureAlgorithm::parse(&self.algorithm)?;
        let signature = t.key.sign(alg, &self.digest)?;
        Ok(pb::SignResponse { kid: t.kid.clone(), signature, served_by: t.served_by })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, SignResult, sign_result)
    }
}

impl CryptoItem for pb::VerifyRequest {
    type Out = pb::VerifyResponse;
    type Item = pb::VerifyResult;
    const OPERATION: &'static str = "KeyVerify";
    const ACTION: Action = Action::KeyVerify;
    const PUBLIC_OP: bool = true;
    const OP: KeyOp = KeyOp::Verify;
    fn key_ref(&self) -> (&str, &str, &str) {
        (&self.vault, &self.name, &self.version)
    }
    fn read_options(&self) -> Option<&pb::ReadOptions> {
        self.read_options.as_ref()
    }
    fn validate(&self) -> Result<(), ArcaError> {
        SignatureAlgorithm::parse(&self.algorithm)?.check_input(self.digest.len())?;
        input("signature", &self.signature)
    }
    fn run(self, t: &Target) -> Result<Self::Out, ArcaError> {
        let alg = SignatureAlgorithm::parse(&self.algorithm)?;
        let valid = t.key.verify(alg, &self.digest, &self.signature)?;
        Ok(pb::VerifyResponse { kid: t.kid.clone(), valid, served_by: t.served_by })
    }
    fn item(result: Result<Self::Out, ArcaError>) -> Self::Item {
        item_result!(result, VerifyResult, verify_result)
    }
}

impl Crypto {
    fn served_by(&self) -> u64 {
        self.0.engine.node_id.get().copied().unwrap_or(0)
    }

    /// Resolves the key a request names from the local replica and applies the usage rules.
    fn target(
        &self,
        ks: &Keyspace,
        vault: &VaultName,
        name: &str,
        version: &str,
        op: KeyOp,
    ) -> Result<Target, ArcaError> {
        let name = ObjectName::parse("name", name)?;
        let version = VersionId::parse_optional(version)?;
        let view: KeyView = read::get_key(&ks.recording_view(), vault, &name, version.as_ref())?;
        crate::key_use::check_use(&view, op, self.0.engine.clock.now_unix())?;
        Ok(Target {
            key: self.0.engine.key_cache.get(&view)?,
            kid: crate::convert::kid(&view, &self.0.engine.vault_suffix),
            served_by: self.served_by(),
        })
    }

    /// Authorizes `R`'s action at the key, after a read barrier as fresh as the request asks. For a
    /// public-key operation a caller who may only read the key is admitted too, and `true` comes back:
    /// the key must then turn out to be asymmetric.
    async fn authorize<R: CryptoItem>(
        &self,
        call: &mut Call,
        vault: &str,
        name: &str,
        freshness: crate::api::Freshness,
    ) -> Result<(Keyspace, VaultName, bool), ArcaError> {
        self.0.touch(call, name);
        let at = crate::api::Target::Object { vault, kind: ObjectKind::Keys, name };
        match self.0.authorize(call, R::ACTION, at, freshness).await {
            Ok(ks) => Ok((ks, VaultName::parse(vault)?, false)),
            Err(refused) if refused.code == ErrorCode::ForbiddenByRbac && R::PUBLIC_OP => {
                let ks = self.0.authorize(call, Action::KeyRead, at, crate::api::LOCAL).await.map_err(|_| refused)?;
                Ok((ks, VaultName::parse(vault)?, true))
            }
            Err(e) => Err(e),
        }
    }

    /// For a batch's other items: the same check as [`Self::authorize`], without another barrier.
    fn item_permitted<R: CryptoItem>(
        &self,
        ks: &Keyspace,
        call: &Call,
        vault: &VaultName,
        name: &str,
    ) -> Result<bool, ArcaError> {
        let scope = arca_rbac::Scope::object(vault, ObjectKind::Keys, &arca_types::ObjectName::parse("name", name)?);
        match self.0.permits(ks, call, R::ACTION, &scope) {
            Ok(()) => Ok(false),
            Err(refused) if refused.code == ErrorCode::ForbiddenByRbac && R::PUBLIC_OP => {
                self.0.permits(ks, call, Action::KeyRead, &scope).map_err(|_| refused)?;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs items that passed their checks; RSA work goes to the blocking pool so it never stalls the
    /// node's async workers (Raft heartbeats included).
    async fn run_items<R: CryptoItem>(
        &self,
        work: Vec<(R, Target)>,
    ) -> Result<Vec<Result<R::Out, ArcaError>>, ArcaError> {
        let heavy = work.iter().any(|(_, t)| t.key.spec().family() == KeyFamily::Rsa);
        blocking(heavy, move || Ok(work.into_iter().map(|(r, t)| r.run(&t)).collect())).await
    }

    async fn one<R: CryptoItem>(&self, request: Request<R>) -> Result<Response<R::Out>, Status> {
        let mut call = self.0.begin(&request, R::OPERATION);
        let r = request.into_inner();
        let result = async {
            let (vault, name, version) = r.key_ref();
            let freshness = Some(parse_consistency(r.read_options())?);
            let (ks, vault_name, public_only) = self.authorize::<R>(&mut call, vault, name, freshness).await?;
            r.validate()?;
            let (name, version) = (name.to_owned(), version.to_owned());
            let target = self.target(&ks, &vault_name, &name, &version, R::OP)?;
            only_public(public_only, &target)?;
            self.run_items(vec![(r, target)]).await?.pop().unwrap_or_else(|| Err(ArcaError::internal("no result")))
        }
        .await;
        self.0.finish(call, result)
    }

    async fn batch<R: CryptoItem>(
        &self,
        request: Request<(Vec<R>, Option<pb::ReadOptions>)>,
    ) -> Result<Response<(Vec<R::Item>, u64)>, Status> {
        let mut call = self.0.begin(&request, R::OPERATION);
        let (items, read_options) = request.into_inner();
        let result = async {
            if items.is_empty() || items.len() > CRYPTO_BATCH_ITEMS_MAX {
                return Err(ArcaError::bad_parameter(
                    "items",
                    format!("a batch holds 1-{CRYPTO_BATCH_ITEMS_MAX} items; this one has {}", items.len()),
                ));
            }
            let vault = items[0].key_ref().0.to_owned();
            let first_name = items[0].key_ref().1.to_owned();
            let freshness = Some(parse_consistency(read_options.as_ref())?);
            let (ks, vault_name, _) = self.authorize::<R>(&mut call, &vault, &first_name, freshness).await?;
            let mut slots: Vec<Option<Result<R::Out, ArcaError>>> = Vec::with_capacity(items.len());
            let mut work = Vec::new();
            let mut positions = Vec::new();
            for item in items.iter().skip(1) {
                self.0.touch(&mut call, item.key_ref().1);
            }
            for (i, item) in items.into_iter().enumerate() {
                let (v, name, version) = item.key_ref();
                let checked = if !v.eq_ignore_ascii_case(&vault) {
                    Err(ArcaError::bad_parameter("items.vault", "every item of a batch must name the same vault"))
                } else {
                    // Every item is authorized at its own key.
                    self.item_permitted::<R>(&ks, &call, &vault_name, name).and_then(|public_only| {
                        item.validate()?;
                        let target = self.target(&ks, &vault_name, name, version, R::OP)?;
                        only_public(public_only, &target)?;
                        Ok(target)
                    })
                };
                match checked {
                    Ok(target) => {
                        slots.push(None);
                        positions.push(i);
                        work.push((item, target));
                    }
                    Err(e) => slots.push(Some(Err(e))),
                }
            }
            for (i, out) in positions.into_iter().zip(self.run_items(work).await?) {
                slots[i] = Some(out);
            }
            let results = slots
                .into_iter()
                .map(|s| R::item(s.unwrap_or_else(|| Err(ArcaError::internal("a batch item has no result")))))
                .collect();
            Ok((results, self.served_by()))
        }
        .await;
        self.0.finish(call, result)
    }
}

fn unpack<T, R>(
    request: Request<T>,
    split: impl FnOnce(T) -> (Vec<R>, Option<pb::ReadOptions>),
) -> Request<(Vec<R>, Option<pb::ReadOptions>)> {
    let (metadata, extensions, inner) = request.into_parts();
    Request::from_parts(metadata, extensions, split(inner))
}

#[tonic::async_trait]
impl CryptoService for Crypto {
    async fn encrypt(&self, r: Request<pb::EncryptRequest>) -> Result<Response<pb::EncryptResponse>, Status> {
        self.one(r).await
    }
    async fn decrypt(&self, r: Request<pb::DecryptRequest>) -> Result<Response<pb::DecryptResponse>, Status> {
        self.one(r).await
    }
    async fn wrap_key(&self, r: Request<pb::WrapKeyRequest>) -> Result<Response<pb::WrapKeyResponse>, Status> {
        self.one(r).await
    }
    async fn unwrap_key(&self, r: Request<pb::UnwrapKeyRequest>) -> Result<Response<pb::UnwrapKeyResponse>, Status> {
        self.one(r).await
    }
    async fn sign(&self, r: Request<pb::SignRequest>) -> Result<Response<pb::SignResponse>, Status> {
        self.one(r).await
    }
    async fn verify(&self, r: Request<pb::VerifyRequest>) -> Result<Response<pb::VerifyResponse>, Status> {
        self.one(r).await
    }

    async fn batch_encrypt(
        &self,
        r: Request<pb::BatchEncryptRequest>,
    ) -> Result<Response<pb::BatchEncryptResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchEncryptResponse { results, served_by }))
    }
    async fn batch_decrypt(
        &self,
        r: Request<pb::BatchDecryptRequest>,
    ) -> Result<Response<pb::BatchDecryptResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchDecryptResponse { results, served_by }))
    }
    async fn batch_wrap_key(
        &self,
        r: Request<pb::BatchWrapKeyRequest>,
    ) -> Result<Response<pb::BatchWrapKeyResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchWrapKeyResponse { results, served_by }))
    }
    async fn batch_unwrap_key(
        &self,
        r: Request<pb::BatchUnwrapKeyRequest>,
    ) -> Result<Response<pb::BatchUnwrapKeyResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchUnwrapKeyResponse { results, served_by }))
    }
    async fn batch_sign(&self, r: Request<pb::BatchSignRequest>) -> Result<Response<pb::BatchSignResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchSignResponse { results, served_by }))
    }
    async fn batch_verify(
        &self,
        r: Request<pb::BatchVerifyRequest>,
    ) -> Result<Response<pb::BatchVerifyResponse>, Status> {
        let resp = self.batch(unpack(r, |b| (b.items, b.read_options))).await?;
        Ok(resp.map(|(results, served_by)| pb::BatchVerifyResponse { results, served_by }))
    }
}
