//! Client assertions (RFC 7523): a service principal proves it holds a registered certificate's key
//! by signing a short-lived JWT with it, instead of sending a secret.
//!
//! The assertion's header names the certificate by `x5t#S256` and the algorithm its key signs with
//! (`PS256` for RSA, `ES256` for P-256, `EdDSA` for Ed25519; nothing else, and never a key the header
//! itself carries). Its claims must say who is asking and for whom: `iss` and `sub` are the client
//! id, `aud` this cluster's token endpoint (a string, or an array holding it), `exp` at most
//! [`CLIENT_ASSERTION_LIFETIME_S_MAX`] ahead, and `jti` an id the cluster takes only once.

use arca_crypto::client_cert;
use arca_crypto::jwt::{self, Algorithm};
use arca_types::limits::{ACCESS_TOKEN_CLOCK_SKEW_S, CLIENT_ASSERTION_BYTES_MAX, CLIENT_ASSERTION_LIFETIME_S_MAX};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The `client_assertion_type` a token request names.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest `jti` accepted, in characters.
pub const JTI_CHARS_MAX: usize = 128;

/// Why an assertion was refused (the token endpoint answers every one alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("{0}")]
    Jwt(#[from] jwt::JwtError),
    #[error("the assertion does not name its certificate by x5t#S256")]
    NoThumbprint,
    #[error("the assertion's algorithm is not PS256, ES256 or EdDSA")]
    Algorithm,
    #[error("the assertion's claims are malformed")]
    Claims,
    #[error("the assertion is not from this client (iss and sub must be its client id)")]
    Issuer,
    #[error("the assertion is not for this cluster's token endpoint")]
    Audience,
    #[error("the assertion has expired")]
    Expired,
    #[error("the assertion is valid for longer than allowed")]
    Lifetime,
    #[error("the assertion is not valid yet")]
    NotYetValid,
}

/// `aud` as a string or an array of strings: both mean "these audiences".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(list) => list.iter().any(|a| a == wanted),
        }
    }
}

/// The claims Arca reads. Others may be present; these must have their JSON types.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    aud: Audience,
    iss: String,
    sub: String,
    jti: String,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
}

/// An assertion split and read, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Assertion {
    jws: jwt::Jws,
    /// The SHA-256 thumbprint of the certificate it names.
    pub thumbprint: [u8; 32],
}

/// This cluster's token endpoint, as assertions must name it in `aud`.
pub fn audience(cluster_id: &[u8; 16]) -> String {
    format!("{}/oauth2/token", crate::access_token::issuer(cluster_id))
}

/// Reads an assertion's header: its algorithm (PS256, ES256, EdDSA) and the certificate it names.
pub fn parse(token: &str) -> Result<Assertion, AssertionError> {
    let jws = jwt::parse(token, CLIENT_ASSERTION_BYTES_MAX)?;
    if !matches!(jws.algorithm, Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA) {
        return Err(AssertionError::Algorithm);
    }
    let x5t = jws.header_str("x5t#S256").ok_or(AssertionError::NoThumbprint)?;
    let thumbprint: [u8; 32] =
        URL_SAFE_NO_PAD.decode(x5t).ok().and_then(|b| b.try_into().ok()).ok_or(AssertionError::NoThumbprint)?;
    Ok(Assertion { jws, thumbprint })
}

/// What a checked assertion says: its id, and until when it could be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub jti: String,
    pub expires: i64,
}

impl Assertion {
    /// Checks the assertion: signed by the key of `spki_der` (the registered certificate's, matched as a
    /// whole key), from `client_id`, for `audience`, and valid at `now`. Whether its `jti` was seen
    /// before is the caller's lookup.
    pub fn verify(
        &self,
        spki_der: &[u8],
        client_id: &str,
        audience: &str,
        now: i64,
    ) -> Result<Accepted, AssertionError> {
        let key = client_cert::assertion_key(spki_der, Some(self.jws.algorithm))?;
        jwt::verify(&self.jws, &key)?;
        let claims: Claims = serde_json::from_slice(&self.jws.payload).map_err(|_| AssertionError::Claims)?;
        if claims.iss != client_id || claims.sub != client_id {
            return Err(AssertionError::Issuer);
        }
        if !claims.aud.contains(audience) {
            return Err(AssertionError::Audience);
        }
        if claims.jti.is_empty() || claims.jti.chars().count() > JTI_CHARS_MAX {
            return Err(AssertionError::Claims);
        }
        if now >= claims.exp.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S) {
            return Err(AssertionError::Expired);
        }
        let issued = claims.iat.unwrap_or(now).min(now);
        if claims.exp.saturating_sub(issued) > CLIENT_ASSERTION_LIFETIME_S_MAX + ACCESS_TOKEN_CLOCK_SKEW_S {
            return Err(AssertionError::Lifetime);
        }
        if claims.nbf.is_some_and(|nbf| nbf > now.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S)) {
            return Err(AssertionError::NotYetValid);
        }
        Ok(Accepted { jti: claims.jti, expires: claims.exp })
    }
}

/// Builds an assertion as a client does: signed with the certificate's key, naming it by thumbprint,
/// valid for five minutes.
pub fn build(
    client_id: &str,
    audience: &str,
    cert_der: &[u8],
    key_pkcs8: &[u8],
    algorithm: Algorithm,
    jti: &str,
    now: i64,
) -> Result<String, AssertionError> {
    let header = serde_json::json!({"typ": "JWT", "x5t#S256": client_cert::thumbprint(cert_der)});
    let claims = serde_json::json!({
        "aud": audience, "iss": client_id, "sub": client_id, "jti": jti,
        "iat": now, "nbf": now, "exp": now + 300,
    });
    Ok(jwt::sign_with_pkcs8(algorithm, key_pkcs8, &header, &claims)?)
}
