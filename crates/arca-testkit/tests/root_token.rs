//! The root token's lifecycle and rekeying on a real cluster: revoke the root token, mint a new one
//! from a quorum of unseal shares (only the starter can read it), and rekey so that the old shares
//! stop working while every node carries on.

use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::TestCluster;

async fn vault_get(c: &ArcaClient) -> Result<(), ClientError> {
    c.vaults().list_vaults(pb::ListVaultsRequest::default()).await?;
    Ok(())
}

fn otp() -> Vec<u8> {
    (0..64u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_token_is_revoked_and_a_new_one_minted_from_a_quorum_of_shares() {
    let cluster = TestCluster::start(3).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    let tokens = root.operator().list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].policy, "root");
    // Revoked through a follower, the root token stops working on every node.
    let c1 = cluster.client(1).await.unwrap();
    c1.operator().revoke_token(pb::RevokeTokenRequest { accessor: tokens[0].accessor.clone() }).await.unwrap();
    for node in 0..3 {
        let c = cluster.client(node).await.unwrap();
        let err = vault_get(&c).await.unwrap_err();
        assert_eq!(err.reason.as_deref(), Some("UNAUTHORIZED"), "node {node}: {err:?}");
    }
    // Three key holders, through another node, with the starter's nonce; the answer is XORed with the
    // starter's pad.
    let anyone = cluster.client_with_token(2, None).await.unwrap();
    let step = async |share: &str, nonce: &str, otp: Vec<u8>| {
        let req =
            pb::GenerateRootRequest { otp: hex(&otp), share: share.to_owned(), nonce: nonce.to_owned(), cancel: false };
        anyone.operator().generate_root(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    let first = step(&cluster.shares[0], "", otp()).await.unwrap();
    assert_eq!((first.progress, first.complete), (1, false));
    let err = step(&cluster.shares[1], "", Vec::new()).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("CONFLICT"), "a share without the nonce: {err:?}");
    step(&cluster.shares[1], &first.nonce, Vec::new()).await.unwrap();
    let done = step(&cluster.shares[2], &first.nonce, Vec::new()).await.unwrap();
    assert!(done.complete);
    let encoded = unhex(&done.encoded_token);
    assert!(!String::from_utf8_lossy(&encoded).starts_with("arca."), "the token is not readable without the pad");
    let token: String = encoded.iter().zip(otp()).map(|(e, p)| (e ^ p) as char).collect();
    let fresh = cluster.client_with_token(0, Some(&token)).await.unwrap();
    vault_get(&fresh).await.unwrap();
    // Shares that do not reconstruct the root key mint nothing.
    let bogus = format!("09{}", "cd".repeat(32));
    let first = step(&cluster.shares[0], "", otp()).await.unwrap();
    step(&bogus, &first.nonce, Vec::new()).await.unwrap();
    let err = step(&cluster.shares[3], &first.nonce, Vec::new()).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"), "{err:?}");
    let tokens = fresh.operator().list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens;
    assert_eq!(tokens.len(), 1, "one root token: the minted one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekey_gives_new_shares_and_the_old_ones_stop_working() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let anyone = cluster.client_with_token(1, None).await.unwrap();
    let step = async |share: &str, nonce: &str| {
        let req = pb::RekeyRequest {
            secret_shares: 3,
            secret_threshold: 2,
            auto_unseal_key: true,
            share: share.to_owned(),
            nonce: nonce.to_owned(),
            cancel: false,
        };
        anyone.operator().rekey(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    let first = step(&cluster.shares[0], "").await.unwrap();
    step(&cluster.shares[1], &first.nonce).await.unwrap();
    let done = step(&cluster.shares[2], &first.nonce).await.unwrap();
    assert!(done.complete && !done.outcome_unknown);
    assert_eq!(done.shares.len(), 3);
    arca_testkit::write_private(&cluster.unseal_key_path(), done.unseal_key.as_bytes()).unwrap();
    // Every node keeps working and takes up the new root key: a rotation through a follower loads on all.
    let c = cluster.client(2).await.unwrap();
    let term = match c.operator().rotate_keyring(pb::RotateKeyringRequest {}).await {
        Ok(r) => r.into_inner().term,
        Err(e) => {
            for n in &cluster.nodes {
                eprintln!("==== {}\n{}", n.name, std::fs::read_to_string(&n.log_path).unwrap());
            }
            panic!("{e:?}")
        }
    };
    cluster
        .wait_for(Duration::from_secs(10), async |cl| {
            for node in 0..3 {
                let c = cl.client(node).await.unwrap();
                match c.operator().get_seal_status(pb::GetSealStatusRequest {}).await {
                    Ok(s) if s.get_ref().keyring_term == term => {}
                    _ => return false,
                }
            }
            true
        })
        .await
        .expect("every node loads the keyring wrapped under the new root key");
    // Sealed, node 1 refuses the old shares and opens with two of the new ones.
    let c1 = cluster.client(1).await.unwrap();
    c1.operator().seal(pb::SealRequest {}).await.unwrap();
    let unseal = async |share: &str, nonce: &str| {
        let req = pb::UnsealRequest { share: share.to_owned(), reset: false, nonce: nonce.to_owned() };
        anyone.operator().unseal(req).await.map(|r| r.into_inner()).map_err(ClientError::from)
    };
    // The new threshold is two: two old shares complete the attempt, and open nothing.
    let old = unseal(&cluster.shares[0], "").await.unwrap();
    let err = unseal(&cluster.shares[1], &old.nonce).await.unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"), "the old shares open nothing: {err:?}");
    let new = unseal(&done.shares[0], "").await.unwrap();
    assert!(!unseal(&done.shares[2], &new.nonce).await.unwrap().sealed);
    // A node restarted with the new unseal key file unseals.
    cluster.kill(2);
    cluster.restart(2).await.unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect()
}
