//! The client workload both harnesses run: concurrent clients doing random secret operations through
//! random nodes, recording every call and answer in the [`History`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arca_client::pb;
use arca_client::{ArcaClient, ClientError};
use rand::rngs::SmallRng;
use rand::RngExt;

use crate::check::acknowledged_writes::FinalVersions;
use crate::check::no_plaintext::{NAME_MARKER, VALUE_MARKER};
use crate::history::{Call, History, Ret};

/// What the clients work on.
#[derive(Debug, Clone)]
pub struct Spec {
    pub vault: String,
    /// Secret names; few, so that clients collide on them. The first is never deleted, so every
    /// version acknowledged on it must survive to the end (what `acknowledged_writes` checks).
    pub names: Vec<String>,
    /// Deadline of every request.
    pub timeout: Duration,
    /// The node the simulation cut off from its peers while it led, if one is cut off now
    /// (`usize::MAX` when none): client 1 reads through it with bounded staleness, where a stale
    /// answer is likeliest.
    pub isolated: Arc<AtomicUsize>,
}

impl Spec {
    pub fn new(vault: &str, secrets: usize, timeout: Duration) -> Self {
        let marker = std::str::from_utf8(NAME_MARKER).expect("ascii");
        let names = (0..secrets).map(|i| format!("{marker}{i}")).collect();
        Self { vault: vault.to_owned(), names, timeout, isolated: Arc::new(AtomicUsize::new(usize::MAX)) }
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.vault)
    }

    /// The history key of the key (not the secret) called `name`.
    fn key_key(&self, name: &str) -> String {
        format!("{}/key/{name}", self.vault)
    }
}

fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(timeout);
    r
}

/// Turns an error into the answer the model understands. Arca promises that `Unavailable`, `Sealed`
/// and the validation and access errors mean the request changed nothing (a write whose fate is open
/// answers `OutcomeUnknown`), and the checkers hold it to that; anything without Arca's error details
/// (a timeout, a cut connection) is `Unknown`.
fn classify(e: &ClientError) -> Ret {
    match e.azure_code.as_deref() {
        Some("SecretNotFound" | "KeyNotFound") => Ret::NotFound,
        Some("ObjectIsDeletedButRecoverable") => Ret::DeletedButRecoverable,
        Some("Conflict") => Ret::Conflict,
        Some(
            "Unavailable" | "Sealed" | "NotInitialized" | "Unauthorized" | "Forbidden" | "BadParameter"
            | "VaultNotFound" | "Throttled",
        ) => Ret::Refused,
        _ => Ret::Unknown,
    }
}

fn answer<T>(result: Result<tonic::Response<T>, tonic::Status>, ok: impl FnOnce(T) -> Ret) -> Ret {
    match result {
        Ok(r) => ok(r.into_inner()),
        Err(status) => {
            tracing::debug!(code = ?status.code(), message = status.message(), "request failed");
            classify(&ClientError::from(status))
        }
    }
}

fn secret_value(s: pb::Secret) -> Ret {
    let content_type = (!s.content_type.is_empty()).then_some(s.content_type);
    Ret::Value { value: s.value, content_type, version: s.version }
}

/// One client: its id, its connections (one per node) and its random source.
pub struct Client {
    pub id: u32,
    pub nodes: Vec<ArcaClient>,
    pub rng: SmallRng,
    pub history: History,
    pub spec: Spec,
    /// How many nodes (from the first) the client may pick: nodes that join later are added when
    /// they start.
    pub reachable: Arc<AtomicUsize>,
    backups: BTreeMap<u32, (String, Vec<u8>)>,
    /// Wraps that succeeded: key name, version used, wrapped bytes, and the data wrapped.
    wraps: BTreeMap<u32, Wrapped>,
    counter: u32,
}

#[derive(Debug, Clone)]
struct Wrapped {
    name: String,
    version: String,
    wrapped: Vec<u8>,
    data: Vec<u8>,
}

/// A 32-byte data key that carries the plaintext marker, so a data key that reached a disk or a log
/// would be caught by the no-plaintext checker.
fn data_key(id: u32) -> Vec<u8> {
    let mut data = VALUE_MARKER.to_vec();
    data.extend_from_slice(&id.to_be_bytes());
    data.resize(32, b'.');
    data
}

/// The version id at the end of a kid (`https://…/keys/{name}/{version}`).
fn kid_version(kid: &str) -> String {
    kid.rsplit('/').next().unwrap_or_default().to_owned()
}

