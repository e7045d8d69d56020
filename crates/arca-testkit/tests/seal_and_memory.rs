//! Sealing wipes every key at once, and the process guards its memory: checked on a real `arcad`
//! through what it says and through `/proc`.

use std::time::Duration;

use arca_client::{pb, ClientError};
use arca_testkit::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seal_drops_every_cached_key_and_stays_sealed_until_an_explicit_unseal() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    let vault = pb::CreateVaultRequest { name: "sealing".into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(vault).await.unwrap();
    let create = pb::CreateKeyRequest {
        vault: "sealing".into(),
        name: "signer".into(),
        kty: "EC".into(),
        crv: "P-256".into(),
        ..Default::default()
    };
    c.keys().create_key(create).await.map_err(ClientError::from).unwrap();
    let sign = || pb::SignRequest {
        vault: "sealing".into(),
        name: "signer".into(),
        algorithm: "ES256".into(),
        digest: vec![7; 32],
        ..Default::default()
    };
    // Signing parses the key once and caches it.
    c.crypto().sign(sign()).await.map_err(ClientError::from).unwrap();
    c.operator().seal(pb::SealRequest {}).await.unwrap();
    let err = c.crypto().sign(sign()).await.map_err(ClientError::from).unwrap_err();
    assert_eq!(err.reason.as_deref(), Some("SEALED"), "{err:?}");
    let log = std::fs::read_to_string(&cluster.nodes[0].log_path).unwrap();
    assert!(log.contains("cached_keys=1") && log.contains("node sealed"), "the seal dropped the cached key: {log}");
    // Started with an unseal key file, the node unsealed from it once; it does not undo the seal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = c.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner();
    assert!(status.sealed, "the unseal key file unsealed the node again after an operator's seal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arcad_locks_its_memory_forbids_core_dumps_and_says_so() {
    let cluster = TestCluster::start(1).await.unwrap();
    let pid = cluster.pid(0).unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().filter(|w| *w == "0").count() >= 2, "{core}");
    let log = std::fs::read_to_string(&cluster.nodes[0].log_path).unwrap();
    assert!(log.contains("core dumps off: yes; not dumpable: yes"), "{log}");
    if log.contains("memory locked: yes") {
        // mlockall with MCL_ONFAULT: pages are locked as they are touched.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let locked: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        assert!(locked > 0, "{status}");
    } else {
        // Not root and a limited RLIMIT_MEMLOCK: arcad must say so, with the remedy.
        assert!(log.contains("memory locked: NO (RLIMIT_MEMLOCK"), "{log}");
    }
}
