//! Fuzz targets: every decoder that reads bytes a peer, a client or the disk hands a node, as one
//! function over arbitrary bytes. Each must return — refuse what it cannot read — and never panic,
//! abort or hang.
//!
//! `fuzz/` runs each target under libFuzzer (`cargo +nightly fuzz run <target>` in this crate's
//! directory); `tests/bounded.rs` runs all of them on stable in CI, over valid seeds and a bounded
//! number of mutations of them.
//!
//! **API Boundary:** the targets call the decoders the node itself calls, through their public
//! functions; nothing here re-implements a format.
#![forbid(unsafe_code)]

pub mod seeds;

use std::sync::{Arc, LazyLock};

use arca_core::records::ObjectKind;
use arca_crypto::cluster_pki::{self, CertUse, ClusterCa};
use arca_crypto::keys::{self, LoadedKey};
use arca_crypto::{Barrier, Keyring, OsEntropy, Scope};
use arca_server::engine::{Envelope, Forwarded, ForwardedOutcome};
use arca_server::keyspace::{backup_frame, Keyspace};
use arca_storage::mem::MemState;
use arca_types::keys::{EncryptionAlgorithm, KeyFamily, KeySpec};

/// A target: its name (as `fuzz/fuzz_targets/<name>.rs`) and its function.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: &[Target] = &[
    ("raft_append_entries", raft_append_entries),
    ("raft_vote", raft_vote),
    ("raft_snapshot_header", raft_snapshot_header),
    ("raft_answers", raft_answers),
    ("raft_log_entry", raft_log_entry),
    ("proposal", proposal),
    ("snapshot_data", snapshot_data),
    ("forward_envelope", forward_envelope),
    ("forwarded_request", forwarded_request),
    ("forwarded_answer", forwarded_answer),
    ("backup_blob", backup_blob),
    ("backup_body", backup_body),
    ("jwk", jwk),
    ("pkcs8", pkcs8),
    ("byok", byok),
    ("peer_certificate", peer_certificate),
    ("join_token", join_token),
    ("unseal_share", unseal_share),
];

/// An AppendEntries request from a peer.
pub fn raft_append_entries(data: &[u8]) {
    let _ = arca_raft::wire::append_entries_request(data);
}

/// A vote request from a peer.
pub fn raft_vote(data: &[u8]) {
    let _ = arca_raft::wire::vote_request(data);
}

/// The header chunk of a snapshot a peer streams.
pub fn raft_snapshot_header(data: &[u8]) {
    let _ = arca_raft::wire::snapshot_header(data);
}

/// A peer's answers to AppendEntries, votes and snapshots.
pub fn raft_answers(data: &[u8]) {
    let _ = arca_raft::wire::append_entries_response(data);
    let _ = arca_raft::wire::vote_response(data);
    let _ = arca_raft::wire::snapshot_response(data);
}

/// A log entry as read back from the log store.
pub fn raft_log_entry(data: &[u8]) {
    let _ = arca_raft::log_store::stored_entry_log_id(data);
}

/// A proposal (an entry's payload), decoded and applied to an empty in-memory state.
pub fn proposal(data: &[u8]) {
    if let Ok(proposal) = arca_raft::codec::decode::<arca_raft::Proposal>("proposal", data) {
        let state = MemState::default();
        let _ = arca_storage::proposal::apply_proposal(&state, 1, &proposal, &[]);
    }
}

/// A snapshot's data as a peer sends it, checked and imported into an empty in-memory state.
pub fn snapshot_data(data: &[u8]) {
    let file = arca_storage::snapshot::SnapshotFile::from_bytes(data.to_vec());
    if arca_raft::state_machine::verify_snapshot(&file).is_ok() {
        let record_max = arca_types::limits::SNAPSHOT_RECORD_BYTES_MAX;
        let _ = arca_storage::snapshot::import_bytes(&MemState::default(), data, record_max);
    }
}

/// The envelope of a forwarded request, as the leader receives it.
pub fn forward_envelope(data: &[u8]) {
    let _ = Envelope::decode(data);
}

/// A forwarded request once its envelope opened.
pub fn forwarded_request(data: &[u8]) {
    let _ = Forwarded::decode(data);
}

/// The leader's answer to a forwarded request once it opened.
pub fn forwarded_answer(data: &[u8]) {
    let _ = ForwardedOutcome::decode(data);
}

