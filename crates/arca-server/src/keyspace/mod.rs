//! The encrypted keyspace: how vault and secret records are laid out in the state store.
//!
//! Keys are keyed hashes of names; values are barrier ciphertext bound to their key. Layout:
//!
//! | key | value |
//! |---|---|
//! | `s/keyring` | the keyring, wrapped under the root key |
//! | `s/init` | share count and threshold (not secret) |
//! | `s/nodeseq` | the last allocated node id |
//! | `s/cluster` | the cluster id, minted at bootstrap (not secret) |
//! | `s/cluster-ca` | the cluster CA certificate (public) |
//! | `s/cluster-ca-key` | the cluster CA key |
//! | `j/` + token id | join token record (a hash of its secret, expiry, who used it) |
//! | `t/` + H(token) | token record |
//! | `ta/` + accessor | the token's key and record, to list and revoke tokens by accessor |
//! | `r/` + H(caller, request id) | the outcome of a change made with a client request id |
//! | `rt/` + time + H(…) | when that outcome expires (for the sweep) |
//! | `s/root-next` | after a rekey: the new root key, under the barrier, for unsealed nodes to pick up |
//! | `s/token-key` | the access-token signing key (Ed25519), under the barrier |
//! | `s/token-keys` | the public token keys access tokens are checked with |
//! | `tv/` + token id | a revoked access token, kept until it would have expired |
//! | `aj/` + H(client id, jti) | a client assertion already used, kept until it expires |
//! | `xt/` + expiry + key | when a `tv/` or `aj/` mark may be swept |
//! | `aa/` + node id + seq | an audit anchor: the head of a node's audit chain, signed by the node |
//! | `s/lineage` | where a founded lineage forked from the one before, and whom it displaced (not secret) |
//! | `dv/` + epoch + node id | a divergence record: what a displaced node held that the lineage lacks |
//! | `v/` + H(vault name) | vault record |
//! | `o/` + vault id + `s` + H_vault(name) | secret header |
//! | `o/` + vault id + `S` + H_vault(name) + version | secret version |
//! | `o/` + vault id + `k` + H_vault(name) | key header |
//! | `o/` + vault id + `K` + H_vault(name) + version | key version (private material inside) |
//! | `o/` + vault id + `i` (secret) or `j` (key) + H_vault(name) + creation seq (u32, big-endian) | version index: the version id set at that position |
//! | `o/` + vault id + `r` + H_vault(name) | key rotation policy |
//! | `p/` + purge time + H(target) | purge schedule entry |
//! | `pr/`, `pn/`, `pc/`, `ra/`, `rp/`, `rr/`, `ru/`, `rd/`, `rn/` | principals, role assignments and custom roles ([`identity`]) |
//!
//! [`RecordingView`] answers the rules' lookups and remembers every key it read with the log index
//! that last wrote it; those become the proposal's preconditions, so a decision only applies if
//! nothing it read has changed in between.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use arca_core::view::Page;
use arca_core::{
    KeyVersionRecord, Mutation, ObjectHeader, ObjectKind, PolicyRecord, PurgeTarget, RotationPolicy,
    SecretVersionRecord, StateView, VaultRecord,
};
use arca_crypto::{Barrier, BarrierError, Scope};
use arca_storage::proposal::{Precondition, Proposal};
use arca_storage::{Op, StateStore};
use arca_types::{ArcaError, ObjectName, VaultName, VersionId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod identity;
#[cfg(test)]
mod test_node;

pub const KEYRING_KEY: &[u8] = b"s/keyring";
pub const INIT_KEY: &[u8] = b"s/init";
pub const NODE_SEQ_KEY: &[u8] = b"s/nodeseq";
pub const CLUSTER_KEY: &[u8] = b"s/cluster";
pub const CLUSTER_CA_KEY: &[u8] = b"s/cluster-ca";
pub const CLUSTER_CA_SECRET_KEY: &[u8] = b"s/cluster-ca-key";
const JOIN_TOKEN_PREFIX: &[u8] = b"j/";
const TOKEN_PREFIX: &[u8] = b"t/";
const TOKEN_ACCESSOR_PREFIX: &[u8] = b"ta/";
pub const ROOT_NEXT_KEY: &[u8] = b"s/root-next";
/// The cluster's access-token signing key (Ed25519 PKCS#8, under the barrier).
pub const TOKEN_SIGNING_KEY: &[u8] = b"s/token-key";
/// The public halves of the token keys tokens are checked with. Not secret, but sealed all the same:
/// only a node holding the barrier can write them, so nobody who gets an entry committed without
/// the keys (a compromised sealed member) can add a key and forge tokens.
pub const TOKEN_KEYS_KEY: &[u8] = b"s/token-keys";
const REVOKED_TOKEN_PREFIX: &[u8] = b"tv/";
/// Client assertions already used (by keyed hash of client id and `jti`), until they expire.
const USED_ASSERTION_PREFIX: &[u8] = b"aj/";
/// Audit anchors: `aa/` + node id + sequence number (both big-endian).
const AUDIT_ANCHOR_PREFIX: &[u8] = b"aa/";
/// When each such mark (a revoked token, a used assertion) may be forgotten: `xt/` + expiry + the
/// mark's own key.
const MARK_EXPIRY_PREFIX: &[u8] = b"xt/";
/// The only policy a token record may carry: a root token's.
pub const ROOT_POLICY: &str = "root";
const REQUEST_PREFIX: &[u8] = b"r/";
/// Divergence records: `dv/` + epoch + the displaced node's id (both big-endian).
const DIVERGENCE_PREFIX: &[u8] = b"dv/";
/// Length of a keyed name hash in a key.
const NAME_HASH_BYTES: usize = 32;
const REQUEST_TIME_PREFIX: &[u8] = b"rt/";
const VAULT_PREFIX: &[u8] = b"v/";
const OBJECT_PREFIX: &[u8] = b"o/";
pub const PURGE_PREFIX: &[u8] = b"p/";
const BACKUP_MAGIC: &[u8] = b"ARCA-SECRET-BACKUP-1:";
const BACKUP_LOCATION: &[u8] = b"arca/backup/secret";

/// Share count and threshold chosen at init, when, and (hashed) the request id of the init. Public
/// information, stored in the clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRecord {
    pub shares: u8,
    pub threshold: u8,
    pub initialized_at: i64,
    pub request_sha256: Option<[u8; 32]>,
}

/// A token's record. Only the keyed hash of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub policy: String,
    pub created: i64,
    /// A short, non-secret identifier for audit records.
    pub accessor: String,
}

/// A change a client named with a request id, as it arrives at the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The accessor of the caller's credential: request ids are per caller.
    pub caller: String,
    pub id: String,
    /// SHA-256 of the call's path and request message: the same id for another request is refused.
    pub fingerprint: [u8; 32],
}

/// The outcome of a change made with a client request id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub fingerprint: [u8; 32],
    pub at: i64,
    pub outcome: arca_core::Outcome,
}

/// A token's accessor index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIndex {
    pub token_key: Vec<u8>,
    pub record: TokenRecord,
}

/// Who a cluster is. Minted once, at bootstrap; public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub cluster_id: [u8; 16],
    pub created: i64,
}

/// The cluster CA's certificate (its key is stored apart, under the barrier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub cert_der: Vec<u8>,
}

