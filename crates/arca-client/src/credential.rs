//! Where a client's bearer token comes from, picked up as Azure's `DefaultAzureCredential` picks
//! its own: a token given outright (`ARCA_TOKEN`), or a service principal's client id with its secret
//! (`ARCA_CLIENT_SECRET`) or its certificate (`ARCA_CLIENT_CERTIFICATE_PATH`, a PEM with the
//! certificate and its key), exchanged at the token endpoint and refreshed before it expires, with no
//! code in the application.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};

use crate::pb;

/// How the client proves who it is.
#[derive(Clone)]
pub enum Credential {
    /// A token held outright (a root token, or an access token from elsewhere).
    Token(String),
    /// A service principal's client id and secret, exchanged for access tokens.
    ClientSecret { client_id: String, secret: zeroize::Zeroizing<String> },
    /// A service principal's client id and a PEM file holding its registered certificate and the
    /// certificate's private key: each token is asked for with a fresh assertion signed by that key.
    ClientCertificate { client_id: String, pem_path: std::path::PathBuf },
    /// The same PEM file, presented over mutual TLS instead (RFC 8705): the client's connection shows
    /// the certificate, the token endpoint takes it as the credential, and the token it issues is
    /// bound to it, so the token is worthless on any connection that does not present it.
    ClientCertificateTls { client_id: String, pem_path: std::path::PathBuf },
    /// A managed identity: tokens come from the node-local `arca agent` on its Unix socket (as
    /// Azure's IMDS hands them out), for whichever identity is bound to this process (or the one
    /// `client_id` names). The process holds no credential at all.
    ManagedIdentity { socket: std::path::PathBuf, client_id: Option<String> },
    /// A token another identity provider issued (a Kubernetes projected service account token, a
    /// CI job's OIDC token), read from `token_file` each time a token is fetched (the provider
    /// rotates it) and sent as the client assertion of `client_id`, whose federated credential
    /// trusts that provider.
    FederatedToken { client_id: String, token_file: std::path::PathBuf },
    /// A person's sign-in cached by `arca login` (see [`crate::login`]): its access token while it
    /// lasts, then renewed with the provider's refresh token and exchanged again.
    CachedLogin { path: std::path::PathBuf },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Credential::Token(<redacted>)"),
            Credential::ClientSecret { client_id, .. } => {
                write!(f, "Credential::ClientSecret {{ client_id: {client_id}, secret: <redacted> }}")
            }
            Credential::ClientCertificate { client_id, pem_path } => {
                write!(
                    f,
                    "Credential::ClientCertificate {{ client_id: {client_id}, pem_path: {} }}",
                    pem_path.display()
                )
            }
            Credential::ClientCertificateTls { client_id, pem_path } => {
                write!(
                    f,
                    "Credential::ClientCertificateTls {{ client_id: {client_id}, pem_path: {} }}",
                    pem_path.display()
                )
            }
            Credential::ManagedIdentity { socket, client_id } => {
                write!(f, "Credential::ManagedIdentity {{ socket: {}, client_id: {client_id:?} }}", socket.display())
            }
            Credential::FederatedToken { client_id, token_file } => {
                write!(
                    f,
                    "Credential::FederatedToken {{ client_id: {client_id}, token_file: {} }}",
                    token_file.display()
                )
            }
            Credential::CachedLogin { path } => write!(f, "Credential::CachedLogin {{ path: {} }}", path.display()),
        }
    }
}

