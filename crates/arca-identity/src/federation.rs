//! Workload identity federation, as Azure has it: a service principal or managed identity trusts
//! tokens another identity provider issues (a Kubernetes service account token, a CI system's OIDC
//! token) through a *federated credential* naming the issuer, the subject and the audience. The
//! workload sends the provider's JWT as its client assertion; Arca checks it against the issuer's
//! published keys (a JWKS) and issues its own access token.
//!
//! Pure: the JWKS is handed in. Accepted: `RS256`, `PS256` (RSA keys of 2048 bits or more), `ES256`
//! (P-256) and `EdDSA` (Ed25519); never `none`, never an HMAC, never a key the token itself carries
//! (`jwk`, `jku`, `x5u`, `x5c` in its header are ignored, not followed). `iss` must be the issuer
//! exactly, `exp` is required, and the times are checked with [`ACCESS_TOKEN_CLOCK_SKEW_S`] of skew.

use arca_crypto::jwt::{self, Algorithm, PublicKey};
use arca_types::limits::{ACCESS_TOKEN_CLOCK_SKEW_S, CLIENT_ASSERTION_BYTES_MAX};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Largest JWKS read, in bytes, and most keys taken from it.
pub const JWKS_BYTES_MAX: usize = 64 * 1024;
pub const JWKS_KEYS_MAX: usize = 64;
/// Most groups taken from a token's `groups` claim.
pub const GROUPS_CLAIM_MAX: usize = 200;

/// Why an external token was refused (the token endpoint answers every one alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    #[error("{0}")]
    Jwt(#[from] jwt::JwtError),
    #[error("the JWKS is not valid: {0}")]
    Jwks(&'static str),
    #[error("no key of the issuer's JWKS matches the token's kid and algorithm")]
    UnknownKey,
    #[error("the token's claims are malformed")]
    Claims,
    #[error("the token is not from the expected issuer")]
    Issuer,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// The key material of one JWK, by family.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    /// An uncompressed P-256 point.
    P256(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// One key of an issuer's JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The algorithm the JWK is restricted to, if it names one.
    pub alg: Option<String>,
    material: Material,
}

impl Jwk {
    /// This key as a verifier for `algorithm`, if its family is that algorithm's.
    fn for_algorithm(&self, algorithm: Algorithm) -> Option<PublicKey> {
        if self.alg.as_deref().is_some_and(|a| a != algorithm.name()) {
            return None;
        }
        let bytes = match (&self.material, algorithm) {
            (Material::Rsa(der), Algorithm::RS256 | Algorithm::PS256) => der.clone(),
            (Material::P256(point), Algorithm::ES256) => point.clone(),
            (Material::Ed25519(raw), Algorithm::EdDSA) => raw.clone(),
            _ => return None,
        };
        PublicKey::from_parts(algorithm, bytes).ok()
    }
}

fn b64(value: Option<&serde_json::Value>, what: &'static str) -> Result<Vec<u8>, FederationError> {
    let text = value.and_then(|v| v.as_str()).ok_or(FederationError::Jwks(what))?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| FederationError::Jwks(what))
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len().saturating_sub(1));
        &bytes[first..]
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(trimmed);
    let mut out = vec![0x02];
    out.extend(der_length(content.len()));
    out.extend(content);
    out
}

fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        return vec![len as u8];
    }
    let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