/// A keyspace with a keyring of its own, for the backup targets.
static KEYSPACE: LazyLock<Keyspace> = LazyLock::new(|| {
    let entropy = Arc::new(OsEntropy);
    let barrier = Barrier::new(Keyring::generate(&*entropy), entropy);
    Keyspace::new(Arc::new(MemState::default()), barrier)
});

/// A backup blob as a client hands it to restore (secret and key).
pub fn backup_blob(data: &[u8]) {
    let _ = KEYSPACE.open_backup(data);
    let _ = KEYSPACE.open_key_backup(data);
}

/// A backup's body after it opened: the bytes are sealed as this keyring's backup of each kind, so the
/// decoding behind the seal is what is exercised.
pub fn backup_body(data: &[u8]) {
    for kind in [ObjectKind::Secret, ObjectKind::Key] {
        let (magic, location) = backup_frame(kind);
        let Ok(sealed) = KEYSPACE.barrier().seal(Scope::Backup, location, data) else { return };
        let blob = [magic, &sealed].concat();
        let _ = KEYSPACE.open_backup(&blob);
        let _ = KEYSPACE.open_key_backup(&blob);
    }
}

/// The JWK of an import request (protobuf), checked and imported (or its BYOK blob read).
pub fn jwk(data: &[u8]) {
    use prost::Message;
    let Ok(jwk) = arca_proto::v1::JsonWebKey::decode(data) else { return };
    let Ok(import) = arca_server::services::keys::check_jwk(&jwk) else { return };
    if jwk.key_hsm.is_empty() {
        let _ = arca_server::services::keys::plain_jwk(&jwk, &import);
    } else {
        let _ = arca_server::services::keys::parse_byok_blob(&jwk.key_hsm);
    }
}

/// PKCS#8 key material of every family (what a BYOK blob unwraps to).
pub fn pkcs8(data: &[u8]) {
    for family in [KeyFamily::Rsa, KeyFamily::Ec, KeyFamily::Okp, KeyFamily::Oct] {
        let _ = keys::import_pkcs8(family, data);
    }
}

/// A key-exchange key and an RSA-OAEP encryption, under it, of an AES transfer key.
static KEK: LazyLock<(LoadedKey, Vec<u8>)> = LazyLock::new(|| {
    let spec = KeySpec::Rsa { bits: 2048 };
    let kek = LoadedKey::load(spec, &keys::generate(spec).expect("an RSA key generates")).expect("and loads");
    let wrapped =
        kek.encrypt(EncryptionAlgorithm::RsaOaep, &[7u8; 32], None, &[]).expect("RSA-OAEP encrypts").ciphertext;
    (kek, wrapped)
});

/// The wrapped key of a BYOK transfer, after a transfer key that opens.
pub fn byok(data: &[u8]) {
    let (kek, wrapped) = &*KEK;
    let ciphertext = [wrapped.as_slice(), data].concat();
    for family in [KeyFamily::Rsa, KeyFamily::Ec, KeyFamily::Okp, KeyFamily::Oct] {
        let _ = kek.open_byok(family, &ciphertext);
    }
    let _ = kek.open_byok(KeyFamily::Rsa, data);
}

static CA: LazyLock<(ClusterCa, [u8; 16])> = LazyLock::new(|| {
    let cluster_id = [9u8; 16];
    (ClusterCa::generate(&cluster_id, &OsEntropy, 1_800_000_000).expect("a CA generates"), cluster_id)
});

/// A certificate a peer presents on the cluster listener.
pub fn peer_certificate(data: &[u8]) {
    let (ca, cluster_id) = &*CA;
    let _ = cluster_pki::verify_node_certificate(data, &ca.cert_der, cluster_id, 1_800_000_000, CertUse::Client);
    let _ = cluster_pki::verify_node_certificate(data, &ca.cert_der, cluster_id, 1_800_000_000, CertUse::Server);
    let _ = cluster_pki::certificate_spki(data);
}

/// A join token, as text from an operator or a joining node.
pub fn join_token(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = arca_transport::join_token::JoinToken::parse(text);
    }
}

/// Unseal shares, one per line, as text from operators; those that parse are combined.
pub fn unseal_share(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let shares: Vec<_> = text.lines().filter_map(|line| arca_crypto::shamir::Share::parse(line).ok()).collect();
    if shares.len() >= 2 {
        let _ = arca_crypto::shamir::combine(&shares);
    }
}
