//! JSON Web Tokens, read strictly: Arca's own access tokens (EdDSA, signed with the cluster's token
//! key) and, later, tokens others sign (client assertions, OIDC, Kubernetes).
//!
//! A token is three base64url segments without padding. Its `alg` must be one of the four Arca
//! accepts (`EdDSA`, `ES256`, `PS256`, `RS256`) and equal to the algorithm of the key it is checked
//! against: `none`, the `HS*` family and any other name are refused before a key is looked at, so a
//! public key can never be used as an HMAC secret. A header that names `crit` extensions is refused;
//! keys the header points at (`jwk`, `jku`, `x5u`, `x5c`) are never used. Claims are not read here:
//! this module only answers "did the holder of this key sign these bytes".

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::cluster_pki::Ed25519Key;

/// Why a token was refused. Messages name the rule, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url segments of JSON, or larger than allowed.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` is missing, not one Arca accepts, or not the algorithm of the key.
    #[error("the token's algorithm is not accepted: {0}")]
    Algorithm(String),
    /// The header asks for extensions (`crit`) Arca does not implement.
    #[error("the token names critical extensions, which are not supported")]
    Critical,
    /// The signature does not verify with the key.
    #[error("the token's signature does not verify")]
    Signature,
    /// A key could not be read.
    #[error("the key is not usable: {0}")]
    Key(&'static str),
}

/// The signature algorithms Arca accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    EdDSA,
    ES256,
    PS256,
    RS256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::PS256 => "PS256",
            Algorithm::RS256 => "RS256",
        }
    }

    /// The algorithm a header names, compared exactly (JOSE names are case-sensitive).
    pub fn parse(name: &str) -> Result<Self, JwtError> {
        match name {
            "EdDSA" => Ok(Algorithm::EdDSA),
            "ES256" => Ok(Algorithm::ES256),
            "PS256" => Ok(Algorithm::PS256),
            "RS256" => Ok(Algorithm::RS256),
            other => Err(JwtError::Algorithm(format!(
                "'{}' (accepted: EdDSA, ES256, PS256, RS256)",
                other.chars().take(16).collect::<String>()
            ))),
        }
    }
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Jws {
    pub algorithm: Algorithm,
    /// The header, a JSON object.
    pub header: serde_json::Map<String, serde_json::Value>,
    /// The payload bytes (claims JSON for a JWT), untrusted until [`verify`] passes.
    pub payload: Vec<u8>,
    signing_input_len: usize,
    token: String,
    signature: Vec<u8>,
}

impl Jws {
    /// A header member that is a string, if present.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(|v| v.as_str())
    }
}

fn segment(raw: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(raw).map_err(|_| JwtError::Malformed(what))
}

/// Splits and decodes a compact token of at most `bytes_max` bytes.
pub fn parse(token: &str, bytes_max: usize) -> Result<Jws, JwtError> {
    if token.len() > bytes_max {
        return Err(JwtError::Malformed("it is larger than allowed"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed("it is not three dot-separated segments"));
    };
    let header: serde_json::Value = serde_json::from_slice(&segment(h, "its header is not base64url")?)
        .map_err(|_| JwtError::Malformed("its header is not JSON"))?;
    let serde_json::Value::Object(header) = header else {
        return Err(JwtError::Malformed("its header is not a JSON object"));
    };
    let algorithm = match header.get("alg") {
        Some(serde_json::Value::String(name)) => Algorithm::parse(name)?,
        _ => return Err(JwtError::Algorithm("the header names none".into())),
    };
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    let payload = segment(p, "its payload is not base64url")?;
    let signature = segment(s, "its signature is not base64url")?;
    Ok(Jws { algorithm, header, payload, signing_input_len: h.len() + 1 + p.len(), token: token.to_owned(), signature })
}

/// A public key and the one algorithm it verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: Algorithm,
    /// Raw Ed25519 key, SEC1 uncompressed point, or PKCS#1 RSAPublicKey DER, as aws-lc-rs takes them.
    bytes: Vec<u8>,
}

impl PublicKey {
    pub fn ed25519(raw: &[u8]) -> Result<Self, JwtError> {
        if raw.len() != 32 {
            return Err(JwtError::Key("an Ed25519 public key is 32 bytes"));
        }
        Ok(Self { algorithm: Algorithm::EdDSA, bytes: raw.to_vec() })
    }

