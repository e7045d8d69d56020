//! Keys on a real cluster: usage rules (key_ops, disabled, nbf/exp) and bad input over gRPC, crypto
//! served by followers after the leader is SIGKILLed, no private material anywhere on disk, in logs or
//! in responses, and rotation policies firing on replicated (test-driven) time.

use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::{files_containing, TestCluster};

const DAY: i64 = 86_400;

async fn vault(c: &ArcaClient, name: &str) {
    let r = pb::CreateVaultRequest { name: name.into(), soft_delete_retention_days: 7, ..Default::default() };
    c.vaults().create_vault(r).await.unwrap();
}

fn create(vault: &str, name: &str, kty: &str, ops: &[&str]) -> pb::CreateKeyRequest {
    pb::CreateKeyRequest {
        vault: vault.into(),
        name: name.into(),
        kty: kty.into(),
        key_ops: ops.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn sign_req(vault: &str, name: &str, alg: &str, digest: Vec<u8>) -> pb::SignRequest {
    pb::SignRequest { vault: vault.into(), name: name.into(), algorithm: alg.into(), digest, ..Default::default() }
}

fn verify_req(vault: &str, name: &str, alg: &str, digest: Vec<u8>, signature: Vec<u8>) -> pb::VerifyRequest {
    pb::VerifyRequest {
        vault: vault.into(),
        name: name.into(),
        algorithm: alg.into(),
        digest,
        signature,
        ..Default::default()
    }
}

fn reason(e: tonic::Status) -> (tonic::Code, String) {
    let e = ClientError::from(e);
    (e.code, e.reason.unwrap_or_default())
}

async fn update(c: &ArcaClient, vault: &str, name: &str, paths: &[&str], f: impl FnOnce(&mut pb::UpdateKeyRequest)) {
    let mut r = pb::UpdateKeyRequest {
        vault: vault.into(),
        name: name.into(),
        update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|s| s.to_string()).collect() }),
        ..Default::default()
    };
    f(&mut r);
    c.keys().update_key(r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_rules_and_bad_input() {
    let cluster = TestCluster::start(1).await.unwrap();
    let c = cluster.client(0).await.unwrap();
    vault(&c, "rules").await;
    c.keys().create_key(create("rules", "signer", "EC", &["sign"])).await.unwrap();
    c.keys().create_key(create("rules", "rsa", "RSA", &[])).await.unwrap();
    c.keys().create_key(create("rules", "aes", "oct", &[])).await.unwrap();
    let digest = vec![1u8; 32];

    // key_ops: a sign-only key refuses verify.
    let sig =
        c.crypto().sign(sign_req("rules", "signer", "ES256", digest.clone())).await.unwrap().into_inner().signature;
    let e = c.crypto().verify(verify_req("rules", "signer", "ES256", digest.clone(), sig.clone())).await.unwrap_err();
    assert_eq!(reason(e), (tonic::Code::PermissionDenied, "KEY_OPERATION_FORBIDDEN".into()));

    // An algorithm that does not fit the key type, and a digest of the wrong length (limit, limit+1).
    let e = c.crypto().sign(sign_req("rules", "signer", "RS256", digest.clone())).await.unwrap_err();
    assert!(e.message().contains("RS256 needs an RSA key"), "{}", e.message());
    assert_eq!(reason(e).1, "BAD_PARAMETER");
    let e = c.crypto().sign(sign_req("rules", "signer", "ES256", vec![1; 33])).await.unwrap_err();
    assert!(e.message().contains("32-byte digest"), "{}", e.message());
    let e = c.crypto().sign(sign_req("rules", "signer", "XS256", digest.clone())).await.unwrap_err();
    assert_eq!(reason(e).1, "BAD_PARAMETER");
    let enc = |alg: &str, name: &str| pb::EncryptRequest {
        vault: "rules".into(),
        name: name.into(),
        algorithm: alg.into(),
        plaintext: b"x".to_vec(),
        ..Default::default()
    };
    assert_eq!(reason(c.crypto().encrypt(enc("RSA-OAEP", "aes")).await.unwrap_err()).1, "BAD_PARAMETER");
    assert_eq!(reason(c.crypto().encrypt(enc("A128GCM", "aes")).await.unwrap_err()).1, "BAD_PARAMETER");
    assert_eq!(reason(c.crypto().encrypt(enc("A256KW", "aes")).await.unwrap_err()).1, "BAD_PARAMETER");
    c.crypto().encrypt(enc("A256GCM", "aes")).await.unwrap();
    // Plaintext size: the RSA-OAEP-256 limit for 2048 bits is 190 bytes.
    let mut big = enc("RSA-OAEP-256", "rsa");
    big.plaintext = vec![0; 190];
    c.crypto().encrypt(big.clone()).await.unwrap();
    big.plaintext = vec![0; 191];
    assert_eq!(reason(c.crypto().encrypt(big).await.unwrap_err()).1, "BAD_PARAMETER");
    // Missing keys, bad names, bad versions.
    assert_eq!(
        reason(c.crypto().sign(sign_req("rules", "nope", "ES256", digest.clone())).await.unwrap_err()).1,
        "KEY_NOT_FOUND"
    );
    assert_eq!(
        reason(c.crypto().sign(sign_req("rules", "bad name", "ES256", digest.clone())).await.unwrap_err()).1,
        "BAD_PARAMETER"
    );
    let mut r = sign_req("rules", "signer", "ES256", digest.clone());
    r.version = "00000000000000000000000000000000".into();
    assert_eq!(reason(c.crypto().sign(r).await.unwrap_err()).1, "KEY_NOT_FOUND");

    // Validity window: outside nbf/exp only decrypt, unwrap and verify work.
    let sealed = c.crypto().encrypt(enc("RSA-OAEP", "rsa")).await.unwrap().into_inner();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    update(&c, "rules", "rsa", &["expires"], |r| {
        r.expires = Some(prost_types::Timestamp { seconds: now - 3600, nanos: 0 })
    })
    .await;
    let e = c.crypto().sign(sign_req("rules", "rsa", "RS256", digest.clone())).await.unwrap_err();
    assert_eq!(reason(e), (tonic::Code::PermissionDenied, "KEY_OPERATION_FORBIDDEN".into()));
    assert_eq!(reason(c.crypto().encrypt(enc("RSA-OAEP", "rsa")).await.unwrap_err()).1, "KEY_OPERATION_FORBIDDEN");
    let dec = pb::DecryptRequest {
        vault: "rules".into(),
        name: "rsa".into(),
        algorithm: "RSA-OAEP".into(),
        ciphertext: sealed.ciphertext.clone(),
        ..Default::default()
    };
    assert_eq!(c.crypto().decrypt(dec.clone()).await.unwrap().into_inner().plaintext, b"x");
    update(&c, "rules", "rsa", &["expires", "not_before"], |r| {
        r.not_before = Some(prost_types::Timestamp { seconds: now + 3600, nanos: 0 })
    })
    .await;
    assert_eq!(reason(c.crypto().encrypt(enc("RSA-OAEP", "rsa")).await.unwrap_err()).1, "KEY_OPERATION_FORBIDDEN");
    assert_eq!(c.crypto().decrypt(dec.clone()).await.unwrap().into_inner().plaintext, b"x");
    update(&c, "rules", "rsa", &["not_before"], |_| {}).await;
    c.crypto().encrypt(enc("RSA-OAEP", "rsa")).await.unwrap();

    // A disabled key refuses everything, decrypt and verify included.
    update(&c, "rules", "rsa", &["enabled"], |r| r.enabled = false).await;
    let e = c.crypto().decrypt(dec.clone()).await.unwrap_err();
    assert_eq!(reason(e), (tonic::Code::FailedPrecondition, "KEY_DISABLED".into()));
    update(&c, "rules", "rsa", &["enabled"], |r| r.enabled = true).await;
    c.crypto().decrypt(dec).await.unwrap();

    // Key creation input: sizes, curves, key_ops, HSM on a standard vault.
    for bad in [
        pb::CreateKeyRequest { key_size: 1024, ..create("rules", "k", "RSA", &[]) },
        pb::CreateKeyRequest { crv: "P-999".into(), ..create("rules", "k", "EC", &[]) },
        create("rules", "k", "EC", &["encrypt"]),
        create("rules", "k", "RSA", &["sign", "import"]),
        create("rules", "k", "RSA-HSM", &[]),
        create("rules", "k", "DSA", &[]),
    ] {
        assert_eq!(reason(c.keys().create_key(bad).await.unwrap_err()).1, "BAD_PARAMETER");
    }
    let e = c
        .keys()
        .get_key(pb::GetKeyRequest { vault: "rules".into(), name: "k".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(reason(e).1, "KEY_NOT_FOUND", "refused creates change nothing");

    // Random bytes: 1 and 128 pass; 0 and 129 are refused.
    for (count, ok) in [(1, true), (128, true), (0, false), (129, false)] {
        let r = c.keys().get_random_bytes(pb::GetRandomBytesRequest { count }).await;
        assert_eq!(r.is_ok(), ok, "{count}");
        if let Ok(r) = r {
            assert_eq!(r.into_inner().value.len(), count as usize);
        }
    }

    // Batches: 100 items pass with per-item results, 101 are refused; one bad item does not sink the rest.
    let mut items: Vec<pb::SignRequest> =
        (0..100).map(|_| sign_req("rules", "signer", "ES256", digest.clone())).collect();
    items[3].digest = vec![0; 31];
    items[4].name = "missing".into();
    let resp = c
        .crypto()
        .batch_sign(pb::BatchSignRequest { items: items.clone(), read_options: None })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 100);
    let errors: Vec<usize> = resp
        .results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.result, Some(pb::sign_result::Result::Error(_))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(errors, vec![3, 4]);
    if let Some(pb::sign_result::Result::Error(e)) = &resp.results[4].result {
        assert_eq!(e.reason, "KEY_NOT_FOUND");
    }
    items.push(sign_req("rules", "signer", "ES256", digest.clone()));
    let e = c.crypto().batch_sign(pb::BatchSignRequest { items, read_options: None }).await.unwrap_err();
    assert!(e.message().contains("1-100 items"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_serve_crypto_with_the_same_results_after_the_leader_is_killed() {
    let mut cluster = TestCluster::start(3).await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let c = cluster.client(leader).await.unwrap();
    vault(&c, "failover").await;
    c.keys().create_key(create("failover", "rsa", "RSA", &[])).await.unwrap();
    c.keys().create_key(create("failover", "aes", "oct", &[])).await.unwrap();
    let digest = vec![9u8; 32];
    // RS256 is deterministic: every node must produce the same bytes, before and after the failover.
    let before = c.crypto().sign(sign_req("failover", "rsa", "RS256", digest.clone())).await.unwrap().into_inner();
    let wrap = pb::WrapKeyRequest {
        vault: "failover".into(),
        name: "aes".into(),
        algorithm: "A256KW".into(),
        key: vec![3; 32],
        ..Default::default()
    };
    let wrapped = c.crypto().wrap_key(wrap.clone()).await.unwrap().into_inner().wrapped_key;
    cluster.kill(leader);
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster
        .wait_for(Duration::from_secs(30), async |c| c.leader_index().await.is_some_and(|l| l != leader))
        .await
        .unwrap();
    for f in followers {
        let client = cluster.client(f).await.unwrap();
        let after =
            client.crypto().sign(sign_req("failover", "rsa", "RS256", digest.clone())).await.unwrap().into_inner();
        assert_eq!(after.signature, before.signature, "node {f}");
        assert_eq!(after.kid, before.kid);
        assert_eq!(after.served_by, cluster.status(f).await.unwrap().node_id);
        assert!(
            client
                .crypto()
                .verify(verify_req("failover", "rsa", "RS256", digest.clone(), before.signature.clone()))
                .await
                .unwrap()
                .into_inner()
                .valid
        );
        assert_eq!(
            client.crypto().wrap_key(wrap.clone()).await.unwrap().into_inner().wrapped_key,
            wrapped,
            "RFC 3394 is deterministic"
        );
        let unwrap = pb::UnwrapKeyRequest {
            vault: "failover".into(),
            name: "aes".into(),
            algorithm: "A256KW".into(),
            wrapped_key: wrapped.clone(),
            ..Default::default()
        };
        assert_eq!(client.crypto().unwrap_key(unwrap).await.unwrap().into_inner().key, vec![3; 32]);
        // Bounded staleness: served from the local replica without asking the leader.
        let mut stale = sign_req("failover", "rsa", "RS256", digest.clone());
        stale.read_options = Some(pb::ReadOptions {
            consistency: pb::Consistency::BoundedStaleness as i32,
            max_staleness: Some(prost_types::Duration { seconds: 5, nanos: 0 }),
        });
        assert_eq!(client.crypto().sign(stale).await.unwrap().into_inner().signature, before.signature);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_material_is_never_in_files_logs_or_responses() {
    let cluster = TestCluster::start(3).await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let c = cluster.client(leader).await.unwrap();
    vault(&c, "secrecy").await;
    // Planted material: an oct key and an Ed25519 seed with recognisable bytes.
    let k: Vec<u8> = b"PLANTED-AES-KEY-MATERIAL-32BYTES".to_vec();
    let import = |name: &str, jwk: pb::JsonWebKey| pb::ImportKeyRequest {
        vault: "secrecy".into(),
        name: name.into(),
        key: Some(jwk),
        ..Default::default()
    };
    c.keys()
        .import_key(import("planted-oct", pb::JsonWebKey { kty: "oct".into(), k: k.clone(), ..Default::default() }))
        .await
        .unwrap();
    // RFC 8037's Ed25519 key.
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap();
    let d = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let x = b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    c.keys()
        .import_key(import(
            "planted-ed",
            pb::JsonWebKey { kty: "OKP".into(), crv: "Ed25519".into(), d: d.clone(), x, ..Default::default() },
        ))
        .await
        .unwrap();
    // Use them through every node, rotate one, back it up, so material passes through every path.
    for i in 0..3 {
        let client = cluster.client(i).await.unwrap();
        let wrap = pb::WrapKeyRequest {
            vault: "secrecy".into(),
            name: "planted-oct".into(),
            algorithm: "A256KW".into(),
            key: vec![1; 16],
            ..Default::default()
        };
        client.crypto().wrap_key(wrap).await.unwrap();
        client.crypto().sign(sign_req("secrecy", "planted-ed", "EdDSA", b"msg".to_vec())).await.unwrap();
    }
    c.keys().create_key(create("secrecy", "generated", "RSA", &[])).await.unwrap();
    c.keys().rotate_key(pb::RotateKeyRequest { vault: "secrecy".into(), name: "generated".into() }).await.unwrap();
    let backup = c
        .keys()
        .backup_key(pb::BackupKeyRequest { vault: "secrecy".into(), name: "planted-oct".into() })
        .await
        .unwrap()
        .into_inner()
        .value;
    assert!(!backup.windows(k.len()).any(|w| w == k.as_slice()), "the backup blob is encrypted");

    // Responses: get and list return public members only.
    for name in ["planted-oct", "planted-ed"] {
        let key = c
            .keys()
            .get_key(pb::GetKeyRequest { vault: "secrecy".into(), name: name.into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        let jwk = key.key.unwrap();
        assert!(jwk.d.is_empty() && jwk.k.is_empty() && jwk.p.is_empty() && jwk.key_hsm.is_empty(), "{name}");
    }
    let listed = c
        .keys()
        .list_keys(pb::ListKeysRequest { vault: "secrecy".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 3);
    assert!(listed.keys.iter().all(|k| k.key.as_ref().is_some_and(|j| j.d.is_empty() && j.k.is_empty())));

    // Every file of every node: RocksDB, Raft log, snapshots, audit log, captured logs.
    let files = cluster.files_to_scan();
    assert!(!files.is_empty());
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    for (what, needle) in [
        ("oct key", k.clone()),
        ("oct key (base64)", STANDARD.encode(&k).into_bytes()),
        ("Ed25519 seed", d.clone()),
        ("Ed25519 seed (base64url)", URL_SAFE_NO_PAD.encode(&d).into_bytes()),
        ("key name", b"planted-oct".to_vec()),
    ] {
        let found = files_containing(&files, &needle);
        assert!(found.is_empty(), "the {what} is in plaintext in {found:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_policy_fires_on_replicated_time() {
    let cluster = TestCluster::start(3).await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let c = cluster.client(leader).await.unwrap();
    vault(&c, "rotation").await;
    c.keys().create_key(create("rotation", "auto", "EC", &[])).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut notified = create("rotation", "notified", "EC", &[]);
    notified.expires = Some(prost_types::Timestamp { seconds: now + 35 * DAY, nanos: 0 });
    c.keys().create_key(notified).await.unwrap();
    let d = |days: i64| prost_types::Duration { seconds: days * DAY, nanos: 0 };
    use pb::lifetime_action::Trigger;
    let policy = |actions: Vec<pb::LifetimeAction>, expiry: Option<i64>| pb::KeyRotationPolicy {
        lifetime_actions: actions,
        expiry_time: expiry.map(d),
        ..Default::default()
    };
    let rotate_after = |days| pb::LifetimeAction {
        trigger: Some(Trigger::TimeAfterCreate(d(days))),
        action: pb::LifetimeActionType::Rotate as i32,
    };
    let notify_before = |days| pb::LifetimeAction {
        trigger: Some(Trigger::TimeBeforeExpiry(d(days))),
        action: pb::LifetimeActionType::Notify as i32,
    };
    let set = |name: &str, p: pb::KeyRotationPolicy| pb::UpdateKeyRotationPolicyRequest {
        vault: "rotation".into(),
        name: name.into(),
        policy: Some(p),
    };

    // Azure's minimums: rotation at least 7 days after creation, expiry at least 28 days.
    let e = c.keys().update_key_rotation_policy(set("auto", policy(vec![rotate_after(6)], None))).await.unwrap_err();
    assert_eq!(reason(e).1, "BAD_PARAMETER");
    let e =
        c.keys().update_key_rotation_policy(set("auto", policy(vec![rotate_after(7)], Some(27)))).await.unwrap_err();
    assert_eq!(reason(e).1, "BAD_PARAMETER");
    let set_policy = c
        .keys()
        .update_key_rotation_policy(set("auto", policy(vec![rotate_after(7)], Some(60))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(set_policy.lifetime_actions.len(), 1);
    c.keys().update_key_rotation_policy(set("notified", policy(vec![notify_before(30)], None))).await.unwrap();

    let versions = async |name: &str| {
        let r = pb::ListKeyVersionsRequest { vault: "rotation".into(), name: name.into(), ..Default::default() };
        c.keys().list_key_versions(r).await.map(|r| r.into_inner().keys).unwrap_or_default()
    };
    // Nothing happens before the time comes.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(versions("auto").await.len(), 1);
    // Move every node's clock 8 days on: the leader rotates "auto" and notifies for "notified".
    cluster.advance_clock(8 * DAY);
    cluster.wait_for(Duration::from_secs(60), async |_| versions("auto").await.len() == 2).await.unwrap();
    let all = versions("auto").await;
    let newest = all.iter().max_by_key(|k| k.attributes.as_ref().unwrap().create_time.unwrap().seconds).unwrap();
    let attrs = newest.attributes.clone().unwrap();
    assert_eq!(attrs.expires.unwrap().seconds - attrs.create_time.unwrap().seconds, 60 * DAY, "expiry_time applies");
    // The rotated version is the one crypto uses now.
    let signed = c.crypto().sign(sign_req("rotation", "auto", "ES256", vec![0; 32])).await.unwrap().into_inner();
    assert_eq!(signed.kid, newest.id);
    cluster
        .wait_for(Duration::from_secs(30), async |c| {
            !files_containing(&c.files_to_scan(), b"\"KeyNearExpiry\"").is_empty()
        })
        .await
        .unwrap();
    // It stays one rotation: the next is due 7 days after the new version.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(versions("auto").await.len(), 2);
    assert_eq!(versions("notified").await.len(), 1, "Notify never rotates");
}
