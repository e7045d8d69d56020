//! A Rust client for Arca's public gRPC API: TLS, the bearer token, and readable errors.
//!
//! Clients in other languages need only `proto/`; this crate adds nothing the protos do not define.
#![forbid(unsafe_code)]

pub mod credential;
pub mod jwk;
pub mod login;
pub mod retry;

pub use credential::Credential;

use std::time::Duration;

use arca_proto::v1::agent_service_client::AgentServiceClient;
use arca_proto::v1::audit_service_client::AuditServiceClient;
use arca_proto::v1::auth_service_client::AuthServiceClient;
use arca_proto::v1::cluster_service_client::ClusterServiceClient;
use arca_proto::v1::crypto_service_client::CryptoServiceClient;
use arca_proto::v1::key_service_client::KeyServiceClient;
use arca_proto::v1::operator_service_client::OperatorServiceClient;
use arca_proto::v1::principal_service_client::PrincipalServiceClient;
use arca_proto::v1::role_service_client::RoleServiceClient;
use arca_proto::v1::secret_service_client::SecretServiceClient;
use arca_proto::v1::vault_service_client::VaultServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt;

pub use arca_proto::v1 as pb;

/// Largest message the client accepts, in bytes (large enough for any backup blob).
pub const MESSAGE_BYTES_MAX: usize = 17 * 1024 * 1024;

/// An error from Arca, with its stable reason (e.g. `SECRET_NOT_FOUND`) when the server sent one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message} ({})", reason.as_deref().unwrap_or(code_name(*code)))]
pub struct ClientError {
    pub code: tonic::Code,
    pub reason: Option<String>,
    /// The Azure-style code, e.g. `SecretNotFound`.
    pub azure_code: Option<String>,
    pub message: String,
}

fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "ERROR",
    }
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info();
        Self {
            code: status.code(),
            reason: info.map(|i| i.reason.clone()),
            azure_code: info.and_then(|i| i.metadata.get("inner_code").cloned()),
            message: status.message().to_owned(),
        }
    }
}

impl ClientError {
    pub(crate) fn local(message: impl Into<String>) -> Self {
        Self { code: tonic::Code::InvalidArgument, reason: None, azure_code: None, message: message.into() }
    }
}

/// Adds `authorization: Bearer <token>` to every request, with the token the client holds now.
#[derive(Clone)]
pub struct BearerToken(credential::TokenCell);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = self.0.get() {
            request.metadata_mut().insert("authorization", token);
        }
        Ok(request)
    }
}

/// The transport every service client of [`ArcaClient`] runs over: retries, then the bearer token.
pub type Authed = InterceptedService<retry::Retrying, BearerToken>;

/// Tries per call: as asked, or the default, and at least two per node given (every node gets a
/// second chance once a failover has settled).
fn attempts(options: &ConnectOptions) -> u32 {
    if options.attempts == 0 {
        let nodes = u32::try_from(addresses(&options.addr).len()).unwrap_or(u32::MAX);
        retry::CALL_ATTEMPTS_DEFAULT.max(nodes.saturating_mul(2))
    } else {
        options.attempts
    }
}

/// The node addresses in `addr`: one, or several separated by commas.
fn addresses(addr: &str) -> Vec<&str> {
    addr.split(',').map(str::trim).filter(|a| !a.is_empty()).collect()
}

/// How to reach a node.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `https://host:port`, or several nodes' addresses separated by commas (every node of both
    /// regions, say): calls go to one at a time and move on when it cannot be reached or is
    /// unavailable.
    pub addr: String,
    /// PEM of the CA that signed the node's certificate (the system roots are not used).
    pub ca_pem: Option<Vec<u8>>,
    pub token: Option<String>,
    pub timeout: Option<Duration>,
    /// Tries per call (0 means [`retry::CALL_ATTEMPTS_DEFAULT`]; 1 turns retries off).
    pub attempts: u32,
}

