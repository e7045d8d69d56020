//! Soft-deleted objects are purged by themselves once retention ends, even under purge protection,
//! on the leader's (test-shifted) replicated time.

use std::time::Duration;

use arca_client::{pb, ClientError};
use arca_testkit::TestCluster;

const DAY: i64 = 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_end_purges_by_itself() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    let vault = pb::CreateVaultRequest {
        name: "retained".into(),
        soft_delete_retention_days: 7,
        enable_purge_protection: true,
        ..Default::default()
    };
    c.vaults().create_vault(vault).await.unwrap();
    let set = || pb::SetSecretRequest {
        vault: "retained".into(),
        name: "old".into(),
        value: "v".into(),
        ..Default::default()
    };
    c.secrets().set_secret(set()).await.unwrap();
    c.secrets().delete_secret(pb::DeleteSecretRequest { vault: "retained".into(), name: "old".into() }).await.unwrap();
    let purge = pb::PurgeDeletedSecretRequest { vault: "retained".into(), name: "old".into() };
    let e = ClientError::from(c.secrets().purge_deleted_secret(purge).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_deref()), (tonic::Code::FailedPrecondition, Some("PURGE_PROTECTED")));

    // Six days later it is still recoverable; past seven days the leader's sweeper purges it.
    cluster.advance_clock(6 * DAY);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let get_deleted =
        || pb::GetDeletedSecretRequest { vault: "retained".into(), name: "old".into(), read_options: None };
    c.secrets().get_deleted_secret(get_deleted()).await.unwrap();
    cluster.advance_clock(DAY + 1);
    let client = c.clone();
    cluster
        .wait_for(Duration::from_secs(40), async |_| {
            client.secrets().get_deleted_secret(get_deleted()).await.is_err_and(|s| s.code() == tonic::Code::NotFound)
        })
        .await
        .expect("the secret is purged once its retention has ended");
    // The name is free again.
    c.secrets().set_secret(set()).await.unwrap();
}
