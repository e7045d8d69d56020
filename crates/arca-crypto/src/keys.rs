//! Customer keys: generation, import, the public JWK, and every crypto operation Arca serves, on one
//! backend (aws-lc-rs, the library rustls uses).
//!
//! The stored form of a key version ([`KeyMaterial`]) is PKCS#8 DER for RSA, EC and Ed25519 keys and
//! the raw key for oct keys; it only ever exists in the clear inside this process and inside barrier
//! ciphertext. [`LoadedKey`] is the parsed form the crypto service caches.

use arca_types::keys::{AesMode, Curve, EncryptionAlgorithm, KeyOp, KeySpec, SignatureAlgorithm};
use arca_types::{ArcaError, SecretBytes};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey};
use aws_lc_rs::{aead, cipher, digest};
use zeroize::Zeroizing;

use crate::kw;

/// A key version's private material in its stored form. Never printed.
pub type KeyMaterial = SecretBytes;

/// Bytes of the IV Arca makes for AES-GCM, and of the tag it returns.
pub const GCM_IV_BYTES: usize = 12;
pub const GCM_TAG_BYTES: usize = 16;
/// Bytes of an AES-CBC IV.
pub const CBC_IV_BYTES: usize = 16;

fn internal(what: &str) -> ArcaError {
    ArcaError::internal(format!("the crypto backend failed to {what}"))
}

fn bad(field: &str, message: impl Into<String>) -> ArcaError {
    ArcaError::bad_parameter(field, message)
}

/// Fills `out` from the backend's random generator.
pub fn random_bytes(out: &mut [u8]) -> Result<(), ArcaError> {
    aws_lc_rs::rand::fill(out).map_err(|_| internal("produce random bytes"))
}

fn ecdsa_signing(curve: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        // Ed25519 never reaches here: it is its own KeySpec.
        Curve::P256K | Curve::Ed25519 => &signature::ECDSA_P256K1_SHA256_FIXED_SIGNING,
    }
}

fn ecdsa_verifying(curve: Curve) -> &'static signature::EcdsaVerificationAlgorithm {
    match curve {
        Curve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        Curve::P256K | Curve::Ed25519 => &signature::ECDSA_P256K1_SHA256_FIXED,
    }
}

fn digest_alg(alg: SignatureAlgorithm) -> &'static digest::Algorithm {
    match alg.digest_len() {
        Some(48) => &digest::SHA384,
        Some(64) => &digest::SHA512,
        _ => &digest::SHA256,
    }
}

/// Generates a key of `spec`, checks it with a round trip, and returns its stored form.
pub fn generate(spec: KeySpec) -> Result<KeyMaterial, ArcaError> {
    let spec = spec.validate()?;
    let material = match spec {
        KeySpec::Rsa { bits } => {
            let size = match bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                _ => KeySize::Rsa4096,
            };
            let pair = RsaKeyPair::generate(size).map_err(|_| internal("generate an RSA key"))?;
            pkcs8(&pair)?
        }
        KeySpec::Ec(curve) => {
            let pair = EcdsaKeyPair::generate(ecdsa_signing(curve)).map_err(|_| internal("generate an EC key"))?;
            SecretBytes::new(pair.to_pkcs8v1().map_err(|_| internal("encode an EC key"))?.as_ref().to_vec())
        }
        KeySpec::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(|_| internal("generate an Ed25519 key"))?;
            SecretBytes::new(pair.to_pkcs8v1().map_err(|_| internal("encode an Ed25519 key"))?.as_ref().to_vec())
        }
        KeySpec::Oct { bits } => {
            let mut k = vec![0u8; usize::from(bits / 8)];
            random_bytes(&mut k)?;
            SecretBytes::new(k)
        }
    };
    LoadedKey::load(spec, &material)?.self_test()?;
    Ok(material)
}

fn pkcs8(pair: &RsaKeyPair) -> Result<KeyMaterial, ArcaError> {
    let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(|_| internal("encode a key"))?;
    Ok(SecretBytes::new(der.as_ref().to_vec()))
}

/// The public half of a key as JWK members (raw bytes; the API base64url-encodes them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublicJwk {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub crv: Option<Curve>,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