/// The environment variables read, in order.
pub const ENV_TOKEN: &str = "ARCA_TOKEN";
pub const ENV_CLIENT_ID: &str = "ARCA_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "ARCA_CLIENT_SECRET";
pub const ENV_CLIENT_CERTIFICATE_PATH: &str = "ARCA_CLIENT_CERTIFICATE_PATH";
/// Set to `1` (or `true`) to present the certificate over mutual TLS rather than in an assertion.
pub const ENV_CLIENT_CERTIFICATE_TLS: &str = "ARCA_CLIENT_CERTIFICATE_TLS";
/// A file holding another provider's token for `ARCA_CLIENT_ID` (as `AZURE_FEDERATED_TOKEN_FILE`).
pub const ENV_FEDERATED_TOKEN_FILE: &str = "ARCA_FEDERATED_TOKEN_FILE";
/// The Unix socket of the local `arca agent` (default [`AGENT_SOCKET_DEFAULT`], used when it exists).
pub const ENV_IDENTITY_ENDPOINT: &str = "ARCA_IDENTITY_ENDPOINT";
/// Which managed identity to ask the agent for, when more than one is bound to the process.
pub const ENV_IDENTITY_CLIENT_ID: &str = "ARCA_IDENTITY_CLIENT_ID";
/// A file holding the workload's Kubernetes service account token, sent to the agent for bindings
/// that require one (a projected token, as Azure's workload identity mounts one).
pub const ENV_SERVICE_ACCOUNT_TOKEN_FILE: &str = "ARCA_SERVICE_ACCOUNT_TOKEN_FILE";
/// The largest service account token sent (the agent takes no more).
const SERVICE_ACCOUNT_TOKEN_BYTES_MAX: usize = 8 * 1024;
/// Where `arca agent run` listens by default.
pub const AGENT_SOCKET_DEFAULT: &str = "/run/arca/agent.sock";

impl Credential {
    /// The first credential the environment offers: `ARCA_TOKEN`, else `ARCA_CLIENT_ID` with
    /// `ARCA_CLIENT_SECRET`, else `ARCA_CLIENT_ID` with `ARCA_CLIENT_CERTIFICATE_PATH`, else the
    /// local agent (`ARCA_IDENTITY_ENDPOINT`, or its default socket if it exists), else a cached
    /// `arca login`. `None` when there is none of them.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        if let Some(token) = var(ENV_TOKEN) {
            return Some(Credential::Token(token));
        }
        let Some(client_id) = var(ENV_CLIENT_ID) else {
            return Self::managed_identity(false).or_else(Self::cached_login);
        };
        if let Some(secret) = var(ENV_CLIENT_SECRET) {
            return Some(Credential::ClientSecret { client_id, secret: zeroize::Zeroizing::new(secret) });
        }
        if let Some(file) = var(ENV_FEDERATED_TOKEN_FILE) {
            return Some(Credential::FederatedToken { client_id, token_file: file.into() });
        }
        let over_tls = var(ENV_CLIENT_CERTIFICATE_TLS).is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        var(ENV_CLIENT_CERTIFICATE_PATH).map(|path| {
            if over_tls {
                Credential::ClientCertificateTls { client_id, pem_path: path.into() }
            } else {
                Credential::ClientCertificate { client_id, pem_path: path.into() }
            }
        })
    }

    /// The local agent's managed identity: at `ARCA_IDENTITY_ENDPOINT`, else at the default socket
    /// when it exists (or, with `always`, even when it does not, so the error names it).
    pub fn managed_identity(always: bool) -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        let client_id = var(ENV_IDENTITY_CLIENT_ID);
        if let Some(socket) = var(ENV_IDENTITY_ENDPOINT) {
            return Some(Credential::ManagedIdentity { socket: socket.into(), client_id });
        }
        let socket = std::path::PathBuf::from(AGENT_SOCKET_DEFAULT);
        (always || socket.exists()).then_some(Credential::ManagedIdentity { socket, client_id })
    }

    /// The sign-in `arca login` cached, when there is one.
    pub fn cached_login() -> Option<Self> {
        crate::login::path().filter(|p| p.exists()).map(|path| Credential::CachedLogin { path })
    }

    /// Whether the credential is exchanged at the token endpoint (and so needs TLS and a first call).
    pub fn is_exchanged(&self) -> bool {
        !matches!(self, Credential::Token(_))
    }
}

/// The `authorization` header every call carries, replaced as tokens are refreshed.
#[derive(Clone, Default)]
pub(crate) struct TokenCell(Arc<RwLock<Option<MetadataValue<Ascii>>>>);

impl TokenCell {
    pub(crate) fn get(&self) -> Option<MetadataValue<Ascii>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set(&self, token: &str) -> Result<(), crate::ClientError> {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| crate::ClientError::local("the token has characters a header cannot carry"))?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }
}

