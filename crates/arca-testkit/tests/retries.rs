//! Idempotent retries on real processes: a change named with a client request id acts once however
//! often it is sent within the window, and the Rust client retries through a leader's SIGKILL without
//! a write being lost, doubled or answered "outcome unknown".

use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::{named, TestCluster};

async fn versions(c: &ArcaClient, vault: &str, name: &str) -> usize {
    let req =
        pb::ListSecretVersionsRequest { vault: vault.into(), name: name.into(), page_size: 1000, ..Default::default() };
    c.secrets().list_secret_versions(req).await.unwrap().into_inner().secrets.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_sent_twice_with_one_request_id_acts_once() {
    let cluster = TestCluster::start(3).await.unwrap();
    let c = cluster.client(1).await.unwrap();
    let vault = pb::CreateVaultRequest { name: "idem".into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(named(vault.clone(), "vault-1")).await.unwrap();
    // The same create again answers the first outcome instead of VAULT_ALREADY_EXISTS.
    c.vaults().create_vault(named(vault, "vault-1")).await.expect("a retried create answers what it did");
    let set = |value: &str| pb::SetSecretRequest {
        vault: "idem".into(),
        name: "db".into(),
        value: value.into(),
        ..Default::default()
    };
    let first = c.secrets().set_secret(named(set("v1"), "set-1")).await.unwrap();
    assert_eq!(first.metadata().get("x-arca-request-id").unwrap(), "set-1", "the answer carries the client's id");
    let again = c.secrets().set_secret(named(set("v1"), "set-1")).await.unwrap().into_inner();
    assert_eq!(again.version, first.into_inner().version);
    assert_eq!(versions(&c, "idem", "db").await, 1, "the retry made no second version");
    // Through another node, too: the outcome is replicated.
    let c2 = cluster.client(2).await.unwrap();
    let third = c2.secrets().set_secret(named(set("v1"), "set-1")).await.unwrap().into_inner();
    assert_eq!(third.version, again.version);
    // The same id for another request is refused.
    let err = c.secrets().set_secret(named(set("other"), "set-1")).await.map_err(ClientError::from).unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"), "{err:?}");
    // A delete retried after it worked answers success, not SECRET_NOT_FOUND.
    let delete = pb::DeleteSecretRequest { vault: "idem".into(), name: "db".into() };
    c.secrets().delete_secret(named(delete.clone(), "del-1")).await.unwrap();
    c.secrets().delete_secret(named(delete, "del-1")).await.expect("a retried delete answers what it did");
    // A malformed id is refused before anything happens.
    let err = c.secrets().set_secret(named(set("x"), "not valid!")).await.map_err(ClientError::from).unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_retries_through_a_leader_kill_and_every_write_lands_once() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let through = (leader + 1) % 3;
    let c = cluster.client_retrying(through).await.unwrap();
    let vault = pb::CreateVaultRequest { name: "retried".into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(vault).await.unwrap();
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let req = pb::SetSecretRequest {
                    vault: "retried".into(),
                    name: "counter".into(),
                    value: format!("v{i}"),
                    ..Default::default()
                };
                let s = c
                    .secrets()
                    .set_secret(req)
                    .await
                    .map_err(ClientError::from)
                    .expect("the client rides out the kill");
                acked.push(s.into_inner().version);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    cluster.kill(leader);
    let acked = writer.await.unwrap();
    assert_eq!(acked.len(), 40);
    let unique: std::collections::BTreeSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), 40);
    assert_eq!(versions(&c, "retried", "counter").await, 40, "no write was lost and none landed twice");
}
