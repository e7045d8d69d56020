//! The API's named limits (`arca_types::limits`) on a real node: each call takes its limit and
//! refuses one past it with BAD_PARAMETER, a message that names the limit, and no change.
//! (Request sizes per call are in `audit.rs`, connection and stream limits in `limits.rs`.)

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::{named, TestCluster};
use arca_types::limits::{
    BACKUP_BLOB_BYTES_MAX, BACKUP_VERSIONS_MAX, CRYPTO_BATCH_ITEMS_MAX, CRYPTO_INPUT_BYTES_MAX, KEY_IMPORT_BYTES_MAX,
    KEY_VERSIONS_MAX, RANDOM_BYTES_MAX, RANDOM_BYTES_MIN, REQUEST_ID_CHARS_MAX, RETENTION_DAYS_MAX, RETENTION_DAYS_MIN,
};

const VAULT: &str = "limits";

fn refused(result: Result<impl std::fmt::Debug, ClientError>, says: &str) {
    let e = result.expect_err("one past the limit is refused");
    assert_eq!((e.code, e.reason.as_deref()), (tonic::Code::InvalidArgument, Some("BAD_PARAMETER")), "{e}");
    assert!(e.message.contains(says), "'{}' should say '{says}'", e.message);
}

async fn set(c: &ArcaClient, name: &str, value: &str) -> Result<pb::Secret, ClientError> {
    let req =
        pb::SetSecretRequest { vault: VAULT.into(), name: name.into(), value: value.into(), ..Default::default() };
    Ok(c.secrets().set_secret(req).await?.into_inner())
}