/// Refreshes a token once this share of its lifetime has passed (Azure's SDKs refresh early too).
const REFRESH_AT_LIFETIME_PERCENT: u32 = 80;
/// The first pause after a refresh failed, in seconds; it doubles up to the longest.
const REFRESH_RETRY_S_MIN: u64 = 5;
const REFRESH_RETRY_S_MAX: u64 = 300;
/// The longest lifetime a token response is taken to have (Arca issues at most a day), in seconds.
const TOKEN_LIFETIME_S_MAX: u64 = 24 * 3600;

fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.min(Duration::from_secs(TOKEN_LIFETIME_S_MAX)) * REFRESH_AT_LIFETIME_PERCENT / 100
}

/// A fresh client assertion for `client_id`, signed with the key in the PEM file, for the cluster
/// `client` talks to (its id comes from the node's seal status, which needs no token).
async fn assertion(
    client: &crate::ArcaClient,
    client_id: &str,
    pem_path: &std::path::Path,
) -> Result<String, crate::ClientError> {
    use arca_crypto::Entropy;
    let pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(pem_path)
            .map_err(|e| crate::ClientError::local(format!("read {}: {e}", pem_path.display())))?,
    );
    let (cert, key, algorithm) = arca_crypto::client_cert::read_certificate_and_key(&pem)
        .map_err(|e| crate::ClientError::local(format!("{}: {e}", pem_path.display())))?;
    let status = client.operator().get_seal_status(pb::GetSealStatusRequest {}).await?.into_inner();
    let cluster_id = hex_id(&status.cluster_id)
        .ok_or_else(|| crate::ClientError::local("the node did not say which cluster it belongs to"))?;
    let audience = arca_identity::client_assertion::audience(&cluster_id);
    let jti: String = arca_crypto::OsEntropy.bytes16().iter().map(|b| format!("{b:02x}")).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    arca_identity::client_assertion::build(client_id, &audience, &cert, &key, algorithm, &jti, now)
        .map_err(|e| crate::ClientError::local(format!("sign a client assertion: {e}")))
}