/// A join token as the cluster remembers it: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTokenRecord {
    pub secret_sha256: [u8; 32],
    pub created: i64,
    pub expires: i64,
    /// The node it admits may only be a learner.
    pub learner_only: bool,
    /// The accessor of the credential that minted it.
    pub creator: String,
    /// The node it admitted, once used: a retry by the same key gets the same node id, anyone else is
    /// refused.
    pub used_by: Option<TokenUse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUse {
    pub node_id: u64,
    pub spki_sha256: [u8; 32],
    pub at: i64,
}

#[derive(Serialize, Deserialize)]
struct BackupBody {
    secret: BackedUpHeader,
    versions: Vec<SecretVersionRecord>,
}

/// An object's header as a backup blob carries it: its name and its version ids in creation order.
/// (The layout the stored header had before it moved its version list into a version index; blobs
/// keep it, so blobs made before still restore.)
#[derive(Serialize, Deserialize)]
struct BackedUpHeader {
    name: ObjectName,
    versions: Vec<VersionId>,
    deleted: Option<arca_core::records::Deletion>,
}

impl BackedUpHeader {
    fn of(name: ObjectName, versions: impl Iterator<Item = VersionId>) -> Self {
        Self { name, versions: versions.collect(), deleted: None }
    }

    /// The name, once the id list is checked against the records the blob carries.
    fn name_for<'a>(self, records: impl ExactSizeIterator<Item = &'a VersionId>) -> Result<ObjectName, ArcaError> {
        if self.versions.len() != records.len() || !self.versions.iter().zip(records).all(|(a, b)| a == b) {
            return Err(ArcaError::bad_parameter("backup", "the backup does not hold a consistent set of versions"));
        }
        Ok(self.name)
    }
}

fn storage(e: arca_storage::StorageError) -> ArcaError {
    ArcaError::internal(format!("storage failed: {e}"))
}

fn corrupt(e: BarrierError) -> ArcaError {
    match e {
        BarrierError::Wiped => crate::seal::sealed_error(),
        BarrierError::UnknownTerm(_) => {
            ArcaError::unavailable("the keyring was rotated and this node has not loaded the new term yet; retry")
        }
        other => ArcaError::internal(format!("a stored record did not open: {other}")),
    }
}

/// Typed, encrypted access to the state store for one unsealed node.
#[derive(Clone)]
pub struct Keyspace {
    store: Arc<dyn StateStore>,
    barrier: Barrier,
}

impl Keyspace {
    pub fn new(store: Arc<dyn StateStore>, barrier: Barrier) -> Self {
        Self { store, barrier }
    }

    pub fn barrier(&self) -> &Barrier {
        &self.barrier
    }

    /// The state store underneath, for records kept in the clear.
    pub fn store(&self) -> &dyn StateStore {
        &*self.store
    }

    fn hashed(&self, prefix: &[u8], scope: Scope<'_>, canonical: &str) -> Vec<u8> {
        let mut key = prefix.to_vec();
        key.extend_from_slice(&self.barrier.name_hash(scope, canonical.as_bytes()));
        key
    }

    pub fn vault_key(&self, name: &VaultName) -> Vec<u8> {
        self.hashed(VAULT_PREFIX, Scope::System, name.canonical())
    }

    fn object_prefix(vault_id: &[u8; 16], tag: u8) -> Vec<u8> {
        let mut key = OBJECT_PREFIX.to_vec();
        key.extend_from_slice(vault_id);
        key.push(tag);
        key
    }

    fn header_tag(kind: ObjectKind) -> u8 {
        match kind {
            ObjectKind::Secret => b's',
            ObjectKind::Key => b'k',
        }
    }

    fn version_tag(kind: ObjectKind) -> u8 {
        match kind {
            ObjectKind::Secret => b'S',
            ObjectKind::Key => b'K',
        }
    }

    fn named_key(&self, vault_id: &[u8; 16], tag: u8, name: &ObjectName) -> Vec<u8> {
        let mut key = Self::object_prefix(vault_id, tag);
        key.extend_from_slice(&self.barrier.name_hash(Scope::Vault(vault_id), name.canonical().as_bytes()));
        key
    }

    fn header_key(&self, kind: ObjectKind, vault_id: &[u8; 16], name: &ObjectName) -> Vec<u8> {
        self.named_key(vault_id, Self::header_tag(kind), name)
    }

    fn version_key(&self, kind: ObjectKind, vault_id: &[u8; 16], name: &ObjectName, version: &VersionId) -> Vec<u8> {
        let mut key = self.named_key(vault_id, Self::version_tag(kind), name);
        key.extend_from_slice(version.as_str().as_bytes());
        key
    }

    fn index_tag(kind: ObjectKind) -> u8 {
        match kind {
            ObjectKind::Secret => b'i',
            ObjectKind::Key => b'j',
        }
    }

    /// An object's version index: one entry per version, at its creation sequence number
    /// (big-endian, so key order is creation order), holding the version id.
    fn index_prefix(&self, kind: ObjectKind, vault_id: &[u8; 16], name: &ObjectName) -> Vec<u8> {
        self.named_key(vault_id, Self::index_tag(kind), name)
    }

    /// The index entry at `seq` under an object's index prefix.
    fn index_key(prefix: &[u8], seq: u32) -> Vec<u8> {
        [prefix, &seq.to_be_bytes()].concat()
    }

    fn policy_key(&self, vault_id: &[u8; 16], name: &ObjectName) -> Vec<u8> {
        self.named_key(vault_id, b'r', name)
    }

    /// A vault's network rules: under the vault's object prefix, so purging the vault removes them.
    fn network_rules_key(vault_id: &[u8; 16]) -> Vec<u8> {
        Self::object_prefix(vault_id, b'n')
    }

    /// Every rotation policy in a vault (for the leader's rotation loop), with the index that last
    /// wrote each.
    pub fn policies(&self, vault: &VaultRecord) -> Result<Vec<PolicyRecord>, ArcaError> {
        let prefix = Self::object_prefix(&vault.id, b'r');
        let mut out = Vec::new();
        for (key, v) in self.store.scan(&prefix, None, usize::MAX).map_err(storage)? {
            out.push(self.open(Scope::Vault(&vault.id), &key, &v.value)?);
        }
        Ok(out)
    }

    fn purge_key(&self, at: i64, target: &PurgeTarget) -> Vec<u8> {
        let mut key = PURGE_PREFIX.to_vec();
        key.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
        let target_bytes = postcard::to_allocvec(target).expect("purge targets encode");
        key.extend_from_slice(&self.barrier.name_hash(Scope::System, &target_bytes));
        key
    }

    /// A token's accessor: a short keyed hash of it, safe for audit records and for revoking it.
    pub fn token_accessor(&self, token: &str) -> String {
        crate::seal::hex_of(&self.barrier.name_hash(Scope::System, token.as_bytes())[..8])
    }

    pub fn token_key(&self, token: &str) -> Vec<u8> {
        self.hashed(TOKEN_PREFIX, Scope::System, &format!("token:{token}"))
    }

    fn seal<T: Serialize>(&self, scope: Scope<'_>, key: &[u8], value: &T) -> Result<Vec<u8>, ArcaError> {
        let plain = Zeroizing::new(postcard::to_allocvec(value).expect("records encode"));
        self.barrier.seal(scope, key, &plain).map_err(corrupt)
    }

