//! Arca access tokens: JWTs signed with the cluster's Ed25519 token key (`alg: EdDSA`, `typ:
//! at+jwt`, `kid` naming the key), carrying who the caller is (the principal id) and never what it
//! may do: roles are looked up on every request, so a changed assignment applies at once.
//!
//! Claims are read into a typed struct: a claim of the wrong JSON type (`"exp": "tomorrow"`) makes
//! the whole token invalid, never an absent claim, and unknown claims are refused.

use arca_crypto::cluster_pki::Ed25519Key;
use arca_crypto::jwt::{self, PublicKey};
use arca_types::limits::{ACCESS_TOKEN_CLOCK_SKEW_S, ACCESS_TOKEN_LIFETIME_S_MAX, BEARER_TOKEN_BYTES_MAX};
use serde::{Deserialize, Serialize};

/// The `typ` every Arca access token carries (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// The format version in the `ver` claim.
pub const TOKEN_VERSION: &str = "arca-1";

/// How the caller signed in, in the token's `amr` (authentication methods) claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A client secret at the token endpoint.
    ClientSecret,
    /// A client assertion signed with a registered certificate's key.
    ClientAssertion,
    /// A certificate presented over mutual TLS.
    ClientCertificate,
    /// The managed-identity agent vouched for a workload.
    ManagedIdentity,
    /// A token from a trusted OIDC issuer.
    Federated,
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The cluster that issued it: `arca://<cluster id>`.
    pub iss: String,
    /// Who it is for: the same cluster.
    pub aud: String,
    /// The principal's id (a UUID).
    pub sub: String,
    /// The principal's client id, for service principals and managed identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// The principal's kind, Azure's `principalType`.
    pub idtyp: String,
    pub amr: Vec<AuthMethod>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The token's own id (a UUID): what revokes this one token.
    pub jti: String,
    /// The principal's token generation when the token was issued: revoking every token of the
    /// principal moves it on.
    pub gen: u64,
    pub ver: String,
    /// RFC 8705: the certificate the token is bound to (a token fetched over mutual TLS). Every call
    /// made with it must come over a connection that presented that certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Arca groups (UUIDs) the principal is in by the `groups` claim of the provider it signed in
    /// through (a user), beside those it is a member of in Arca.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grp: Vec<String>,
}

/// RFC 8705's confirmation claim: the SHA-256 thumbprint of the bound certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// base64url (no padding) of the SHA-256 of the certificate's DER.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

/// Why a token was refused. None of them says more than that to a caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Jwt(#[from] jwt::JwtError),
    #[error("the token is not an Arca access token: {0}")]
    NotAccessToken(&'static str),
    #[error("the token was signed with a key this cluster does not know")]
    UnknownKey,
    #[error("the token's claims are malformed")]
    Claims,
    #[error("the token was issued by another cluster")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token claims a lifetime longer than any Arca issues")]
    Lifetime,
}

/// One of the cluster's token keys, public half: what a node checks tokens with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKey {
    /// The key id in a token's header: the first 8 bytes of the SHA-256 of the public key, in hex.
    pub kid: String,
    pub public: Vec<u8>,
}