/// 32 hex digits as 16 bytes.
fn hex_id(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Exchanges a credential for an access token at the token endpoint; returns the token and its lifetime.
pub(crate) async fn fetch(
    client: &crate::ArcaClient,
    credential: &Credential,
) -> Result<(String, Duration), crate::ClientError> {
    let mut request = pb::TokenRequest { grant_type: "client_credentials".into(), ..Default::default() };
    match credential {
        Credential::Token(_) => return Err(crate::ClientError::local("a token is used as it is, not exchanged")),
        Credential::ClientSecret { client_id, secret } => {
            request.client_id = client_id.clone();
            request.client_secret = secret.to_string();
        }
        Credential::ClientCertificate { client_id, pem_path } => {
            request.client_id = client_id.clone();
            request.client_assertion_type = arca_identity::client_assertion::ASSERTION_TYPE.to_owned();
            request.client_assertion = assertion(client, client_id, pem_path).await?;
        }
        // The connection itself carries the certificate.
        Credential::ClientCertificateTls { client_id, .. } => request.client_id = client_id.clone(),
        Credential::ManagedIdentity { socket, client_id } => {
            return from_agent(socket, client_id.as_deref()).await;
        }
        Credential::CachedLogin { path } => return from_login(client, path).await,
        Credential::FederatedToken { client_id, token_file } => {
            let token = std::fs::read_to_string(token_file)
                .map_err(|e| crate::ClientError::local(format!("read {}: {e}", token_file.display())))?;
            request.client_id = client_id.clone();
            request.client_assertion_type = arca_identity::client_assertion::ASSERTION_TYPE.to_owned();
            request.client_assertion = token.trim().to_owned();
        }
    }
    let response = client.auth().token(request).await?.into_inner();
    Ok((response.access_token, Duration::from_secs(response.expires_in.max(1) as u64)))
}

/// A cached access token is used while it has at least this long left, in seconds.
const LOGIN_TOKEN_MARGIN_S: i64 = 60;

fn sign_in_again(why: String) -> crate::ClientError {
    crate::ClientError { code: tonic::Code::Unauthenticated, reason: None, azure_code: None, message: why }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Exchanges a provider's ID token for an Arca access token (a person's sign-in); returns the
/// token and its lifetime in seconds.
pub async fn exchange_id_token(
    client: &crate::ArcaClient,
    id_token: &str,
) -> Result<(String, i64), crate::ClientError> {
    let request = pb::TokenRequest {
        grant_type: crate::login::JWT_BEARER_GRANT.into(),
        assertion: id_token.to_owned(),
        ..Default::default()
    };
    let response = client.auth().token(request).await?.into_inner();
    Ok((response.access_token, response.expires_in.max(1)))
}

/// The cached sign-in's token, renewed through the provider when it is about to run out.
async fn from_login(
    client: &crate::ArcaClient,
    path: &std::path::Path,
) -> Result<(String, Duration), crate::ClientError> {
    let mut login = crate::login::load(path)
        .map_err(sign_in_again)?
        .ok_or_else(|| sign_in_again("there is no cached sign-in; run arca login".into()))?;
    // The token, and an ID token renewed for it, go to the cluster signed in to and no other.
    let status = client.operator().get_seal_status(pb::GetSealStatusRequest {}).await?.into_inner();
    if status.cluster_id != login.cluster_id {
        return Err(sign_in_again(format!(
            "the cached sign-in is for cluster {}, and {} belongs to {}; run arca login against it",
            login.cluster_id, login.endpoint, status.cluster_id
        )));
    }
    let now = unix_now();
    if login.expires_on - now > LOGIN_TOKEN_MARGIN_S {
        return Ok((login.access_token.clone(), Duration::from_secs((login.expires_on - now) as u64)));
    }
    let refresh = login
        .refresh_token
        .clone()
        .ok_or_else(|| sign_in_again("the cached sign-in has expired; run arca login again".into()))?;
    let renew = async {
        let https = arca_oidc::HttpsClient::new(login.ca_file.as_deref())?;
        let provider = arca_oidc::device::discover(&https, &login.issuer).await?;
        arca_oidc::device::refresh(&https, &provider, &login.client_id, &refresh).await
    };
    let tokens = renew.await.map_err(|e| {
        sign_in_again(format!("the identity provider did not renew the sign-in ({e}); run arca login again"))
    })?;
    let (token, lifetime) = exchange_id_token(client, &tokens.id_token).await?;
    login.access_token = token.clone();
    login.expires_on = now + lifetime;
    if tokens.refresh_token.is_some() {
        login.refresh_token = tokens.refresh_token;
    }
    crate::login::save(path, &login).map_err(crate::ClientError::local)?;
    Ok((token, Duration::from_secs(lifetime as u64)))
}

/// Largest answer read from the agent, in bytes.
const AGENT_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// How long to wait for the agent's answer.
const AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// A managed identity's token from the local agent's IMDS-shaped endpoint on its Unix socket.
async fn from_agent(
    socket: &std::path::Path,
    client_id: Option<&str>,
) -> Result<(String, Duration), crate::ClientError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let unavailable = |message: String| crate::ClientError {
        code: tonic::Code::Unavailable,
        reason: None,
        azure_code: None,
        message,
    };
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| unavailable(format!("no arca agent at {}: {e}", socket.display())))?;
        let identity = client_id.map(|c| format!("&client_id={}", encode_query(c))).unwrap_or_default();
        // A pod's projected service account token, read afresh each time (Kubernetes rotates it),
        // for bindings that require one.
        let service_account = match std::env::var_os(ENV_SERVICE_ACCOUNT_TOKEN_FILE).filter(|f| !f.is_empty()) {
            Some(file) => {
                use std::io::Read;
                let path = std::path::Path::new(&file);
                let mut token = String::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(SERVICE_ACCOUNT_TOKEN_BYTES_MAX as u64 + 1).read_to_string(&mut token))
                    .map_err(|e| unavailable(format!("read {}: {e}", path.display())))?;
                if token.len() > SERVICE_ACCOUNT_TOKEN_BYTES_MAX {
                    return Err(unavailable(format!(
                        "the service account token file is larger than {} KiB",
                        SERVICE_ACCOUNT_TOKEN_BYTES_MAX / 1024
                    )));
                }
                let token = token.trim();
                if token.is_empty() || token.contains(['\r', '\n']) {
                    return Err(unavailable("the service account token file holds no single token".into()));
                }
                format!("X-Arca-Service-Account-Token: {token}\r\n")
            }
            None => String::new(),
        };
        let request = format!(
            "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=arca{identity} HTTP/1.1\r\n\
             Host: localhost\r\nMetadata: true\r\n{service_account}Connection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| unavailable(format!("ask the arca agent: {e}")))?;
        let mut answer = Vec::new();
        (&mut stream)
            .take(AGENT_RESPONSE_BYTES_MAX as u64 + 1)
            .read_to_end(&mut answer)
            .await
            .map_err(|e| unavailable(format!("read the arca agent's answer: {e}")))?;
        Ok::<_, crate::ClientError>(answer)
    };
    let answer = tokio::time::timeout(AGENT_TIMEOUT, exchange)
        .await
        .map_err(|_| unavailable("the arca agent did not answer in time".into()))??;
    let text = String::from_utf8(answer).map_err(|_| unavailable("the arca agent's answer is not UTF-8".into()))?;
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| unavailable("the arca agent's answer is cut short".into()))?;
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    if status != 200 {
        let why = json["error_description"].as_str().unwrap_or("no reason given");
        let code = if status == 403 { tonic::Code::PermissionDenied } else { tonic::Code::Unavailable };
        let reason = (status == 403).then(|| "INVALID_CLIENT".to_owned());
        return Err(crate::ClientError {
            code,
            reason,
            azure_code: None,
            message: format!("the arca agent refused ({status}): {why}"),
        });
    }
    let token = json["access_token"].as_str().ok_or_else(|| unavailable("the arca agent sent no token".into()))?;
    let expires_in = json["expires_in"]
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .or_else(|| json["expires_in"].as_u64())
        .unwrap_or(1);
    Ok((token.to_owned(), Duration::from_secs(expires_in.max(1))))
}

