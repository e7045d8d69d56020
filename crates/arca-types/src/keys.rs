//! The vocabulary of keys: key types and sizes, key operations and algorithms, with Azure Key Vault's
//! names and the rules of which algorithm fits which key. Pure data; the crypto lives in `arca-crypto`.

use serde::{Deserialize, Serialize};

use crate::{ArcaError, ErrorCode};

/// The family of a key (the JWK `kty` without the `-HSM` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyFamily {
    Rsa,
    Ec,
    Oct,
    /// Octet key pair (RFC 8037): Ed25519.
    Okp,
}

/// Elliptic curves Arca supports. `Ed25519` belongs to the OKP family, the others to EC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Curve {
    P256,
    P384,
    P521,
    P256K,
    Ed25519,
}

impl Curve {
    pub const EC: [Curve; 4] = [Curve::P256, Curve::P384, Curve::P521, Curve::P256K];

    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::P256K => "P-256K",
            Curve::Ed25519 => "Ed25519",
        }
    }

    pub fn parse(s: &str) -> Result<Curve, ArcaError> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::P256K, Curve::Ed25519]
            .into_iter()
            .find(|c| c.jwk_name() == s || (*c == Curve::P256K && s == "SECP256K1"))
            .ok_or_else(|| {
                ArcaError::bad_parameter(
                    "crv",
                    format!("curve '{s}' is not one of P-256, P-384, P-521, P-256K, Ed25519"),
                )
            })
    }

    /// Bytes of one coordinate (EC) or of the public key (Ed25519).
    pub fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 | Curve::P256K | Curve::Ed25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }
}

/// RSA modulus sizes Arca generates and imports, in bits.
pub const RSA_BITS: [u16; 3] = [2048, 3072, 4096];
/// AES key sizes, in bits.
pub const AES_BITS: [u16; 3] = [128, 192, 256];

/// What a key is: family and size or curve. Fixed for the life of a key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeySpec {
    Rsa { bits: u16 },
    Ec(Curve),
    Oct { bits: u16 },
    Ed25519,
}

impl KeySpec {
    pub fn family(self) -> KeyFamily {
        match self {
            KeySpec::Rsa { .. } => KeyFamily::Rsa,
            KeySpec::Ec(_) => KeyFamily::Ec,
            KeySpec::Oct { .. } => KeyFamily::Oct,
            KeySpec::Ed25519 => KeyFamily::Okp,
        }
    }

    /// Checks that the size or curve is one Arca supports for the family.
    pub fn validate(self) -> Result<KeySpec, ArcaError> {
        match self {
            KeySpec::Rsa { bits } if !RSA_BITS.contains(&bits) => {
                Err(ArcaError::bad_parameter("key_size", format!("RSA keys are 2048, 3072 or 4096 bits, not {bits}")))
            }
            KeySpec::Oct { bits } if !AES_BITS.contains(&bits) => {
                Err(ArcaError::bad_parameter("key_size", format!("oct keys are 128, 192 or 256 bits, not {bits}")))
            }
            KeySpec::Ec(Curve::Ed25519) => Err(ArcaError::bad_parameter("crv", "Ed25519 keys have kty OKP, not EC")),
            other => Ok(other),
        }
    }