enum Inner {
    Rsa {
        signing: RsaKeyPair,
        oaep: OaepPrivateDecryptingKey,
        pkcs1: Pkcs1PrivateDecryptingKey,
        oaep_public: OaepPublicEncryptingKey,
        pkcs1_public: Pkcs1PublicEncryptingKey,
    },
    Ec(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Oct(Zeroizing<Vec<u8>>),
}

/// A key version parsed and ready to use. Dropping it frees (and, for oct keys, wipes) the material;
/// aws-lc frees asymmetric keys with `OPENSSL_cleanse`.
pub struct LoadedKey {
    spec: KeySpec,
    inner: Inner,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedKey({:?}, <redacted>)", self.spec)
    }
}

/// What encrypt returns: the ciphertext, and for AES-GCM/CBC the IV used and the GCM tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encrypted {
    pub ciphertext: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
}

impl LoadedKey {
    /// Parses stored material of `spec`. Material that does not parse or does not match the spec is an
    /// internal error: it was checked when it was stored.
    pub fn load(spec: KeySpec, material: &KeyMaterial) -> Result<LoadedKey, ArcaError> {
        let der = material.expose();
        let corrupt = || ArcaError::internal(format!("stored {} key material does not parse", spec.family_name()));
        let inner = match spec {
            KeySpec::Rsa { bits } => {
                let signing = RsaKeyPair::from_pkcs8(der).map_err(|_| corrupt())?;
                if signing.public_modulus_len() * 8 != usize::from(bits) {
                    return Err(corrupt());
                }
                let private = || PrivateDecryptingKey::from_pkcs8(der).map_err(|_| corrupt());
                let public = private()?.public_key();
                let public2 = PublicEncryptingKey::from_der(public.as_der().map_err(|_| corrupt())?.as_ref())
                    .map_err(|_| corrupt())?;
                Inner::Rsa {
                    signing,
                    oaep: OaepPrivateDecryptingKey::new(private()?).map_err(|_| corrupt())?,
                    pkcs1: Pkcs1PrivateDecryptingKey::new(private()?).map_err(|_| corrupt())?,
                    oaep_public: OaepPublicEncryptingKey::new(public).map_err(|_| corrupt())?,
                    pkcs1_public: Pkcs1PublicEncryptingKey::new(public2).map_err(|_| corrupt())?,
                }
            }
            KeySpec::Ec(curve) => {
                Inner::Ec(EcdsaKeyPair::from_pkcs8(ecdsa_signing(curve), der).map_err(|_| corrupt())?)
            }
            KeySpec::Ed25519 => Inner::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| corrupt())?),
            KeySpec::Oct { bits } => {
                if der.len() * 8 != usize::from(bits) {
                    return Err(corrupt());
                }
                Inner::Oct(Zeroizing::new(der.to_vec()))
            }
        };
        Ok(LoadedKey { spec, inner })
    }

    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The public JWK members. Oct keys have none.
    pub fn public_jwk(&self) -> PublicJwk {
        match &self.inner {
            Inner::Rsa { signing, .. } => {
                let public = signing.public_key();
                PublicJwk {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                    ..PublicJwk::default()
                }
            }
            Inner::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                PublicJwk {
                    crv: self.spec.curve(),
                    x: point[1..1 + half].to_vec(),
                    y: point[1 + half..].to_vec(),
                    ..PublicJwk::default()
                }
            }
            Inner::Ed25519(pair) => {
                PublicJwk { crv: Some(Curve::Ed25519), x: pair.public_key().as_ref().to_vec(), ..PublicJwk::default() }
            }
            Inner::Oct(_) => PublicJwk::default(),
        }
    }

    /// The public key as DER SubjectPublicKeyInfo (what a PEM `PUBLIC KEY` holds). Oct keys have none.
    pub fn public_key_der(&self) -> Option<Vec<u8>> {
        let der = match &self.inner {
            Inner::Rsa { signing, .. } => signing.public_key().as_der().ok()?.as_ref().to_vec(),
            Inner::Ec(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            Inner::Ed25519(pair) => pair.public_key().as_der().ok()?.as_ref().to_vec(),
            Inner::Oct(_) => return None,
        };
        Some(der)
    }

    /// Checks the key with one round trip of its main operation.
    pub fn self_test(&self) -> Result<(), ArcaError> {
        let failed = || ArcaError::internal("a new key failed its self-test and was not stored");
        match self.spec {
            KeySpec::Oct { bits } => {
                let alg = match bits {
                    128 => EncryptionAlgorithm::A128Gcm,
                    192 => EncryptionAlgorithm::A192Gcm,
                    _ => EncryptionAlgorithm::A256Gcm,
                };
                let sealed = self.encrypt(alg, b"arca self-test", None, b"")?;
                let opened = self.decrypt(alg, &sealed.ciphertext, &sealed.iv, b"", &sealed.tag)?;
                if opened.as_slice() != b"arca self-test" {
                    return Err(failed());
                }
            }
            spec => {
                let alg = match spec {
                    KeySpec::Rsa { .. } => SignatureAlgorithm::Ps256,
                    KeySpec::Ec(Curve::P384) => SignatureAlgorithm::Es384,
                    KeySpec::Ec(Curve::P521) => SignatureAlgorithm::Es512,
                    KeySpec::Ec(Curve::P256K) => SignatureAlgorithm::Es256K,
                    KeySpec::Ec(_) => SignatureAlgorithm::Es256,
                    _ => SignatureAlgorithm::EdDsa,
                };
                let input = match alg.digest_len() {
                    Some(n) => digest::digest(digest_alg(alg), b"arca self-test").as_ref()[..n].to_vec(),
                    None => b"arca self-test".to_vec(),
                };
                let sig = self.sign(alg, &input)?;
                if !self.verify(alg, &input, &sig)? {
                    return Err(failed());
                }
                if let KeySpec::Rsa { .. } = spec {
                    let ct = self.encrypt(EncryptionAlgorithm::RsaOaep256, b"arca self-test", None, b"")?;
                    if self.decrypt(EncryptionAlgorithm::RsaOaep256, &ct.ciphertext, b"", b"", b"")?.as_slice()
                        != b"arca self-test"
                    {
                        return Err(failed());
                    }
                }
            }
        }
        Ok(())
    }

    fn oct(&self) -> Result<&[u8], ArcaError> {
        match &self.inner {
            Inner::Oct(k) => Ok(k),
            _ => Err(ArcaError::internal("an AES operation reached a non-oct key")),
        }
    }

    /// Encrypts `plaintext`. AES-GCM makes its own IV (a caller's is refused); AES-CBC uses the
    /// caller's 16-byte IV or makes one. `aad` applies to GCM only.
    pub fn encrypt(
        &self,
        alg: EncryptionAlgorithm,
        plaintext: &[u8],
        iv: Option<&[u8]>,
        aad: &[u8],
    ) -> Result<Encrypted, ArcaError> {
        alg.check_fits(KeyOp::Encrypt, self.spec)?;
        match alg.aes() {
            None => Ok(Encrypted { ciphertext: self.rsa_encrypt(alg, plaintext)?, ..Encrypted::default() }),
            Some((bits, AesMode::Gcm)) => {
                if iv.is_some_and(|iv| !iv.is_empty()) {
                    return Err(bad("iv", format!("{} makes its own IV; send none", alg.name())));
                }
                let mut nonce = [0u8; GCM_IV_BYTES];
                random_bytes(&mut nonce)?;
                let key = aead::LessSafeKey::new(
                    aead::UnboundKey::new(gcm(bits), self.oct()?).map_err(|_| internal("load an AES key"))?,
                );
                let mut buf = plaintext.to_vec();
                let tag = key
                    .seal_in_place_separate_tag(
                        aead::Nonce::assume_unique_for_key(nonce),
                        aead::Aad::from(aad),
                        &mut buf,
                    )
                    .map_err(|_| internal("encrypt with AES-GCM"))?;
                Ok(Encrypted { ciphertext: buf, iv: nonce.to_vec(), tag: tag.as_ref().to_vec() })
            }
            Some((_, mode @ (AesMode::Cbc | AesMode::CbcPad))) => {
                let iv = match iv.filter(|iv| !iv.is_empty()) {
                    Some(iv) => cbc_iv(iv)?,
                    None => {
                        let mut fresh = [0u8; CBC_IV_BYTES];
                        random_bytes(&mut fresh)?;
                        fresh
                    }
                };
                let ciphertext = self.cbc(mode, true, plaintext, iv)?;
                Ok(Encrypted { ciphertext, iv: iv.to_vec(), ..Encrypted::default() })
            }
            Some((_, AesMode::Kw)) => Err(ArcaError::internal("check_fits lets no key-wrap algorithm encrypt")),
        }
    }

    /// Decrypts. GCM needs the IV, the 16-byte tag and the same AAD; CBC needs the IV.
    pub fn decrypt(
        &self,
        alg: EncryptionAlgorithm,
        ciphertext: &[u8],
        iv: &[u8],
        aad: &[u8],
        tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
        alg.check_fits(KeyOp::Decrypt, self.spec)?;
        match alg.aes() {
            None => self.rsa_decrypt(alg, ciphertext),
            Some((bits, AesMode::Gcm)) => {
                let nonce: [u8; GCM_IV_BYTES] = iv.try_into().map_err(|_| {
                    bad("iv", format!("{} needs the {GCM_IV_BYTES}-byte IV encrypt returned", alg.name()))
                })?;
                if tag.len() != GCM_TAG_BYTES {
                    return Err(bad(
                        "tag",
                        format!("{} needs the {GCM_TAG_BYTES}-byte tag encrypt returned", alg.name()),
                    ));
                }
                let key = aead::LessSafeKey::new(
                    aead::UnboundKey::new(gcm(bits), self.oct()?).map_err(|_| internal("load an AES key"))?,
                );
                let mut buf = Zeroizing::new([ciphertext, tag].concat());
                let len = key
                    .open_in_place(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(aad), &mut buf)
                    .map_err(|_| decrypt_failed())?
                    .len();
                buf.truncate(len);
                Ok(buf)
            }
            Some((_, mode @ (AesMode::Cbc | AesMode::CbcPad))) => {
                Ok(Zeroizing::new(self.cbc(mode, false, ciphertext, cbc_iv(iv)?)?))
            }
            Some((_, AesMode::Kw)) => Err(ArcaError::internal("check_fits lets no key-wrap algorithm decrypt")),
        }
    }

    fn cbc(&self, mode: AesMode, encrypt: bool, input: &[u8], iv: [u8; CBC_IV_BYTES]) -> Result<Vec<u8>, ArcaError> {
        let alg = match self.oct()?.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        };
        let unbound = || {
            cipher::UnboundCipherKey::new(alg, self.oct().unwrap_or_default()).map_err(|_| internal("load an AES key"))
        };
        let block = cipher::AES_CBC_IV_LEN;
        if (mode == AesMode::Cbc || !encrypt) && !input.len().is_multiple_of(16) {
            return Err(bad("value", format!("AES-CBC input must be a multiple of 16 bytes; it is {}", input.len())));
        }
        let mut buf = input.to_vec();
        let fixed = || aws_lc_rs::iv::FixedLength::<{ cipher::AES_CBC_IV_LEN }>::from(iv);
        debug_assert_eq!(block, CBC_IV_BYTES);
        match (mode, encrypt) {
            (AesMode::Cbc, true) => {
                cipher::EncryptingKey::cbc(unbound()?)
                    .and_then(|k| k.less_safe_encrypt(&mut buf, cipher::EncryptionContext::Iv128(fixed())))
                    .map_err(|_| internal("encrypt with AES-CBC"))?;
            }
            (AesMode::Cbc, false) => {
                cipher::DecryptingKey::cbc(unbound()?)
                    .and_then(|k| k.decrypt(&mut buf, cipher::DecryptionContext::Iv128(fixed())).map(|_| ()))
                    .map_err(|_| internal("decrypt with AES-CBC"))?;
            }
            (_, true) => {
                cipher::PaddedBlockEncryptingKey::cbc_pkcs7(unbound()?)
                    .and_then(|k| k.less_safe_encrypt(&mut buf, cipher::EncryptionContext::Iv128(fixed())))
                    .map_err(|_| internal("encrypt with AES-CBC-PAD"))?;
            }
            (_, false) => {
                let len = cipher::PaddedBlockDecryptingKey::cbc_pkcs7(unbound()?)
                    .map_err(|_| internal("load an AES key"))?
                    .decrypt(&mut buf, cipher::DecryptionContext::Iv128(fixed()))
                    .map_err(|_| decrypt_failed())?
                    .len();
                buf.truncate(len);
            }
        }
        Ok(buf)
    }

    fn rsa_parts(&self) -> Result<&Inner, ArcaError> {
        match &self.inner {
            rsa @ Inner::Rsa { .. } => Ok(rsa),
            _ => Err(ArcaError::internal("an RSA operation reached a non-RSA key")),
        }
    }

    fn rsa_encrypt(&self, alg: EncryptionAlgorithm, plaintext: &[u8]) -> Result<Vec<u8>, ArcaError> {
        let Inner::Rsa { oaep_public, pkcs1_public, .. } = self.rsa_parts()? else { unreachable!() };
        let k = oaep_public.key_size_bytes();
        let max = match alg {
            EncryptionAlgorithm::Rsa1_5 => pkcs1_public.max_plaintext_size(),
            EncryptionAlgorithm::RsaOaep => oaep_public.max_plaintext_size(&OAEP_SHA1_MGF1SHA1),
            _ => oaep_public.max_plaintext_size(&OAEP_SHA256_MGF1SHA256),
        };
        if plaintext.len() > max {
            return Err(bad(
                "value",
                format!(
                    "{} with a {}-bit key takes at most {max} bytes; the request carried {}",
                    alg.name(),
                    k * 8,
                    plaintext.len()
                ),
            ));
        }
        let mut out = vec![0u8; k];
        let len = match alg {
            EncryptionAlgorithm::Rsa1_5 => pkcs1_public.encrypt(plaintext, &mut out).map(|c| c.len()),
            EncryptionAlgorithm::RsaOaep => {
                oaep_public.encrypt(&OAEP_SHA1_MGF1SHA1, plaintext, &mut out, None).map(|c| c.len())
            }
            _ => oaep_public.encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None).map(|c| c.len()),
        }
        .map_err(|_| internal("encrypt with RSA"))?;
        out.truncate(len);
        Ok(out)
    }

    fn rsa_decrypt(&self, alg: EncryptionAlgorithm, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
        let Inner::Rsa { oaep, pkcs1, .. } = self.rsa_parts()? else { unreachable!() };
        let k = oaep.key_size_bytes();
        if ciphertext.len() != k {
            return Err(bad(
                "value",
                format!(
                    "an RSA ciphertext for this {}-bit key is {k} bytes; the request carried {}",
                    k * 8,
                    ciphertext.len()
                ),
            ));
        }
        let mut out = Zeroizing::new(vec![0u8; k]);
        let len = match alg {
            EncryptionAlgorithm::Rsa1_5 => pkcs1.decrypt(ciphertext, &mut out).map(|p| p.len()),
            EncryptionAlgorithm::RsaOaep => {
                oaep.decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None).map(|p| p.len())
            }
            _ => oaep.decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None).map(|p| p.len()),
        }
        .map_err(|_| decrypt_failed())?;
        out.truncate(len);
        Ok(out)
    }

    /// Wraps `key` (RSA algorithms, or AES key wrap RFC 3394 with A*KW).
    pub fn wrap(&self, alg: EncryptionAlgorithm, key: &[u8]) -> Result<Vec<u8>, ArcaError> {
        alg.check_fits(KeyOp::WrapKey, self.spec)?;
        match alg.aes() {
            None => self.rsa_encrypt(alg, key),
            Some(_) => kw::wrap(self.oct()?, key),
        }
    }

    /// Unwraps what [`LoadedKey::wrap`] (or any RFC 3394 / RSA implementation) produced.
    pub fn unwrap(&self, alg: EncryptionAlgorithm, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
        alg.check_fits(KeyOp::UnwrapKey, self.spec)?;
        match alg.aes() {
            None => self.rsa_decrypt(alg, wrapped),
            Some(_) => kw::unwrap(self.oct()?, wrapped),
        }
    }

    /// Signs a digest (or, for EdDSA, the message).
    pub fn sign(&self, alg: SignatureAlgorithm, input: &[u8]) -> Result<Vec<u8>, ArcaError> {
        alg.check_fits(self.spec)?;
        alg.check_input(input.len())?;
        match &self.inner {
            Inner::Rsa { signing, .. } => {
                let encoding: &'static dyn signature::RsaEncoding = match alg {
                    SignatureAlgorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    SignatureAlgorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    SignatureAlgorithm::Rs512 => &signature::RSA_PKCS1_SHA512,
                    SignatureAlgorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    SignatureAlgorithm::Ps384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let d = digest::Digest::import_less_safe(input, digest_alg(alg))
                    .map_err(|_| internal("import a digest"))?;
                let mut sig = vec![0u8; signing.public_modulus_len()];
                signing.sign_digest(encoding, &d, &mut sig).map_err(|_| internal("sign with RSA"))?;
                Ok(sig)
            }
            Inner::Ec(pair) => {
                let d = digest::Digest::import_less_safe(input, digest_alg(alg))
                    .map_err(|_| internal("import a digest"))?;
                Ok(pair.sign_digest(&d).map_err(|_| internal("sign with ECDSA"))?.as_ref().to_vec())
            }
            Inner::Ed25519(pair) => Ok(pair.sign(input).as_ref().to_vec()),
            Inner::Oct(_) => Err(ArcaError::internal("check_fits lets no signature algorithm reach an oct key")),
        }
    }

    /// Verifies a signature over a digest (or, for EdDSA, the message). A well-formed request whose
    /// signature does not match answers `false`, not an error.
    pub fn verify(&self, alg: SignatureAlgorithm, input: &[u8], sig: &[u8]) -> Result<bool, ArcaError> {
        alg.check_fits(self.spec)?;
        alg.check_input(input.len())?;
        if sig.len() > arca_types::limits::CRYPTO_INPUT_BYTES_MAX {
            return Err(bad("value", "the signature is larger than any signature Arca makes"));
        }
        let ok = match &self.inner {
            Inner::Rsa { signing, .. } => {
                let params: &'static signature::RsaParameters = match alg {
                    SignatureAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    SignatureAlgorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    SignatureAlgorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    SignatureAlgorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    SignatureAlgorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                let d = digest::Digest::import_less_safe(input, digest_alg(alg))
                    .map_err(|_| internal("import a digest"))?;
                UnparsedPublicKey::new(params, signing.public_key().as_ref()).verify_digest(&d, sig).is_ok()
            }
            Inner::Ec(pair) => {
                let curve = self.spec.curve().unwrap_or(Curve::P256);
                let d = digest::Digest::import_less_safe(input, digest_alg(alg))
                    .map_err(|_| internal("import a digest"))?;
                UnparsedPublicKey::new(ecdsa_verifying(curve), pair.public_key().as_ref())
                    .verify_digest(&d, sig)
                    .is_ok()
            }
            Inner::Ed25519(pair) => {
                UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref()).verify(input, sig).is_ok()
            }
            Inner::Oct(_) => {
                return Err(ArcaError::internal("check_fits lets no signature algorithm reach an oct key"))
            }
        };
        Ok(ok)
    }
}