/// Reads a JWKS (`{"keys": [...]}`): RSA (`n`, `e`; 2048 bits or more), EC P-256 (`x`, `y`) and OKP
/// Ed25519 (`x`) keys meant for signing; keys of other kinds are skipped, not refused, as providers
/// publish keys Arca does not use.
pub fn parse_jwks(json: &str) -> Result<Vec<Jwk>, FederationError> {
    if json.len() > JWKS_BYTES_MAX {
        return Err(FederationError::Jwks("it is larger than 64 KiB"));
    }
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|_| FederationError::Jwks("it is not JSON"))?;
    let keys = doc.get("keys").and_then(|k| k.as_array()).ok_or(FederationError::Jwks("it has no keys array"))?;
    if keys.len() > JWKS_KEYS_MAX {
        return Err(FederationError::Jwks("it has more than 64 keys"));
    }
    let mut out = Vec::new();
    for key in keys {
        if key.get("use").and_then(|u| u.as_str()).is_some_and(|u| u != "sig") {
            continue;
        }
        let material = match (key.get("kty").and_then(|k| k.as_str()), key.get("crv").and_then(|c| c.as_str())) {
            (Some("RSA"), _) => {
                let n = b64(key.get("n"), "an RSA key's n is not base64url")?;
                let e = b64(key.get("e"), "an RSA key's e is not base64url")?;
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) || e.is_empty() || e.len() > 8 {
                    return Err(FederationError::Jwks("an RSA key is not 2048 to 8192 bits"));
                }
                let mut content = der_integer(&n);
                content.extend(der_integer(&e));
                let mut der = vec![0x30];
                der.extend(der_length(content.len()));
                der.extend(content);
                Material::Rsa(der)
            }
            (Some("EC"), Some("P-256")) => {
                let x = b64(key.get("x"), "an EC key's x is not base64url")?;
                let y = b64(key.get("y"), "an EC key's y is not base64url")?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(FederationError::Jwks("a P-256 key's coordinates are not 32 bytes"));
                }
                Material::P256([&[0x04][..], &x, &y].concat())
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = b64(key.get("x"), "an Ed25519 key's x is not base64url")?;
                if x.len() != 32 {
                    return Err(FederationError::Jwks("an Ed25519 key is not 32 bytes"));
                }
                Material::Ed25519(x)
            }
            _ => continue,
        };
        let text = |name: &str| key.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        out.push(Jwk { kid: text("kid"), alg: text("alg"), material });
    }
    if out.is_empty() {
        return Err(FederationError::Jwks("it holds no RSA, P-256 or Ed25519 signing key"));
    }
    Ok(out)
}

/// What Arca takes from a verified external token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalClaims {
    pub iss: String,
    pub sub: String,
    /// `aud` as a string or an array.
    pub aud: Vec<String>,
    pub exp: i64,
    /// The `groups` claim, if any (strings only).
    pub groups: Vec<String>,
    /// OpenID Connect's authorized party: the client the token was issued to.
    pub azp: Option<String>,
    /// Every claim, for a credential's bound claims.
    pub all: serde_json::Value,
}

impl ExternalClaims {
    /// Whether the token carries `claim` (a top-level name, or a JSON pointer starting with `/`)
    /// with one of `values`: a string equal to one, or an array holding one. Numbers and booleans
    /// are compared as their JSON text (`true`, `42`); objects never match.
    pub fn carries(&self, claim: &str, values: &[String]) -> bool {
        let found = if claim.starts_with('/') { self.all.pointer(claim) } else { self.all.get(claim) };
        let matches = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => values.iter().any(|want| want == s),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => {
                let text = v.to_string();
                values.contains(&text)
            }
            _ => false,
        };
        match found {
            Some(serde_json::Value::Array(items)) => items.iter().any(matches),
            Some(other) => matches(other),
            None => false,
        }
    }

    /// Whether an ID token was issued to `client_id` (OpenID Connect Core §3.1.3.7): its only
    /// audience, or, when it has several, its authorized party too. A token issued for another
    /// service that merely lists the client among its audiences is not.
    pub fn issued_to(&self, client_id: &str) -> bool {
        match self.aud.as_slice() {
            [only] => only == client_id,
            many => many.iter().any(|a| a == client_id) && self.azp.as_deref() == Some(client_id),
        }
    }
}

/// The `iss` a token claims, read without checking anything (to pick the credential to check it
/// against; nothing else may rely on it).
pub fn unverified_issuer(token: &str) -> Option<String> {
    unverified_text(&unverified_claims(token)?, "iss")
}

/// The `iss` and `sub` a token claims, read without checking anything (to find the user whose
/// credential it is then checked against; nothing else may rely on them).
pub fn unverified_issuer_and_subject(token: &str) -> Option<(String, String)> {
    let claims = unverified_claims(token)?;
    Some((unverified_text(&claims, "iss")?, unverified_text(&claims, "sub")?))
}

/// A token's payload as JSON, unchecked; `None` past the size an external token may have.
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    if token.len() > CLIENT_ASSERTION_BYTES_MAX {
        return None;
    }
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

