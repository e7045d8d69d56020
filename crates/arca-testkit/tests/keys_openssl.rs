//! Keys and the crypto service on a real 3-node cluster, checked against an independent
//! implementation: the `openssl` CLI.
//!
//! - The "done" flow through the `arca` CLI: create RSA, EC, oct and Ed25519 keys, sign and wrap
//!   through followers, verify the signatures with OpenSSL on the exported PEM, rotate, and decrypt an
//!   old ciphertext with the old version.
//! - For every signature algorithm, Arca's signatures verify in OpenSSL, and OpenSSL's signatures (made
//!   with OpenSSL-generated keys brought in as BYOK blobs, wrapped with OpenSSL's RSA-OAEP) verify in
//!   Arca. OpenSSL's RSA ciphertexts (PKCS#1 v1.5, OAEP, OAEP-256) and AES-CBC ciphertexts decrypt in Arca.

use std::path::{Path, PathBuf};
use std::process::Command;

use arca_client::{pb, ArcaClient};
use arca_testkit::{binary, TestCluster};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

fn arca(cluster: &TestCluster, node: usize, args: &[&str]) -> Value {
    let out = Command::new(binary("arca"))
        .args(["--addr", &cluster.nodes[node].api_addr()])
        .arg("--cacert")
        .arg(cluster.dir.path().join("certs/ca.pem"))
        .args(["--token", &cluster.root_token])
        .args(args)
        .output()
        .expect("run arca");
    assert!(out.status.success(), "arca {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("arca prints JSON")
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn openssl_ok(args: &[&str]) {
    let (ok, text) = openssl(args);
    assert!(ok, "openssl {args:?}: {text}");
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der_int(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
    let mut v = bytes[start..].to_vec();
    if v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    [vec![0x02], der_len(v.len()), v].concat()
}

/// Arca's raw r‖s ECDSA signature as the DER `ECDSA-Sig-Value` OpenSSL expects.
fn raw_to_der(sig: &[u8]) -> Vec<u8> {
    let (r, s) = sig.split_at(sig.len() / 2);
    let body = [der_int(r), der_int(s)].concat();
    [vec![0x30], der_len(body.len()), body].concat()
}

/// OpenSSL's DER ECDSA signature as raw r‖s with `n`-byte halves.
fn der_to_raw(der: &[u8], n: usize) -> Vec<u8> {
    let mut i = 2 + usize::from(der[1] == 0x81);
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(n)..];
        out.extend(std::iter::repeat_n(0, n - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

fn digest_of(alg: &str, data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    match alg {
        a if a.ends_with("384") => sha2::Sha384::digest(data).to_vec(),
        a if a.ends_with("512") => sha2::Sha512::digest(data).to_vec(),
        "EdDSA" => data.to_vec(),
        _ => sha2::Sha256::digest(data).to_vec(),
    }
}

fn md(alg: &str) -> &'static str {
    match alg {
        a if a.ends_with("384") => "sha384",
        a if a.ends_with("512") => "sha512",
        _ => "sha256",
    }
}

fn coordinate_len(alg: &str) -> usize {
    match alg {
        "ES384" => 48,
        "ES512" => 66,
        _ => 32,
    }
}

/// Verifies `sig` over `data` with OpenSSL and the PEM public key.
fn openssl_verifies(alg: &str, pem: &Path, data: &Path, sig: &[u8], dir: &Path) -> (bool, String) {
    let sig_path = dir.join(format!("{alg}.sig"));
    let sig = if alg.starts_with("ES") { raw_to_der(sig) } else { sig.to_vec() };
    std::fs::write(&sig_path, sig).unwrap();
    if alg == "EdDSA" {
        return openssl(&[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            p(pem),
            "-rawin",
            "-in",
            p(data),
            "-sigfile",
            p(&sig_path),
        ]);
    }
    let mut args = vec!["dgst", "-verify", p(pem), "-signature", p(&sig_path)];
    let md = format!("-{}", md(alg));
    args.push(&md);
    if alg.starts_with("PS") {
        args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]);
    }
    args.push(p(data));
    openssl(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_creates_signs_verifies_with_openssl_rotates_and_still_decrypts() {
    let cluster = TestCluster::start(3).await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let follower = (0..3).find(|i| *i != leader).unwrap();
    let dir = tempfile::tempdir().unwrap();
    arca(&cluster, leader, &["keyvault", "create", "--name", "keys", "--retention-days", "7"]);

    let data = dir.path().join("message.txt");
    std::fs::write(&data, b"ship release 1.2.3").unwrap();
    let kinds: [(&str, &[&str], &str); 4] = [
        ("rsa", &["--kty", "RSA", "--size", "2048"], "RS256"),
        ("ec", &["--kty", "EC", "--curve", "P-256"], "ES256"),
        ("ed", &["--kty", "OKP", "--curve", "Ed25519"], "EdDSA"),
        ("aes", &["--kty", "oct", "--size", "256"], ""),
    ];
    for (name, args, alg) in kinds {
        let mut create = vec!["key", "create", "--vault-name", "keys", "--name", name];
        create.extend_from_slice(args);
        let key = arca(&cluster, leader, &create);
        assert_eq!(key["name"], name, "{key}");
        if alg.is_empty() {
            assert!(key["key"].get("k").is_none(), "an oct key's material must never be returned: {key}");
            continue;
        }
        // Sign through a follower; verify with OpenSSL on the exported public key.
        let signed = arca(
            &cluster,
            follower,
            &["key", "sign", "--vault-name", "keys", "--name", name, "--algorithm", alg, "--data-file", p(&data)],
        );
        assert_eq!(signed["kid"], key["kid"], "the answer names the key version used");
        assert_eq!(signed["servedBy"].as_u64(), Some(cluster.status(follower).await.unwrap().node_id));
        let pem = dir.path().join(format!("{name}.pem"));
        arca(&cluster, follower, &["key", "download", "--vault-name", "keys", "--name", name, "--file", p(&pem)]);
        let sig = STANDARD.decode(signed["result"].as_str().unwrap()).unwrap();
        let (ok, text) = openssl_verifies(alg, &pem, &data, &sig, dir.path());
        assert!(ok, "OpenSSL rejects Arca's {alg} signature: {text}");
        let verified = arca(
            &cluster,
            follower,
            &[
                "key",
                "verify",
                "--vault-name",
                "keys",
                "--name",
                name,
                "--algorithm",
                alg,
                "--data-file",
                p(&data),
                "--signature",
                signed["result"].as_str().unwrap(),
            ],
        );
        assert_eq!(verified["value"], true);
    }

    // Wrap a data key through a follower with the AES key, unwrap through another node.
    let dek = STANDARD.encode([7u8; 32]);
    let wrapped = arca(
        &cluster,
        follower,
        &["key", "wrap-key", "--vault-name", "keys", "--name", "aes", "--algorithm", "A256KW", "--value", &dek],
    );
    let unwrapped = arca(
        &cluster,
        leader,
        &[
            "key",
            "unwrap-key",
            "--vault-name",
            "keys",
            "--name",
            "aes",
            "--algorithm",
            "A256KW",
            "--value",
            wrapped["result"].as_str().unwrap(),
        ],
    );
    assert_eq!(unwrapped["result"].as_str(), Some(dek.as_str()));

    // Encrypt with RSA, rotate, and decrypt the old ciphertext with the old version.
    let secret = STANDARD.encode(b"database password");
    let sealed = arca(
        &cluster,
        follower,
        &["key", "encrypt", "--vault-name", "keys", "--name", "rsa", "--algorithm", "RSA-OAEP-256", "--value", &secret],
    );
    let old_kid = sealed["kid"].as_str().unwrap().to_owned();
    let old_version = old_kid.rsplit('/').next().unwrap().to_owned();
    let rotated = arca(&cluster, leader, &["key", "rotate", "--vault-name", "keys", "--name", "rsa"]);
    assert_ne!(rotated["kid"].as_str(), Some(old_kid.as_str()));
    assert_eq!(rotated["keySize"], 2048);
    let opened = arca(
        &cluster,
        follower,
        &[
            "key",
            "decrypt",
            "--vault-name",
            "keys",
            "--name",
            "rsa",
            "--version",
            &old_version,
            "--algorithm",
            "RSA-OAEP-256",
            "--value",
            sealed["result"].as_str().unwrap(),
        ],
    );
    assert_eq!(opened["result"].as_str(), Some(secret.as_str()));
    assert_eq!(opened["kid"].as_str(), Some(old_kid.as_str()));
    // New encryptions use the new version.
    let fresh = arca(
        &cluster,
        follower,
        &["key", "encrypt", "--vault-name", "keys", "--name", "rsa", "--algorithm", "RSA-OAEP-256", "--value", &secret],
    );
    assert_eq!(fresh["kid"], rotated["kid"]);
    let versions = arca(&cluster, follower, &["key", "list-versions", "--vault-name", "keys", "--name", "rsa"]);
    assert_eq!(versions.as_array().map(Vec::len), Some(2));
}

async fn client_pem(client: &ArcaClient, name: &str, dir: &Path) -> PathBuf {
    let key = client
        .keys()
        .get_key(pb::GetKeyRequest { vault: "interop".into(), name: name.into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, arca_client::jwk::pem("PUBLIC KEY", &key.public_key_der)).unwrap();
    path
}

async fn sign(client: &ArcaClient, name: &str, alg: &str, digest: Vec<u8>) -> Vec<u8> {
    let r = pb::SignRequest {
        vault: "interop".into(),
        name: name.into(),
        algorithm: alg.into(),
        digest,
        ..Default::default()
    };
    client.crypto().sign(r).await.unwrap().into_inner().signature
}

async fn verify(client: &ArcaClient, name: &str, alg: &str, digest: Vec<u8>, signature: Vec<u8>) -> bool {
    let r = pb::VerifyRequest {
        vault: "interop".into(),
        name: name.into(),
        algorithm: alg.into(),
        digest,
        signature,
        ..Default::default()
    };
    client.crypto().verify(r).await.unwrap().into_inner().valid
}

async fn decrypt(client: &ArcaClient, name: &str, alg: &str, ciphertext: Vec<u8>, iv: Vec<u8>) -> Vec<u8> {
    let r = pb::DecryptRequest {
        vault: "interop".into(),
        name: name.into(),
        algorithm: alg.into(),
        ciphertext,
        iv,
        ..Default::default()
    };
    client.crypto().decrypt(r).await.unwrap().into_inner().plaintext
}

/// Brings an OpenSSL-generated private key into Arca the BYOK way: PKCS#8 wrapped with AES-KWP under
/// a fresh AES key, that key wrapped with OpenSSL's RSA-OAEP (SHA-1) under the vault's exchange key.
async fn byok_import(client: &ArcaClient, dir: &Path, kek_pem: &Path, private_pem: &Path, name: &str, kty: &str) {
    let pkcs8 = dir.join(format!("{name}.p8"));
    openssl_ok(&["pkcs8", "-topk8", "-nocrypt", "-in", p(private_pem), "-outform", "DER", "-out", p(&pkcs8)]);
    let transfer = [0x5cu8; 32];
    let transfer_path = dir.join(format!("{name}.aes"));
    std::fs::write(&transfer_path, transfer).unwrap();
    let wrapped_transfer = dir.join(format!("{name}.aes.oaep"));
    openssl_ok(&[
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        p(kek_pem),
        "-pkeyopt",
        "rsa_padding_mode:oaep",
        "-pkeyopt",
        "rsa_oaep_md:sha1",
        "-in",
        p(&transfer_path),
        "-out",
        p(&wrapped_transfer),
    ]);
    let mut ciphertext = std::fs::read(&wrapped_transfer).unwrap();
    ciphertext.extend(arca_crypto::keys::wrap_padded(&transfer, &std::fs::read(&pkcs8).unwrap()).unwrap());
    let blob = serde_json::json!({
        "schema_version": "1.0.0",
        "header": { "kid": "kek", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP" },
        "ciphertext": URL_SAFE_NO_PAD.encode(&ciphertext),
        "generator": "openssl-interop-test",
    });
    let r = pb::ImportKeyRequest {
        vault: "interop".into(),
        name: name.into(),
        key: Some(pb::JsonWebKey { kty: kty.into(), key_hsm: blob.to_string().into_bytes(), ..Default::default() }),
        ..Default::default()
    };
    client.keys().import_key(r).await.unwrap_or_else(|e| panic!("BYOK import of {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_interoperates_with_openssl() {
    let cluster = TestCluster::start(1).await.unwrap();
    let client = cluster.client(0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    client
        .vaults()
        .create_vault(pb::CreateVaultRequest {
            name: "interop".into(),
            soft_delete_retention_days: 7,
            ..Default::default()
        })
        .await
        .unwrap();
    let create = |name: &str, kty: &str, size: i32, crv: &str, ops: &[&str]| pb::CreateKeyRequest {
        vault: "interop".into(),
        name: name.into(),
        kty: kty.into(),
        key_size: size,
        crv: crv.into(),
        key_ops: ops.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    for r in [
        create("rsa", "RSA", 2048, "", &[]),
        create("p256", "EC", 0, "P-256", &[]),
        create("p384", "EC", 0, "P-384", &[]),
        create("p521", "EC", 0, "P-521", &[]),
        create("k256", "EC", 0, "P-256K", &[]),
        create("ed", "OKP", 0, "Ed25519", &[]),
        create("kek", "RSA", 3072, "", &["import"]),
    ] {
        client.keys().create_key(r).await.unwrap();
    }
    let data = d.join("data.bin");
    std::fs::write(&data, b"interoperability").unwrap();
    let signers = [
        ("rsa", "RS256"),
        ("rsa", "RS384"),
        ("rsa", "RS512"),
        ("rsa", "PS256"),
        ("rsa", "PS384"),
        ("rsa", "PS512"),
        ("p256", "ES256"),
        ("p384", "ES384"),
        ("p521", "ES512"),
        ("k256", "ES256K"),
        ("ed", "EdDSA"),
    ];
    // Arca signs, OpenSSL verifies.
    for (name, alg) in signers {
        let pem = client_pem(&client, name, d).await;
        let sig = sign(&client, name, alg, digest_of(alg, b"interoperability")).await;
        let (ok, text) = openssl_verifies(alg, &pem, &data, &sig, d);
        assert!(ok, "OpenSSL rejects Arca's {alg}: {text}");
    }

    // OpenSSL-generated keys come in through BYOK; OpenSSL signs, Arca verifies.
    let kek_pem = client_pem(&client, "kek", d).await;
    let generated: [(&str, &str, &[&str]); 6] = [
        ("o-rsa", "RSA", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        ("o-p256", "EC", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ("o-p384", "EC", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("o-p521", "EC", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"]),
        ("o-k256", "EC", &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"]),
        ("o-ed", "OKP", &["-algorithm", "ed25519"]),
    ];
    for (name, kty, gen) in generated {
        let private = d.join(format!("{name}.key"));
        let mut args = vec!["genpkey"];
        args.extend_from_slice(gen);
        args.extend(["-out", p(&private)]);
        openssl_ok(&args);
        byok_import(&client, d, &kek_pem, &private, name, kty).await;
    }
    for (name, alg) in signers {
        let name = format!("o-{name}");
        let private = d.join(format!("{name}.key"));
        let sig_path = d.join(format!("{name}.{alg}.osig"));
        let mut args = vec!["pkeyutl", "-sign", "-inkey", p(&private), "-out", p(&sig_path)];
        let digest_path = d.join(format!("{name}.{alg}.digest"));
        let md_opt = format!("digest:{}", md(alg));
        if alg == "EdDSA" {
            args.extend(["-rawin", "-in", p(&data)]);
        } else {
            std::fs::write(&digest_path, digest_of(alg, b"interoperability")).unwrap();
            args.extend(["-in", p(&digest_path), "-pkeyopt", &md_opt]);
            if alg.starts_with("PS") {
                args.extend(["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]);
            }
        }
        openssl_ok(&args);
        let mut sig = std::fs::read(&sig_path).unwrap();
        if alg.starts_with("ES") {
            sig = der_to_raw(&sig, coordinate_len(alg));
        }
        assert!(
            verify(&client, &name, alg, digest_of(alg, b"interoperability"), sig.clone()).await,
            "Arca rejects OpenSSL's {alg}"
        );
        sig[5] ^= 1;
        assert!(
            !verify(&client, &name, alg, digest_of(alg, b"interoperability"), sig).await,
            "a corrupted {alg} verifies"
        );
    }

    // OpenSSL encrypts with Arca's RSA public key; Arca decrypts.
    let rsa_pem = client_pem(&client, "rsa", d).await;
    let plain = d.join("plain.bin");
    std::fs::write(&plain, b"a 32-byte data encryption key!!!").unwrap();
    for (alg, opts) in [
        ("RSA1_5", vec!["rsa_padding_mode:pkcs1"]),
        ("RSA-OAEP", vec!["rsa_padding_mode:oaep", "rsa_oaep_md:sha1"]),
        ("RSA-OAEP-256", vec!["rsa_padding_mode:oaep", "rsa_oaep_md:sha256", "rsa_mgf1_md:sha256"]),
    ] {
        let out = d.join(format!("{alg}.ct"));
        let mut args = vec!["pkeyutl", "-encrypt", "-pubin", "-inkey", p(&rsa_pem), "-in", p(&plain), "-out", p(&out)];
        for o in &opts {
            args.extend(["-pkeyopt", o]);
        }
        openssl_ok(&args);
        let opened = decrypt(&client, "rsa", alg, std::fs::read(&out).unwrap(), Vec::new()).await;
        assert_eq!(opened, b"a 32-byte data encryption key!!!", "{alg}");
    }

    // OpenSSL's AES-CBC (with and without padding) decrypts in Arca with an imported oct key.
    let k = [0x11u8; 32];
    let iv = [0x22u8; 16];
    let import = pb::ImportKeyRequest {
        vault: "interop".into(),
        name: "aes".into(),
        key: Some(pb::JsonWebKey { kty: "oct".into(), k: k.to_vec(), ..Default::default() }),
        ..Default::default()
    };
    client.keys().import_key(import).await.unwrap();
    for (alg, extra) in [("A256CBCPAD", None), ("A256CBC", Some("-nopad"))] {
        let out = d.join(format!("{alg}.ct"));
        let (kh, ivh) = (hex(&k), hex(&iv));
        let mut args = vec!["enc", "-aes-256-cbc", "-K", &kh, "-iv", &ivh, "-in", p(&plain), "-out", p(&out)];
        args.extend(extra);
        openssl_ok(&args);
        assert_eq!(
            decrypt(&client, "aes", alg, std::fs::read(&out).unwrap(), iv.to_vec()).await,
            b"a 32-byte data encryption key!!!"
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