/// A connection to an Arca node (or to one of several, in turn). Cheap to clone. Calls are retried as [`retry`] describes.
#[derive(Clone)]
pub struct ArcaClient {
    channel: retry::Retrying,
    auth: BearerToken,
}

impl ArcaClient {
    /// A client that connects now (to the first of several addresses that answers; the others on
    /// first use).
    pub async fn connect(options: ConnectOptions) -> Result<Self, ClientError> {
        let endpoints = Self::endpoints(&options, None)?;
        let mut channels = Vec::with_capacity(endpoints.len());
        let mut failures = Vec::new();
        let mut reached = false;
        for (addr, endpoint) in addresses(&options.addr).into_iter().zip(endpoints) {
            if reached {
                channels.push(endpoint.connect_lazy());
                continue;
            }
            match endpoint.connect().await {
                Ok(channel) => {
                    reached = true;
                    // The node that answered goes first.
                    channels.insert(0, channel);
                }
                Err(e) => {
                    failures.push(format!("{addr}: {e}"));
                    channels.push(endpoint.connect_lazy());
                }
            }
        }
        if !reached {
            return Err(ClientError {
                code: tonic::Code::Unavailable,
                reason: None,
                azure_code: None,
                message: format!("could not connect to {}", failures.join("; ")),
            });
        }
        Self::with_channel(retry::Retrying::over(channels, attempts(&options)), options.token.as_deref())
    }

    /// A client that connects on first use. `addr` may list several nodes, separated by commas:
    /// calls go to one at a time and move on when it cannot be reached or is unavailable.
    pub fn connect_lazy(options: ConnectOptions) -> Result<Self, ClientError> {
        let channels = Self::endpoints(&options, None)?.into_iter().map(|e| e.connect_lazy()).collect();
        Self::with_channel(retry::Retrying::over(channels, attempts(&options)), options.token.as_deref())
    }

    /// One endpoint per address in `options.addr`, presenting `identity` (a client certificate and
    /// its key) in the TLS handshake.
    fn endpoints(
        options: &ConnectOptions,
        identity: Option<tonic::transport::Identity>,
    ) -> Result<Vec<Endpoint>, ClientError> {
        let list = addresses(&options.addr);
        if list.is_empty() {
            return Err(ClientError::local("no address to connect to"));
        }
        list.into_iter().map(|addr| Self::endpoint_with(options, addr, identity.clone())).collect()
    }

