//! Key operations: Arca's in-process crypto (`arca_crypto::keys::LoadedKey`) against the raw aws-lc-rs
//! primitive on this machine, and the same operations end to end over gRPC.

use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient};
use arca_crypto::keys::{self, LoadedKey};
use arca_types::keys::{Curve, EncryptionAlgorithm, KeySpec, SignatureAlgorithm};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use aws_lc_rs::{digest, key_wrap, rsa};

/// The operations the issue names, in the order they are printed.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Rsa2048Sign,
    P256Sign,
    Ed25519Sign,
    A256KwWrap,
    RsaOaep256Unwrap,
}

pub const ALL: [Op; 5] = [Op::Rsa2048Sign, Op::P256Sign, Op::Ed25519Sign, Op::A256KwWrap, Op::RsaOaep256Unwrap];

impl Op {
    pub fn label(self) -> &'static str {
        match self {
            Op::Rsa2048Sign => "RSA-2048 sign (RS256)",
            Op::P256Sign => "P-256 sign (ES256)",
            Op::Ed25519Sign => "Ed25519 sign (EdDSA)",
            Op::A256KwWrap => "A256KW wrap",
            Op::RsaOaep256Unwrap => "RSA-OAEP-256 unwrap",
        }
    }

    fn spec(self) -> KeySpec {
        match self {
            Op::Rsa2048Sign | Op::RsaOaep256Unwrap => KeySpec::Rsa { bits: 2048 },
            Op::P256Sign => KeySpec::Ec(Curve::P256),
            Op::Ed25519Sign => KeySpec::Ed25519,
            Op::A256KwWrap => KeySpec::Oct { bits: 256 },
        }
    }

    fn kty(self) -> (&'static str, i32, &'static str) {
        match self {
            Op::Rsa2048Sign | Op::RsaOaep256Unwrap => ("RSA", 2048, ""),
            Op::P256Sign => ("EC", 0, "P-256"),
            Op::Ed25519Sign => ("OKP", 0, "Ed25519"),
            Op::A256KwWrap => ("oct", 256, ""),
        }
    }
}