fn gcm(bits: u16) -> &'static aead::Algorithm {
    match bits {
        128 => &aead::AES_128_GCM,
        192 => &aead::AES_192_GCM,
        _ => &aead::AES_256_GCM,
    }
}

fn cbc_iv(iv: &[u8]) -> Result<[u8; CBC_IV_BYTES], ArcaError> {
    iv.try_into()
        .map_err(|_| bad("iv", format!("AES-CBC needs a {CBC_IV_BYTES}-byte IV; the request carried {}", iv.len())))
}

fn decrypt_failed() -> ArcaError {
    ArcaError::bad_parameter(
        "value",
        "decryption failed: the ciphertext, IV, tag or AAD do not match this key version and algorithm",
    )
}

/// Unwraps a key wrapped with AES key wrap with padding (RFC 5649), for BYOK import.
pub fn unwrap_padded(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, ArcaError> {
    kw::unwrap_padded(kek, wrapped)
}

/// Wraps with AES key wrap with padding (RFC 5649). Arca itself only unwraps; tests and tools that
/// build BYOK blobs wrap.
pub fn wrap_padded(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, ArcaError> {
    kw::wrap_padded(kek, key)
}

/// The members of a private JWK (RFC 7517/7518/8037), decoded from base64url by the caller. Members a
/// key type does not use are empty.
#[derive(Default)]
pub struct PrivateJwk<'a> {
    pub family: Option<arca_types::keys::KeyFamily>,
    pub crv: Option<Curve>,
    pub n: &'a [u8],
    pub e: &'a [u8],
    pub d: &'a [u8],
    pub p: &'a [u8],
    pub q: &'a [u8],
    pub dp: &'a [u8],
    pub dq: &'a [u8],
    pub qi: &'a [u8],
    pub k: &'a [u8],
    pub x: &'a [u8],
    pub y: &'a [u8],
}

fn require<'a>(field: &str, value: &'a [u8], what: &str) -> Result<&'a [u8], ArcaError> {
    if value.is_empty() {
        return Err(bad(&format!("key.{field}"), format!("an imported {what} needs the JWK member '{field}'")));
    }
    Ok(value)
}