    /// The operations a key of this family can perform at all. `import` only makes sense for RSA keys
    /// used as BYOK key-exchange keys.
    pub fn possible_ops(self) -> &'static [KeyOp] {
        match self.family() {
            KeyFamily::Rsa => &[
                KeyOp::Encrypt,
                KeyOp::Decrypt,
                KeyOp::Sign,
                KeyOp::Verify,
                KeyOp::WrapKey,
                KeyOp::UnwrapKey,
                KeyOp::Import,
            ],
            KeyFamily::Ec | KeyFamily::Okp => &[KeyOp::Sign, KeyOp::Verify],
            KeyFamily::Oct => &[KeyOp::Encrypt, KeyOp::Decrypt, KeyOp::WrapKey, KeyOp::UnwrapKey],
        }
    }

    /// The operations a key gets when the caller names none: every possible one except `import`,
    /// which marks a key-exchange key and must be asked for.
    pub fn default_ops(self) -> Vec<KeyOp> {
        self.possible_ops().iter().copied().filter(|op| *op != KeyOp::Import).collect()
    }

    /// Validates a requested `key_ops` list against the family: no duplicates, nothing impossible,
    /// and `import` alone (a key-exchange key does nothing else).
    pub fn check_ops(self, ops: &[KeyOp]) -> Result<(), ArcaError> {
        for (i, op) in ops.iter().enumerate() {
            if ops[..i].contains(op) {
                return Err(ArcaError::bad_parameter("key_ops", format!("key_ops lists '{}' twice", op.name())));
            }
            if *op == KeyOp::Export {
                return Err(ArcaError::bad_parameter(
                    "key_ops",
                    "'export' needs an exportable key with a release policy, which Arca does not support yet",
                ));
            }
            if !self.possible_ops().contains(op) {
                return Err(ArcaError::bad_parameter(
                    "key_ops",
                    format!("a {} key cannot '{}'", self.family_name(), op.name()),
                ));
            }
        }
        if ops.contains(&KeyOp::Import) && ops.len() > 1 {
            return Err(ArcaError::bad_parameter(
                "key_ops",
                "a key-exchange key (key_ops 'import') may have no other operation",
            ));
        }
        Ok(())
    }

    pub fn family_name(self) -> &'static str {
        match self.family() {
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ec => "EC",
            KeyFamily::Oct => "oct",
            KeyFamily::Okp => "OKP",
        }
    }

    /// The JWK `kty`, with `-HSM` for HSM-protected keys.
    pub fn kty(self, hsm: bool) -> String {
        if hsm {
            format!("{}-HSM", self.family_name())
        } else {
            self.family_name().to_owned()
        }
    }

    /// Size in bits (RSA modulus, AES key, or curve order size).
    pub fn bits(self) -> u16 {
        match self {
            KeySpec::Rsa { bits } | KeySpec::Oct { bits } => bits,
            KeySpec::Ec(Curve::P384) => 384,
            KeySpec::Ec(Curve::P521) => 521,
            KeySpec::Ec(_) | KeySpec::Ed25519 => 256,
        }
    }

    pub fn curve(self) -> Option<Curve> {
        match self {
            KeySpec::Ec(c) => Some(c),
            KeySpec::Ed25519 => Some(Curve::Ed25519),
            _ => None,
        }
    }
}

/// Parses a JWK `kty` (`RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct`, `oct-HSM`, `OKP`, `OKP-HSM`) into the
/// family and whether it asks for HSM protection.
pub fn parse_kty(kty: &str) -> Result<(KeyFamily, bool), ArcaError> {
    let (base, hsm) = match kty.strip_suffix("-HSM") {
        Some(base) => (base, true),
        None => (kty, false),
    };
    let family = match base {
        "RSA" => KeyFamily::Rsa,
        "EC" => KeyFamily::Ec,
        "oct" => KeyFamily::Oct,
        "OKP" => KeyFamily::Okp,
        _ => {
            return Err(ArcaError::bad_parameter(
                "kty",
                format!("kty '{kty}' is not one of RSA, EC, oct, OKP (each optionally with -HSM)"),
            ))
        }
    };
    Ok((family, hsm))
}

/// What a caller may do with a key (`key_ops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum KeyOp {
    Encrypt,
    Decrypt,
    Sign,
    Verify,
    WrapKey,
    UnwrapKey,
    Import,
    Export,
}

impl KeyOp {
    pub const ALL: [KeyOp; 8] = [
        KeyOp::Encrypt,
        KeyOp::Decrypt,
        KeyOp::Sign,
        KeyOp::Verify,
        KeyOp::WrapKey,
        KeyOp::UnwrapKey,
        KeyOp::Import,
        KeyOp::Export,
    ];