/// Runs `f` on one thread for `window` and returns operations per second.
fn rate<T>(window: Duration, mut f: impl FnMut() -> T) -> f64 {
    for _ in 0..3 {
        std::hint::black_box(f());
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < window {
        for _ in 0..8 {
            std::hint::black_box(f());
        }
        n += 8;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Single-core rates: (raw aws-lc-rs, Arca's LoadedKey) for one operation.
pub fn in_process(op: Op, window: Duration) -> (f64, f64) {
    let spec = op.spec();
    let material = keys::generate(spec).expect("generate");
    let arca = LoadedKey::load(spec, &material).expect("load");
    let der = material.expose();
    let d32 = digest::digest(&digest::SHA256, b"benchmark message");
    let digest32 = d32.as_ref().to_vec();
    match op {
        Op::Rsa2048Sign => {
            let raw = RsaKeyPair::from_pkcs8(der).unwrap();
            let mut sig = vec![0u8; raw.public_modulus_len()];
            let r = rate(window, || raw.sign_digest(&signature::RSA_PKCS1_SHA256, &d32, &mut sig).unwrap());
            let a = rate(window, || arca.sign(SignatureAlgorithm::Rs256, &digest32).unwrap());
            (r, a)
        }
        Op::P256Sign => {
            let raw = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap();
            let r = rate(window, || raw.sign_digest(&d32).unwrap());
            let a = rate(window, || arca.sign(SignatureAlgorithm::Es256, &digest32).unwrap());
            (r, a)
        }
        Op::Ed25519Sign => {
            let raw = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).unwrap();
            let msg = b"benchmark message";
            let r = rate(window, || raw.sign(msg));
            let a = rate(window, || arca.sign(SignatureAlgorithm::EdDsa, msg).unwrap());
            (r, a)
        }
        Op::A256KwWrap => {
            use aws_lc_rs::key_wrap::KeyWrap;
            let data = [7u8; 32];
            let mut out = [0u8; 40];
            let r = rate(window, || {
                let kek = key_wrap::AesKek::new(&key_wrap::AES_256, der).unwrap();
                kek.wrap(&data, &mut out).unwrap();
            });
            let a = rate(window, || arca.wrap(EncryptionAlgorithm::A256Kw, &data).unwrap());
            (r, a)
        }
        Op::RsaOaep256Unwrap => {
            let raw = rsa::OaepPrivateDecryptingKey::new(rsa::PrivateDecryptingKey::from_pkcs8(der).unwrap()).unwrap();
            let wrapped = arca.wrap(EncryptionAlgorithm::RsaOaep256, &[7u8; 32]).unwrap();
            let mut out = vec![0u8; 256];
            let r = rate(window, || raw.decrypt(&rsa::OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None).unwrap().len());
            let a = rate(window, || arca.unwrap(EncryptionAlgorithm::RsaOaep256, &wrapped).unwrap());
            (r, a)
        }
    }
}

/// Creates the key an operation uses in vault "bench" (named after the operation).
pub async fn create_key(client: &ArcaClient, op: Op) -> anyhow::Result<()> {
    let (kty, size, crv) = op.kty();
    let r = pb::CreateKeyRequest {
        vault: "bench".into(),
        name: format!("{op:?}").to_lowercase(),
        kty: kty.into(),
        key_size: size,
        crv: crv.into(),
        ..Default::default()
    };
    client.keys().create_key(r).await?;
    Ok(())
}

/// Input for an end-to-end call: an RSA-OAEP-256 unwrap needs a wrapped key first.
pub async fn prepare(client: &ArcaClient, op: Op) -> anyhow::Result<Vec<u8>> {
    Ok(match op {
        Op::RsaOaep256Unwrap => {
            let r = pb::WrapKeyRequest {
                vault: "bench".into(),
                name: format!("{op:?}").to_lowercase(),
                algorithm: "RSA-OAEP-256".into(),
                key: vec![7; 32],
                ..Default::default()
            };
            client.crypto().wrap_key(r).await?.into_inner().wrapped_key
        }
        Op::Ed25519Sign => b"benchmark message".to_vec(),
        Op::A256KwWrap => vec![7; 32],
        _ => digest::digest(&digest::SHA256, b"benchmark message").as_ref().to_vec(),
    })
}

/// One end-to-end call.
pub async fn call(client: &ArcaClient, op: Op, input: &[u8], read_options: Option<pb::ReadOptions>) -> bool {
    let name = format!("{op:?}").to_lowercase();
    let mut c = client.crypto();
    let vault = "bench".to_owned();
    let sign = |algorithm: &str| pb::SignRequest {
        vault: vault.clone(),
        name: name.clone(),
        algorithm: algorithm.into(),
        digest: input.to_vec(),
        read_options,
        ..Default::default()
    };
    match op {
        Op::Rsa2048Sign => c.sign(sign("RS256")).await.is_ok(),
        Op::P256Sign => c.sign(sign("ES256")).await.is_ok(),
        Op::Ed25519Sign => c.sign(sign("EdDSA")).await.is_ok(),
        Op::A256KwWrap => {
            let r = pb::WrapKeyRequest {
                vault,
                name,
                algorithm: "A256KW".into(),
                key: input.to_vec(),
                read_options,
                ..Default::default()
            };
            c.wrap_key(r).await.is_ok()
        }
        Op::RsaOaep256Unwrap => {
            let r = pb::UnwrapKeyRequest {
                vault,
                name,
                algorithm: "RSA-OAEP-256".into(),
                wrapped_key: input.to_vec(),
                read_options,
                ..Default::default()
            };
            c.unwrap_key(r).await.is_ok()
        }
    }
}

/// One batch call of `n` items; true if every item succeeded.
pub async fn call_batch(
    client: &ArcaClient,
    op: Op,
    input: &[u8],
    read_options: Option<pb::ReadOptions>,
    n: usize,
) -> bool {
    let name = format!("{op:?}").to_lowercase();
    let mut c = client.crypto();
    let vault = "bench".to_owned();
    let sign = |algorithm: &str| pb::BatchSignRequest {
        items: (0..n)
            .map(|_| pb::SignRequest {
                vault: vault.clone(),
                name: name.clone(),
                algorithm: algorithm.into(),
                digest: input.to_vec(),
                ..Default::default()
            })
            .collect(),
        read_options,
    };
    let ok_sign =
        |r: pb::BatchSignResponse| r.results.iter().all(|r| matches!(r.result, Some(pb::sign_result::Result::Ok(_))));
    match op {
        Op::Rsa2048Sign => c.batch_sign(sign("RS256")).await.is_ok_and(|r| ok_sign(r.into_inner())),
        Op::P256Sign => c.batch_sign(sign("ES256")).await.is_ok_and(|r| ok_sign(r.into_inner())),
        Op::Ed25519Sign => c.batch_sign(sign("EdDSA")).await.is_ok_and(|r| ok_sign(r.into_inner())),
        Op::A256KwWrap => {
            let items = (0..n)
                .map(|_| pb::WrapKeyRequest {
                    vault: vault.clone(),
                    name: name.clone(),
                    algorithm: "A256KW".into(),
                    key: input.to_vec(),
                    ..Default::default()
                })
                .collect();
            c.batch_wrap_key(pb::BatchWrapKeyRequest { items, read_options }).await.is_ok_and(|r| {
                r.into_inner().results.iter().all(|r| matches!(r.result, Some(pb::wrap_key_result::Result::Ok(_))))
            })
        }
        Op::RsaOaep256Unwrap => {
            let items = (0..n)
                .map(|_| pb::UnwrapKeyRequest {
                    vault: vault.clone(),
                    name: name.clone(),
                    algorithm: "RSA-OAEP-256".into(),
                    wrapped_key: input.to_vec(),
                    ..Default::default()
                })
                .collect();
            c.batch_unwrap_key(pb::BatchUnwrapKeyRequest { items, read_options }).await.is_ok_and(|r| {
                r.into_inner().results.iter().all(|r| matches!(r.result, Some(pb::unwrap_key_result::Result::Ok(_))))
            })
        }
    }
}