    /// The endpoint of `addr`, presenting `identity` (a client certificate and its key) in the TLS
    /// handshake.
    fn endpoint_with(
        options: &ConnectOptions,
        addr: &str,
        identity: Option<tonic::transport::Identity>,
    ) -> Result<Endpoint, ClientError> {
        if options.token.is_some() && !addr.starts_with("https://") {
            return Err(ClientError::local(format!(
                "refusing to send a token to {addr} without TLS: use an https:// address"
            )));
        }
        let mut endpoint = Endpoint::from_shared(addr.to_owned())
            .map_err(|e| ClientError::local(format!("bad address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(options.timeout.unwrap_or(Duration::from_secs(60)));
        if addr.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &options.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some(identity) = identity {
                tls = tls.identity(identity);
            }
            endpoint =
                endpoint.tls_config(tls).map_err(|e| ClientError::local(format!("TLS configuration failed: {e}")))?;
        }
        Ok(endpoint)
    }

    /// A client over a channel the caller built (another transport, such as a simulated network). The
    /// caller answers for the channel's confidentiality: the token travels on it as it is. No retries:
    /// every answer reaches the caller as it came (the simulation records each one).
    pub fn from_channel(channel: Channel, token: Option<&str>) -> Result<Self, ClientError> {
        Self::with_channel(retry::Retrying::new(channel, 1), token)
    }

    fn with_channel(channel: retry::Retrying, token: Option<&str>) -> Result<Self, ClientError> {
        let cell = credential::TokenCell::default();
        if let Some(t) = token {
            cell.set(t)?;
        }
        Ok(Self { channel, auth: BearerToken(cell) })
    }

    /// A client that signs in with `credential`: a token as it is, or a service principal's secret or
    /// certificate exchanged at the token endpoint now, then refreshed in the background before the
    /// token expires.
    pub async fn connect_with(options: ConnectOptions, credential: Credential) -> Result<Self, ClientError> {
        if let Credential::Token(token) = credential {
            return Self::connect_lazy(ConnectOptions { token: Some(token), ..options });
        }
        if let Some(plain) = addresses(&options.addr).into_iter().find(|a| !a.starts_with("https://")) {
            return Err(ClientError::local(format!(
                "refusing to sign in to {plain} without TLS: use an https:// address"
            )));
        }
        let options = ConnectOptions { token: None, ..options };
        let client = match &credential {
            Credential::ClientCertificateTls { pem_path, .. } => {
                let pem = zeroize::Zeroizing::new(
                    std::fs::read(pem_path)
                        .map_err(|e| ClientError::local(format!("read {}: {e}", pem_path.display())))?,
                );
                let identity = tonic::transport::Identity::from_pem(pem.as_slice(), pem.as_slice());
                let channels =
                    Self::endpoints(&options, Some(identity))?.into_iter().map(|e| e.connect_lazy()).collect();
                Self::with_channel(retry::Retrying::over(channels, attempts(&options)), None)?
            }
            _ => Self::connect_lazy(options)?,
        };
        let (token, lifetime) = credential::fetch(&client, &credential).await?;
        client.auth.0.set(&token)?;
        credential::keep_fresh(&client, &client.auth.0, credential, lifetime);
        Ok(client)
    }

    /// A client on the same connection that sends no token (to fetch tokens with).
    pub(crate) fn without_token(&self) -> Self {
        Self { channel: self.channel.clone(), auth: BearerToken(credential::TokenCell::default()) }
    }

    pub fn vaults(&self) -> VaultServiceClient<Authed> {
        VaultServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn secrets(&self) -> SecretServiceClient<Authed> {
        SecretServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub fn keys(&self) -> KeyServiceClient<Authed> {
        KeyServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub fn crypto(&self) -> CryptoServiceClient<Authed> {
        CryptoServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX)
    }

    pub fn operator(&self) -> OperatorServiceClient<Authed> {
        OperatorServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn cluster(&self) -> ClusterServiceClient<Authed> {
        ClusterServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The token endpoint (needs no token).
    pub fn auth(&self) -> AuthServiceClient<retry::Retrying> {
        AuthServiceClient::new(self.channel.clone())
    }

    /// What an identity agent calls (only an agent principal may).
    pub fn agents(&self) -> AgentServiceClient<Authed> {
        AgentServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    /// The access token calls carry now, if any (as `az account get-access-token` shows it).
    pub fn access_token(&self) -> Option<String> {
        let value = self.auth.0.get()?;
        value.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
    }

    pub fn principals(&self) -> PrincipalServiceClient<Authed> {
        PrincipalServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn audit(&self) -> AuditServiceClient<Authed> {
        AuditServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }

    pub fn roles(&self) -> RoleServiceClient<Authed> {
        RoleServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_token_is_never_sent_without_tls() {
        let plain =
            ConnectOptions { addr: "http://127.0.0.1:1".into(), token: Some("hvs.t".into()), ..Default::default() };
        let Err(err) = ArcaClient::connect_lazy(plain.clone()) else { panic!("a token over http:// was accepted") };
        assert!(err.message.contains("without TLS") && !err.message.contains("hvs.t"), "{err:?}");
        let Err(err) = ArcaClient::connect(plain).await else { panic!("a token over http:// was accepted") };
        assert!(err.message.contains("without TLS"), "{err:?}");
        // Without a token nothing secret travels, and plaintext stays possible.
        let anonymous = ConnectOptions { addr: "http://127.0.0.1:1".into(), ..Default::default() };
        assert!(ArcaClient::connect_lazy(anonymous).is_ok());
    }
}
