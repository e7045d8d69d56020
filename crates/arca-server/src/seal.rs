//! Seal state of one node: sealed (collecting unseal shares) or unsealed (holding the root key and a
//! barrier over the current keyring).
//!
//! A node starts sealed. Raft runs regardless (it only moves ciphertext), but every data operation needs
//! the barrier, so a sealed node refuses them with `Sealed`.
//!
//! Unsealing with Shamir shares is one attempt at a time, bound to a nonce that only its first
//! submitter learns (in the answer to its first share): nobody else can add a share to it or reset it,
//! and an attempt left idle for long may be replaced (see [`crate::quorum`]). Unseal requests are
//! rate-limited per node. Sealing wipes the barrier, which every in-flight request shares, at once.

use std::sync::{Arc, RwLock};

use arca_types::limits::{UNSEAL_REQUESTS_BURST_MAX, UNSEAL_REQUESTS_PER_S_MAX};

use arca_crypto::shamir::{self, Share};
use arca_crypto::{Barrier, Entropy, Key32, Keyring, RootKey};
use arca_storage::proposal::{Precondition, Proposal};
use arca_storage::{Op, StateStore};
use arca_types::{ArcaError, ErrorCode};

use crate::keyspace::{
    self, CaRecord, ClusterRecord, InitRecord, Keyspace, TokenRecord, CLUSTER_CA_KEY, CLUSTER_KEY, INIT_KEY,
    KEYRING_KEY,
};
use crate::quorum::{Progress, Quorum};

enum SealState {
    Sealed,
    Unsealed { root: RootKey, barrier: Barrier },
}

/// What a successful `init` hands back to the operator, plus the proposal that records it.
pub struct InitMaterial {
    pub proposal: Proposal,
    pub shares: Vec<Share>,
    pub threshold: u8,
    pub root_token: String,
    pub unseal_key: Option<Share>,
    /// The cluster CA certificate and the certificate it issued the initializing node (DER).
    pub ca_cert_der: Vec<u8>,
    pub node_cert_der: Vec<u8>,
}

/// Who is initializing the cluster: its id (with the index that wrote it), the node doing it, and the
/// request's id if it named one.
pub struct InitSubject<'a> {
    pub cluster: &'a ClusterRecord,
    pub cluster_written_at: u64,
    pub node_id: u64,
    /// The key the node presents on the cluster listener (DER SubjectPublicKeyInfo).
    pub node_spki_der: &'a [u8],
    pub request_id: Option<&'a str>,
}

/// A snapshot of the seal state for `GetSealStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealStatus {
    pub initialized: bool,
    pub sealed: bool,
    pub threshold: u8,
    pub shares: u8,
    pub progress: u8,
    pub keyring_term: u32,
    /// The nonce of the unseal in progress: set only in the answer to the share that added to it.
    pub nonce: String,
}

pub struct SealManager {
    state: RwLock<SealState>,
    store: Arc<dyn StateStore>,
    entropy: Arc<dyn Entropy>,
    /// Unseal, root generation and rekey requests, together.
    unseal_rate: crate::rate::RateLimit,
    unseal: Quorum<()>,
}

/// The answer to an init of a cluster that is initialized: plain about whether it was this very
/// request (by its id) that did it, whose answer was then lost.
pub fn already_initialized(init: &InitRecord, request_id: Option<&str>) -> ArcaError {
    let this_one = match (request_id, init.request_sha256) {
        (Some(id), Some(hash)) => arca_crypto::cluster_pki::sha256(id.as_bytes()) == hash,
        _ => false,
    };
    let message = if this_one {
        format!(
            "the cluster was initialized at {} (Unix seconds) by this same request (its request id matches); \
             its shares and root token were returned only to that call and are kept nowhere. If that answer \
             was lost, nobody holds them: wipe the nodes and initialize a new cluster",
            init.initialized_at
        )
    } else {
        format!("the cluster was already initialized at {} (Unix seconds), by another request", init.initialized_at)
    };
    ArcaError::new(ErrorCode::AlreadyInitialized, message)
}

