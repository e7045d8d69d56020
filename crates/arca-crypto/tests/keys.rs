//! Customer keys against published vectors (RFC 3394, RFC 5649, RFC 8037, RFC 7517) and every
//! (key type × algorithm) pair: the valid ones round-trip, the invalid ones are refused.

use arca_crypto::keys::{self, LoadedKey, PrivateJwk};
use arca_types::keys::{Curve, EncryptionAlgorithm, KeyFamily, KeyOp, KeySpec, SignatureAlgorithm};
use arca_types::ErrorCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn b64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn oct(k: &[u8]) -> LoadedKey {
    let (spec, material) =
        keys::import_jwk(&PrivateJwk { family: Some(KeyFamily::Oct), k, ..Default::default() }).unwrap();
    LoadedKey::load(spec, &material).unwrap()
}

fn kw_alg(kek_len: usize) -> EncryptionAlgorithm {
    match kek_len {
        16 => EncryptionAlgorithm::A128Kw,
        24 => EncryptionAlgorithm::A192Kw,
        _ => EncryptionAlgorithm::A256Kw,
    }
}

#[test]
fn rfc3394_vectors() {
    let kek128 = "000102030405060708090A0B0C0D0E0F";
    let kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617";
    let kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
    let data128 = "00112233445566778899AABBCCDDEEFF";
    let data192 = "00112233445566778899AABBCCDDEEFF0001020304050607";
    let data256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F";
    let vectors = [
        (kek128, data128, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
        (kek192, data128, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"),
        (kek256, data128, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"),
        (kek192, data192, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"),
        (kek256, data192, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"),
        (kek256, data256, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"),
    ];
    for (kek, data, wrapped) in vectors {
        let (kek, data, wrapped) = (hex(kek), hex(data), hex(wrapped));
        let key = oct(&kek);
        let alg = kw_alg(kek.len());
        assert_eq!(key.wrap(alg, &data).unwrap(), wrapped, "wrap with a {}-byte KEK", kek.len());
        assert_eq!(key.unwrap(alg, &wrapped).unwrap().as_slice(), data.as_slice());
        let mut tampered = wrapped.clone();
        tampered[3] ^= 1;
        assert_eq!(key.unwrap(alg, &tampered).unwrap_err().code, ErrorCode::BadParameter);
    }
}

#[test]
fn rfc5649_vectors() {
    let kek = hex("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
    let vectors = [
        (
            "c37b7e6492584340 bed1220780894115 5068f738",
            "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a",
        ),
        ("466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"),
    ];
    for (key, wrapped) in vectors {
        let (key, wrapped) = (hex(key), hex(wrapped));
        assert_eq!(keys::wrap_padded(&kek, &key).unwrap(), wrapped);
        assert_eq!(keys::unwrap_padded(&kek, &wrapped).unwrap().as_slice(), key.as_slice());
    }
    // The native 128/256-bit path and Arca's 192-bit path agree on round trips of every length.
    for kek_len in [16, 24, 32] {
        let kek = vec![7u8; kek_len];
        for len in [1usize, 7, 8, 9, 16, 31, 64, 1217] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let wrapped = keys::wrap_padded(&kek, &key).unwrap();
            assert_eq!(wrapped.len(), len.div_ceil(8) * 8 + 8);
            assert_eq!(keys::unwrap_padded(&kek, &wrapped).unwrap().as_slice(), key.as_slice());
        }
    }
}

#[test]
fn rfc8037_ed25519_vector() {
    let d = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let x = b64("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    let jwk =
        PrivateJwk { family: Some(KeyFamily::Okp), crv: Some(Curve::Ed25519), d: &d, x: &x, ..Default::default() };
    let (spec, material) = keys::import_jwk(&jwk).unwrap();
    assert_eq!(spec, KeySpec::Ed25519);
    let key = LoadedKey::load(spec, &material).unwrap();
    assert_eq!(key.public_jwk().x, x);
    let input = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let expected = b64("hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
    assert_eq!(key.sign(SignatureAlgorithm::EdDsa, input).unwrap(), expected);
    assert!(key.verify(SignatureAlgorithm::EdDsa, input, &expected).unwrap());
    assert!(!key.verify(SignatureAlgorithm::EdDsa, b"another message", &expected).unwrap());
    // A public key that does not belong to the seed is refused.
    let mut wrong = x.clone();
    wrong[0] ^= 1;
    let jwk =
        PrivateJwk { family: Some(KeyFamily::Okp), crv: Some(Curve::Ed25519), d: &d, x: &wrong, ..Default::default() };
    assert_eq!(keys::import_jwk(&jwk).unwrap_err().code, ErrorCode::BadParameter);
}

#[test]
fn rfc7517_private_key_examples_import() {
    // Appendix A.2: the EC P-256 and RSA private keys.
    let (x, y, d) = (
        b64("MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"),
        b64("4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"),
        b64("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"),
    );
    let ec =
        PrivateJwk { family: Some(KeyFamily::Ec), crv: Some(Curve::P256), x: &x, y: &y, d: &d, ..Default::default() };
    let (spec, material) = keys::import_jwk(&ec).unwrap();
    assert_eq!(spec, KeySpec::Ec(Curve::P256));
    let public = LoadedKey::load(spec, &material).unwrap().public_jwk();
    assert_eq!((public.x, public.y), (x.clone(), y.clone()));

    let n = b64("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw");
    let e = b64("AQAB");
    let d = b64("X4cTteJY_gn4FYPsXB8rdXix5vwsg1FLN5E3EaG6RJoVH-HLLKD9M7dx5oo7GURknchnrRweUkC7hT5fJLM0WbFAKNLWY2vv7B6NqXSzUvxT0_YSfqijwp3RTzlBaCxWp4doFk5N2o8Gy_nHNKroADIkJ46pRUohsXywbReAdYaMwFs9tv8d_cPVY3i07a3t8MN6TNwm0dSawm9v47UiCl3Sk5ZiG7xojPLu4sbg1U2jx4IBTNBznbJSzFHK66jT8bgkuqsk0GjskDJk19Z4qwjwbsnn4j2WBii3RL-Us2lGVkY8fkFzme1z0HbIkfz0Y6mqnOYtqc0X4jfcKoAC8Q");
    let p = b64("83i-7IvMGXoMXCskv73TKr8637FiO7Z27zv8oj6pbWUQyLPQBQxtPVnwD20R-60eTDmD2ujnMt5PoqMrm8RfmNhVWDtjjMmCMjOpSXicFHj7XOuVIYQyqVWlWEh6dN36GVZYk93N8Bc9vY41xy8B9RzzOGVQzXvNEvn7O0nVbfs");
    let q = b64("3dfOR9cuYq-0S-mkFLzgItgMEfFzB2q3hWehMuG0oCuqnb3vobLyumqjVZQO1dIrdwgTnCdpYzBcOfW5r370AFXjiWft_NGEiovonizhKpo9VVS78TzFgxkIdrecRezsZ-1kYd_s1qDbxtkDEgfAITAG9LUnADun4vIcb6yelxk");
    let dp = b64("G4sPXkc6Ya9y8oJW9_ILj4xuppu0lzi_H7VTkS8xj5SdX3coE0oimYwxIi2emTAue0UOa5dpgFGyBJ4c8tQ2VF402XRugKDTP8akYhFo5tAA77Qe_NmtuYZc3C3m3I24G2GvR5sSDxUyAN2zq8Lfn9EUms6rY3Ob8YeiKkTiBj0");
    let dq = b64("s9lAH9fggBsoFR8Oac2R_E2gw282rT2kGOAhvIllETE1efrA6huUUvMfBcMpn8lqeW6vzznYY5SSQF7pMdC_agI3nG8Ibp1BUb0JUiraRNqUfLhcQb_d9GF4Dh7e74WbRsobRonujTYN1xCaP6TO61jvWrX-L18txXw494Q_cgk");
    let qi = b64("GyM_p6JrXySiz1toFgKbWV-JdI3jQ4ypu9rbMWx3rQJBfmt0FoYzgUIZEVFEcOqwemRN81zoDAaa-Bk0KWNGDjJHZDdDmFhW3AN7lI-puxk_mHZGJ11rxyR8O55XLSe3SPmRfKwZI6yU24ZxvQKFYItdldUKGzO6Ia6zTKhAVRU");
    let rsa = PrivateJwk {
        family: Some(KeyFamily::Rsa),
        n: &n,
        e: &e,
        d: &d,
        p: &p,
        q: &q,
        dp: &dp,
        dq: &dq,
        qi: &qi,
        ..Default::default()
    };
    let (spec, material) = keys::import_jwk(&rsa).unwrap();
    assert_eq!(spec, KeySpec::Rsa { bits: 2048 });
    let public = LoadedKey::load(spec, &material).unwrap().public_jwk();
    assert_eq!((public.n, public.e), (n.clone(), e.clone()));

    // A member missing, or one that does not belong, is refused with the member named.
    let missing = PrivateJwk { qi: &[], ..rsa };
    let err = keys::import_jwk(&missing).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("key.qi"));
    let mut bad_q = q.clone();
    bad_q[10] ^= 0x40;
    let inconsistent = PrivateJwk {
        family: Some(KeyFamily::Rsa),
        n: &n,
        e: &e,
        d: &d,
        p: &p,
        q: &bad_q,
        dp: &dp,
        dq: &dq,
        qi: &qi,
        ..Default::default()
    };
    assert_eq!(keys::import_jwk(&inconsistent).unwrap_err().code, ErrorCode::BadParameter);

    // Appendix A.3: the 128-bit AES key wrap key.
    let k = b64("GawgguFyGrWKav7AX4VKUg");
    let key = oct(&k);
    let wrapped = key.wrap(EncryptionAlgorithm::A128Kw, &[9u8; 32]).unwrap();
    assert_eq!(key.unwrap(EncryptionAlgorithm::A128Kw, &wrapped).unwrap().as_slice(), &[9u8; 32]);
}

fn all_specs() -> Vec<KeySpec> {
    let mut specs = vec![KeySpec::Rsa { bits: 2048 }];
    specs.extend(Curve::EC.into_iter().map(KeySpec::Ec));
    specs.push(KeySpec::Ed25519);
    specs.extend([128, 192, 256].map(|bits| KeySpec::Oct { bits }));
    specs
}

#[test]
fn every_key_type_and_algorithm_pair() {
    for spec in all_specs() {
        let material = keys::generate(spec).unwrap();
        let key = LoadedKey::load(spec, &material).unwrap();
        for alg in SignatureAlgorithm::ALL {
            let input = vec![0x5a; alg.digest_len().unwrap_or(100)];
            match alg.check_fits(spec) {
                Ok(()) => {
                    let sig = key.sign(alg, &input).unwrap();
                    assert!(key.verify(alg, &input, &sig).unwrap(), "{spec:?} {}", alg.name());
                    let mut other = input.clone();
                    other[0] ^= 1;
                    assert!(!key.verify(alg, &other, &sig).unwrap());
                    if let Some(n) = alg.digest_len() {
                        // The digest length must match the algorithm: limit and limit+1.
                        assert_eq!(key.sign(alg, &vec![1; n + 1]).unwrap_err().field.as_deref(), Some("digest"));
                        assert_eq!(key.sign(alg, &vec![1; n - 1]).unwrap_err().field.as_deref(), Some("digest"));
                    }
                }
                Err(_) => {
                    let e = key.sign(alg, &input).unwrap_err();
                    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadParameter, Some("algorithm")));
                    assert!(key.verify(alg, &input, &[0; 64]).is_err());
                }
            }
        }
        for alg in EncryptionAlgorithm::ALL {
            let fits_encrypt = alg.check_fits(KeyOp::Encrypt, spec).is_ok();
            let fits_wrap = alg.check_fits(KeyOp::WrapKey, spec).is_ok();
            let plain = [0x42u8; 32];
            if fits_encrypt {
                let out = key.encrypt(alg, &plain, None, b"aad").unwrap();
                let opened = key.decrypt(alg, &out.ciphertext, &out.iv, b"aad", &out.tag).unwrap();
                assert_eq!(opened.as_slice(), &plain, "{spec:?} {}", alg.name());
            } else {
                assert!(key.encrypt(alg, &plain, None, b"").is_err(), "{spec:?} {} encrypt", alg.name());
                assert!(key.decrypt(alg, &[0; 256], &[0; 16], b"", &[0; 16]).is_err());
            }
            if fits_wrap {
                let wrapped = key.wrap(alg, &plain).unwrap();
                assert_eq!(key.unwrap(alg, &wrapped).unwrap().as_slice(), &plain, "{spec:?} {}", alg.name());
            } else {
                let e = key.wrap(alg, &plain).unwrap_err();
                assert_eq!(e.field.as_deref(), Some("algorithm"), "{spec:?} {} wrap", alg.name());
            }
        }
    }
}

#[test]
fn rsa_plaintext_limits_are_k_minus_padding() {
    let spec = KeySpec::Rsa { bits: 2048 };
    let key = LoadedKey::load(spec, &keys::generate(spec).unwrap()).unwrap();
    for (alg, max) in [
        (EncryptionAlgorithm::Rsa1_5, 256 - 11),
        (EncryptionAlgorithm::RsaOaep, 256 - 42),
        (EncryptionAlgorithm::RsaOaep256, 256 - 66),
    ] {
        assert!(key.encrypt(alg, &vec![1; max], None, b"").is_ok(), "{} at its limit", alg.name());
        assert_eq!(key.encrypt(alg, &vec![1; max + 1], None, b"").unwrap_err().field.as_deref(), Some("value"));
    }
}

#[test]
fn aes_rules() {
    let key = oct(&[3u8; 32]);
    // GCM makes its own IV and refuses a caller's; a wrong tag or AAD fails to decrypt.
    assert_eq!(
        key.encrypt(EncryptionAlgorithm::A256Gcm, b"x", Some(&[1; 12]), b"").unwrap_err().field.as_deref(),
        Some("iv")
    );
    let out = key.encrypt(EncryptionAlgorithm::A256Gcm, b"hello", None, b"aad").unwrap();
    assert_eq!((out.iv.len(), out.tag.len()), (12, 16));
    assert!(key.decrypt(EncryptionAlgorithm::A256Gcm, &out.ciphertext, &out.iv, b"other", &out.tag).is_err());
    assert!(key.decrypt(EncryptionAlgorithm::A256Gcm, &out.ciphertext, &out.iv, b"aad", &out.tag[..15]).is_err());
    // CBC without padding needs whole blocks; the caller's IV is used when given.
    assert!(key.encrypt(EncryptionAlgorithm::A256Cbc, &[1; 17], Some(&[0; 16]), b"").is_err());
    let cbc = key.encrypt(EncryptionAlgorithm::A256Cbc, &[1; 32], Some(&[9; 16]), b"").unwrap();
    assert_eq!(cbc.iv, vec![9; 16]);
    assert!(key.encrypt(EncryptionAlgorithm::A256Cbc, &[1; 32], Some(&[9; 15]), b"").is_err());
    let pad = key.encrypt(EncryptionAlgorithm::A256CbcPad, &[1; 17], None, b"").unwrap();
    assert_eq!(pad.ciphertext.len(), 32);
    // A 256-bit key refuses 128-bit algorithms.
    assert_eq!(
        key.encrypt(EncryptionAlgorithm::A128Gcm, b"x", None, b"").unwrap_err().field.as_deref(),
        Some("algorithm")
    );
}
