//! The audit log on real processes: every change is recorded durably before it acts and its outcome
//! after, under one request id; the node's own jobs are audited as `system`; batches name every item;
//! nothing an unauthenticated caller sends reaches the log beyond fixed fields, and a request too big
//! for its call is refused before it is read; an audit disk that fills up refuses requests while Raft
//! carries on.

use std::process::Command;
use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::TestCluster;
use prost::Message;
use serde_json::Value;

fn audit_lines(cluster: &TestCluster, node: usize) -> Vec<Value> {
    let text = std::fs::read_to_string(cluster.nodes[node].data_dir.join("audit.log")).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

async fn vault(c: &ArcaClient, name: &str) {
    let req = pb::CreateVaultRequest { name: name.into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(req).await.map_err(ClientError::from).unwrap();
}

async fn set(c: &ArcaClient, vault: &str, name: &str, value: &str) -> Result<pb::Secret, ClientError> {
    let req =
        pb::SetSecretRequest { vault: vault.into(), name: name.into(), value: value.into(), ..Default::default() };
    Ok(c.secrets().set_secret(req).await?.into_inner())
}

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<pb::Secret, ClientError> {
    let req = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(req).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_are_recorded_before_and_after_system_jobs_and_batches_name_every_item() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    vault(&c, "audited").await;
    set(&c, "audited", "db", "v1").await.unwrap();
    let lines = audit_lines(&cluster, 0);
    let sets: Vec<&Value> = lines.iter().filter(|l| l["operation"] == "SecretSet").collect();
    assert_eq!(sets.len(), 2, "a request record and a response record: {sets:?}");
    assert_eq!((sets[0]["stage"].as_str(), sets[1]["stage"].as_str()), (Some("request"), Some("response")));
    assert_eq!(sets[0]["request_id"], sets[1]["request_id"]);
    assert_eq!(sets[1]["result"], "success");
    assert!(sets[0]["result"].is_null() && sets[0]["caller"].is_string());

    // A batch names every key it touches.
    for name in ["k1", "k2", "k3"] {
        let req = pb::CreateKeyRequest {
            vault: "audited".into(),
            name: name.into(),
            kty: "oct".into(),
            key_size: 256,
            ..Default::default()
        };
        c.keys().create_key(req).await.map_err(ClientError::from).unwrap();
    }
    let item = |name: &str| pb::WrapKeyRequest {
        vault: "audited".into(),
        name: name.into(),
        algorithm: "A256KW".into(),
        key: vec![1; 32],
        ..Default::default()
    };
    let batch = pb::BatchWrapKeyRequest { items: vec![item("k1"), item("k2"), item("k3")], read_options: None };
    c.crypto().batch_wrap_key(batch).await.map_err(ClientError::from).unwrap();
    let lines = audit_lines(&cluster, 0);
    let wrap = lines
        .iter()
        .rev()
        .find(|l| l["operation"] == "KeyBatchWrap" || l["operation"].as_str().is_some_and(|o| o.contains("Wrap")))
        .unwrap();
    assert_eq!(wrap["objects"].as_array().map(Vec::len), Some(3), "{wrap}");

    // The purge sweeper is audited as `system`, request and response.
    let req = pb::DeleteSecretRequest { vault: "audited".into(), name: "db".into() };
    c.secrets().delete_secret(req).await.unwrap();
    cluster.advance_clock(8 * 86_400);
    cluster
        .wait_for(Duration::from_secs(40), async |c| {
            audit_lines(c, 0).iter().filter(|l| l["operation"] == "ObjectPurgeDue" && l["caller"] == "system").count()
                >= 2
        })
        .await
        .expect("the sweeper's purge is audited as system");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_caller_cannot_grow_the_log_or_make_a_node_read_a_big_request() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    vault(&c, "bounded").await;
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let before = std::fs::metadata(cluster.nodes[0].data_dir.join("audit.log")).unwrap().len();
    let huge = "x".repeat(16 * 1024 * 1024 - 1024);
    // A 16 MiB SetSecret without a token: refused from its headers, before its body is read.
    let err = set(&anonymous, "bounded", &huge[..100], &huge).await.unwrap_err();
    assert_eq!(err.code, tonic::Code::Unauthenticated, "{err:?}");
    // A 16 MiB RestoreSecret without a token, and a 16 MiB Init (which needs no token) and GetSecret.
    let err = anonymous
        .secrets()
        .restore_secret(pb::RestoreSecretRequest { vault: "bounded".into(), backup: huge.clone().into_bytes() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let err = anonymous
        .operator()
        .init(pb::InitRequest { bootstrap_secret: huge.clone(), ..Default::default() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert!(err.message.contains("this call accepts at most 8192 bytes"), "{err:?}");
    let err = get(&anonymous, &huge[..10_000], "name").await.unwrap_err();
    assert_eq!(err.code, tonic::Code::Unauthenticated, "{err:?}");
    let grown = std::fs::metadata(cluster.nodes[0].data_dir.join("audit.log")).unwrap().len() - before;
    assert!(grown < 4096, "four refused requests grew the audit log by {grown} bytes");
    let text = std::fs::read_to_string(cluster.nodes[0].data_dir.join("audit.log")).unwrap();
    assert!(!text.contains("xxxxxxxxxx"), "a caller's bytes reached the audit log");
}

/// A SetSecret request of exactly `bytes` encoded bytes.
fn set_request_of(bytes: usize) -> pb::SetSecretRequest {
    let mut req = pb::SetSecretRequest { vault: "bounded".into(), name: "edge".into(), ..Default::default() };
    let mut len = bytes.saturating_sub(req.encoded_len() + 8);
    loop {
        req.value = "v".repeat(len);
        match req.encoded_len() {
            n if n == bytes => return req,
            n if n < bytes => len += bytes - n,
            n => len -= n - bytes,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_accepts_its_largest_legal_request_and_not_one_byte_more() {
    use arca_types::limits::{REQUEST_BYTES_MAX_DEFAULT, SET_SECRET_REQUEST_BYTES_MAX};
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    vault(&c, "bounded").await;
    // At the limit the edge lets it through (the handler then refuses the oversized value).
    let err = c
        .secrets()
        .set_secret(set_request_of(SET_SECRET_REQUEST_BYTES_MAX))
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert!(!err.message.contains("this call accepts"), "{err:?}");
    assert_eq!(err.reason.as_deref(), Some("BAD_PARAMETER"));
    let err = c
        .secrets()
        .set_secret(set_request_of(SET_SECRET_REQUEST_BYTES_MAX + 1))
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert!(err.message.contains(&format!("accepts at most {SET_SECRET_REQUEST_BYTES_MAX} bytes")), "{err:?}");
    // A call without a value: a few KiB.
    let get_of = |n: usize| pb::GetSecretRequest { vault: "v".repeat(n), name: "n".into(), ..Default::default() };
    let mut at = get_of(REQUEST_BYTES_MAX_DEFAULT - 20);
    while at.encoded_len() < REQUEST_BYTES_MAX_DEFAULT {
        at.vault.push('v');
    }
    let err = c.secrets().get_secret(at.clone()).await.map_err(ClientError::from).unwrap_err();
    assert!(!err.message.contains("this call accepts"), "{err:?}");
    at.vault.push('v');
    let err = c.secrets().get_secret(at).await.map_err(ClientError::from).unwrap_err();
    assert!(err.message.contains("this call accepts"), "{err:?}");
    // The real largest SetSecret goes through.
    let max_value = "s".repeat(arca_types::limits::SECRET_VALUE_BYTES_MAX);
    set(&c, "bounded", "largest", &max_value).await.unwrap();
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd).args(args).status().is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_audit_disk_refuses_requests_and_changes_nothing_while_raft_carries_on() {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !is_root {
        eprintln!("SKIPPED: mounting a small audit disk needs root");
        return;
    }
    let mut cluster = TestCluster::start(3).await.unwrap();
    let c0 = cluster.client(0).await.unwrap();
    vault(&c0, "audited").await;
    let disk = cluster.dir.path().join("audit-disk");
    std::fs::create_dir_all(&disk).unwrap();
    assert!(run("mount", &["-t", "tmpfs", "-o", "size=256k", "tmpfs", disk.to_str().unwrap()]), "mount a tmpfs");
    let victim = (cluster.leader_index().await.unwrap() + 1) % 3;
    cluster.kill(victim);
    cluster.nodes[victim].extra_args = vec!["--audit-log".into(), disk.join("audit.log").display().to_string()];
    cluster.restart(victim).await.unwrap();
    let cv = cluster.client(victim).await.unwrap();
    set(&cv, "audited", "before", "v").await.unwrap();
    // Fill the audit disk.
    let _ = run("dd", &["if=/dev/zero", &format!("of={}", disk.join("filler").display()), "bs=4k", "count=1000"]);
    // The audit log's last page may still hold a few records: write until the disk refuses.
    // A write whose request record fit but whose outcome record did not was made: it answers
    // OUTCOME_UNKNOWN, saying so. One whose request record did not fit changed nothing: INTERNAL.
    let mut refused = None;
    let mut made = Vec::new();
    for i in 0..100 {
        match set(&cv, "audited", &format!("during-{i}"), "v").await {
            Ok(_) => {}
            Err(err) if err.reason.as_deref() == Some("OUTCOME_UNKNOWN") => made.push(format!("during-{i}")),
            Err(err) => {
                assert_eq!(err.code, tonic::Code::Internal, "{err:?}");
                assert!(err.message.contains("audit"), "{err:?}");
                refused = Some(format!("during-{i}"));
                break;
            }
        }
    }
    let refused = refused.expect("a write is refused once the audit disk is full");
    let err = get(&cv, "audited", "before").await.unwrap_err();
    assert!(err.message.contains("audit"), "reads are refused too: {err:?}");
    // Raft on the data disk carries on: with the third node down, the victim's vote is the quorum.
    let current_leader = cluster.leader_index().await;
    let third = (0..3).find(|i| *i != victim && Some(*i) != current_leader).unwrap();
    cluster.kill(third);
    let leader = (0..3).find(|i| *i != victim && *i != third).unwrap();
    let cl = cluster.client(leader).await.unwrap();
    set(&cl, "audited", "through-raft", "committed").await.expect("the victim still replicates and votes");
    // Room again: the victim answers, the refused write never happened, the committed one is there.
    std::fs::remove_file(disk.join("filler")).unwrap();
    assert_eq!(get(&cv, "audited", "through-raft").await.unwrap().value, "committed");
    assert_eq!(get(&cv, "audited", &refused).await.unwrap_err().reason.as_deref(), Some("SECRET_NOT_FOUND"));
    for name in made {
        get(&cv, "audited", &name).await.expect("a write answered OUTCOME_UNKNOWN for a full audit disk was made");
    }
    let audit = std::fs::read_to_string(disk.join("audit.log")).unwrap();
    for line in audit.lines() {
        serde_json::from_str::<Value>(line).expect("no half-written record survives the full disk");
    }
    cluster.kill(victim);
    let _ = run("umount", &["-l", disk.to_str().unwrap()]);
}