    pub fn name(self) -> &'static str {
        match self {
            KeyOp::Encrypt => "encrypt",
            KeyOp::Decrypt => "decrypt",
            KeyOp::Sign => "sign",
            KeyOp::Verify => "verify",
            KeyOp::WrapKey => "wrapKey",
            KeyOp::UnwrapKey => "unwrapKey",
            KeyOp::Import => "import",
            KeyOp::Export => "export",
        }
    }

    pub fn parse(s: &str) -> Result<KeyOp, ArcaError> {
        KeyOp::ALL.into_iter().find(|op| op.name() == s).ok_or_else(|| {
            ArcaError::bad_parameter(
                "key_ops",
                format!("'{s}' is not a key operation (encrypt, decrypt, sign, verify, wrapKey, unwrapKey, import)"),
            )
        })
    }

    /// Operations that still work outside the key's validity window: the ones that only undo or
    /// check earlier work.
    pub fn allowed_outside_window(self) -> bool {
        matches!(self, KeyOp::Decrypt | KeyOp::UnwrapKey | KeyOp::Verify)
    }
}

/// Encryption and key-wrap algorithms (Azure's `JsonWebKeyEncryptionAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EncryptionAlgorithm {
    Rsa1_5,
    RsaOaep,
    RsaOaep256,
    A128Gcm,
    A192Gcm,
    A256Gcm,
    A128Cbc,
    A192Cbc,
    A256Cbc,
    A128CbcPad,
    A192CbcPad,
    A256CbcPad,
    A128Kw,
    A192Kw,
    A256Kw,
}

/// The shape of an AES algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AesMode {
    Gcm,
    Cbc,
    CbcPad,
    Kw,
}

impl EncryptionAlgorithm {
    pub const ALL: [EncryptionAlgorithm; 15] = [
        EncryptionAlgorithm::Rsa1_5,
        EncryptionAlgorithm::RsaOaep,
        EncryptionAlgorithm::RsaOaep256,
        EncryptionAlgorithm::A128Gcm,
        EncryptionAlgorithm::A192Gcm,
        EncryptionAlgorithm::A256Gcm,
        EncryptionAlgorithm::A128Cbc,
        EncryptionAlgorithm::A192Cbc,
        EncryptionAlgorithm::A256Cbc,
        EncryptionAlgorithm::A128CbcPad,
        EncryptionAlgorithm::A192CbcPad,
        EncryptionAlgorithm::A256CbcPad,
        EncryptionAlgorithm::A128Kw,
        EncryptionAlgorithm::A192Kw,
        EncryptionAlgorithm::A256Kw,
    ];