    fn open<T: DeserializeOwned>(&self, scope: Scope<'_>, key: &[u8], sealed: &[u8]) -> Result<T, ArcaError> {
        let plain = self.barrier.open(scope, key, sealed).map_err(corrupt)?;
        postcard::from_bytes(&plain).map_err(|e| ArcaError::internal(format!("a stored record does not decode: {e}")))
    }

    /// Reads and opens one record, returning the index that last wrote it.
    fn read<T: DeserializeOwned>(&self, scope: Scope<'_>, key: &[u8]) -> Result<Option<(u64, T)>, ArcaError> {
        match self.store.get(key).map_err(storage)? {
            Some(v) => Ok(Some((v.modified_at, self.open(scope, key, &v.value)?))),
            None => Ok(None),
        }
    }

    pub fn token(&self, token: &str) -> Result<Option<TokenRecord>, ArcaError> {
        Ok(self.read::<TokenRecord>(Scope::System, &self.token_key(token))?.map(|(_, t)| t))
    }

    /// The writes that store a token record and its accessor index.
    pub fn put_token(&self, token: &str, record: &TokenRecord) -> Result<Vec<Op>, ArcaError> {
        let key = self.token_key(token);
        let index_key = [TOKEN_ACCESSOR_PREFIX, record.accessor.as_bytes()].concat();
        let index = TokenIndex { token_key: key.clone(), record: record.clone() };
        Ok(vec![
            Op::Put { value: self.seal(Scope::System, &key, record)?, key },
            Op::Put { value: self.seal(Scope::System, &index_key, &index)?, key: index_key },
        ])
    }

    /// Every token, by accessor.
    pub fn tokens(&self) -> Result<Vec<TokenIndex>, ArcaError> {
        let mut out = Vec::new();
        for (key, v) in self.store.scan(TOKEN_ACCESSOR_PREFIX, None, usize::MAX).map_err(storage)? {
            out.push(self.open(Scope::System, &key, &v.value)?);
        }
        Ok(out)
    }

    /// The writes that revoke the token with `accessor`, or `None` if there is none.
    pub fn revoke_token(&self, accessor: &str) -> Result<Option<Vec<Op>>, ArcaError> {
        let index_key = [TOKEN_ACCESSOR_PREFIX, accessor.as_bytes()].concat();
        let Some((_, index)) = self.read::<TokenIndex>(Scope::System, &index_key)? else { return Ok(None) };
        Ok(Some(vec![Op::Delete { key: index.token_key }, Op::Delete { key: index_key }]))
    }

    fn request_key(&self, request: &ClientRequest) -> Vec<u8> {
        self.hashed(REQUEST_PREFIX, Scope::System, &format!("request:{}:{}", request.caller, request.id))
    }

    /// The stored outcome of `request`, with the index that wrote it.
    pub fn request_record(&self, request: &ClientRequest) -> Result<Option<(u64, RequestRecord)>, ArcaError> {
        self.read(Scope::System, &self.request_key(request))
    }

    /// The precondition that no outcome is stored for `request` yet.
    pub fn request_unrecorded(&self, request: &ClientRequest) -> Precondition {
        Precondition { key: self.request_key(request), modified_at: None }
    }

    /// The writes that store `record` for `request`, and when it expires.
    pub fn put_request_record(&self, request: &ClientRequest, record: &RequestRecord) -> Result<Vec<Op>, ArcaError> {
        let key = self.request_key(request);
        let mut expiry = REQUEST_TIME_PREFIX.to_vec();
        expiry.extend_from_slice(&(record.at.max(0) as u64).to_be_bytes());
        expiry.extend_from_slice(&key[REQUEST_PREFIX.len()..]);
        Ok(vec![
            Op::Put { value: self.seal(Scope::System, &key, record)?, key },
            Op::Put { key: expiry, value: Vec::new() },
        ])
    }

    /// The writes that drop request records stored before `before`, at most `limit` of them.
    pub fn expired_requests(&self, before: i64, limit: usize) -> Result<Vec<Op>, ArcaError> {
        let mut ops = Vec::new();
        for (key, _) in self.store.scan(REQUEST_TIME_PREFIX, None, limit).map_err(storage)? {
            let at = key
                .get(REQUEST_TIME_PREFIX.len()..REQUEST_TIME_PREFIX.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| ArcaError::internal("a request expiry key is malformed"))?;
            if at as i64 >= before {
                break;
            }
            let record = [REQUEST_PREFIX, &key[REQUEST_TIME_PREFIX.len() + 8..]].concat();
            ops.push(Op::Delete { key: record });
            ops.push(Op::Delete { key });
        }
        Ok(ops)
    }