pub(crate) fn sealed_error() -> ArcaError {
    ArcaError::new(ErrorCode::Sealed, "this node is sealed; unseal it with `arca operator unseal`")
}

impl SealManager {
    pub fn new(store: Arc<dyn StateStore>, entropy: Arc<dyn Entropy>) -> Self {
        Self {
            state: RwLock::new(SealState::Sealed),
            store,
            entropy,
            unseal_rate: crate::rate::RateLimit::new(
                "unseal requests",
                UNSEAL_REQUESTS_PER_S_MAX,
                UNSEAL_REQUESTS_BURST_MAX,
            ),
            unseal: Quorum::new("unseal", "arca operator unseal"),
        }
    }

    pub fn entropy(&self) -> &Arc<dyn Entropy> {
        &self.entropy
    }

    /// The barrier, or `Sealed`.
    pub fn barrier(&self) -> Result<Barrier, ArcaError> {
        match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            SealState::Unsealed { barrier, .. } => Ok(barrier.clone()),
            SealState::Sealed => Err(sealed_error()),
        }
    }

    pub fn keyspace(&self) -> Result<Keyspace, ArcaError> {
        Ok(Keyspace::new(self.store.clone(), self.barrier()?))
    }

    pub fn is_sealed(&self) -> bool {
        matches!(&*self.state.read().unwrap_or_else(|p| p.into_inner()), SealState::Sealed)
    }

    fn init_record(&self) -> Result<Option<InitRecord>, ArcaError> {
        Ok(keyspace::read_plain::<InitRecord>(&*self.store, INIT_KEY)?.map(|(_, r)| r))
    }

    pub fn status(&self) -> Result<SealStatus, ArcaError> {
        let init = self.init_record()?;
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let (sealed, progress, term) = match &*state {
            SealState::Sealed => (true, self.unseal.progress() as u8, 0),
            SealState::Unsealed { barrier, .. } => (false, 0, barrier.keyring().map_or(0, |k| k.active_term())),
        };
        Ok(SealStatus {
            initialized: init.is_some(),
            sealed,
            threshold: init.map_or(0, |i| i.threshold),
            shares: init.map_or(0, |i| i.shares),
            progress,
            keyring_term: term,
            nonce: String::new(),
        })
    }

    /// Builds everything `init` needs. The caller proposes `proposal`; the material is only valid if it
    /// applies (its precondition is that no keyring exists yet).
    pub fn prepare_init(
        &self,
        shares: u8,
        threshold: u8,
        auto_unseal_key: bool,
        now: i64,
        subject: InitSubject<'_>,
    ) -> Result<InitMaterial, ArcaError> {
        if let Some(init) = self.init_record()? {
            return Err(already_initialized(&init, subject.request_id));
        }
        let entropy = self.entropy.as_ref();
        let root = RootKey(Key32::generate(entropy));
        let split = shamir::split(&root.0, shares, threshold, entropy)
            .map_err(|e| ArcaError::bad_parameter("secret_threshold", e.to_string()))?;
        let unseal_key = if auto_unseal_key {
            Some(shamir::split(&root.0, 1, 1, entropy).map_err(|e| ArcaError::internal(e.to_string()))?.remove(0))
        } else {
            None
        };
        let keyring = Keyring::generate(entropy);
        let wrapped = keyring.wrap(&root, entropy);
        let keyspace = Keyspace::new(self.store.clone(), Barrier::new(keyring, self.entropy.clone()));
        let token_bytes = self.entropy.bytes16();
        let root_token = format!("arca.{}", hex_of(&token_bytes));
        let accessor = keyspace.token_accessor(&root_token);
        let record = TokenRecord { policy: keyspace::ROOT_POLICY.to_owned(), created: now, accessor };
        let request_sha256 = subject.request_id.map(|id| arca_crypto::cluster_pki::sha256(id.as_bytes()));
        let init = InitRecord { shares, threshold, initialized_at: now, request_sha256 };
        let cluster_id = subject.cluster.cluster_id;
        let ca = arca_crypto::cluster_pki::ClusterCa::generate(&cluster_id, entropy, now)
            .map_err(|e| ArcaError::internal(e.to_string()))?;
        let node_cert_der = ca
            .issue_node_certificate(&cluster_id, subject.node_id, subject.node_spki_der, entropy, now)
            .map_err(|e| ArcaError::internal(e.to_string()))?;
        let proposal = Proposal {
            preconditions: vec![
                Precondition { key: KEYRING_KEY.to_vec(), modified_at: None },
                Precondition { key: CLUSTER_KEY.to_vec(), modified_at: Some(subject.cluster_written_at) },
                Precondition { key: CLUSTER_CA_KEY.to_vec(), modified_at: None },
            ],
            ops: vec![
                Op::Put { key: KEYRING_KEY.to_vec(), value: wrapped },
                Op::Put { key: INIT_KEY.to_vec(), value: postcard::to_allocvec(&init).expect("init record encodes") },
                keyspace::put_plain(CLUSTER_CA_KEY, &CaRecord { cert_der: ca.cert_der.clone() }),
                keyspace.put_cluster_ca_key(ca.key.pkcs8_der())?,
            ]
            .into_iter()
            .chain(keyspace.put_token(&root_token, &record)?)
            .chain(crate::identity::new_token_key(&keyspace, entropy)?)
            .collect(),
        };
        Ok(InitMaterial {
            proposal,
            shares: split,
            threshold,
            root_token,
            unseal_key,
            ca_cert_der: ca.cert_der,
            node_cert_der,
        })
    }

    /// Takes one unseal, root generation or rekey request from the rate limit, or refuses it.
    pub(crate) fn admit_unseal_request(&self) -> Result<(), ArcaError> {
        self.unseal_rate.admit()
    }

    /// The share count and threshold chosen at init (or the last rekey).
    pub fn init_record_or_error(&self) -> Result<InitRecord, ArcaError> {
        self.init_record()?.ok_or_else(|| {
            ArcaError::new(
                ErrorCode::NotInitialized,
                "this node has no keyring yet: initialize the cluster, or wait until this node has caught up",
            )
        })
    }

    /// Adds one share to the unseal in progress (or starts one), and unseals when the threshold is
    /// reached and the shares open the keyring. `nonce` must be the nonce of the attempt in progress,
    /// if there is one; `reset` (with that nonce) discards its shares. An unseal key (from
    /// `init --auto-unseal-key`) unseals on its own.
    pub fn unseal(&self, share: &str, nonce: &str, reset: bool) -> Result<SealStatus, ArcaError> {
        self.admit_unseal_request()?;
        let init = self.init_record_or_error()?;
        if !self.is_sealed() {
            return self.status();
        }
        if reset {
            self.unseal.cancel(nonce)?;
        }
        if share.is_empty() {
            return self.status();
        }
        let share = Share::parse(share).map_err(|e| ArcaError::bad_parameter("share", e.to_string()))?;
        // An unseal key is the whole root key in share form, with identifier 0, which Shamir shares
        // never use: it unseals on its own.
        let candidate = if share.expose().starts_with("00") {
            vec![share]
        } else {
            match self.unseal.submit(nonce, share, init.threshold, self.entropy.as_ref(), || Ok(()))? {
                Progress::Collecting { nonce, .. } => return self.status().map(|s| SealStatus { nonce, ..s }),
                Progress::Complete { shares, .. } => shares,
            }
        };
        let (root, keyring) = self.open_keyring(&candidate)?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if matches!(*state, SealState::Sealed) {
            *state = SealState::Unsealed { root, barrier: Barrier::new(keyring, self.entropy.clone()) };
            tracing::info!("node unsealed");
        }
        drop(state);
        self.unseal.clear();
        self.status()
    }

    /// The root key the shares reconstruct, checked by opening the replicated keyring with it.
    pub(crate) fn open_keyring(&self, shares: &[Share]) -> Result<(RootKey, Keyring), ArcaError> {
        let wrong = || {
            ArcaError::bad_parameter(
                "share",
                "the submitted shares do not reconstruct the root key; start over with correct shares",
            )
        };
        let root = RootKey(shamir::combine(shares).map_err(|_| wrong())?);
        let (_, blob) = self.keyring_blob()?;
        let keyring = Keyring::unwrap(&root, &blob).map_err(|_| wrong())?;
        Ok((root, keyring))
    }

    fn keyring_blob(&self) -> Result<(u64, Vec<u8>), ArcaError> {
        match self.store.get(KEYRING_KEY).map_err(|e| ArcaError::internal(e.to_string()))? {
            Some(v) => Ok((v.modified_at, v.value)),
            None => Err(ArcaError::new(ErrorCode::NotInitialized, "the cluster is not initialized")),
        }
    }

    /// Seals: the root key is dropped (and zeroized) and the barrier is wiped for every request that
    /// holds it, at once.
    pub fn seal(&self) {
        let previous =
            std::mem::replace(&mut *self.state.write().unwrap_or_else(|p| p.into_inner()), SealState::Sealed);
        if let SealState::Unsealed { barrier, .. } = previous {
            barrier.wipe();
        }
    }

    /// Loads the replicated keyring again if it moved forward (after a rotation anywhere in the
    /// cluster). A replicated keyring with an older active term than the one in use is refused: the
    /// keyring term only moves forward, so an old keyring blob can never roll new writes back onto a
    /// retired term.
    pub fn refresh_keyring(&self) -> Result<(), ArcaError> {
        let (_, blob) = self.keyring_blob()?;
        let needs_new_root = match &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            SealState::Unsealed { root, .. } => Keyring::unwrap(root, &blob).is_err(),
            SealState::Sealed => return Ok(()),
        };
        if needs_new_root {
            self.adopt_rekeyed_root(&blob)?;
        }
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let SealState::Unsealed { root, barrier } = &*state else { return Ok(()) };
        let keyring =
            Keyring::unwrap(root, &blob).map_err(|_| ArcaError::internal("the replicated keyring no longer opens"))?;
        let in_use = barrier.keyring().map_err(|_| sealed_error())?.active_term();
        let replicated = keyring.active_term();
        if replicated > in_use {
            barrier.replace_keyring(keyring);
            tracing::info!(term = replicated, "loaded rotated keyring");
        } else if replicated < in_use {
            return Err(ArcaError::internal(format!(
                "the replicated keyring's active term ({replicated}) is older than the one in use ({in_use}); \
                 refusing to roll it back"
            )));
        }
        Ok(())
    }

    /// After a rekey elsewhere: the keyring is wrapped under a new root key, which the rekey left under
    /// the barrier this node already holds. Takes it up.
    fn adopt_rekeyed_root(&self, blob: &[u8]) -> Result<(), ArcaError> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let SealState::Unsealed { root, barrier } = &mut *state else { return Ok(()) };
        let keyspace = Keyspace::new(self.store.clone(), barrier.clone());
        let next =
            keyspace.root_next()?.and_then(|bytes| Key32::from_slice(&bytes)).map(RootKey).ok_or_else(|| {
                ArcaError::internal("the replicated keyring no longer opens and no rekey explains it")
            })?;
        Keyring::unwrap(&next, blob).map_err(|_| ArcaError::internal("the replicated keyring no longer opens"))?;
        *root = next;
        tracing::info!("took up the root key of a rekey");
        Ok(())
    }

    /// On the leader: the proposal that wraps the keyring under `new_root` and records the new share
    /// count and threshold (the old shares no longer reconstruct the key that opens it).
    pub fn prepare_rekey(&self, new_root: &RootKey, shares: u8, threshold: u8) -> Result<Proposal, ArcaError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let SealState::Unsealed { root, barrier } = &*state else { return Err(sealed_error()) };
        let (version, blob) = self.keyring_blob()?;
        let keyring =
            Keyring::unwrap(root, &blob).map_err(|_| ArcaError::internal("the replicated keyring no longer opens"))?;
        let (init_at, init) = keyspace::read_plain::<InitRecord>(&*self.store, INIT_KEY)?
            .ok_or_else(|| ArcaError::new(ErrorCode::NotInitialized, "the cluster is not initialized"))?;
        let keyspace = Keyspace::new(self.store.clone(), barrier.clone());
        let init = InitRecord { shares, threshold, ..init };
        Ok(Proposal {
            preconditions: vec![
                Precondition { key: KEYRING_KEY.to_vec(), modified_at: Some(version) },
                Precondition { key: INIT_KEY.to_vec(), modified_at: Some(init_at) },
            ],
            ops: vec![
                Op::Put { key: KEYRING_KEY.to_vec(), value: keyring.wrap(new_root, self.entropy.as_ref()) },
                keyspace::put_plain(INIT_KEY, &init),
                keyspace.put_root_next(new_root.0.expose())?,
            ],
        })
    }

    /// Uses `new_root` from now on (after this node committed a rekey).
    pub fn install_root(&self, new_root: RootKey) {
        if let SealState::Unsealed { root, .. } = &mut *self.state.write().unwrap_or_else(|p| p.into_inner()) {
            *root = new_root;
        }
    }

    /// Builds the proposal that adds a keyring term, and the keyring it will produce.
    pub fn prepare_rotation(&self) -> Result<(Proposal, Keyring), ArcaError> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let SealState::Unsealed { root, .. } = &*state else { return Err(sealed_error()) };
        let (version, blob) = self.keyring_blob()?;
        let mut keyring =
            Keyring::unwrap(root, &blob).map_err(|_| ArcaError::internal("the replicated keyring no longer opens"))?;
        keyring.rotate(self.entropy.as_ref());
        let proposal = Proposal {
            preconditions: vec![Precondition { key: KEYRING_KEY.to_vec(), modified_at: Some(version) }],
            ops: vec![Op::Put { key: KEYRING_KEY.to_vec(), value: keyring.wrap(root, self.entropy.as_ref()) }],
        };
        Ok((proposal, keyring))
    }

    /// Installs a keyring this node just committed (only if it moves the term forward).
    pub fn install_keyring(&self, keyring: Keyring) {
        if let SealState::Unsealed { barrier, .. } = &*self.state.read().unwrap_or_else(|p| p.into_inner()) {
            if barrier.keyring().is_ok_and(|k| keyring.active_term() > k.active_term()) {
                barrier.replace_keyring(keyring);
            }
        }
    }
}