impl Client {
    pub fn new(id: u32, nodes: Vec<ArcaClient>, rng: SmallRng, history: History, spec: Spec) -> Self {
        let reachable = Arc::new(AtomicUsize::new(nodes.len()));
        Self { id, nodes, rng, history, spec, reachable, backups: BTreeMap::new(), wraps: BTreeMap::new(), counter: 0 }
    }

    /// Runs `call` on secret `name` (or on the vault, for vault calls) through node `node`, recording it.
    pub async fn run(&mut self, node: usize, name: &str, call: Call) -> Ret {
        let key = match &call {
            Call::TagVault { .. } | Call::GetVault => self.spec.vault.clone(),
            c if c.is_key_call() => self.spec.key_key(name),
            _ => self.spec.key(name),
        };
        let pending = self.history.invoke(self.id, node, &key, call.clone());
        let ret = self.send(node, name, &call).await;
        self.history.complete(pending, ret.clone());
        ret
    }

    /// Reads secret `name` through node `node` with bounded staleness `max`, recording it.
    pub async fn read_stale(&mut self, node: usize, name: &str, max: Duration) -> Ret {
        let pending = self.history.invoke_stale(self.id, node, &self.spec.key(name), Call::Get, Some(max));
        let options = pb::ReadOptions {
            consistency: pb::Consistency::BoundedStaleness as i32,
            max_staleness: Some(prost_types::Duration { seconds: 0, nanos: max.as_millis() as i32 * 1_000_000 }),
        };
        let m = pb::GetSecretRequest {
            vault: self.spec.vault.clone(),
            name: name.to_owned(),
            read_options: Some(options),
            ..Default::default()
        };
        let ret = answer(self.nodes[node].secrets().get_secret(request(m, self.spec.timeout)).await, secret_value);
        self.history.complete(pending, ret.clone());
        ret
    }