/// Turns a private JWK into a stored key, checking every member and the key itself (a round trip).
/// Errors name the JWK member at fault, never its value.
pub fn import_jwk(jwk: &PrivateJwk<'_>) -> Result<(KeySpec, KeyMaterial), ArcaError> {
    use arca_types::keys::KeyFamily;
    let rejected = |what: &str| {
        bad("key", format!("the JWK is not a valid {what} private key (its members do not form a consistent key)"))
    };
    let (spec, material) = match jwk.family {
        Some(KeyFamily::Rsa) => {
            let what = "RSA";
            let n = require("n", jwk.n, what)?;
            let components = aws_lc_rs::rsa::KeyPairComponents {
                public_key: aws_lc_rs::rsa::PublicKeyComponents { n, e: require("e", jwk.e, what)? },
                d: require("d", jwk.d, what)?,
                p: require("p", jwk.p, what)?,
                q: require("q", jwk.q, what)?,
                dP: require("dp", jwk.dp, what)?,
                dQ: require("dq", jwk.dq, what)?,
                qInv: require("qi", jwk.qi, what)?,
            };
            let pair = RsaKeyPair::from_components(&components).map_err(|_| rejected(what))?;
            let bits = pair.public_modulus_len() * 8;
            let spec = KeySpec::Rsa { bits: u16::try_from(bits).unwrap_or(0) };
            spec.validate()
                .map_err(|_| bad("key.n", format!("RSA keys are 2048, 3072 or 4096 bits; this one has {bits}")))?;
            (spec, pkcs8(&pair)?)
        }
        Some(KeyFamily::Ec) => {
            let what = "EC";
            let curve = jwk
                .crv
                .filter(|c| *c != Curve::Ed25519)
                .ok_or_else(|| bad("key.crv", "an EC JWK needs crv P-256, P-384, P-521 or P-256K"))?;
            let len = curve.coordinate_len();
            for (field, value) in [("d", jwk.d), ("x", jwk.x), ("y", jwk.y)] {
                if require(field, value, what)?.len() != len {
                    return Err(bad(
                        &format!("key.{field}"),
                        format!("{} members are {len} bytes; '{field}' has {}", curve.jwk_name(), value.len()),
                    ));
                }
            }
            let point = [&[4u8][..], jwk.x, jwk.y].concat();
            let pair = EcdsaKeyPair::from_private_key_and_public_key(ecdsa_signing(curve), jwk.d, &point)
                .map_err(|_| rejected(what))?;
            let der = pair.to_pkcs8v1().map_err(|_| internal("encode an EC key"))?;
            (KeySpec::Ec(curve), SecretBytes::new(der.as_ref().to_vec()))
        }
        Some(KeyFamily::Okp) => {
            let what = "OKP";
            if jwk.crv != Some(Curve::Ed25519) {
                return Err(bad("key.crv", "an OKP JWK needs crv Ed25519"));
            }
            let pair = Ed25519KeyPair::from_seed_and_public_key(require("d", jwk.d, what)?, require("x", jwk.x, what)?)
                .map_err(|_| rejected("Ed25519"))?;
            let der = pair.to_pkcs8v1().map_err(|_| internal("encode an Ed25519 key"))?;
            (KeySpec::Ed25519, SecretBytes::new(der.as_ref().to_vec()))
        }
        Some(KeyFamily::Oct) => {
            let k = require("k", jwk.k, "oct")?;
            let spec = KeySpec::Oct { bits: u16::try_from(k.len() * 8).unwrap_or(0) };
            spec.validate()
                .map_err(|_| bad("key.k", format!("oct keys are 16, 24 or 32 bytes; this one has {}", k.len())))?;
            (spec, SecretBytes::new(k.to_vec()))
        }
        None => return Err(bad("key.kty", "the JWK needs a kty")),
    };
    LoadedKey::load(spec, &material).and_then(|k| k.self_test()).map_err(|_| rejected(spec.family_name()))?;
    Ok((spec, material))
}