impl TokenKey {
    pub fn of(key: &Ed25519Key) -> Self {
        let public = key.public_key();
        let kid = hex_prefix(&arca_crypto::cluster_pki::sha256(&public));
        Self { kid, public }
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The issuer (and audience) name of a cluster's tokens.
pub fn issuer(cluster_id: &[u8; 16]) -> String {
    format!("arca://{}", cluster_id.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Signs `claims` with the cluster's token key.
pub fn issue(key: &Ed25519Key, claims: &AccessClaims) -> String {
    let header = serde_json::json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": TokenKey::of(key).kid});
    let claims = serde_json::to_value(claims).expect("claims serialize");
    jwt::sign_eddsa(key, &header, &claims)
}

/// Whether a bearer token has the shape of an access token (three segments) rather than a root token.
pub fn looks_like_access_token(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The `exp` of a token [`verify`] already accepted (read again without checking anything).
pub fn expiry_of_verified(token: &str) -> Option<i64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_i64()
}

/// Checks an access token: signed by one of `keys`, issued by and for `issuer`, and valid at `now`
/// (with [`ACCESS_TOKEN_CLOCK_SKEW_S`] of skew either way). Says nothing of whether its principal
/// still exists or was revoked: that is the caller's lookup.
pub fn verify(token: &str, keys: &[TokenKey], issuer: &str, now: i64) -> Result<AccessClaims, TokenError> {
    let jws = jwt::parse(token, BEARER_TOKEN_BYTES_MAX)?;
    if jws.header_str("typ") != Some(TOKEN_TYPE) {
        return Err(TokenError::NotAccessToken("its typ is not at+jwt"));
    }
    let kid = jws.header_str("kid").ok_or(TokenError::NotAccessToken("it names no key"))?;
    let key = keys.iter().find(|k| k.kid == kid).ok_or(TokenError::UnknownKey)?;
    jwt::verify(&jws, &PublicKey::ed25519(&key.public)?)?;
    let claims: AccessClaims = serde_json::from_slice(&jws.payload).map_err(|_| TokenError::Claims)?;
    if claims.ver != TOKEN_VERSION {
        return Err(TokenError::Claims);
    }
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != issuer {
        return Err(TokenError::WrongAudience);
    }
    if claims.exp.saturating_sub(claims.iat) > ACCESS_TOKEN_LIFETIME_S_MAX || claims.nbf > claims.exp {
        return Err(TokenError::Lifetime);
    }
    if now >= claims.exp.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(ACCESS_TOKEN_CLOCK_SKEW_S) < claims.nbf.max(claims.iat) {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arca_crypto::entropy::DangerSeededEntropy;

    const NOW: i64 = 1_800_000_000;

    fn key(seed: u64) -> Ed25519Key {
        Ed25519Key::generate(&DangerSeededEntropy::new(seed))
    }

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: issuer(&[1; 16]),
            aud: issuer(&[1; 16]),
            sub: "11111111-1111-1111-1111-111111111111".into(),
            appid: Some("22222222-2222-2222-2222-222222222222".into()),
            idtyp: "ServicePrincipal".into(),
            amr: vec![AuthMethod::ClientSecret],
            iat: NOW,
            nbf: NOW,
            exp: NOW + 3600,
            jti: "33333333-3333-3333-3333-333333333333".into(),
            gen: 0,
            ver: TOKEN_VERSION.into(),
            cnf: None,
            grp: vec![],
        }
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let k = key(1);
        let t = issue(&k, &claims());
        let keys = [TokenKey::of(&k)];
        assert!(looks_like_access_token(&t) && !looks_like_access_token("arca.00ff"));
        assert_eq!(verify(&t, &keys, &issuer(&[1; 16]), NOW).unwrap(), claims());
        assert!(verify(&t, &keys, &issuer(&[1; 16]), NOW + 3600 + ACCESS_TOKEN_CLOCK_SKEW_S - 1).is_ok());
        assert_eq!(
            verify(&t, &keys, &issuer(&[1; 16]), NOW + 3600 + ACCESS_TOKEN_CLOCK_SKEW_S),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&t, &keys, &issuer(&[1; 16]), NOW - ACCESS_TOKEN_CLOCK_SKEW_S - 1),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn another_clusters_key_issuer_or_audience_is_refused() {
        let (k, other) = (key(1), key(2));
        let t = issue(&k, &claims());
        assert_eq!(verify(&t, &[TokenKey::of(&other)], &issuer(&[1; 16]), NOW), Err(TokenError::UnknownKey));
        let forged = TokenKey { kid: TokenKey::of(&k).kid, public: other.public_key() };
        assert!(matches!(verify(&t, &[forged], &issuer(&[1; 16]), NOW), Err(TokenError::Jwt(_))));
        assert_eq!(verify(&t, &[TokenKey::of(&k)], &issuer(&[2; 16]), NOW), Err(TokenError::WrongIssuer));
        let mut c = claims();
        c.aud = "https://vault.azure.net".into();
        assert_eq!(verify(&issue(&k, &c), &[TokenKey::of(&k)], &issuer(&[1; 16]), NOW), Err(TokenError::WrongAudience));
        let mut c = claims();
        c.exp = c.iat + ACCESS_TOKEN_LIFETIME_S_MAX + 1;
        assert_eq!(verify(&issue(&k, &c), &[TokenKey::of(&k)], &issuer(&[1; 16]), NOW), Err(TokenError::Lifetime));
    }

    #[test]
    fn claims_of_the_wrong_type_or_unknown_claims_invalidate_the_token() {
        let k = key(1);
        let header = serde_json::json!({"alg": "EdDSA", "typ": TOKEN_TYPE, "kid": TokenKey::of(&k).kid});
        let mut good = serde_json::to_value(claims()).unwrap();
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<Change> = vec![
            Box::new(|c| c["exp"] = serde_json::json!("1800003600")),
            Box::new(|c| c["aud"] = serde_json::json!([issuer(&[1; 16])])),
            Box::new(|c| c["roles"] = serde_json::json!(["Key Vault Administrator"])),
            Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            Box::new(|c| c["ver"] = serde_json::json!("arca-0")),
        ];
        for change in cases {
            let mut c = good.clone();
            change(&mut c);
            let t = jwt::sign_eddsa(&k, &header, &c);
            assert!(verify(&t, &[TokenKey::of(&k)], &issuer(&[1; 16]), NOW).is_err(), "{c}");
        }
        good["iat"] = serde_json::json!(NOW);
        let plain = serde_json::json!({"alg": "EdDSA", "kid": TokenKey::of(&k).kid});
        assert!(matches!(
            verify(&jwt::sign_eddsa(&k, &plain, &good), &[TokenKey::of(&k)], &issuer(&[1; 16]), NOW),
            Err(TokenError::NotAccessToken(_))
        ));
    }
}
