//! Valid inputs for each target, for libFuzzer's corpus and the bounded run's mutations to start from:
//! a mutation of a valid message reaches far deeper into a decoder than random bytes do.

use arca_crypto::cluster_pki::{self, Ed25519Key};
use arca_crypto::{keys, Key32, OsEntropy};
use arca_proto::v1::JsonWebKey;
use arca_raft::rpc::forge;
use arca_server::engine::{Envelope, Forwarded, SystemCommand};
use arca_storage::proposal::{Precondition, Proposal};
use arca_storage::{mem::MemState, Op, StateStore};
use arca_types::keys::{Curve, KeySpec};

fn a_proposal() -> Proposal {
    Proposal {
        preconditions: vec![Precondition { key: b"s/a".to_vec(), modified_at: None }],
        ops: vec![
            Op::Put { key: b"s/a".to_vec(), value: vec![1, 2, 3] },
            Op::Delete { key: b"s/b".to_vec() },
            Op::DeletePrefix { prefix: b"t/".to_vec() },
        ],
    }
}

fn postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("seeds encode")
}

/// The seeds of the target `name` (none for a name that is not a target).
pub fn of(name: &str) -> Vec<Vec<u8>> {
    let mut seeds = vec![Vec::new()];
    match name {
        "raft_append_entries" => {
            seeds.push(forge::heartbeat(1, 3));
            seeds.push(forge::append_entries(1, 3, Some((2, 9)), vec![(2, 10, a_proposal()), (3, 11, a_proposal())]));
        }
        "raft_vote" => seeds.push(forge::vote_request(2, 4)),
        "raft_snapshot_header" => seeds.push(forge::snapshot_header(1, 3)),
        "raft_log_entry" => seeds.push(forge::log_entry(3, 11, a_proposal())),
        "proposal" => seeds.push(arca_raft::codec::encode(&a_proposal())),
        "snapshot_data" => {
            let state = MemState::default();
            let meta = arca_raft::codec::encode(&arca_raft::state_machine::AppliedMeta::default());
            state.commit(1, &a_proposal().ops, &meta).expect("a memory store commits");
            seeds.push(arca_storage::snapshot::export_bytes(&state).expect("a memory store exports"));
        }
        "forward_envelope" => seeds.push(postcard(&Envelope {
            sender: 2,
            receiver: 1,
            request_id: [5; 16],
            sent_at: 1_800_000_000,
            sealed: vec![0; 48],
        })),
        "forwarded_request" => {
            seeds.push(postcard(&Forwarded::System(SystemCommand::RemoveNode(3))));
            seeds.push(postcard(&Forwarded::System(SystemCommand::RevokeToken { accessor: "abc".into() })));
        }
        "jwk" => {
            let oct = JsonWebKey { kty: "oct".into(), k: vec![7; 32], ..Default::default() };
            let byok = JsonWebKey {
                kty: "RSA-HSM".into(),
                key_hsm: br#"{"schema_version":"1.0.0","header":{"kid":"kek/0123456789abcdef0123456789abcdef","alg":"dir","enc":"CKM_RSA_AES_KEY_WRAP"},"ciphertext":"AAAA"}"#.to_vec(),
                ..Default::default()
            };
            let ec = JsonWebKey {
                kty: "EC".into(),
                crv: "P-256".into(),
                x: vec![1; 32],
                y: vec![2; 32],
                d: vec![3; 32],
                ..Default::default()
            };
            for jwk in [oct, byok, ec] {
                seeds.push(prost::Message::encode_to_vec(&jwk));
            }
        }
        "pkcs8" => {
            for spec in [KeySpec::Ec(Curve::P256), KeySpec::Ed25519, KeySpec::Ec(Curve::P384)] {
                seeds.push(keys::generate(spec).expect("a key generates").expose().to_vec());
            }
        }
        "peer_certificate" => {
            let (ca, cluster_id) = &*crate::CA;
            let key = Ed25519Key::generate(&OsEntropy);
            let provisional = cluster_pki::provisional_certificate(&key, &OsEntropy, 1_800_000_000).expect("made");
            let spki = cluster_pki::certificate_spki(&provisional).expect("read");
            seeds.push(ca.issue_node_certificate(cluster_id, 4, &spki, &OsEntropy, 1_800_000_000).expect("issued"));
            seeds.push(provisional);
        }
        "join_token" => {
            let token = arca_transport::join_token::JoinToken {
                pin: arca_transport::join_token::JoinPin { cluster_id: [1; 16], ca_sha256: [2; 32] },
                token_id: [3; 8],
                secret: [4; 32],
            };
            seeds.push(token.expose().into_bytes());
        }
        "unseal_share" => {
            let shares = arca_crypto::shamir::split(&Key32::from_bytes([1; 32]), 5, 3, &OsEntropy).expect("split");
            let text: Vec<&str> = shares.iter().take(3).map(|s| s.expose()).collect();
            seeds.push(text.join("\n").into_bytes());
        }
        _ => {}
    }
    seeds
}
