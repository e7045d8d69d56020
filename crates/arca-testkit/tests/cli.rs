//! The `arca` CLI against real nodes: a standby node joins with `arca cluster join`, then vault and
//! secret verbs run through it with JSON output, and errors come back as JSON with the stable reason.

use std::process::Command;
use std::time::Duration;

use arca_testkit::{binary, TestCluster};
use serde_json::Value;

/// `arca` against `node`, with the cluster's CA and root token.
fn arca_command(cluster: &TestCluster, node: usize, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("arca"));
    cmd.args(["--addr", &cluster.nodes[node].api_addr()])
        .arg("--cacert")
        .arg(cluster.dir.path().join("certs/ca.pem"))
        .args(["--token", &cluster.root_token])
        .args(args);
    cmd
}

fn arca(cluster: &TestCluster, node: usize, args: &[&str]) -> (bool, Value) {
    let out = arca_command(cluster, node, args).output().expect("run arca");
    let text = if out.status.success() { out.stdout } else { out.stderr };
    let value = serde_json::from_slice(&text).unwrap_or(Value::Null);
    (out.status.success(), value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_joins_a_standby_node_and_manages_secrets() {
    let mut cluster = TestCluster::start(1).await.unwrap();
    let standby = cluster.spawn_standby().unwrap();
    let peer = cluster.nodes[0].cluster_addr();
    // The standby node is not a member yet: it answers, but has no cluster status.
    cluster
        .wait_for(Duration::from_secs(20), async |c| {
            let Ok(client) = c.client(standby).await else { return false };
            client.operator().get_seal_status(arca_client::pb::GetSealStatusRequest {}).await.is_ok()
        })
        .await
        .unwrap();
    // Without a join token nothing happens; a bad one is refused with its reason.
    let out = Command::new(binary("arca"))
        .args(["--addr", &cluster.nodes[standby].api_addr(), "--cacert"])
        .arg(cluster.dir.path().join("certs/ca.pem"))
        .args(["cluster", "join", "--peer", &peer])
        .env_remove("ARCA_JOIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let forged = format!("arca-join-v1.{}.{}.{}.{}", "0".repeat(32), "0".repeat(64), "0".repeat(16), "0".repeat(64));
    let (ok, err) = arca(&cluster, standby, &["cluster", "join", "--peer", &peer, "--join-token", &forged]);
    assert!(!ok);
    assert_eq!(err["reason"], "JOIN_TOKEN_INVALID", "{err}");
    let (ok, token) = arca(&cluster, 0, &["cluster", "join-token", "create", "--ttl", "5m"]);
    assert!(ok, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let (ok, status) = arca(&cluster, standby, &["cluster", "join", "--peer", &peer, "--join-token", &token]);
    assert!(ok, "{status}");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2), "{status}");
    cluster.wait_unsealed(standby).await.unwrap();

    let (ok, vault) = arca(&cluster, standby, &["keyvault", "create", "--name", "cli-vault", "--retention-days", "7"]);
    assert!(ok, "{vault}");
    assert_eq!(vault["recoveryLevel"], "CustomizedRecoverable+Purgeable");
    let (ok, set) = arca(
        &cluster,
        standby,
        &["keyvault", "secret", "set", "--vault-name", "cli-vault", "--name", "token", "--value", "t0p"],
    );
    assert!(ok, "{set}");
    let (ok, shown) =
        arca(&cluster, 0, &["keyvault", "secret", "show", "--vault-name", "cli-vault", "--name", "token"]);
    assert!(ok, "{shown}");
    assert_eq!(shown["value"], "t0p");
    assert_eq!(shown["version"], set["version"]);
    let (ok, err) =
        arca(&cluster, 0, &["keyvault", "secret", "show", "--vault-name", "cli-vault", "--name", "missing"]);
    assert!(!ok);
    assert_eq!(err["reason"], "SECRET_NOT_FOUND", "{err}");
    let (ok, status) = arca(&cluster, standby, &["cluster", "status"]);
    assert!(ok);
    assert_eq!(status["nodes"].as_array().unwrap().iter().filter(|n| n["role"] == "voter").count(), 2, "{status}");
    // Asked through a follower, status comes from the leader, which knows replication progress.
    let followers: Vec<&Value> = status["nodes"].as_array().unwrap().iter().filter(|n| n["leader"] == false).collect();
    assert_eq!(followers.len(), 1, "{status}");
    assert!(followers.iter().all(|n| n["matchedIndex"].as_u64() > Some(0)), "{status}");
}

/// The audit records of `operation` answers (the "response" stage) on `node`: one per attempt that
/// reached it, whether it was refused before acting (no leader to confirm its authorization with) or
/// went on to act.
fn audit_attempts(cluster: &TestCluster, node: usize, operation: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(cluster.nodes[node].data_dir.join("audit.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["operation"] == operation && l["stage"] == "response")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_a_write_that_got_no_answer_again_with_the_same_request_id() {
    let cluster = TestCluster::start(3).await.unwrap();
    let (ok, vault) = arca(&cluster, 0, &["keyvault", "create", "--name", "retried", "--retention-days", "7"]);
    assert!(ok, "{vault}");
    // With the leader and the other follower stopped (SIGSTOP) no attempt can be answered: the
    // follower forwards to a leader that does not answer, and no new leader can be elected.
    let leader = cluster.leader_index().await.unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let other = (0..3).find(|i| *i != leader && *i != follower).unwrap();
    cluster.pause(leader).unwrap();
    cluster.pause(other).unwrap();
    let set = ["keyvault", "secret", "set", "--vault-name", "retried", "--name", "db", "--value", "once"];
    let cli = arca_command(&cluster, follower, &set)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first attempt has reached the follower (and failed: no leader answers the read barrier
    // its authorization waits for), the other follower wakes: the two elect a leader, and a later
    // attempt lands.
    cluster
        .wait_for(Duration::from_secs(40), async |c| !audit_attempts(c, follower, "SecretSet").is_empty())
        .await
        .expect("the first attempt reached the follower");
    cluster.resume(other).unwrap();
    let out = tokio::task::spawn_blocking(move || cli.wait_with_output().unwrap()).await.unwrap();
    cluster.resume(leader).unwrap();
    assert!(out.status.success(), "the CLI retried until the write landed: {}", String::from_utf8_lossy(&out.stderr));

    let attempts = audit_attempts(&cluster, follower, "SecretSet");
    assert!(attempts.len() >= 2, "more than one attempt reached the node: {attempts:?}");
    assert!(attempts.iter().all(|a| a["request_id"] == attempts[0]["request_id"]), "one request id: {attempts:?}");
    let (ok, versions) =
        arca(&cluster, follower, &["keyvault", "secret", "list-versions", "--vault-name", "retried", "--name", "db"]);
    assert!(ok, "{versions}");
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "the write landed once: {versions}");
}

/// `arca audit verify` on `file`: whether it passed, and its JSON report (printed either way).
fn verify_audit(cluster: &TestCluster, file: &std::path::Path, with_cluster: bool) -> (bool, Value) {
    let path = file.to_str().unwrap();
    let mut args = vec!["audit", "verify", path];
    if with_cluster {
        args.push("--cluster");
    }
    let out = arca_command(cluster, 0, &args).output().expect("run arca");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_verifies_and_an_edit_deletion_reordering_or_cut_is_caught() {
    let cluster = TestCluster::start(1).await.unwrap();
    let (ok, _) = arca(&cluster, 0, &["keyvault", "create", "--name", "audited", "--retention-days", "7"]);
    assert!(ok);
    for i in 0..5 {
        let name = format!("s{i}");
        let (ok, _) = arca(
            &cluster,
            0,
            &["keyvault", "secret", "set", "--vault-name", "audited", "--name", &name, "--value", "v"],
        );
        assert!(ok);
    }
    // Wait for an anchor that covers those requests.
    let log = cluster.nodes[0].data_dir.join("audit.log");
    let written = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    let client = cluster.client(0).await.unwrap();
    let node_id = cluster.status(0).await.unwrap().node_id;
    cluster
        .wait_for(Duration::from_secs(30), async |_| {
            let anchors = client.audit().list_anchors(arca_client::pb::ListAnchorsRequest { node_id }).await;
            anchors.is_ok_and(|a| a.into_inner().anchors.iter().any(|a| a.seq >= written))
        })
        .await
        .expect("the node anchored its log");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("audit.log");
    let write =
        |lines: &[String]| std::fs::write(&copy, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    // The node anchors every 2 s: an anchor made between copying the log and checking the copy
    // rightly calls the copy cut short, so copy again until a copy and the anchors agree.
    let mut lines = Vec::new();
    let mut report = Value::Null;
    for _ in 0..10 {
        lines = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
        write(&lines);
        let ok;
        (ok, report) = verify_audit(&cluster, &copy, true);
        if ok && report["anchorsChecked"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(report["valid"], true, "{report}");
    assert_eq!(report["records"].as_u64(), Some(lines.len() as u64), "{report}");
    assert!(report["anchorsChecked"].as_u64() > Some(0), "{report}");

    // One byte changed in record 3: refused, naming line 3.
    let mut edited = lines.clone();
    edited[2] = edited[2].replacen("\"success\"", "\"failure\"", 1).replacen("\"request\"", "\"respons\"", 1);
    assert_ne!(edited[2], lines[2]);
    write(&edited);
    let (ok, report) = verify_audit(&cluster, &copy, false);
    assert!(!ok);
    assert_eq!(report["firstBad"]["line"], 3, "{report}");
    assert_eq!(report["records"], 2, "{report}");

    // A record deleted, two swapped: refused where it happened.
    let mut deleted = lines.clone();
    deleted.remove(4);
    write(&deleted);
    let (ok, report) = verify_audit(&cluster, &copy, false);
    assert!(!ok && report["firstBad"]["line"] == 5, "{report}");
    let mut swapped = lines.clone();
    swapped.swap(5, 6);
    write(&swapped);
    let (ok, report) = verify_audit(&cluster, &copy, false);
    assert!(!ok && report["firstBad"]["line"] == 6, "{report}");

    // Cut short: the chain alone cannot tell; the cluster's anchors can.
    write(&lines[..4]);
    assert!(verify_audit(&cluster, &copy, false).0);
    let (ok, report) = verify_audit(&cluster, &copy, true);
    assert!(!ok, "{report}");
    assert!(report["firstBad"]["reason"].as_str().unwrap().contains("cut short"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_walls_a_vault_off_to_named_addresses_as_az_keyvault_network_rule_does() {
    let cluster = TestCluster::start(1).await.unwrap();
    assert!(arca(&cluster, 0, &["keyvault", "create", "--name", "walled"]).0);
    assert!(
        arca(&cluster, 0, &["keyvault", "secret", "set", "--vault-name", "walled", "--name", "db", "--value", "v"]).0
    );
    let (ok, vault) =
        arca(&cluster, 0, &["keyvault", "network-rule", "add", "--name", "walled", "--ip-address", "10.0.0.0/8"]);
    assert!(ok, "{vault}");
    assert_eq!(vault["networkAcls"]["ipRules"][0]["value"], "10.0.0.0/8", "{vault}");
    assert_eq!(vault["networkAcls"]["defaultAction"], "Allow");
    let (ok, vault) = arca(&cluster, 0, &["keyvault", "update", "--name", "walled", "--default-action", "Deny"]);
    assert!(ok, "{vault}");
    assert_eq!(vault["networkAcls"]["defaultAction"], "Deny");
    let (ok, err) = arca(&cluster, 0, &["keyvault", "secret", "show", "--vault-name", "walled", "--name", "db"]);
    assert!(!ok);
    assert_eq!(err["reason"], "FORBIDDEN_BY_FIREWALL", "{err}");
    let (ok, _) =
        arca(&cluster, 0, &["keyvault", "network-rule", "add", "--name", "walled", "--ip-address", "127.0.0.1"]);
    assert!(ok);
    let (ok, secret) = arca(&cluster, 0, &["keyvault", "secret", "show", "--vault-name", "walled", "--name", "db"]);
    assert!(ok, "{secret}");
    assert_eq!(secret["value"], "v");
    let (ok, rules) = arca(&cluster, 0, &["keyvault", "network-rule", "list", "--name", "walled"]);
    assert!(ok);
    assert_eq!(rules["ipRules"].as_array().map(Vec::len), Some(2), "{rules}");
    let (ok, _) =
        arca(&cluster, 0, &["keyvault", "network-rule", "remove", "--name", "walled", "--ip-address", "127.0.0.1"]);
    assert!(ok);
    let (ok, err) = arca(&cluster, 0, &["keyvault", "secret", "show", "--vault-name", "walled", "--name", "db"]);
    assert!(!ok);
    assert_eq!(err["reason"], "FORBIDDEN_BY_FIREWALL", "{err}");
    let (ok, err) =
        arca(&cluster, 0, &["keyvault", "network-rule", "add", "--name", "walled", "--ip-address", "10.1.2.3/8"]);
    assert!(!ok);
    assert_eq!(err["reason"], "BAD_PARAMETER", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_made_with_create_for_rbac_signs_in_with_its_certificate_as_the_readme_shows() {
    let cluster = TestCluster::start(1).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(arca(&cluster, 0, &["keyvault", "create", "--name", "app-a"]).0);
    assert!(arca(&cluster, 0, &["keyvault", "create", "--name", "app-b"]).0);
    for vault in ["app-a", "app-b"] {
        let set = ["keyvault", "secret", "set", "--vault-name", vault, "--name", "db", "--value", vault];
        assert!(arca(&cluster, 0, &set).0);
    }
    let create = [
        "ad",
        "sp",
        "create-for-rbac",
        "--name",
        "app-a",
        "--create-cert",
        "--role",
        "Key Vault Secrets User",
        "--scopes",
        "/vaults/app-a",
    ];
    let out = arca_command(&cluster, 0, &create).current_dir(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app: Value = serde_json::from_slice(&out.stdout).unwrap();
    let pem = app["fileWithCertAndPrivateKey"].as_str().unwrap();
    let pem = dir.path().join(pem);
    assert!(std::fs::read_to_string(&pem).unwrap().contains("PRIVATE KEY"), "the key stays in the file it wrote");
    // Signed in with the certificate (in an assertion, then over mutual TLS): its own vault only.
    for tls in ["0", "1"] {
        let show = |vault: &str| {
            let out = Command::new(binary("arca"))
                .args(["--addr", &cluster.nodes[0].api_addr(), "--cacert"])
                .arg(cluster.dir.path().join("certs/ca.pem"))
                .env_remove("ARCA_TOKEN")
                .env("ARCA_CLIENT_ID", app["appId"].as_str().unwrap())
                .env("ARCA_CLIENT_CERTIFICATE_PATH", &pem)
                .env("ARCA_CLIENT_CERTIFICATE_TLS", tls)
                .args(["keyvault", "secret", "show", "--vault-name", vault, "--name", "db"])
                .output()
                .unwrap();
            let text = if out.status.success() { out.stdout } else { out.stderr };
            (out.status.success(), serde_json::from_slice::<Value>(&text).unwrap_or(Value::Null))
        };
        let (ok, secret) = show("app-a");
        assert!(ok, "tls={tls}: {secret}");
        assert_eq!(secret["value"], "app-a");
        let (ok, err) = show("app-b");
        assert!(!ok);
        assert_eq!(err["reason"], "FORBIDDEN_BY_RBAC", "tls={tls}: {err}");
    }
}