/// A query parameter's value, percent-encoded.
fn encode_query(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Keeps `cell` holding a fresh token for as long as a client holding it lives: a task that sleeps
/// until the refresh point, then fetches a new token with a client of its own that holds no token. It
/// stops when the last client holding `cell` is dropped, or when the credential is refused for good
/// (deleted, reset or expired): the token in hand then runs out and calls answer `UNAUTHENTICATED`.
pub(crate) fn keep_fresh(client: &crate::ArcaClient, cell: &TokenCell, credential: Credential, first: Duration) {
    let weak = Arc::downgrade(&cell.0);
    let fetcher = client.without_token();
    tokio::spawn(async move {
        let mut wait = refresh_after(first);
        let mut retry = Duration::from_secs(REFRESH_RETRY_S_MIN);
        loop {
            tokio::time::sleep(wait).await;
            let Some(strong) = weak.upgrade() else { return };
            let cell = TokenCell(strong);
            match fetch(&fetcher, &credential).await {
                Ok((token, lifetime)) if cell.set(&token).is_ok() => {
                    wait = refresh_after(lifetime);
                    retry = Duration::from_secs(REFRESH_RETRY_S_MIN);
                }
                Err(e) if e.reason.as_deref() == Some("INVALID_CLIENT") => return,
                _ => {
                    wait = retry;
                    retry = (retry * 2).min(Duration::from_secs(REFRESH_RETRY_S_MAX));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_at_eighty_percent_and_never_overflow() {
        assert_eq!(refresh_after(Duration::from_secs(3600)), Duration::from_secs(2880));
        assert_eq!(refresh_after(Duration::from_secs(u64::MAX)), Duration::from_secs(TOKEN_LIFETIME_S_MAX * 80 / 100));
    }

    #[test]
    fn a_credential_never_prints_its_secret() {
        let c =
            Credential::ClientSecret { client_id: "id".into(), secret: zeroize::Zeroizing::new("arcs_s3cret".into()) };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{:?}", Credential::Token("arca.t0ken".into())).contains("t0ken"));
    }
}