async fn secret_versions(c: &ArcaClient, name: &str) -> usize {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let req = pb::ListSecretVersionsRequest {
            vault: VAULT.into(),
            name: name.into(),
            page_size: 1000,
            page_token: page_token.clone(),
            ..Default::default()
        };
        let page = c.secrets().list_secret_versions(req).await.unwrap().into_inner();
        count += page.secrets.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

/// One node, and the vault the tests use on it.
async fn node_with_vault() -> (TestCluster, ArcaClient) {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    let req = pb::CreateVaultRequest { name: VAULT.into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(req).await.unwrap();
    (cluster, c)
}

async fn vault_exists(c: &ArcaClient, name: &str) -> bool {
    c.vaults().get_vault(pb::GetVaultRequest { name: name.into(), ..Default::default() }).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_random_and_request_id_limits() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();

    // Soft-delete retention: 7-90 days.
    for (days, ok) in [
        (RETENTION_DAYS_MIN - 1, false),
        (RETENTION_DAYS_MIN, true),
        (RETENTION_DAYS_MAX, true),
        (RETENTION_DAYS_MAX + 1, false),
    ] {
        let name = format!("retention{days}");
        let req = pb::CreateVaultRequest {
            name: name.clone(),
            soft_delete_retention_days: days as i32,
            ..Default::default()
        };
        let result = c.vaults().create_vault(req).await.map_err(ClientError::from);
        if ok {
            result.unwrap();
        } else {
            refused(result, &format!("{RETENTION_DAYS_MIN}-{RETENTION_DAYS_MAX}"));
        }
        assert_eq!(vault_exists(&c, &name).await, ok, "{days} days");
    }

    // Random bytes: 1-128.
    for (count, ok) in [
        (RANDOM_BYTES_MIN - 1, false),
        (RANDOM_BYTES_MIN, true),
        (RANDOM_BYTES_MAX, true),
        (RANDOM_BYTES_MAX + 1, false),
    ] {
        let result = c
            .keys()
            .get_random_bytes(pb::GetRandomBytesRequest { count: count as i32 })
            .await
            .map(|r| r.into_inner().value)
            .map_err(ClientError::from);
        if ok {
            assert_eq!(result.unwrap().len(), count as usize);
        } else {
            refused(result, &format!("{RANDOM_BYTES_MIN}-{RANDOM_BYTES_MAX}"));
        }
    }

    // A client request id: 1-64 characters.
    let vault =
        |name: &str| pb::CreateVaultRequest { name: name.into(), soft_delete_retention_days: 7, ..Default::default() };
    let at_limit = "r".repeat(REQUEST_ID_CHARS_MAX);
    let reply = c.vaults().create_vault(named(vault("idlimit"), &at_limit)).await.unwrap();
    assert_eq!(reply.metadata().get("x-arca-request-id").unwrap(), at_limit.as_str());
    let past = "r".repeat(REQUEST_ID_CHARS_MAX + 1);
    let result = c.vaults().create_vault(named(vault("idpast"), &past)).await.map_err(ClientError::from);
    refused(result, &format!("1-{REQUEST_ID_CHARS_MAX} characters"));
    assert!(!vault_exists(&c, "idpast").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_limits_of_secrets() {
    let (_cluster, c) = node_with_vault().await;

    // A backup holds at most 500 versions.
    for i in 0..BACKUP_VERSIONS_MAX {
        set(&c, "many", &format!("v{i}")).await.unwrap();
    }
    let backup = |name: &str| pb::BackupSecretRequest { vault: VAULT.into(), name: name.into() };
    let blob = c.secrets().backup_secret(backup("many")).await.unwrap().into_inner().value;
    set(&c, "many", "one more").await.unwrap();
    let result = c.secrets().backup_secret(backup("many")).await.map_err(ClientError::from);
    refused(result, &format!("more than {BACKUP_VERSIONS_MAX} versions"));

    // The 500-version blob restores whole once the name is free.
    c.secrets().delete_secret(pb::DeleteSecretRequest { vault: VAULT.into(), name: "many".into() }).await.unwrap();
    let purge = pb::PurgeDeletedSecretRequest { vault: VAULT.into(), name: "many".into() };
    c.secrets().purge_deleted_secret(purge).await.unwrap();
    let restore = |backup: Vec<u8>| pb::RestoreSecretRequest { vault: VAULT.into(), backup };
    c.secrets().restore_secret(restore(blob.clone())).await.unwrap();
    assert_eq!(secret_versions(&c, "many").await, BACKUP_VERSIONS_MAX);

    // A blob of 16 MiB is opened (and found not to be a backup); one byte more is not even opened.
    let mut big = blob;
    big.resize(BACKUP_BLOB_BYTES_MAX, 0);
    refused(c.secrets().restore_secret(restore(big.clone())).await.map_err(ClientError::from), "tampered");
    big.push(0);
    refused(c.secrets().restore_secret(restore(big)).await.map_err(ClientError::from), "larger than any backup");
    assert_eq!(secret_versions(&c, "many").await, BACKUP_VERSIONS_MAX, "no refused restore changed anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_and_crypto_limits() {
    let (_cluster, c) = node_with_vault().await;
    let create = pb::CreateKeyRequest {
        vault: VAULT.into(),
        name: "aes".into(),
        kty: "oct".into(),
        key_size: 256,
        ..Default::default()
    };
    c.keys().create_key(create).await.unwrap();

    // A key has at most 100 versions.
    let rotate = || pb::RotateKeyRequest { vault: VAULT.into(), name: "aes".into() };
    for _ in 1..KEY_VERSIONS_MAX {
        c.keys().rotate_key(rotate()).await.unwrap();
    }
    refused(c.keys().rotate_key(rotate()).await.map_err(ClientError::from), &format!("{KEY_VERSIONS_MAX} versions"));
    let list =
        pb::ListKeyVersionsRequest { vault: VAULT.into(), name: "aes".into(), page_size: 1000, ..Default::default() };
    assert_eq!(c.keys().list_key_versions(list).await.unwrap().into_inner().keys.len(), KEY_VERSIONS_MAX);

    // Crypto input: 64 KiB.
    let encrypt = |plaintext: Vec<u8>| pb::EncryptRequest {
        vault: VAULT.into(),
        name: "aes".into(),
        algorithm: "A256GCM".into(),
        plaintext,
        ..Default::default()
    };
    let sealed = c.crypto().encrypt(encrypt(vec![7; CRYPTO_INPUT_BYTES_MAX])).await.unwrap().into_inner();
    assert_eq!(sealed.ciphertext.len(), CRYPTO_INPUT_BYTES_MAX);
    let result = c.crypto().encrypt(encrypt(vec![7; CRYPTO_INPUT_BYTES_MAX + 1])).await.map_err(ClientError::from);
    refused(result, &format!("the limit is {CRYPTO_INPUT_BYTES_MAX}"));

    // A batch: 1-100 items.
    for (n, ok) in [(0, false), (1, true), (CRYPTO_BATCH_ITEMS_MAX, true), (CRYPTO_BATCH_ITEMS_MAX + 1, false)] {
        let items = (0..n).map(|_| encrypt(b"x".to_vec())).collect();
        let result = c
            .crypto()
            .batch_encrypt(pb::BatchEncryptRequest { items, read_options: None })
            .await
            .map(|r| r.into_inner().results)
            .map_err(ClientError::from);
        if ok {
            let results = result.unwrap();
            assert_eq!(results.len(), n);
            assert!(results.iter().all(|r| matches!(r.result, Some(pb::encrypt_result::Result::Ok(_)))));
        } else {
            refused(result, &format!("1-{CRYPTO_BATCH_ITEMS_MAX} items"));
        }
    }

    // An imported JWK: 64 KiB of members. At the limit it is read (and found not to be a P-256 key).
    let import = |d_len: usize| pb::ImportKeyRequest {
        vault: VAULT.into(),
        name: "imported".into(),
        key: Some(pb::JsonWebKey {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: vec![1; 32],
            y: vec![2; 32],
            d: vec![3; d_len],
            ..Default::default()
        }),
        ..Default::default()
    };
    let e = c.keys().import_key(import(KEY_IMPORT_BYTES_MAX - 64)).await.map_err(ClientError::from).unwrap_err();
    assert_eq!(e.code, tonic::Code::InvalidArgument, "{e}");
    assert!(!e.message.contains("larger than"), "the limit itself is allowed: {e}");
    let result = c.keys().import_key(import(KEY_IMPORT_BYTES_MAX - 63)).await.map_err(ClientError::from);
    refused(result, &format!("larger than {KEY_IMPORT_BYTES_MAX} bytes"));
    let get = pb::GetKeyRequest { vault: VAULT.into(), name: "imported".into(), ..Default::default() };
    assert_eq!(c.keys().get_key(get).await.unwrap_err().code(), tonic::Code::NotFound, "no import landed");
}