/// Reads a key from PKCS#8 DER (the BYOK target format for RSA, EC and Ed25519 keys).
pub fn import_pkcs8(family: arca_types::keys::KeyFamily, der: &[u8]) -> Result<(KeySpec, KeyMaterial), ArcaError> {
    use arca_types::keys::KeyFamily;
    let rejected = || bad("key", format!("the transferred key is not a valid PKCS#8 {family:?} private key"));
    let spec = match family {
        KeyFamily::Rsa => {
            let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| rejected())?;
            let spec = KeySpec::Rsa { bits: u16::try_from(pair.public_modulus_len() * 8).unwrap_or(0) };
            spec.validate()?
        }
        KeyFamily::Ec => Curve::EC
            .into_iter()
            .find(|c| EcdsaKeyPair::from_pkcs8(ecdsa_signing(*c), der).is_ok())
            .map(KeySpec::Ec)
            .ok_or_else(rejected)?,
        KeyFamily::Okp => {
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| rejected())?;
            KeySpec::Ed25519
        }
        KeyFamily::Oct => {
            let spec = KeySpec::Oct { bits: u16::try_from(der.len() * 8).unwrap_or(0) };
            return Ok((spec.validate()?, SecretBytes::new(der.to_vec())));
        }
    };
    let material = SecretBytes::new(der.to_vec());
    LoadedKey::load(spec, &material).and_then(|k| k.self_test()).map_err(|_| rejected())?;
    Ok((spec, material))
}