    async fn send(&mut self, node: usize, name: &str, call: &Call) -> Ret {
        let c = &self.nodes[node];
        let t = self.spec.timeout;
        let vault = self.spec.vault.clone();
        let name = name.to_owned();
        match call {
            Call::Set { value } => {
                let m = pb::SetSecretRequest { vault, name, value: value.clone(), ..Default::default() };
                answer(c.secrets().set_secret(request(m, t)).await, |s| Ret::Version { version: s.version })
            }
            Call::Get => {
                let m = pb::GetSecretRequest { vault, name, ..Default::default() };
                answer(c.secrets().get_secret(request(m, t)).await, secret_value)
            }
            Call::Update { content_type } => {
                let m = pb::UpdateSecretRequest {
                    vault,
                    name,
                    content_type: content_type.clone(),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["content_type".into()] }),
                    ..Default::default()
                };
                answer(c.secrets().update_secret(request(m, t)).await, |_| Ret::Ok)
            }
            Call::Delete => {
                let m = pb::DeleteSecretRequest { vault, name };
                answer(c.secrets().delete_secret(request(m, t)).await, |_| Ret::Ok)
            }
            Call::Recover => {
                let m = pb::RecoverDeletedSecretRequest { vault, name };
                answer(c.secrets().recover_deleted_secret(request(m, t)).await, |_| Ret::Ok)
            }
            Call::Purge => {
                let m = pb::PurgeDeletedSecretRequest { vault, name };
                answer(c.secrets().purge_deleted_secret(request(m, t)).await, |_| Ret::Ok)
            }
            Call::Backup { backup } => {
                let m = pb::BackupSecretRequest { vault, name: name.clone() };
                let backups = &mut self.backups;
                answer(c.secrets().backup_secret(request(m, t)).await, |b| {
                    backups.insert(*backup, (name, b.value));
                    Ret::Ok
                })
            }
            Call::TagVault { value } => {
                let m = pb::UpdateVaultRequest {
                    name: vault,
                    tags: [("w".to_owned(), value.clone())].into(),
                    update_mask: Some(prost_types::FieldMask { paths: vec!["tags".into()] }),
                    ..Default::default()
                };
                answer(c.vaults().update_vault(request(m, t)).await, |_| Ret::Ok)
            }
            Call::GetVault => {
                let m = pb::GetVaultRequest { name: vault, ..Default::default() };
                answer(c.vaults().get_vault(request(m, t)).await, |v| Ret::Tag { value: v.tags.get("w").cloned() })
            }
            Call::CreateKey => {
                let m = pb::CreateKeyRequest { vault, name, kty: "oct".into(), key_size: 256, ..Default::default() };
                answer(c.keys().create_key(request(m, t)).await, |k| Ret::Version { version: k.version })
            }
            Call::RotateKey => {
                let m = pb::RotateKeyRequest { vault, name };
                answer(c.keys().rotate_key(request(m, t)).await, |k| Ret::Version { version: k.version })
            }
            Call::Wrap { data } => {
                let m = pb::WrapKeyRequest {
                    vault,
                    name: name.clone(),
                    algorithm: "A256KW".into(),
                    key: data_key(*data),
                    ..Default::default()
                };
                let wraps = &mut self.wraps;
                answer(c.crypto().wrap_key(request(m, t)).await, |w| {
                    let version = kid_version(&w.kid);
                    wraps.insert(
                        *data,
                        Wrapped { name, version: version.clone(), wrapped: w.wrapped_key, data: data_key(*data) },
                    );
                    Ret::Version { version }
                })
            }
            Call::Unwrap { wrap } => {
                let Some(w) = self.wraps.get(wrap).cloned() else { return Ret::Refused };
                let m = pb::UnwrapKeyRequest {
                    vault,
                    name: w.name.clone(),
                    version: w.version.clone(),
                    algorithm: "A256KW".into(),
                    wrapped_key: w.wrapped.clone(),
                    ..Default::default()
                };
                // Any other data back is a wrong answer the model refuses.
                answer(c.crypto().unwrap_key(request(m, t)).await, |u| {
                    if u.key == w.data {
                        Ret::Ok
                    } else {
                        Ret::Conflict
                    }
                })
            }
            Call::Restore { backup } => {
                let blob = self.backups.get(backup).map(|(_, b)| b.clone()).unwrap_or_default();
                let m = pb::RestoreSecretRequest { vault, backup: blob };
                answer(c.secrets().restore_secret(request(m, t)).await, |s| Ret::Version { version: s.version })
            }
        }
    }

    /// One random operation on a random secret through a random node.
    pub async fn random_op(&mut self) {
        let reachable = self.reachable.load(Ordering::Relaxed).clamp(1, self.nodes.len());
        let node = self.rng.random_range(0..reachable);
        let name = self.spec.names[self.rng.random_range(0..self.spec.names.len())].clone();
        self.counter += 1;
        let isolated = self.spec.isolated.load(Ordering::Relaxed);
        if self.id == 1 && isolated < self.nodes.len() && self.rng.random_bool(0.5) {
            let max = Duration::from_millis(self.rng.random_range(100..600));
            let first = self.spec.names[0].clone();
            self.read_stale(isolated, &first, max).await;
            return;
        }
        let marker = std::str::from_utf8(VALUE_MARKER).expect("ascii");
        // One call in twenty is on the vault itself: set its tag, or read it.
        if self.rng.random_range(0..20) == 0 {
            let call = if self.rng.random_bool(0.5) {
                Call::TagVault { value: format!("c{}-{}", self.id, self.counter) }
            } else {
                Call::GetVault
            };
            self.run(node, &name, call).await;
            return;
        }
        // One call in eight is on a key of the same name: create, rotate, wrap, unwrap.
        if self.rng.random_range(0..8) == 0 {
            let mine: Vec<u32> = self.wraps.iter().filter(|(_, w)| w.name == name).map(|(k, _)| *k).collect();
            let call = match self.rng.random_range(0..100) {
                0..20 => Call::CreateKey,
                20..40 => Call::RotateKey,
                40..75 => Call::Wrap { data: self.id * 100_000 + self.counter },
                _ if mine.is_empty() => Call::Wrap { data: self.id * 100_000 + self.counter },
                _ => Call::Unwrap { wrap: mine[self.rng.random_range(0..mine.len())] },
            };
            self.run(node, &name, call).await;
            return;
        }
        let roll = self.rng.random_range(0..100);
        // The first secret only ever gets new versions, reads and updates.
        let roll = if name == self.spec.names[0] { roll % 66 } else { roll };
        if (50..60).contains(&roll) {
            // A bounded-staleness read (a tenth of all calls), with a bound under a second.
            let max = Duration::from_millis(self.rng.random_range(100..1000));
            self.read_stale(node, &name, max).await;
            return;
        }
        let call = match roll {
            0..30 => Call::Set { value: format!("{marker}c{}-{}", self.id, self.counter) },
            30..60 => Call::Get,
            60..66 => Call::Update { content_type: format!("t{}-{}", self.id, self.counter) },
            66..76 => Call::Delete,
            76..84 => Call::Recover,
            84..90 => Call::Purge,
            90..95 => Call::Backup { backup: self.id * 100_000 + self.counter },
            _ => {
                let mine: Vec<u32> = self.backups.iter().filter(|(_, (n, _))| *n == name).map(|(k, _)| *k).collect();
                match mine.as_slice() {
                    [] => Call::Get,
                    ids => Call::Restore { backup: ids[self.rng.random_range(0..ids.len())] },
                }
            }
        };
        self.run(node, &name, call).await;
    }

    /// After the faults: recover every soft-deleted secret and read every secret through every node,
    /// retrying until each answer is definite. Returns the versions each node lists, or the requests
    /// that never finished (a liveness failure).
    pub async fn final_reads(&mut self, deadline: Duration) -> Result<BTreeMap<usize, FinalVersions>, String> {
        let started = tokio::time::Instant::now();
        let names = self.spec.names.clone();
        for name in &names {
            loop {
                if !matches!(self.run(0, name, Call::Recover).await, Ret::Unknown | Ret::Refused) {
                    break;
                }
                if started.elapsed() > deadline {
                    return Err(format!("recovering {name} never finished after the cluster healed"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let mut finals = BTreeMap::new();
        for node in 0..self.nodes.len() {
            let mut versions = FinalVersions::new();
            for name in &names {
                loop {
                    let got = self.run(node, name, Call::Get).await;
                    // A delete whose outcome was unknown may still land after the recovery above (its
                    // forward or its log entry outlived the client's deadline): bring the secret back
                    // and read again, so a soft-deleted secret is not taken for a lost one.
                    if got == Ret::NotFound && self.run(node, name, Call::Recover).await == Ret::Ok {
                        continue;
                    }
                    let listed = self.list_versions(node, name).await;
                    let keys = self.list_key_versions(node, name).await;
                    match (got, listed, keys) {
                        (Ret::Unknown | Ret::Refused, _, _) | (_, Err(_), _) | (_, _, Err(_)) => {}
                        (_, Ok(list), Ok(key_list)) => {
                            versions.insert(self.spec.key(name), list);
                            versions.insert(self.spec.key_key(name), key_list);
                            break;
                        }
                    }
                    if started.elapsed() > deadline {
                        return Err(format!(
                            "reading {name} through node {node} never finished after the cluster healed"
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            finals.insert(node, versions);
        }
        Ok(finals)
    }

    async fn list_key_versions(&self, node: usize, name: &str) -> Result<Option<Vec<String>>, ()> {
        let (c, t) = (&self.nodes[node], self.spec.timeout);
        all_versions(|page_token| async move {
            let m = pb::ListKeyVersionsRequest {
                vault: self.spec.vault.clone(),
                name: name.to_owned(),
                page_size: 100,
                page_token,
                ..Default::default()
            };
            let r = c.keys().list_key_versions(request(m, t)).await?.into_inner();
            Ok((r.keys.into_iter().map(|k| k.version).collect(), r.next_page_token))
        })
        .await
    }

    async fn list_versions(&self, node: usize, name: &str) -> Result<Option<Vec<String>>, ()> {
        let (c, t) = (&self.nodes[node], self.spec.timeout);
        all_versions(|page_token| async move {
            let m = pb::ListSecretVersionsRequest {
                vault: self.spec.vault.clone(),
                name: name.to_owned(),
                page_size: 100,
                page_token,
                ..Default::default()
            };
            let r = c.secrets().list_secret_versions(request(m, t)).await?.into_inner();
            Ok((r.secrets.into_iter().map(|s| s.version).collect(), r.next_page_token))
        })
        .await
    }
}

/// Follows page tokens to the end: every version id listed, `None` if the object does not exist, and
/// `Err` for an answer that is not definite.
async fn all_versions<Fut>(mut page: impl FnMut(String) -> Fut) -> Result<Option<Vec<String>>, ()>
where
    Fut: std::future::Future<Output = Result<(Vec<String>, String), tonic::Status>>,
{
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        match page(token).await {
            Ok((versions, next)) => {
                out.extend(versions);
                if next.is_empty() {
                    return Ok(Some(out));
                }
                token = next;
            }
            Err(status) => {
                return match classify(&ClientError::from(status)) {
                    Ret::NotFound => Ok(None),
                    _ => Err(()),
                }
            }
        }
    }
}
