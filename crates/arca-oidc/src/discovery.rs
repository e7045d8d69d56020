//! A provider's discovery document (OpenID Connect Discovery 1.0, `/.well-known/openid-configuration`):
//! read strictly enough that a document served by someone else cannot redirect Arca's trust.

use serde::Deserialize;

use crate::https::parse_url;
use crate::OidcError;

/// The largest discovery document read, in bytes.
pub const DISCOVERY_BYTES_MAX: usize = 64 * 1024;

/// What Arca uses of a provider's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    /// RFC 8628's endpoint, for `arca login`.
    pub device_authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    device_authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
}

/// Where an issuer's discovery document is: the issuer with `/.well-known/openid-configuration`
/// appended (after any trailing `/`), as the specification says.
pub fn discovery_url(issuer: &str) -> Result<String, OidcError> {
    parse_url(issuer)?;
    if issuer.contains('?') || issuer.contains('#') {
        return Err(OidcError::Url(issuer.to_owned()));
    }
    Ok(format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/')))
}

/// Reads a discovery document fetched for `issuer`. Its `issuer` must be exactly the one asked for
/// (OpenID Connect Discovery §4.3: otherwise one provider could speak for another), and every
/// endpoint must be an https URL.
pub fn parse(issuer: &str, body: &[u8]) -> Result<ProviderMetadata, OidcError> {
    let bad = |why: &str| OidcError::Document(why.to_owned());
    if body.len() > DISCOVERY_BYTES_MAX {
        return Err(bad("the discovery document is larger than 64 KiB"));
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|_| bad("the discovery document is not the expected JSON"))?;
    if raw.issuer.as_deref() != Some(issuer) {
        return Err(bad("the discovery document names another issuer"));
    }
    let jwks_uri = raw.jwks_uri.ok_or_else(|| bad("the discovery document has no jwks_uri"))?;
    for url in
        [Some(&jwks_uri), raw.device_authorization_endpoint.as_ref(), raw.token_endpoint.as_ref()].into_iter().flatten()
    {
        parse_url(url).map_err(|_| bad("an endpoint of the discovery document is not an https URL"))?;
    }
    Ok(ProviderMetadata {
        issuer: issuer.to_owned(),
        jwks_uri,
        device_authorization_endpoint: raw.device_authorization_endpoint,
        token_endpoint: raw.token_endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://idp.example/tenant";

    #[test]
    fn the_document_is_where_the_specification_puts_it() {
        assert_eq!(discovery_url(ISSUER).unwrap(), "https://idp.example/tenant/.well-known/openid-configuration");
        assert_eq!(
            discovery_url("https://idp.example/").unwrap(),
            "https://idp.example/.well-known/openid-configuration"
        );
        assert!(discovery_url("http://idp.example").is_err());
        assert!(discovery_url("https://idp.example/?x=1").is_err());
    }

    #[test]
    fn a_document_must_name_its_own_issuer_and_https_endpoints() {
        let doc = |issuer: &str, jwks: &str| {
            serde_json::json!({ "issuer": issuer, "jwks_uri": jwks, "token_endpoint": "https://idp.example/token" })
                .to_string()
        };
        let ok = parse(ISSUER, doc(ISSUER, "https://keys.idp.example/jwks").as_bytes()).unwrap();
        assert_eq!(ok.jwks_uri, "https://keys.idp.example/jwks");
        assert_eq!(ok.device_authorization_endpoint, None);
        assert!(parse(ISSUER, doc("https://evil.example", "https://evil.example/jwks").as_bytes()).is_err());
        assert!(parse(ISSUER, doc(&format!("{ISSUER}/"), "https://idp.example/jwks").as_bytes()).is_err());
        assert!(parse(ISSUER, doc(ISSUER, "http://idp.example/jwks").as_bytes()).is_err());
        assert!(parse(ISSUER, b"{}").is_err());
        assert!(parse(ISSUER, b"[1,2]").is_err());
        let big = vec![b' '; DISCOVERY_BYTES_MAX + 1];
        assert!(parse(ISSUER, &big).is_err());
    }
}