pub fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::OsEntropy;
    use arca_storage::mem::MemState;

    fn put_keyring(store: &MemState, index: u64, blob: Vec<u8>) {
        store.commit(index, &[Op::Put { key: KEYRING_KEY.to_vec(), value: blob }], &[]).unwrap();
    }

    #[test]
    fn the_keyring_term_only_moves_forward() {
        let store = Arc::new(MemState::default());
        let root = RootKey(Key32::generate(&OsEntropy));
        let mut keyring = Keyring::generate(&OsEntropy);
        let old_blob = keyring.wrap(&root, &OsEntropy);
        put_keyring(&store, 1, old_blob.clone());
        let seal = SealManager::new(store.clone(), Arc::new(OsEntropy));
        let barrier = Barrier::new(Keyring::unwrap(&root, &old_blob).unwrap(), Arc::new(OsEntropy));
        *seal.state.write().unwrap() = SealState::Unsealed { root: root.clone(), barrier: barrier.clone() };
        let first = barrier.keyring().unwrap().active_term();

        // A rotation replicated from elsewhere is taken up.
        let rotated = keyring.rotate(&OsEntropy);
        assert!(rotated > first);
        put_keyring(&store, 2, keyring.wrap(&root, &OsEntropy));
        seal.refresh_keyring().unwrap();
        assert_eq!(barrier.keyring().unwrap().active_term(), rotated);

        // The old blob written back (a replayed or restored write) is refused, and the term in use stays.
        put_keyring(&store, 3, old_blob);
        let err = seal.refresh_keyring().expect_err("an older keyring was taken up");
        assert!(err.message.contains("refusing to roll it back"), "{err:?}");
        assert_eq!(barrier.keyring().unwrap().active_term(), rotated);
    }
}