impl LoadedKey {
    /// Opens a BYOK transfer: `ciphertext` = RSA-OAEP-SHA1(AES key) ‖ AES-KWP(target) under this key
    /// (the vault's key-exchange key). The target is PKCS#8 for RSA/EC/OKP and raw bytes for oct.
    pub fn open_byok(
        &self,
        family: arca_types::keys::KeyFamily,
        ciphertext: &[u8],
    ) -> Result<(KeySpec, KeyMaterial), ArcaError> {
        let Inner::Rsa { oaep, .. } = &self.inner else {
            return Err(bad("key.key_hsm", "a BYOK transfer key must be an RSA key"));
        };
        let k = oaep.key_size_bytes();
        if ciphertext.len() <= k {
            return Err(bad(
                "key.key_hsm",
                "the BYOK ciphertext is too short to hold a wrapped transfer key and a wrapped key",
            ));
        }
        let aes = self
            .rsa_decrypt(EncryptionAlgorithm::RsaOaep, &ciphertext[..k])
            .map_err(|_| bad("key.key_hsm", "the BYOK blob was not made for this key-exchange key"))?;
        if ![16, 24, 32].contains(&aes.len()) {
            return Err(bad("key.key_hsm", "the BYOK transfer key is not an AES key"));
        }
        let target = kw::unwrap_padded(&aes, &ciphertext[k..])
            .map_err(|_| bad("key.key_hsm", "the BYOK key does not unwrap under its transfer key"))?;
        import_pkcs8(family, &target)
    }
}