    pub fn name(self) -> &'static str {
        use EncryptionAlgorithm::*;
        match self {
            Rsa1_5 => "RSA1_5",
            RsaOaep => "RSA-OAEP",
            RsaOaep256 => "RSA-OAEP-256",
            A128Gcm => "A128GCM",
            A192Gcm => "A192GCM",
            A256Gcm => "A256GCM",
            A128Cbc => "A128CBC",
            A192Cbc => "A192CBC",
            A256Cbc => "A256CBC",
            A128CbcPad => "A128CBCPAD",
            A192CbcPad => "A192CBCPAD",
            A256CbcPad => "A256CBCPAD",
            A128Kw => "A128KW",
            A192Kw => "A192KW",
            A256Kw => "A256KW",
        }
    }

    pub fn parse(s: &str) -> Result<EncryptionAlgorithm, ArcaError> {
        EncryptionAlgorithm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            ArcaError::bad_parameter(
                "algorithm",
                format!("'{s}' is not an encryption algorithm (RSA1_5, RSA-OAEP, RSA-OAEP-256, A128GCM … A256KW)"),
            )
        })
    }

    /// `Some((bits, mode))` for AES algorithms, `None` for RSA ones.
    pub fn aes(self) -> Option<(u16, AesMode)> {
        use EncryptionAlgorithm::*;
        Some(match self {
            Rsa1_5 | RsaOaep | RsaOaep256 => return None,
            A128Gcm => (128, AesMode::Gcm),
            A192Gcm => (192, AesMode::Gcm),
            A256Gcm => (256, AesMode::Gcm),
            A128Cbc => (128, AesMode::Cbc),
            A192Cbc => (192, AesMode::Cbc),
            A256Cbc => (256, AesMode::Cbc),
            A128CbcPad => (128, AesMode::CbcPad),
            A192CbcPad => (192, AesMode::CbcPad),
            A256CbcPad => (256, AesMode::CbcPad),
            A128Kw => (128, AesMode::Kw),
            A192Kw => (192, AesMode::Kw),
            A256Kw => (256, AesMode::Kw),
        })
    }

    /// Checks that this algorithm can run `op` (encrypt/decrypt or wrapKey/unwrapKey) with a key of
    /// `spec`. The error names the algorithm and key type, never the key.
    pub fn check_fits(self, op: KeyOp, spec: KeySpec) -> Result<(), ArcaError> {
        let wrap = matches!(op, KeyOp::WrapKey | KeyOp::UnwrapKey);
        let misfit = |why: String| Err(ArcaError::bad_parameter("algorithm", why));
        match (self.aes(), spec) {
            (None, KeySpec::Rsa { .. }) => Ok(()),
            (None, other) => misfit(format!("{} needs an RSA key; this key is {}", self.name(), other.family_name())),
            (Some((_, mode)), KeySpec::Oct { .. }) if wrap != (mode == AesMode::Kw) => misfit(format!(
                "{} is {} algorithm; use it with {}",
                self.name(),
                if mode == AesMode::Kw { "a key-wrap" } else { "an encryption" },
                if mode == AesMode::Kw { "wrapKey/unwrapKey" } else { "encrypt/decrypt" }
            )),
            (Some((bits, _)), KeySpec::Oct { bits: key_bits }) if bits != key_bits => {
                misfit(format!("{} needs a {bits}-bit oct key; this key has {key_bits} bits", self.name()))
            }
            (Some(_), KeySpec::Oct { .. }) => Ok(()),
            (Some(_), other) => {
                misfit(format!("{} needs an oct key; this key is {}", self.name(), other.family_name()))
            }
        }
    }
}