fn unverified_text(claims: &serde_json::Value, name: &str) -> Option<String> {
    claims.get(name)?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

fn strings(value: Option<&serde_json::Value>) -> Option<Vec<String>> {
    match value {
        None => Some(Vec::new()),
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
        Some(_) => None,
    }
}

/// Checks an external token against its issuer's keys: the signature (by `kid`, or the issuer's only
/// key of the token's algorithm when it names none), `iss` equal to `issuer`, `exp` required and not
/// passed, `nbf`/`iat` not ahead. Subject and audience are the credential's to check.
pub fn verify(token: &str, keys: &[Jwk], issuer: &str, now: i64) -> Result<ExternalClaims, FederationError> {
    let jws = jwt::parse(token, CLIENT_ASSERTION_BYTES_MAX)?;
    // An access token (RFC 9068) is for the service it names, never a sign-in to Arca.
    if jws.header_str("typ").is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == "at+jwt" || t == "application/at+jwt"
    }) {
        return Err(FederationError::Claims);
    }
    let kid = jws.header_str("kid");
    let candidates: Vec<PublicKey> = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid)
        .filter_map(|k| k.for_algorithm(jws.algorithm))
        .collect();
    let key = match (kid, candidates.as_slice()) {
        (_, [only]) => only,
        (Some(_), [first, ..]) => first,
        _ => return Err(FederationError::UnknownKey),
    };
    jwt::verify(&jws, key)?;
    let claims: serde_json::Value = serde_json::from_slice(&jws.payload).map_err(|_| FederationError::Claims)?;
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let time = |name: &str| claims.get(name).and_then(|v| v.as_i64());
    if text("iss").as_deref() != Some(issuer) {
        return Err(FederationError::Issuer);
    }
    let sub = text("sub").filter(|s| !s.is_empty()).ok_or(FederationError::Claims)?;
    let aud = strings(claims.get("aud")).filter(|a| !a.is_empty()).ok_or(FederationError::Claims)?;
    let exp = time("exp").ok_or(FederationError::Claims)?;
    if now >= exp.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S) {
        return Err(FederationError::Expired);
    }
    let not_before = time("nbf").into_iter().chain(time("iat")).max();
    if not_before.is_some_and(|t| now.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S) < t) {
        return Err(FederationError::NotYetValid);
    }
    let mut groups = strings(claims.get("groups")).unwrap_or_default();
    groups.truncate(GROUPS_CLAIM_MAX);
    let azp = text("azp");
    Ok(ExternalClaims { iss: issuer.to_owned(), sub, aud, exp, groups, azp, all: claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::cluster_pki::Ed25519Key;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://issuer.example";

    fn ed25519_jwks(key: &Ed25519Key, kid: &str) -> String {
        json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(key.public_key()) }] })
        .to_string()
    }

    fn token(key: &Ed25519Key, kid: &str, claims: serde_json::Value) -> String {
        jwt::sign_eddsa(key, &json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }), &claims)
    }

    fn claims() -> serde_json::Value {
        json!({ "iss": ISSUER, "sub": "system:serviceaccount:prod:app", "aud": ["api://ArcaTokenExchange"],
            "exp": NOW + 600, "iat": NOW, "groups": ["ops", "dev"] })
    }

    #[test]
    fn bound_claims_match_strings_arrays_and_pointers_exactly() {
        let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let keys = parse_jwks(&ed25519_jwks(&key, "k1")).unwrap();
        let mut c = claims();
        c["repository"] = "acme/app".into();
        c["run_attempt"] = 2.into();
        c["kubernetes.io"] = json!({ "namespace": "prod", "serviceaccount": { "name": "app" } });
        let got = verify(&token(&key, "k1", c), &keys, ISSUER, NOW).unwrap();
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(got.carries("repository", &v(&["other/app", "acme/app"])));
        assert!(!got.carries("repository", &v(&["acme/App"])), "exact, case and all");
        assert!(!got.carries("repository", &v(&["acme/app/"])));
        assert!(got.carries("groups", &v(&["dev"])), "an array holds one of the values");
        assert!(!got.carries("groups", &v(&["admins"])));
        assert!(got.carries("/kubernetes.io/namespace", &v(&["prod"])));
        assert!(got.carries("/kubernetes.io/serviceaccount/name", &v(&["app"])));
        assert!(!got.carries("/kubernetes.io", &v(&["prod"])), "an object never matches");
        assert!(!got.carries("kubernetes.io/namespace", &v(&["prod"])), "a name is not a pointer");
        assert!(got.carries("run_attempt", &v(&["2"])));
        assert!(!got.carries("missing", &v(&[""])));
    }

    #[test]
    fn an_id_token_is_issued_to_its_only_audience_or_its_authorized_party() {
        let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let keys = parse_jwks(&ed25519_jwks(&key, "k1")).unwrap();
        let with = |aud: serde_json::Value, azp: Option<&str>| {
            let mut c = claims();
            c["aud"] = aud;
            if let Some(azp) = azp {
                c["azp"] = azp.into();
            }
            verify(&token(&key, "k1", c), &keys, ISSUER, NOW).unwrap()
        };
        assert!(with(json!("arca"), None).issued_to("arca"));
        assert!(with(json!(["arca"]), None).issued_to("arca"));
        assert!(!with(json!(["arca", "other"]), None).issued_to("arca"), "several audiences need azp");
        assert!(!with(json!(["other", "arca"]), Some("other")).issued_to("arca"));
        assert!(with(json!(["other", "arca"]), Some("arca")).issued_to("arca"));
        // An access token of the provider's (RFC 9068) is refused outright.
        let at = jwt::sign_eddsa(&key, &json!({ "alg": "EdDSA", "typ": "at+JWT", "kid": "k1" }), &claims());
        assert_eq!(verify(&at, &keys, ISSUER, NOW), Err(FederationError::Claims));
    }

    #[test]
    fn a_token_signed_with_the_issuers_key_is_accepted_with_its_claims() {
        let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let keys = parse_jwks(&ed25519_jwks(&key, "k1")).unwrap();
        let got = verify(&token(&key, "k1", claims()), &keys, ISSUER, NOW).unwrap();
        assert_eq!(got.sub, "system:serviceaccount:prod:app");
        assert_eq!(got.aud, ["api://ArcaTokenExchange"]);
        assert_eq!(got.groups, ["ops", "dev"]);
        let mut one_aud = claims();
        one_aud["aud"] = json!("api://ArcaTokenExchange");
        assert_eq!(verify(&token(&key, "k1", one_aud), &keys, ISSUER, NOW).unwrap().aud, ["api://ArcaTokenExchange"]);
        assert_eq!(unverified_issuer(&token(&key, "k1", claims())).as_deref(), Some(ISSUER));
    }

    #[test]
    fn forged_misdirected_and_stale_tokens_are_refused() {
        let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let other = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let keys = parse_jwks(&ed25519_jwks(&key, "k1")).unwrap();
        // Another key, even under the right kid.
        assert!(verify(&token(&other, "k1", claims()), &keys, ISSUER, NOW).is_err());
        // A kid the issuer does not publish.
        assert_eq!(verify(&token(&key, "k9", claims()), &keys, ISSUER, NOW), Err(FederationError::UnknownKey));
        // Another issuer, or an issuer that only looks the same.
        for iss in ["https://evil.example", "https://issuer.example/", "HTTPS://issuer.example"] {
            let mut c = claims();
            c["iss"] = json!(iss);
            assert_eq!(verify(&token(&key, "k1", c), &keys, ISSUER, NOW), Err(FederationError::Issuer), "{iss}");
        }
        // Expired (past the skew), not yet valid, no exp, no sub, no aud.
        let mut c = claims();
        c["exp"] = json!(NOW - ACCESS_TOKEN_CLOCK_SKEW_S);
        assert_eq!(verify(&token(&key, "k1", c), &keys, ISSUER, NOW), Err(FederationError::Expired));
        let mut c = claims();
        c["nbf"] = json!(NOW + ACCESS_TOKEN_CLOCK_SKEW_S + 1);
        assert_eq!(verify(&token(&key, "k1", c), &keys, ISSUER, NOW), Err(FederationError::NotYetValid));
        for missing in ["exp", "sub", "aud"] {
            let mut c = claims();
            c.as_object_mut().unwrap().remove(missing);
            assert_eq!(verify(&token(&key, "k1", c), &keys, ISSUER, NOW), Err(FederationError::Claims), "{missing}");
        }
        // alg none, and HS256 keyed with the public key (the classic confusion), are refused outright.
        let good = token(&key, "k1", claims());
        let payload = good.split('.').nth(1).unwrap();
        for alg in ["none", "HS256"] {
            let header = URL_SAFE_NO_PAD.encode(json!({ "alg": alg, "kid": "k1" }).to_string());
            let forged = format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(key.public_key()));
            assert!(verify(&forged, &keys, ISSUER, NOW).is_err(), "{alg}");
        }
        // A key the token carries in its own header is never used.
        let header = URL_SAFE_NO_PAD.encode(
            json!({ "alg": "EdDSA", "kid": "k9", "jwk": { "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(other.public_key()) } })
            .to_string(),
        );
        let signed = token(&other, "k9", claims());
        let forged = format!("{header}.{}", signed.split_once('.').unwrap().1);
        assert!(verify(&forged, &keys, ISSUER, NOW).is_err());
    }

    #[test]
    fn jwks_are_read_strictly_and_within_their_limits() {
        let key = Ed25519Key::generate(&arca_crypto::OsEntropy);
        let x = URL_SAFE_NO_PAD.encode(key.public_key());
        // Keys of kinds Arca does not use are skipped; encryption keys too.
        let mixed = json!({ "keys": [
            { "kty": "oct", "k": "AAAA" },
            { "kty": "OKP", "crv": "X25519", "x": x },
            { "kty": "OKP", "crv": "Ed25519", "x": x, "use": "enc" },
            { "kty": "OKP", "crv": "Ed25519", "x": x, "kid": "sig" },
        ] });
        let keys = parse_jwks(&mixed.to_string()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("sig"));
        for bad in [
            "not json".to_owned(),
            json!({}).to_string(),
            json!({ "keys": [] }).to_string(),
            json!({ "keys": [{ "kty": "RSA", "n": "AQAB", "e": "AQAB" }] }).to_string(),
            json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA" }] }).to_string(),
            json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": "!!" }] }).to_string(),
        ] {
            assert!(parse_jwks(&bad).is_err(), "{bad}");
        }
        let one = json!({ "kty": "OKP", "crv": "Ed25519", "x": x });
        let at_limit = json!({ "keys": vec![one.clone(); JWKS_KEYS_MAX] }).to_string();
        assert_eq!(parse_jwks(&at_limit).unwrap().len(), JWKS_KEYS_MAX);
        let past = json!({ "keys": vec![one; JWKS_KEYS_MAX + 1] }).to_string();
        assert!(parse_jwks(&past).is_err());
        let padded = format!(
            "{{\"keys\":[{}],\"pad\":\"{}\"}}",
            json!({ "kty": "OKP", "crv": "Ed25519", "x": x }),
            "p".repeat(JWKS_BYTES_MAX)
        );
        assert!(parse_jwks(&padded).is_err());
    }

    #[test]
    fn rsa_and_p256_keys_verify_the_tokens_they_signed() {
        use arca_crypto::keys::{generate, LoadedKey};
        use arca_types::keys::{Curve, KeySpec};
        let spec = KeySpec::Rsa { bits: 2048 };
        let rsa = generate(spec).unwrap();
        let public = LoadedKey::load(spec, &rsa).unwrap().public_jwk();
        let jwks = json!({ "keys": [{ "kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(&public.n),
            "e": URL_SAFE_NO_PAD.encode(&public.e) }] });
        let keys = parse_jwks(&jwks.to_string()).unwrap();
        for alg in [Algorithm::RS256, Algorithm::PS256] {
            let t = jwt::sign_with_pkcs8(alg, rsa.expose(), &json!({ "kid": "r" }), &claims()).unwrap();
            assert!(verify(&t, &keys, ISSUER, NOW).is_ok(), "{alg:?}");
        }
        let spec = KeySpec::Ec(Curve::P256);
        let ec = generate(spec).unwrap();
        let public = LoadedKey::load(spec, &ec).unwrap().public_jwk();
        let jwks = json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "e",
            "x": URL_SAFE_NO_PAD.encode(&public.x), "y": URL_SAFE_NO_PAD.encode(&public.y) }] });
        let keys = parse_jwks(&jwks.to_string()).unwrap();
        let t = jwt::sign_with_pkcs8(Algorithm::ES256, ec.expose(), &json!({ "kid": "e" }), &claims()).unwrap();
        assert!(verify(&t, &keys, ISSUER, NOW).is_ok());
        // The P-256 key does not verify an RS256 token, whatever its kid says.
        let rsa_token =
            jwt::sign_with_pkcs8(Algorithm::RS256, rsa.expose(), &json!({ "kid": "e" }), &claims()).unwrap();
        assert_eq!(verify(&rsa_token, &keys, ISSUER, NOW), Err(FederationError::UnknownKey));
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0x00, 0x00, 0x7f]), vec![0x02, 0x01, 0x7f]);
        assert_eq!(der_integer(&[0x80]), vec![0x02, 0x02, 0x00, 0x80]);
        assert_eq!(der_length(0x80), vec![0x81, 0x80]);
        assert_eq!(der_length(0x1234), vec![0x82, 0x12, 0x34]);
    }
}