    /// Key material stored sealed as raw bytes under `key` (its own location), if present.
    fn system_bytes(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, ArcaError> {
        match self.store.get(key).map_err(storage)? {
            Some(v) => Ok(Some(self.barrier.open(Scope::System, key, &v.value).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// The access-token signing key, if one was made.
    pub fn token_signing_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>, ArcaError> {
        self.system_bytes(TOKEN_SIGNING_KEY)
    }

    pub fn put_token_signing_key(&self, pkcs8: &[u8]) -> Result<Op, ArcaError> {
        self.put_system_bytes(TOKEN_SIGNING_KEY, pkcs8)
    }

    /// The public token keys, sealed (see [`TOKEN_KEYS_KEY`]).
    pub fn token_keys(&self) -> Result<Vec<arca_identity::TokenKey>, ArcaError> {
        Ok(self.read(Scope::System, TOKEN_KEYS_KEY)?.map(|(_, k)| k).unwrap_or_default())
    }

    pub fn put_token_keys(&self, keys: &[arca_identity::TokenKey]) -> Result<Op, ArcaError> {
        Ok(Op::Put { value: self.seal(Scope::System, TOKEN_KEYS_KEY, &keys.to_vec())?, key: TOKEN_KEYS_KEY.to_vec() })
    }

    fn revoked_token_key(jti: &[u8; 16]) -> Vec<u8> {
        [REVOKED_TOKEN_PREFIX, jti.as_slice()].concat()
    }

    /// Whether the access token with this id was revoked.
    pub fn access_token_revoked(&self, jti: &[u8; 16]) -> Result<bool, ArcaError> {
        Ok(self.store.get(&Self::revoked_token_key(jti)).map_err(storage)?.is_some())
    }

    /// A mark at `key` until `expires` (Unix seconds), and its entry in the sweep's time index.
    fn put_mark(key: Vec<u8>, expires: i64) -> Vec<Op> {
        let mut at = MARK_EXPIRY_PREFIX.to_vec();
        at.extend_from_slice(&(expires.max(0) as u64).to_be_bytes());
        at.extend_from_slice(&key);
        vec![put_plain(&key, &expires), Op::Put { key: at, value: Vec::new() }]
    }

    /// The writes that revoke one access token until `expires`.
    pub fn revoke_access_token(jti: &[u8; 16], expires: i64) -> Vec<Op> {
        Self::put_mark(Self::revoked_token_key(jti), expires)
    }

    /// Where the use of a client assertion is marked: a keyed hash of its client id and `jti`.
    pub fn used_assertion_key(&self, client_id: &str, jti: &str) -> Vec<u8> {
        self.hashed(USED_ASSERTION_PREFIX, Scope::System, &format!("assertion:{client_id}:{jti}"))
    }

    /// The writes that mark an assertion used until `expires`; guard them with
    /// [`Keyspace::assertion_unused`], so a second use conflicts.
    pub fn use_assertion(mark: Vec<u8>, expires: i64) -> Vec<Op> {
        Self::put_mark(mark, expires)
    }

    pub fn assertion_unused(mark: &[u8]) -> Precondition {
        Precondition { key: mark.to_vec(), modified_at: None }
    }

    fn anchor_key(node_id: u64, seq: u64) -> Vec<u8> {
        [AUDIT_ANCHOR_PREFIX, &node_id.to_be_bytes()[..], &seq.to_be_bytes()[..]].concat()
    }

    pub fn put_audit_anchor(&self, anchor: &arca_audit::verify::SignedAnchor) -> Result<Op, ArcaError> {
        let key = Self::anchor_key(anchor.node_id, anchor.seq);
        Ok(Op::Put { value: self.seal(Scope::System, &key, anchor)?, key })
    }

    /// Every anchor of one node's audit log, in order.
    pub fn audit_anchors(&self, node_id: u64) -> Result<Vec<arca_audit::verify::SignedAnchor>, ArcaError> {
        let prefix = [AUDIT_ANCHOR_PREFIX, &node_id.to_be_bytes()[..]].concat();
        let mut out = Vec::new();
        for (key, v) in self.store.scan(&prefix, None, usize::MAX).map_err(storage)? {
            out.push(self.open(Scope::System, &key, &v.value)?);
        }
        Ok(out)
    }

    /// The writes that forget marks that expired before `before`, at most `limit` of them.
    pub fn expired_marks(&self, before: i64, limit: usize) -> Result<Vec<Op>, ArcaError> {
        let mut ops = Vec::new();
        for (key, _) in self.store.scan(MARK_EXPIRY_PREFIX, None, limit).map_err(storage)? {
            let at = key
                .get(MARK_EXPIRY_PREFIX.len()..MARK_EXPIRY_PREFIX.len() + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| ArcaError::internal("a mark expiry key is malformed"))?;
            if at as i64 >= before {
                break;
            }
            ops.push(Op::Delete { key: key[MARK_EXPIRY_PREFIX.len() + 8..].to_vec() });
            ops.push(Op::Delete { key });
        }
        Ok(ops)
    }

    fn put_system_bytes(&self, key: &[u8], bytes: &[u8]) -> Result<Op, ArcaError> {
        Ok(Op::Put { key: key.to_vec(), value: self.barrier.seal(Scope::System, key, bytes).map_err(corrupt)? })
    }

    /// The root key a rekey left for unsealed nodes, if any.
    pub fn root_next(&self) -> Result<Option<Zeroizing<Vec<u8>>>, ArcaError> {
        self.system_bytes(ROOT_NEXT_KEY)
    }

    pub fn put_root_next(&self, root: &[u8]) -> Result<Op, ArcaError> {
        self.put_system_bytes(ROOT_NEXT_KEY, root)
    }

    fn join_token_key(token_id: &[u8; 8]) -> Vec<u8> {
        [JOIN_TOKEN_PREFIX, token_id.as_slice()].concat()
    }

    /// A join token's record and the index that last wrote it.
    pub fn join_token(&self, token_id: &[u8; 8]) -> Result<Option<(u64, JoinTokenRecord)>, ArcaError> {
        self.read(Scope::System, &Self::join_token_key(token_id))
    }

    pub fn put_join_token(&self, token_id: &[u8; 8], record: &JoinTokenRecord) -> Result<Op, ArcaError> {
        let key = Self::join_token_key(token_id);
        Ok(Op::Put { value: self.seal(Scope::System, &key, record)?, key })
    }

    /// The precondition that a join token record is as read (at `modified_at`, or absent).
    pub fn join_token_unchanged(token_id: &[u8; 8], modified_at: Option<u64>) -> Precondition {
        Precondition { key: Self::join_token_key(token_id), modified_at }
    }

    /// Whether node `node_id` was admitted with a learner-only join token (a displaced node rejoining).
    pub fn admitted_learner_only(&self, node_id: u64) -> Result<bool, ArcaError> {
        for (key, v) in self.store.scan(JOIN_TOKEN_PREFIX, None, usize::MAX).map_err(storage)? {
            let record: JoinTokenRecord = self.open(Scope::System, &key, &v.value)?;
            if record.used_by.is_some_and(|u| u.node_id == node_id) {
                return Ok(record.learner_only);
            }
        }
        Ok(false)
    }

    fn divergence_key(epoch: u64, node_id: u64) -> Vec<u8> {
        [DIVERGENCE_PREFIX, &epoch.to_be_bytes(), &node_id.to_be_bytes()].concat()
    }

    /// The divergence record node `node_id` filed when epoch `epoch` displaced it, with the index
    /// that wrote it.
    pub fn divergence(
        &self,
        epoch: u64,
        node_id: u64,
    ) -> Result<Option<(u64, crate::divergence::DivergenceRecord)>, ArcaError> {
        self.read(Scope::System, &Self::divergence_key(epoch, node_id))
    }

    pub fn put_divergence(&self, record: &crate::divergence::DivergenceRecord) -> Result<Op, ArcaError> {
        let key = Self::divergence_key(record.epoch, record.node_id);
        Ok(Op::Put { value: self.seal(Scope::System, &key, record)?, key })
    }

    pub fn divergence_unchanged(epoch: u64, node_id: u64, modified_at: Option<u64>) -> Precondition {
        Precondition { key: Self::divergence_key(epoch, node_id), modified_at }
    }

    /// Every divergence record, oldest epoch first.
    pub fn divergences(&self) -> Result<Vec<crate::divergence::DivergenceRecord>, ArcaError> {
        let mut out = Vec::new();
        for (key, v) in self.store.scan(DIVERGENCE_PREFIX, None, usize::MAX).map_err(storage)? {
            out.push(self.open(Scope::System, &key, &v.value)?);
        }
        Ok(out)
    }

    /// Every vault's name by its id (the live ones), to name the objects of divergent entries.
    pub fn vault_names(&self) -> Result<BTreeMap<[u8; 16], String>, ArcaError> {
        let mut vaults = BTreeMap::new();
        for (key, v) in self.store.scan(VAULT_PREFIX, None, usize::MAX).map_err(storage)? {
            let vault: VaultRecord = self.open(Scope::System, &key, &v.value)?;
            vaults.insert(vault.id, vault.name.canonical().to_owned());
        }
        Ok(vaults)
    }

    /// What one proposal of a divergence record changed, as a person reads it: the objects, versions
    /// and operations, their names opened under the barrier; with `values`, the secret values too.
    /// Bookkeeping (request records, version indexes) is left out.
    pub fn describe(
        &self,
        proposal: &Proposal,
        vaults: &BTreeMap<[u8; 16], String>,
        values: bool,
    ) -> Result<Vec<Change>, ArcaError> {
        let mut vaults = vaults.clone();
        // Names come from the headers a proposal writes beside its versions.
        let mut names: BTreeMap<Vec<u8>, String> = BTreeMap::new();
        for op in &proposal.ops {
            if let Op::Put { key, value } = op {
                if let Some((vault_id, tag @ (b's' | b'k'), rest)) = object_key(key) {
                    let header: ObjectHeader = self.open(Scope::Vault(&vault_id), key, value)?;
                    names.insert(
                        name_slot(&vault_id, tag.to_ascii_uppercase(), rest),
                        header.name.canonical().to_owned(),
                    );
                }
                if key.starts_with(VAULT_PREFIX) {
                    let vault: VaultRecord = self.open(Scope::System, key, value)?;
                    vaults.insert(vault.id, vault.name.canonical().to_owned());
                }
            }
        }
        let mut out = Vec::new();
        for op in &proposal.ops {
            let (key, value) = match op {
                Op::Put { key, value } => (key, Some(value)),
                Op::Delete { key } => (key, None),
                Op::DeletePrefix { prefix } => (prefix, None),
            };
            let mut change = Change { operation: if value.is_some() { "put" } else { "delete" }, ..Change::default() };
            if let Some((vault_id, tag, rest)) = object_key(key) {
                change.vault = vaults.get(&vault_id).cloned().unwrap_or_else(|| hex::encode(vault_id));
                let hash = &rest[..rest.len().min(NAME_HASH_BYTES)];
                let suffix = &rest[hash.len()..];
                let named = |upper: u8| names.get(&name_slot(&vault_id, upper, hash)).cloned().unwrap_or_default();
                match tag {
                    b's' | b'k' => {
                        change.kind = if tag == b's' { "secret" } else { "key" };
                        change.name = named(tag.to_ascii_uppercase());
                        if let Some(value) = value {
                            let header: ObjectHeader = self.open(Scope::Vault(&vault_id), key, value)?;
                            change.name = header.name.canonical().to_owned();
                            change.version = header.latest.as_str().to_owned();
                            if header.deleted.is_some() {
                                change.operation = "delete";
                            }
                        }
                    }
                    b'S' | b'K' => {
                        change.kind = if tag == b'S' { "secret-version" } else { "key-version" };
                        change.name = named(tag);
                        change.version = String::from_utf8_lossy(suffix).into_owned();
                        if let (Some(value), true, b'S') = (value, values, tag) {
                            let version: SecretVersionRecord = self.open(Scope::Vault(&vault_id), key, value)?;
                            change.value = Some(Zeroizing::new(version.value.expose().to_owned()));
                            change.content_type = version.content_type.clone().unwrap_or_default();
                        }
                    }
                    b'r' => change.kind = "key-rotation-policy",
                    b'n' => change.kind = "network-rules",
                    _ => continue,
                }
            } else if key.starts_with(VAULT_PREFIX) {
                change.kind = "vault";
                if let Some(value) = value {
                    let vault: VaultRecord = self.open(Scope::System, key, value)?;
                    change.name = vault.name.canonical().to_owned();
                }
            } else if key.starts_with(REQUEST_PREFIX) || key.starts_with(REQUEST_TIME_PREFIX) {
                continue;
            } else {
                change.kind = "other";
                let prefix = key.iter().position(|b| *b == b'/').map_or(key.len(), |i| i + 1);
                change.name = String::from_utf8_lossy(&key[..prefix]).into_owned();
            }
            out.push(change);
        }
        Ok(out)
    }

    /// The cluster CA's key (PKCS#8), if the cluster is initialized.
    pub fn cluster_ca_key(&self) -> Result<Option<Zeroizing<Vec<u8>>>, ArcaError> {
        self.system_bytes(CLUSTER_CA_SECRET_KEY)
    }

    pub fn put_cluster_ca_key(&self, pkcs8: &[u8]) -> Result<Op, ArcaError> {
        self.put_system_bytes(CLUSTER_CA_SECRET_KEY, pkcs8)
    }

    /// A view that records what it reads, for deciding one command.
    pub fn recording_view(&self) -> RecordingView<'_> {
        RecordingView { keyspace: self, reads: RefCell::new(BTreeMap::new()) }
    }

    /// Turns the rules' mutations into a proposal guarded by everything the view read.
    pub fn proposal(&self, view: RecordingView<'_>, mutations: &[Mutation]) -> Result<Proposal, ArcaError> {
        let preconditions =
            view.reads.into_inner().into_iter().map(|(key, modified_at)| Precondition { key, modified_at }).collect();
        let mut ops = Vec::new();
        for m in mutations {
            match m {
                Mutation::PutVault(v) => {
                    let key = self.vault_key(&v.name);
                    ops.push(Op::Put { value: self.seal(Scope::System, &key, v)?, key });
                }
                Mutation::PurgeVault { name, id } => {
                    ops.push(Op::Delete { key: self.vault_key(name) });
                    let mut prefix = OBJECT_PREFIX.to_vec();
                    prefix.extend_from_slice(id);
                    ops.push(Op::DeletePrefix { prefix });
                }
                Mutation::PutHeader { kind, vault_id, header } => {
                    let key = self.header_key(*kind, vault_id, &header.name);
                    ops.push(Op::Put { value: self.seal(Scope::Vault(vault_id), &key, header)?, key });
                }
                Mutation::PutSecretVersion { vault_id, name, version } => {
                    let key = self.version_key(ObjectKind::Secret, vault_id, name, &version.version);
                    ops.push(Op::Put { value: self.seal(Scope::Vault(vault_id), &key, version)?, key });
                }
                Mutation::PutKeyVersion { vault_id, name, version } => {
                    let key = self.version_key(ObjectKind::Key, vault_id, name, &version.version);
                    ops.push(Op::Put { value: self.seal(Scope::Vault(vault_id), &key, version)?, key });
                }
                Mutation::PutNetworkRules { vault_id, rules } => {
                    let key = Self::network_rules_key(vault_id);
                    let record = arca_core::network::NetworkRulesRecord::V1(rules.clone());
                    ops.push(Op::Put { value: self.seal(Scope::Vault(vault_id), &key, &record)?, key });
                }
                Mutation::PutPolicy(record) => {
                    let key = self.policy_key(&record.vault_id, &record.name);
                    ops.push(Op::Put { value: self.seal(Scope::Vault(&record.vault_id), &key, record)?, key });
                }
                Mutation::IndexVersion { kind, vault_id, name, seq, version } => {
                    let key = Self::index_key(&self.index_prefix(*kind, vault_id, name), *seq);
                    ops.push(Op::Put { value: self.seal(Scope::Vault(vault_id), &key, version)?, key });
                }
                Mutation::PurgeObject { kind, vault_id, name } => {
                    ops.push(Op::Delete { key: self.header_key(*kind, vault_id, name) });
                    // Every version has exactly one index entry (both are written by the same entry,
                    // under the header's precondition), so the index names every version record
                    // without reading the records' values. A name hash has a fixed length, so the
                    // prefix holds this object's entries only. Deleted one by one rather than as
                    // ranges (range tombstones slow every later read of RocksDB): the decision read
                    // the header, which every new version rewrites, so no entry can appear between
                    // this scan and the apply.
                    let index = self.index_prefix(*kind, vault_id, name);
                    for (key, sealed) in self.store.scan(&index, None, usize::MAX).map_err(storage)? {
                        let version: VersionId = self.open(Scope::Vault(vault_id), &key, &sealed.value)?;
                        ops.push(Op::Delete { key: self.version_key(*kind, vault_id, name, &version) });
                        ops.push(Op::Delete { key });
                    }
                    if *kind == ObjectKind::Key {
                        ops.push(Op::Delete { key: self.policy_key(vault_id, name) });
                    }
                }
                Mutation::SchedulePurge { at, target } => {
                    let key = self.purge_key(*at, target);
                    ops.push(Op::Put { value: self.seal(Scope::System, &key, target)?, key });
                }
                Mutation::UnschedulePurge { at, target } => ops.push(Op::Delete { key: self.purge_key(*at, target) }),
                other => match self.identity_ops(other)? {
                    Some(identity) => ops.extend(identity),
                    None => return Err(ArcaError::internal("a mutation has no layout in the keyspace")),
                },
            }
        }
        Ok(Proposal { preconditions, ops })
    }

    /// Purge schedule entries due at or before `now`, oldest first.
    pub fn due_purges(&self, now: i64, limit: usize) -> Result<Vec<(i64, PurgeTarget)>, ArcaError> {
        let mut out = Vec::new();
        for (key, v) in self.store.scan(PURGE_PREFIX, None, limit).map_err(storage)? {
            let at_bytes: [u8; 8] = key
                .get(PURGE_PREFIX.len()..PURGE_PREFIX.len() + 8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ArcaError::internal("a purge schedule key is malformed"))?;
            let at = u64::from_be_bytes(at_bytes) as i64;
            if at > now {
                break;
            }
            out.push((at, self.open(Scope::System, &key, &v.value)?));
        }
        Ok(out)
    }

    fn seal_backup<T: Serialize>(&self, kind: ObjectKind, body: &T) -> Result<Vec<u8>, ArcaError> {
        let (magic, location) = backup_frame(kind);
        let mut blob = magic.to_vec();
        blob.extend_from_slice(&self.seal(Scope::Backup, location, body)?);
        Ok(blob)
    }

    /// Opens a backup blob of `kind`. Any tampering, a blob of another kind, or a blob from a cluster
    /// with another root key, is refused.
    fn open_backup_of<T: DeserializeOwned>(&self, kind: ObjectKind, blob: &[u8]) -> Result<T, ArcaError> {
        let bad = || {
            ArcaError::bad_parameter(
                "backup",
                format!(
                    "the backup blob is not a {} backup, is malformed, was tampered with, or comes from a cluster with another root key",
                    kind.noun()
                ),
            )
        };
        if blob.len() > arca_types::limits::BACKUP_BLOB_BYTES_MAX {
            return Err(ArcaError::bad_parameter("backup", "the backup blob is larger than any backup Arca makes"));
        }
        let (magic, location) = backup_frame(kind);
        let sealed = blob.strip_prefix(magic).ok_or_else(bad)?;
        let plain = self.barrier.open(Scope::Backup, location, sealed).map_err(|_| bad())?;
        postcard::from_bytes(&plain).map_err(|_| bad())
    }

    /// Seals a secret and all its versions into a backup blob that only this keyring opens.
    pub fn backup_blob(&self, secret: ObjectHeader, versions: Vec<SecretVersionRecord>) -> Result<Vec<u8>, ArcaError> {
        let secret = BackedUpHeader::of(secret.name, versions.iter().map(|v| v.version.clone()));
        self.seal_backup(ObjectKind::Secret, &BackupBody { secret, versions })
    }

    /// Opens a secret backup: the name and the versions in creation order.
    pub fn open_backup(&self, blob: &[u8]) -> Result<(ObjectName, Vec<SecretVersionRecord>), ArcaError> {
        let body: BackupBody = self.open_backup_of(ObjectKind::Secret, blob)?;
        let name = body.secret.name_for(body.versions.iter().map(|v| &v.version))?;
        Ok((name, body.versions))
    }

    /// Seals a key, all its versions (private material included) and its rotation policy.
    pub fn key_backup_blob(
        &self,
        key: ObjectHeader,
        versions: Vec<KeyVersionRecord>,
        policy: Option<RotationPolicy>,
    ) -> Result<Vec<u8>, ArcaError> {
        let key = BackedUpHeader::of(key.name, versions.iter().map(|v| v.version.clone()));
        self.seal_backup(ObjectKind::Key, &KeyBackupBody { key, versions, policy })
    }

    #[allow(clippy::type_complexity)]
    pub fn open_key_backup(
        &self,
        blob: &[u8],
    ) -> Result<(ObjectName, Vec<KeyVersionRecord>, Option<RotationPolicy>), ArcaError> {
        let body: KeyBackupBody = self.open_backup_of(ObjectKind::Key, blob)?;
        let name = body.key.name_for(body.versions.iter().map(|v| &v.version))?;
        Ok((name, body.versions, body.policy))
    }
}

/// The magic a backup blob of `kind` starts with, and the location its body is sealed at.
pub fn backup_frame(kind: ObjectKind) -> (&'static [u8], &'static [u8]) {
    match kind {
        ObjectKind::Secret => (BACKUP_MAGIC, BACKUP_LOCATION),
        ObjectKind::Key => (b"ARCA-KEY-BACKUP-1:", b"arca/backup/key"),
    }
}

#[derive(Serialize, Deserialize)]
struct KeyBackupBody {
    key: BackedUpHeader,
    versions: Vec<KeyVersionRecord>,
    policy: Option<RotationPolicy>,
}

/// A [`StateView`] over the encrypted keyspace that records every key it reads.
pub struct RecordingView<'a> {
    keyspace: &'a Keyspace,
    reads: RefCell<BTreeMap<Vec<u8>, Option<u64>>>,
}

impl RecordingView<'_> {
    fn read<T: DeserializeOwned>(&self, scope: Scope<'_>, key: Vec<u8>) -> Result<Option<T>, ArcaError> {
        let found = self.keyspace.read::<T>(scope, &key)?;
        self.reads.borrow_mut().entry(key).or_insert(found.as_ref().map(|(at, _)| *at));
        Ok(found.map(|(_, v)| v))
    }

    fn scan<T: DeserializeOwned>(
        &self,
        scope: Scope<'_>,
        prefix: Vec<u8>,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<T>, ArcaError> {
        if after.is_some_and(|a| a.len() != 32) {
            return Err(ArcaError::bad_parameter("page_token", "page_token is not one this server issued"));
        }
        let start = after.map(|a| [prefix.as_slice(), a].concat());
        let raw = self.keyspace.store.scan(&prefix, start.as_deref(), limit + 1).map_err(storage)?;
        let more = raw.len() > limit;
        let mut items = Vec::new();
        let mut last = None;
        for (key, v) in raw.into_iter().take(limit) {
            items.push(self.keyspace.open(scope, &key, &v.value)?);
            last = Some(key[prefix.len()..].to_vec());
        }
        Ok(Page { items, next: if more { last } else { None } })
    }
}

impl StateView for RecordingView<'_> {
    fn vault(&self, name: &VaultName) -> Result<Option<VaultRecord>, ArcaError> {
        self.read(Scope::System, self.keyspace.vault_key(name))
    }

    fn header(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
    ) -> Result<Option<ObjectHeader>, ArcaError> {
        self.read(Scope::Vault(&vault.id), self.keyspace.header_key(kind, &vault.id, name))
    }

    // Not recorded as preconditions: only reads use the index, and every write that adds to it
    // rewrites the header, which is recorded. A decision must not rely on the index alone.
    fn version_ids(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        name: &ObjectName,
        after: Option<u32>,
        limit: usize,
    ) -> Result<Vec<(u32, VersionId)>, ArcaError> {
        let prefix = self.keyspace.index_prefix(kind, &vault.id, name);
        let start = after.map(|a| Keyspace::index_key(&prefix, a));
        let raw = self.keyspace.store.scan(&prefix, start.as_deref(), limit).map_err(storage)?;
        let mut out = Vec::with_capacity(raw.len());
        for (key, v) in raw {
            let seq = key
                .get(prefix.len()..)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| ArcaError::internal("a version index key is malformed"))?;
            out.push((seq, self.keyspace.open(Scope::Vault(&vault.id), &key, &v.value)?));
        }
        Ok(out)
    }

    fn key_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<KeyVersionRecord>, ArcaError> {
        self.read(Scope::Vault(&vault.id), self.keyspace.version_key(ObjectKind::Key, &vault.id, name, version))
    }

    fn policy(&self, vault: &VaultRecord, name: &ObjectName) -> Result<Option<PolicyRecord>, ArcaError> {
        self.read(Scope::Vault(&vault.id), self.keyspace.policy_key(&vault.id, name))
    }

    fn network_rules(&self, vault: &VaultRecord) -> Result<arca_core::network::NetworkRules, ArcaError> {
        let record: Option<arca_core::network::NetworkRulesRecord> =
            self.read(Scope::Vault(&vault.id), Keyspace::network_rules_key(&vault.id))?;
        Ok(match record {
            Some(arca_core::network::NetworkRulesRecord::V1(rules)) => rules,
            None => Default::default(),
        })
    }

    fn secret_version(
        &self,
        vault: &VaultRecord,
        name: &ObjectName,
        version: &VersionId,
    ) -> Result<Option<SecretVersionRecord>, ArcaError> {
        self.read(Scope::Vault(&vault.id), self.keyspace.version_key(ObjectKind::Secret, &vault.id, name, version))
    }

    fn vaults(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<VaultRecord>, ArcaError> {
        self.scan(Scope::System, VAULT_PREFIX.to_vec(), after, limit)
    }

    fn headers(
        &self,
        kind: ObjectKind,
        vault: &VaultRecord,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Page<ObjectHeader>, ArcaError> {
        self.scan(Scope::Vault(&vault.id), Keyspace::object_prefix(&vault.id, Keyspace::header_tag(kind)), after, limit)
    }
}

/// One change a divergent proposal made (see [`Keyspace::describe`]).
#[derive(Default)]
pub struct Change {
    pub kind: &'static str,
    pub vault: String,
    pub name: String,
    pub version: String,
    pub operation: &'static str,
    /// Only when values were asked for, for secret versions.
    pub value: Option<Zeroizing<String>>,
    pub content_type: String,
}

/// Where [`Keyspace::describe`] files an object's name: vault id, version tag, name hash.
fn name_slot(vault_id: &[u8; 16], version_tag: u8, hash: &[u8]) -> Vec<u8> {
    let mut slot = vault_id.to_vec();
    slot.push(version_tag);
    slot.extend_from_slice(hash);
    slot
}

/// An object key's vault id, tag and the rest (name hash, then what follows it).
fn object_key(key: &[u8]) -> Option<([u8; 16], u8, &[u8])> {
    let rest = key.strip_prefix(OBJECT_PREFIX)?;
    let vault_id: [u8; 16] = rest.get(..16)?.try_into().ok()?;
    let tag = *rest.get(16)?;
    Some((vault_id, tag, &rest[17..]))
}

/// The write that stores a record in the clear (system parameters that are not secret).
pub fn put_plain<T: Serialize>(key: &[u8], value: &T) -> Op {
    Op::Put { key: key.to_vec(), value: postcard::to_allocvec(value).expect("system records encode") }
}

/// Reads a record stored in the clear (system parameters that are not secret).
pub fn read_plain<T: DeserializeOwned>(store: &dyn StateStore, key: &[u8]) -> Result<Option<(u64, T)>, ArcaError> {
    match store.get(key).map_err(storage)? {
        Some(v) => {
            let value = postcard::from_bytes(&v.value)
                .map_err(|e| ArcaError::internal(format!("a system record does not decode: {e}")))?;
            Ok(Some((v.modified_at, value)))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use arca_core::{read, Command, Sku, Tags};
    use arca_storage::Op;
    use arca_types::{SecretString, VersionId};

    use super::test_node::Node;
    use super::*;

    fn vault() -> VaultName {
        VaultName::parse("versions").unwrap()
    }

    fn name() -> ObjectName {
        ObjectName::parse("name", "config").unwrap()
    }

    fn set(value: &str) -> (VersionId, Command) {
        let version = VersionId::parse(&format!("{:032x}", rand_id(value))).unwrap();
        let command = Command::SetSecret {
            vault: vault(),
            name: name(),
            version: version.clone(),
            value: SecretString::new(value.to_owned()),
            content_type: None,
            tags: Tags::new(),
            enabled: true,
            not_before: None,
            expires: None,
        };
        (version, command)
    }

    fn rand_id(seed: &str) -> u128 {
        seed.bytes().fold(0x9e37_79b9_7f4a_7c15_u128, |h, b| (h ^ u128::from(b)).wrapping_mul(0x1000_0000_01b3))
    }

    fn written_bytes(ops: &[Op]) -> usize {
        ops.iter()
            .map(|op| match op {
                Op::Put { key, value } => key.len() + value.len(),
                _ => 0,
            })
            .sum()
    }

    fn setup() -> Node {
        let mut node = Node::new();
        node.run(&Command::CreateVault {
            name: vault(),
            id: [7; 16],
            sku: Sku::Standard,
            retention_days: 7,
            purge_protection: false,
            tags: Tags::new(),
        });
        node
    }

    /// What one set writes is the same at the second version and the hundredth: the header holds
    /// the latest version and a count, and the version list lives in an index beside it.
    #[test]
    fn a_set_writes_as_much_at_the_hundredth_version_as_at_the_second() {
        let mut node = setup();
        let mut ids = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..100 {
            let (id, command) = set(&format!("value-{i:03}"));
            let proposal = node.decide(&command);
            sizes.push(written_bytes(&proposal.ops));
            node.run(&command);
            ids.push(id);
        }
        assert!(sizes[1..].iter().all(|s| *s == sizes[1]), "bytes written per set: {sizes:?}");
        let (_, secret, versions) = read::secret_versions(&node.keyspace.recording_view(), &vault(), &name()).unwrap();
        assert_eq!(secret.version_count, 100);
        assert_eq!(versions.into_iter().map(|v| v.version).collect::<Vec<_>>(), ids, "listed in creation order");
    }

    /// A page of versions reads only that page's records, a listing longer than one index read (1,000
    /// entries) reads on, and a listing whose header was purged and the name created again answers
    /// not found, whether its page reaches the last version or stops short of it.
    #[test]
    fn a_page_of_versions_is_read_by_position_and_only_that_page() {
        let mut node = setup();
        let ids: Vec<VersionId> = (0..1001)
            .map(|i| {
                let (id, command) = set(&format!("p{i}"));
                node.run(&command);
                id
            })
            .collect();
        let page = |range: std::ops::Range<usize>| {
            let view = node.keyspace.recording_view();
            let want = range.end.min(1001).saturating_sub(range.start);
            let (_, secret, versions) = read::secret_versions_in(&view, &vault(), &name(), |total| {
                assert_eq!(total, 1001);
                Ok(range)
            })
            .unwrap();
            assert_eq!(secret.version_count, 1001);
            // The vault, the header and one record per listed version; nothing else is opened.
            assert_eq!(view.reads.borrow().len(), 2 + want);
            versions.into_iter().map(|v| v.version).collect::<Vec<_>>()
        };
        assert_eq!(page(0..1000), ids[..1000]);
        assert_eq!(page(1000..2000), ids[1000..], "the 1,001st version, past the first 1,000");
        assert_eq!(page(998..1001), ids[998..]);
        assert_eq!(page(1..3), ids[1..3]);
        assert_eq!(page(1001..1002), Vec::<VersionId>::new());
        let (_, _, all) = read::secret_versions(&node.keyspace.recording_view(), &vault(), &name()).unwrap();
        assert_eq!(all.into_iter().map(|v| v.version).collect::<Vec<_>>(), ids, "two index reads, in order");
        let view = node.keyspace.recording_view();
        let vault_rec = view.vault(&vault()).unwrap().unwrap();
        let header = view.header(ObjectKind::Secret, &vault_rec, &name()).unwrap().unwrap();
        node.run(&Command::DeleteSecret { vault: vault(), name: name() });
        node.run(&Command::PurgeSecret { vault: vault(), name: name() });
        for i in 0..1001 {
            node.run(&set(&format!("again{i}")).1);
        }
        for range in [0..1001, 0..1000, 5..6] {
            let listed =
                read::version_ids_at(&node.keyspace.recording_view(), ObjectKind::Secret, &vault_rec, &header, range);
            assert_eq!(
                listed.unwrap_err().code,
                arca_types::ErrorCode::SecretNotFound,
                "not another secret's versions"
            );
        }
    }

    /// Reads are not taken at one point in time: a listing that read the header before a set (or a
    /// purge) was applied still answers what that header promised (or not found), never an error.
    #[test]
    fn a_listing_that_races_a_set_or_a_purge_answers_what_its_header_promised() {
        let mut node = setup();
        let ids: Vec<VersionId> = (0..3)
            .map(|i| {
                let (id, command) = set(&format!("r{i}"));
                node.run(&command);
                id
            })
            .collect();
        let view = node.keyspace.recording_view();
        let vault_rec = view.vault(&vault()).unwrap().unwrap();
        let header = view.header(ObjectKind::Secret, &vault_rec, &name()).unwrap().unwrap();
        node.run(&set("r3").1);
        let listed = read::version_ids(&node.keyspace.recording_view(), ObjectKind::Secret, &vault_rec, &header);
        assert_eq!(listed.unwrap(), ids);
        node.run(&Command::DeleteSecret { vault: vault(), name: name() });
        node.run(&Command::PurgeSecret { vault: vault(), name: name() });
        let listed = read::version_ids(&node.keyspace.recording_view(), ObjectKind::Secret, &vault_rec, &header);
        assert_eq!(listed.unwrap_err().code, arca_types::ErrorCode::SecretNotFound);
    }

    /// A purge removes every version and index entry of the object and nothing of its neighbours.
    #[test]
    fn a_purge_leaves_nothing_of_the_object_behind() {
        let mut node = setup();
        for i in 0..5 {
            node.run(&set(&format!("v{i}")).1);
        }
        let mut other = set("neighbour").1;
        if let Command::SetSecret { name, .. } = &mut other {
            *name = ObjectName::parse("name", "config2").unwrap();
        }
        node.run(&other);
        let objects = |node: &Node| node.store.scan(OBJECT_PREFIX, None, usize::MAX).unwrap().len();
        let before = objects(&node);
        node.run(&Command::DeleteSecret { vault: vault(), name: name() });
        node.run(&Command::PurgeSecret { vault: vault(), name: name() });
        // One header, five versions and five index entries gone.
        assert_eq!(objects(&node), before - 11);
        let view = node.keyspace.recording_view();
        assert!(read::get_secret(&view, &vault(), &ObjectName::parse("name", "config2").unwrap(), None).is_ok());
    }

    /// Keys (created and rotated) and restored secrets index every version too, so their purges
    /// also leave nothing behind: a purge finds version records only through the index.
    #[test]
    fn a_purged_key_or_restored_secret_leaves_nothing_behind() {
        let mut node = setup();
        let objects = |node: &Node| node.store.scan(OBJECT_PREFIX, None, usize::MAX).unwrap().len();
        let empty = objects(&node);
        let key = ObjectName::parse("name", "signing").unwrap();
        let mut latest = None;
        for i in 0..3u8 {
            let version = VersionId::from_bytes([i + 1; 16]);
            node.run(&Command::CreateKey {
                vault: vault(),
                name: key.clone(),
                version: version.clone(),
                spec: arca_types::keys::KeySpec::Ec(arca_types::keys::Curve::P256),
                hsm: false,
                material: arca_types::SecretBytes::new(vec![i; 40]),
                key_ops: None,
                tags: Tags::new(),
                enabled: true,
                not_before: None,
                expires: None,
                rotate_from: latest.replace(version),
            });
        }
        // A header, three versions, three index entries.
        assert_eq!(objects(&node), empty + 7);
        node.run(&Command::DeleteKey { vault: vault(), name: key.clone() });
        node.run(&Command::PurgeKey { vault: vault(), name: key });
        assert_eq!(objects(&node), empty);

        for i in 0..3 {
            node.run(&set(&format!("r{i}")).1);
        }
        let (header, versions) = read::backup_secret(&node.keyspace.recording_view(), &vault(), &name()).unwrap();
        node.run(&Command::DeleteSecret { vault: vault(), name: name() });
        node.run(&Command::PurgeSecret { vault: vault(), name: name() });
        assert_eq!(objects(&node), empty);
        node.run(&Command::RestoreSecret { vault: vault(), name: header.name, versions });
        assert_eq!(objects(&node), empty + 7, "a restore writes the header, the versions and their index");
        node.run(&Command::DeleteSecret { vault: vault(), name: name() });
        node.run(&Command::PurgeSecret { vault: vault(), name: name() });
        assert_eq!(objects(&node), empty);
    }

    /// A backup carries the version list in the blob; one whose list disagrees with its records is
    /// refused before anything is decided.
    #[test]
    fn a_backup_round_trips_and_an_inconsistent_one_is_refused() {
        let mut node = setup();
        let ids: Vec<VersionId> = (0..3)
            .map(|i| {
                let (id, command) = set(&format!("b{i}"));
                node.run(&command);
                id
            })
            .collect();
        let view = node.keyspace.recording_view();
        let (header, versions) = read::backup_secret(&view, &vault(), &name()).unwrap();
        let blob = node.keyspace.backup_blob(header.clone(), versions.clone()).unwrap();
        let (restored_name, restored) = node.keyspace.open_backup(&blob).unwrap();
        assert_eq!(restored_name, name());
        assert_eq!(restored.iter().map(|v| v.version.clone()).collect::<Vec<_>>(), ids);
        let mut reordered =
            BackupBody { secret: BackedUpHeader::of(header.name.clone(), ids.iter().rev().cloned()), versions };
        let blob = node.keyspace.seal_backup(ObjectKind::Secret, &reordered).unwrap();
        assert_eq!(node.keyspace.open_backup(&blob).unwrap_err().code, arca_types::ErrorCode::BadParameter);
        reordered.secret.versions.clear();
        let blob = node.keyspace.seal_backup(ObjectKind::Secret, &reordered).unwrap();
        assert!(node.keyspace.open_backup(&blob).is_err());
    }
}
