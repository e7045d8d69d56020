//! A small HTTPS/1.1 client for providers' documents: `GET` and form `POST`, one request per
//! connection, certificates checked against the configured CAs, no redirects followed, the answer
//! read up to a byte limit and a time limit.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::OidcError;

/// How long one request may take, from connecting to the last byte of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian and Ubuntu keep the system's CA bundle (used when no CA file is configured).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// An answer: the status and at most the limit's bytes of body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// An `https://` URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Reads an `https://host[:port]/path` URL; anything else (http, userinfo, no host) is refused.
pub fn parse_url(url: &str) -> Result<Target, OidcError> {
    let bad = || OidcError::Url(url.to_owned());
    let uri: Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("https") {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    if authority.as_str().contains('@') {
        return Err(bad());
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(bad());
    }
    // A port written but not a number from 1 to 65535 is refused, never taken as 443.
    let written_port = authority.as_str().rsplit_once(']').map_or(authority.as_str(), |(_, p)| p).contains(':');
    if written_port && authority.port_u16().is_none_or(|p| p == 0) {
        return Err(bad());
    }
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).filter(|p| !p.is_empty()).unwrap_or("/".into());
    Ok(Target { host, port: authority.port_u16().unwrap_or(443), path })
}

/// The client: which CAs it trusts.
#[derive(Clone)]
pub struct HttpsClient {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient").field("timeout", &self.timeout).finish()
    }
}

impl HttpsClient {
    /// Trusting the certificates of a PEM file (`None`: the system bundle).
    pub fn new(ca_file: Option<&std::path::Path>) -> Result<Self, OidcError> {
        let path = ca_file.unwrap_or(std::path::Path::new(SYSTEM_CA_BUNDLE));
        let ca_error = |why: String| OidcError::Ca { path: path.display().to_string(), why };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        Self::from_pem(&pem).map_err(|e| match e {
            OidcError::Ca { why, .. } => ca_error(why),
            other => other,
        })
    }

    /// Trusting the certificates in `pem`.
    pub fn from_pem(pem: &[u8]) -> Result<Self, OidcError> {
        let ca_error = |why: &str| OidcError::Ca { path: "(given)".into(), why: why.to_owned() };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| ca_error("it is not PEM"))?;
            // A bundle may hold certificates this TLS stack cannot use; the others still count.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(ca_error("it holds no usable CA certificate"));
        }
        let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Ok(Self { tls: tokio_rustls::TlsConnector::from(Arc::new(config)), timeout: REQUEST_TIMEOUT })
    }

    /// `GET url`, its body read up to `limit` bytes. Any status other than 200 is an error.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, OidcError> {
        let answer = self.request(url, None, limit).await?;
        if answer.status != 200 {
            return Err(OidcError::Status { url: url.to_owned(), status: answer.status });
        }
        Ok(answer.body)
    }

    /// `POST url` with a form body; every status is returned (OAuth errors come as 400).
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)], limit: usize) -> Result<Answer, OidcError> {
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        self.request(url, Some(body.join("&")), limit).await
    }

    async fn request(&self, url: &str, form: Option<String>, limit: usize) -> Result<Answer, OidcError> {
        let seconds = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.exchange(url, form, limit))
            .await
            .unwrap_or_else(|_| Err(OidcError::Timeout { url: url.to_owned(), seconds }))
    }

    async fn exchange(&self, url: &str, form: Option<String>, limit: usize) -> Result<Answer, OidcError> {
        let target = parse_url(url)?;
        let unreachable = |why: String| OidcError::Unreachable { url: url.to_owned(), why };
        let name = ServerName::try_from(target.host.clone()).map_err(|_| OidcError::Url(url.to_owned()))?;
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let tls = self.tls.connect(name, tcp).await.map_err(|e| unreachable(e.to_string()))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| unreachable(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let host = if target.port == 443 { target.host.clone() } else { format!("{}:{}", target.host, target.port) };
        let builder = hyper::Request::builder()
            .uri(target.path.as_str())
            .header(hyper::header::HOST, host)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, concat!("arca/", env!("CARGO_PKG_VERSION")));
        let request = match form {
            Some(body) => builder
                .method(hyper::Method::POST)
                .header(hyper::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::new(Bytes::from(body))),
            None => builder.method(hyper::Method::GET).body(Full::new(Bytes::new())),
        }
        .map_err(|e| OidcError::Url(format!("{url} ({e})")))?;
        let response = sender.send_request(request).await.map_err(|e| unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            driver.abort();
            return Err(OidcError::TooLarge { url: url.to_owned(), limit });
        }
        let body = Limited::new(response.into_body(), limit).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                OidcError::TooLarge { url: url.to_owned(), limit }
            } else {
                unreachable(e.to_string())
            }
        })?;
        driver.abort();
        Ok(Answer { status, body: body.to_bytes().to_vec() })
    }
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes a form (`a=b&c=d`), for the test issuer and anything else that reads one. A `%` not
/// followed by two hexadecimal digits is kept as it is.
pub fn decode_form(body: &str) -> Vec<(String, String)> {
    fn unescape(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%')
                .then(|| bytes.get(i + 1..i + 3))
                .flatten()
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], escaped) {
                (_, Some(v)) => {
                    out.push(v);
                    i += 3;
                }
                (b'+', None) => {
                    out.push(b' ');
                    i += 1;
                }
                (other, None) => {
                    out.push(other);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (unescape(k), unescape(v)),
            None => (unescape(pair), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_with_a_host_are_taken() {
        let t = parse_url("https://idp.example:8443/.well-known/openid-configuration").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("idp.example", 8443, "/.well-known/openid-configuration")
        );
        assert_eq!(parse_url("https://127.0.0.1").unwrap().path, "/");
        assert_eq!(
            parse_url("https://[::1]:9/x?y=1").unwrap(),
            Target { host: "::1".into(), port: 9, path: "/x?y=1".into() }
        );
        for bad in [
            "http://idp.example/",
            "https:///x",
            "ftp://a/",
            "https://user@idp.example/",
            "idp.example",
            "",
            "https://idp.example:/x",
            "https://idp.example:0/x",
            "https://idp.example:99999/x",
            "https://[::1]:/x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forms_round_trip() {
        let body = format!("{}={}&b={}", encode("a b"), encode("x&y=z%é"), encode(""));
        assert_eq!(decode_form(&body), vec![("a b".into(), "x&y=z%é".into()), ("b".into(), String::new())]);
        assert_eq!(decode_form("k=%zz&j=%4"), vec![("k".into(), "%zz".into()), ("j".into(), "%4".into())]);
    }

    #[test]
    fn a_ca_file_with_no_certificate_is_refused() {
        assert!(matches!(HttpsClient::from_pem(b"not pem"), Err(OidcError::Ca { .. })));
    }
}