    /// A key as aws-lc-rs reads it for `algorithm`: a raw Ed25519 key, an uncompressed P-256 point,
    /// or a PKCS#1 RSAPublicKey.
    pub fn from_parts(algorithm: Algorithm, bytes: Vec<u8>) -> Result<Self, JwtError> {
        if algorithm == Algorithm::EdDSA && bytes.len() != 32 {
            return Err(JwtError::Key("an Ed25519 public key is 32 bytes"));
        }
        Ok(Self { algorithm, bytes })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn verifier(&self) -> &'static dyn signature::VerificationAlgorithm {
        match self.algorithm {
            Algorithm::EdDSA => &signature::ED25519,
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

/// Checks `jws`'s signature with `key`. The token's algorithm must be the key's.
pub fn verify(jws: &Jws, key: &PublicKey) -> Result<(), JwtError> {
    if jws.algorithm != key.algorithm {
        return Err(JwtError::Algorithm(format!(
            "the token says {} but its key is for {}",
            jws.algorithm.name(),
            key.algorithm.name()
        )));
    }
    let message = &jws.token.as_bytes()[..jws.signing_input_len];
    UnparsedPublicKey::new(key.verifier(), &key.bytes).verify(message, &jws.signature).map_err(|_| JwtError::Signature)
}

/// Signs a JWT with a PKCS#8 private key, for clients that prove possession of a certificate's key
/// (client assertions): `EdDSA` with an Ed25519 key, `ES256` with a P-256 key, `PS256` or `RS256` with
/// an RSA key. The header's `alg` is set to `algorithm`.
pub fn sign_with_pkcs8(
    algorithm: Algorithm,
    pkcs8: &[u8],
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, JwtError> {
    let mut header = header.clone();
    header["alg"] = serde_json::Value::String(algorithm.name().to_owned());
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let message = token.as_bytes();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signature = match algorithm {
        Algorithm::EdDSA => signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
            .map_err(|_| JwtError::Key("not an Ed25519 PKCS#8 key"))?
            .sign(message)
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|_| JwtError::Key("not a P-256 PKCS#8 key"))?
            .sign(&rng, message)
            .map_err(|_| JwtError::Key("signing failed"))?
            .as_ref()
            .to_vec(),
        Algorithm::PS256 | Algorithm::RS256 => {
            let pair = signature::RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| JwtError::Key("not an RSA PKCS#8 key"))?;
            let padding: &'static dyn signature::RsaEncoding =
                if algorithm == Algorithm::PS256 { &signature::RSA_PSS_SHA256 } else { &signature::RSA_PKCS1_SHA256 };
            let mut out = vec![0u8; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut out).map_err(|_| JwtError::Key("signing failed"))?;
            out
        }
    };
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(token)
}

/// Signs a JWT with an Ed25519 key: `header` must carry `"alg": "EdDSA"`.
pub fn sign_eddsa(key: &Ed25519Key, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(signature));
    token
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::DangerSeededEntropy;
    use serde_json::json;

    fn key(seed: u64) -> Ed25519Key {
        Ed25519Key::generate(&DangerSeededEntropy::new(seed))
    }

    fn public(k: &Ed25519Key) -> PublicKey {
        PublicKey::ed25519(&k.public_key()).unwrap()
    }

    fn token(k: &Ed25519Key) -> String {
        sign_eddsa(k, &json!({"alg": "EdDSA", "typ": "at+jwt"}), &json!({"sub": "p", "exp": 5}))
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_only() {
        let (k, other) = (key(1), key(2));
        let jws = parse(&token(&k), 4096).unwrap();
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&jws.payload).unwrap()["sub"], "p");
        assert_eq!(jws.header_str("typ"), Some("at+jwt"));
        verify(&jws, &public(&k)).unwrap();
        assert_eq!(verify(&jws, &public(&other)), Err(JwtError::Signature));
    }

    #[test]
    fn any_changed_byte_fails_the_signature_or_the_format() {
        let k = key(3);
        let t = token(&k);
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let Ok(changed) = String::from_utf8(bytes) else { continue };
            let verdict = parse(&changed, 4096).and_then(|jws| verify(&jws, &public(&k)));
            assert!(verdict.is_err(), "a change at {i} went unnoticed");
        }
    }

    fn forged(header: serde_json::Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(json!({"sub": "root"}).to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn none_hmac_and_unknown_algorithms_are_refused_before_any_key() {
        for alg in ["none", "None", "HS256", "HS512", "eddsa", "RS512", "ES256K", ""] {
            let t = forged(json!({"alg": alg}), b"");
            assert!(matches!(parse(&t, 4096), Err(JwtError::Algorithm(_))), "{alg}");
        }
        assert!(matches!(parse(&forged(json!({"typ": "JWT"}), b""), 4096), Err(JwtError::Algorithm(_))));
        assert!(matches!(parse(&forged(json!({"alg": 7}), b""), 4096), Err(JwtError::Algorithm(_))));
        // An HS256 token "signed" with the public key as the HMAC secret is refused at its alg.
        let k = key(4);
        let t = forged(json!({"alg": "HS256"}), &k.public_key());
        assert!(parse(&t, 4096).is_err());
        // A token that says ES256 is not checked with an Ed25519 key.
        let t = forged(json!({"alg": "ES256"}), &[0; 64]);
        assert!(matches!(verify(&parse(&t, 4096).unwrap(), &public(&k)), Err(JwtError::Algorithm(_))));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let k = key(5);
        let t = token(&k);
        let cases = [
            String::new(),
            "a.b".to_owned(),
            format!("{t}.x"),
            t.replacen('.', "..", 1),
            format!("{t}="),
            format!("{}.{}", forged(json!("just a string"), b"").rsplit_once('.').unwrap().0, "AA"),
            format!("{}.e30.AA", URL_SAFE_NO_PAD.encode("not json")),
        ];
        for c in cases {
            assert!(parse(&c, 4096).and_then(|j| verify(&j, &public(&k))).is_err(), "{c}");
        }
        assert!(matches!(parse(&forged(json!({"alg": "EdDSA", "crit": ["exp"]}), b""), 4096), Err(JwtError::Critical)));
        assert!(matches!(parse(&t, t.len() - 1), Err(JwtError::Malformed(_))), "one byte over the limit");
        assert!(parse(&t, t.len()).is_ok(), "at the limit");
    }
}