/// Signature algorithms (Azure's `JsonWebKeySignatureAlgorithm`, plus EdDSA for Ed25519).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SignatureAlgorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    Es512,
    Es256K,
    EdDsa,
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 11] = [
        SignatureAlgorithm::Rs256,
        SignatureAlgorithm::Rs384,
        SignatureAlgorithm::Rs512,
        SignatureAlgorithm::Ps256,
        SignatureAlgorithm::Ps384,
        SignatureAlgorithm::Ps512,
        SignatureAlgorithm::Es256,
        SignatureAlgorithm::Es384,
        SignatureAlgorithm::Es512,
        SignatureAlgorithm::Es256K,
        SignatureAlgorithm::EdDsa,
    ];

    pub fn name(self) -> &'static str {
        use SignatureAlgorithm::*;
        match self {
            Rs256 => "RS256",
            Rs384 => "RS384",
            Rs512 => "RS512",
            Ps256 => "PS256",
            Ps384 => "PS384",
            Ps512 => "PS512",
            Es256 => "ES256",
            Es384 => "ES384",
            Es512 => "ES512",
            Es256K => "ES256K",
            EdDsa => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Result<SignatureAlgorithm, ArcaError> {
        SignatureAlgorithm::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            ArcaError::bad_parameter(
                "algorithm",
                format!(
                    "'{s}' is not a signature algorithm (RS256/384/512, PS256/384/512, ES256/384/512, ES256K, EdDSA)"
                ),
            )
        })
    }

    /// The digest length the caller must send, or `None` for EdDSA (which signs the message itself).
    pub fn digest_len(self) -> Option<usize> {
        use SignatureAlgorithm::*;
        match self {
            Rs256 | Ps256 | Es256 | Es256K => Some(32),
            Rs384 | Ps384 | Es384 => Some(48),
            Rs512 | Ps512 | Es512 => Some(64),
            EdDsa => None,
        }
    }

    pub fn check_fits(self, spec: KeySpec) -> Result<(), ArcaError> {
        use SignatureAlgorithm::*;
        let fits = match self {
            Rs256 | Rs384 | Rs512 | Ps256 | Ps384 | Ps512 => matches!(spec, KeySpec::Rsa { .. }),
            Es256 => spec == KeySpec::Ec(Curve::P256),
            Es384 => spec == KeySpec::Ec(Curve::P384),
            Es512 => spec == KeySpec::Ec(Curve::P521),
            Es256K => spec == KeySpec::Ec(Curve::P256K),
            EdDsa => spec == KeySpec::Ed25519,
        };
        if fits {
            return Ok(());
        }
        let needs = match self {
            Es256 => "an EC P-256 key",
            Es384 => "an EC P-384 key",
            Es512 => "an EC P-521 key",
            Es256K => "an EC P-256K key",
            EdDsa => "an OKP Ed25519 key",
            _ => "an RSA key",
        };
        let has = match spec.curve() {
            Some(c) => format!("{} {}", spec.family_name(), c.jwk_name()),
            None => spec.family_name().to_owned(),
        };
        Err(ArcaError::bad_parameter("algorithm", format!("{} needs {needs}; this key is {has}", self.name())))
    }

    /// Checks the input length: the digest length for digest algorithms, a bounded message for EdDSA.
    pub fn check_input(self, input_len: usize) -> Result<(), ArcaError> {
        match self.digest_len() {
            Some(n) if n != input_len => Err(ArcaError::bad_parameter(
                "digest",
                format!("{} signs a {n}-byte digest; the request carried {input_len} bytes", self.name()),
            )),
            None if input_len > crate::limits::CRYPTO_INPUT_BYTES_MAX => Err(ArcaError::bad_parameter(
                "digest",
                format!(
                    "EdDSA signs the message itself, at most {} bytes; the request carried {input_len}",
                    crate::limits::CRYPTO_INPUT_BYTES_MAX
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The refusal for an operation the key's `key_ops` does not allow.
pub fn forbidden_op(op: KeyOp) -> ArcaError {
    ArcaError::new(ErrorCode::KeyOperationForbidden, format!("the key's key_ops do not allow '{}'", op.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in EncryptionAlgorithm::ALL {
            assert_eq!(EncryptionAlgorithm::parse(a.name()).unwrap(), a);
        }
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::parse(a.name()).unwrap(), a);
        }
        for op in KeyOp::ALL {
            assert_eq!(KeyOp::parse(op.name()).unwrap(), op);
        }
        assert!(EncryptionAlgorithm::parse("A256GCMX").is_err());
        assert!(SignatureAlgorithm::parse("rs256").is_err());
    }

    #[test]
    fn sizes_are_validated() {
        assert!(KeySpec::Rsa { bits: 2048 }.validate().is_ok());
        assert!(KeySpec::Rsa { bits: 1024 }.validate().is_err());
        assert!(KeySpec::Oct { bits: 192 }.validate().is_ok());
        assert!(KeySpec::Oct { bits: 512 }.validate().is_err());
        assert!(KeySpec::Ec(Curve::Ed25519).validate().is_err());
    }

    #[test]
    fn import_ops_stand_alone() {
        let rsa = KeySpec::Rsa { bits: 2048 };
        assert!(rsa.check_ops(&[KeyOp::Import]).is_ok());
        assert!(rsa.check_ops(&[KeyOp::Import, KeyOp::Sign]).is_err());
        assert!(rsa.check_ops(&[KeyOp::Sign, KeyOp::Sign]).is_err());
        assert!(KeySpec::Ec(Curve::P256).check_ops(&[KeyOp::Encrypt]).is_err());
        assert!(KeySpec::Oct { bits: 256 }.check_ops(&[KeyOp::Sign]).is_err());
        assert!(rsa.check_ops(&[KeyOp::Export]).is_err());
        assert!(!rsa.default_ops().contains(&KeyOp::Import));
    }
}
