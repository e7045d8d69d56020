//! Bad input gets a clear error and changes nothing; planted secret values and names never reach disk,
//! the Raft log, snapshots, the audit log or captured logs in plaintext.

use std::collections::HashMap;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::{files_containing, TestCluster};

async fn set_req(c: &ArcaClient, req: pb::SetSecretRequest) -> Result<pb::Secret, ClientError> {
    Ok(c.secrets().set_secret(req).await?.into_inner())
}

fn req(name: &str, value: &str) -> pb::SetSecretRequest {
    pb::SetSecretRequest { vault: "inputs".into(), name: name.into(), value: value.into(), ..Default::default() }
}

async fn version_count(c: &ArcaClient, name: &str) -> usize {
    let r = pb::ListSecretVersionsRequest { vault: "inputs".into(), name: name.into(), ..Default::default() };
    c.secrets().list_secret_versions(r).await.map(|r| r.into_inner().secrets.len()).unwrap_or(0)
}

fn assert_bad(e: ClientError, field_hint: &str) {
    assert_eq!(e.code, tonic::Code::InvalidArgument, "{e}");
    assert!(e.reason.as_deref() == Some("BAD_PARAMETER") || e.reason.as_deref() == Some("VAULT_NAME_NOT_VALID"), "{e}");
    assert!(e.message.contains(field_hint), "message '{}' should mention {field_hint}", e.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    c.vaults().create_vault(pb::CreateVaultRequest { name: "inputs".into(), ..Default::default() }).await.unwrap();
    set_req(&c, req("base", "v")).await.unwrap();

    // Value: limit passes, limit+1 is refused.
    set_req(&c, req("base", &"x".repeat(25_600))).await.unwrap();
    assert_bad(set_req(&c, req("base", &"x".repeat(25_601))).await.unwrap_err(), "25600");
    assert_eq!(version_count(&c, "base").await, 2);

    // Tags: 15 pass, 16 are refused.
    let mut r = req("base", "v");
    r.tags = (0..15).map(|i| (format!("t{i}"), "v".into())).collect::<HashMap<_, _>>();
    set_req(&c, r.clone()).await.unwrap();
    r.tags.insert("t15".into(), "v".into());
    assert_bad(set_req(&c, r).await.unwrap_err(), "15 tags");
    assert_eq!(version_count(&c, "base").await, 3);

    // Content type: 255 pass, 256 refused.
    let mut r = req("base", "v");
    r.content_type = "c".repeat(256);
    assert_bad(set_req(&c, r).await.unwrap_err(), "content_type");

    // Names.
    for bad in ["", "has space", "under_score", &"n".repeat(128)] {
        assert_bad(set_req(&c, req(bad, "v")).await.unwrap_err(), "name");
    }
    set_req(&c, req(&"n".repeat(127), "v")).await.unwrap();
    let mut r = req("x", "v");
    r.vault = "9bad".into();
    assert_bad(set_req(&c, r).await.unwrap_err(), "vault name");

    // Version ids.
    for bad in ["abc", &"g".repeat(32), &"a".repeat(33)] {
        let r = pb::GetSecretRequest {
            vault: "inputs".into(),
            name: "base".into(),
            version: bad.to_string(),
            read_options: None,
        };
        assert_bad(c.secrets().get_secret(r).await.map_err(ClientError::from).unwrap_err(), "version");
    }
    let missing = pb::GetSecretRequest {
        vault: "inputs".into(),
        name: "base".into(),
        version: "a".repeat(32),
        read_options: None,
    };
    let e = ClientError::from(c.secrets().get_secret(missing).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_deref()), (tonic::Code::NotFound, Some("SECRET_NOT_FOUND")));

    // Page size and tokens.
    let r = pb::ListSecretsRequest { vault: "inputs".into(), page_size: 1001, ..Default::default() };
    assert_bad(c.secrets().list_secrets(r).await.map_err(ClientError::from).unwrap_err(), "page_size");
    let r = pb::ListSecretsRequest { vault: "inputs".into(), page_token: "zz".into(), ..Default::default() };
    assert_bad(c.secrets().list_secrets(r).await.map_err(ClientError::from).unwrap_err(), "page_token");

    // Backups: tampered blobs are refused; restore onto a taken name is a conflict.
    let blob = c
        .secrets()
        .backup_secret(pb::BackupSecretRequest { vault: "inputs".into(), name: "base".into() })
        .await
        .unwrap()
        .into_inner()
        .value;
    let mut tampered = blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    for bad in [tampered, b"garbage".to_vec(), Vec::new()] {
        let r = pb::RestoreSecretRequest { vault: "inputs".into(), backup: bad };
        assert_bad(c.secrets().restore_secret(r).await.map_err(ClientError::from).unwrap_err(), "backup");
    }
    let r = pb::RestoreSecretRequest { vault: "inputs".into(), backup: blob.clone() };
    let e = ClientError::from(c.secrets().restore_secret(r).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_deref()), (tonic::Code::AlreadyExists, Some("CONFLICT")));
    assert_eq!(version_count(&c, "base").await, 3, "no refused request changed the secret");

    // Vault rules.
    let r = pb::CreateVaultRequest { name: "inputs2".into(), soft_delete_retention_days: 91, ..Default::default() };
    assert_bad(c.vaults().create_vault(r).await.map_err(ClientError::from).unwrap_err(), "soft_delete_retention_days");
    let r = pb::CreateVaultRequest { name: "inputs".into(), ..Default::default() };
    let e = ClientError::from(c.vaults().create_vault(r).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("VAULT_ALREADY_EXISTS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_values_and_names_never_appear_in_plaintext() {
    // Snapshots every 20 entries, so the data dirs also hold snapshots.
    let cluster = TestCluster::start_with(3, 20).await.unwrap();
    let nonce = std::process::id();
    let value = format!("PLANTED-VALUE-{nonce}-zq8");
    let name = format!("plantedname{nonce}xq");
    let c = cluster.client(1).await.unwrap();
    c.vaults().create_vault(pb::CreateVaultRequest { name: "secrecy".into(), ..Default::default() }).await.unwrap();
    for i in 0..30 {
        let r = pb::SetSecretRequest {
            vault: "secrecy".into(),
            name: if i % 3 == 0 { name.clone() } else { format!("filler{i}") },
            value: value.clone(),
            content_type: "text/plain".into(),
            ..Default::default()
        };
        c.secrets().set_secret(r).await.unwrap();
    }
    let bad = pb::SetSecretRequest {
        vault: "secrecy".into(),
        name: format!("{name}!"),
        value: value.clone(),
        ..Default::default()
    };
    let e = ClientError::from(c.secrets().set_secret(bad).await.unwrap_err());
    assert!(!e.message.contains(&value) && !e.message.contains(&name), "errors never echo names or values");
    let del = pb::DeleteSecretRequest { vault: "secrecy".into(), name: name.clone() };
    c.secrets().delete_secret(del).await.unwrap();
    let rec = pb::RecoverDeletedSecretRequest { vault: "secrecy".into(), name: name.clone() };
    c.secrets().recover_deleted_secret(rec).await.unwrap();
    let got = c
        .secrets()
        .get_secret(pb::GetSecretRequest {
            vault: "secrecy".into(),
            name: name.clone(),
            version: String::new(),
            read_options: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.value, value);
    let backup = c
        .secrets()
        .backup_secret(pb::BackupSecretRequest { vault: "secrecy".into(), name: name.clone() })
        .await
        .unwrap()
        .into_inner()
        .value;
    assert!(!backup.windows(value.len()).any(|w| w == value.as_bytes()), "backup blobs are ciphertext");

    let files = cluster.files_to_scan();
    assert!(files.iter().any(|f| f.to_string_lossy().contains("audit.log")));
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "log")));
    assert!(files.len() > 10, "the scan must cover RocksDB files, logs and audit logs");
    assert_eq!(
        files_containing(&files, value.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "value found in plaintext"
    );
    assert_eq!(files_containing(&files, name.as_bytes()), Vec::<std::path::PathBuf>::new(), "name found in plaintext");
    // The control: the scan does find what is really there. Vault names are not secret and the audit
    // log records them, so a scan that read nothing would fail here.
    assert!(!files_containing(&files, b"secrecy").is_empty(), "the scan must see readable content");
}
