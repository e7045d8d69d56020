//! `arca agent`: the node-local identity agent that gives workloads managed identities.
//!
//! A workload on this machine asks the agent for a token, on a Unix socket or a loopback TCP port,
//! the way an Azure VM asks its Instance Metadata Service ([`imds`]). The agent attests who is
//! asking from what the kernel says about the connection ([`attest`]: uid, gid, pid, executable),
//! and asks Arca for a token of the managed identity bound to this agent and that workload; Arca
//! decides, so the agent can never obtain an identity that is not bound to it, and the workload
//! never holds a long-lived secret.
//!
//! The agent's own credential is a certificate whose key never leaves this machine ([`state`]): it
//! enrolls once with the one-time secret `arca agent create` printed, which registers its first
//! certificate and removes the secret; then it signs in over mutual TLS with that certificate
//! (tokens bound to it) and registers a fresh one whenever half of the current one's life has
//! passed. The key and certificate are written (0600) before they are registered, so an agent killed
//! at any point restarts with a certificate Arca knows.

pub mod attest;
pub mod imds;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arca_client::{pb, ArcaClient, ConnectOptions, Credential};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a caller has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Callers served at once; more wait.
const CALLERS_MAX: usize = 64;
/// How long a refused caller's request is read for before the refusal is written.
const REFUSAL_DRAIN_TIMEOUT: Duration = Duration::from_millis(200);
/// Callers of one uid served at once; more are refused at once (429), so one local user cannot hold
/// every slot.
pub const CALLERS_PER_UID_MAX: usize = 8;
/// The shortest pause between rotations (whatever the clocks say).
const ROTATE_INTERVAL_MIN: Duration = Duration::from_secs(5);
/// The first pause after a failed rotation; it doubles up to the longest.
const ROTATE_RETRY_MIN: Duration = Duration::from_secs(1);
const ROTATE_RETRY_MAX: Duration = Duration::from_secs(30);

/// How an agent runs.
pub struct AgentConfig {
    /// The node to talk to (its address and the CA its certificate chains to).
    pub node: ConnectOptions,
    /// Where the agent keeps its key, certificate and client id (created 0700).
    pub state_dir: PathBuf,
    /// The Unix socket workloads ask on (made 0666: any local user may ask; the uid decides).
    pub socket: PathBuf,
    /// A loopback address to serve the same endpoint on over TCP, as Azure's IMDS does.
    pub listen: Option<SocketAddr>,
    /// To enroll (first run only): the agent's client id and its enrollment secret.
    pub enrollment: Option<(String, zeroize::Zeroizing<String>)>,
    /// How long Arca should honour each certificate, in seconds.
    pub certificate_lifetime_s: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Client(#[from] arca_client::ClientError),
}

/// How many callers of each uid are being served.
#[derive(Clone, Default)]
struct PerUid(Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>);

/// One caller's place among its uid's; given back when dropped.
struct UidSlot {
    counts: PerUid,
    uid: u32,
}

impl PerUid {
    fn take(&self, uid: u32) -> Option<UidSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(uid).or_default();
        if *count >= CALLERS_PER_UID_MAX {
            return None;
        }
        *count += 1;
        Some(UidSlot { counts: self.clone(), uid })
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

/// The agent's current connection to Arca, replaced at each rotation.
#[derive(Clone)]
struct Session(Arc<RwLock<ArcaClient>>);

impl Session {
    fn client(&self) -> ArcaClient {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, client: ArcaClient) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = client;
    }
}

/// Signs in with the certificate in `pem` over mutual TLS.
async fn sign_in(node: &ConnectOptions, client_id: &str, pem: PathBuf) -> Result<ArcaClient, AgentError> {
    let credential = Credential::ClientCertificateTls { client_id: client_id.to_owned(), pem_path: pem };
    Ok(ArcaClient::connect_with(node.clone(), credential).await?)
}

/// Registers the certificate staged in the state directory with `client`, then makes it current.
async fn register(client: &ArcaClient, store: &state::Store, lifetime_s: i64) -> Result<i64, AgentError> {
    let request = pb::RegisterAgentCertificateRequest {
        certificate_pem: store.staged_certificate()?,
        lifetime: Some(prost_types::Duration { seconds: lifetime_s, nanos: 0 }),
    };
    let answer = client.agents().register_agent_certificate(request).await.map_err(arca_client::ClientError::from)?;
    let end = answer.into_inner().end_date.map_or(0, |t| t.seconds);
    store.promote(Some(end))
}

/// Comes up signed in: with the current certificate, or a staged one a crash left registered, or by
/// enrolling. Returns the session and when the current certificate stops being honoured.
async fn start(config: &AgentConfig, store: &state::Store) -> Result<(ArcaClient, String, i64), AgentError> {
    if let Some(saved) = store.load()? {
        if let Ok(client) = sign_in(&config.node, &saved.client_id, store.current_path()).await {
            return Ok((client, saved.client_id, saved.end));
        }
        // Killed between registering a new certificate and making it current.
        if store.has_staged() {
            if let Ok(client) = sign_in(&config.node, &saved.client_id, store.staged_path()).await {
                let end = store.promote(None)?;
                tracing::info!("the certificate registered before the agent stopped is now current");
                return Ok((client, saved.client_id, end));
            }
        }
        if config.enrollment.is_none() {
            return Err(AgentError::Setup(
                "Arca no longer accepts this agent's certificate (expired or deleted); enroll again with a new secret \
                 (arca ad sp credential reset --id AGENT, then arca agent run --client-id … with \
                 ARCA_AGENT_ENROLLMENT_SECRET)"
                    .into(),
            ));
        }
    }
    let Some((client_id, secret)) = &config.enrollment else {
        return Err(AgentError::Setup(
            "the agent is not enrolled: pass --client-id and set ARCA_AGENT_ENROLLMENT_SECRET (from arca agent create)"
                .into(),
        ));
    };
    let enrolling = ArcaClient::connect_with(
        config.node.clone(),
        Credential::ClientSecret { client_id: client_id.clone(), secret: secret.clone() },
    )
    .await?;
    store.begin(client_id)?;
    store.stage(client_id, config.certificate_lifetime_s)?;
    let end = register(&enrolling, store, config.certificate_lifetime_s).await?;
    tracing::info!("enrolled: the agent's certificate is registered, and its enrollment secret is gone");
    let client = sign_in(&config.node, client_id, store.current_path()).await?;
    Ok((client, client_id.clone(), end))
}

/// Registers a fresh certificate whenever half of the current one's life has passed.
async fn rotate_forever(
    config: Arc<AgentConfig>,
    store: Arc<state::Store>,
    session: Session,
    client_id: String,
    mut end: i64,
) {
    loop {
        let now = state::now();
        let wait = Duration::from_secs(((end - now) / 2).max(0) as u64).max(ROTATE_INTERVAL_MIN);
        tokio::time::sleep(wait).await;
        let mut retry = ROTATE_RETRY_MIN;
        loop {
            let attempt = async {
                // A staged certificate may already be registered (its answer was lost): keep it.
                if !store.has_staged() {
                    store.stage(&client_id, config.certificate_lifetime_s)?;
                }
                let new_end = match register(&session.client(), &store, config.certificate_lifetime_s).await {
                    Ok(end) => end,
                    Err(e) => {
                        // Registered before, or the session ran out: the staged certificate may sign in.
                        let client = sign_in(&config.node, &client_id, store.staged_path()).await.map_err(|_| e)?;
                        session.replace(client);
                        store.promote(None)?
                    }
                };
                let client = sign_in(&config.node, &client_id, store.current_path()).await?;
                Ok::<_, AgentError>((client, new_end))
            };
            match attempt.await {
                Ok((client, new_end)) => {
                    session.replace(client);
                    end = new_end;
                    tracing::info!(end, "the agent's certificate was rotated");
                    break;
                }
                Err(e) => {
                    tracing::warn!("rotating the agent's certificate failed, retrying: {e}");
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(ROTATE_RETRY_MAX);
                }
            }
        }
    }
}

/// Runs the agent until the process ends.
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    let store = Arc::new(state::Store::open(&config.state_dir)?);
    // Listen first: a configuration that cannot serve must not use up the enrollment secret.
    let tcp = match config.listen {
        Some(addr) if !addr.ip().is_loopback() => {
            return Err(AgentError::Setup(format!("--listen {addr}: the agent serves only a loopback address")))
        }
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let staging = config.socket.with_extension("starting");
    let unix = state::bind_socket(&staging)?;
    let (client, client_id, end) = start(&config, &store).await?;
    // Workloads see the socket only once the agent can answer them.
    state::check_replaceable(&config.socket)?;
    std::fs::rename(&staging, &config.socket)?;
    let session = Session(Arc::new(RwLock::new(client)));
    let config = Arc::new(config);
    tracing::info!(socket = %config.socket.display(), tcp = ?config.listen, "arca agent serving");
    println!(
        "{}",
        serde_json::json!({ "socket": config.socket, "listen": tcp.as_ref().and_then(|t| t.local_addr().ok()), "clientId": client_id })
    );
    tokio::spawn(rotate_forever(config.clone(), store, session.clone(), client_id, end));
    let slots = Arc::new(tokio::sync::Semaphore::new(CALLERS_MAX));
    let per_uid = PerUid::default();
    loop {
        let permit = slots.clone().acquire_owned().await.map_err(|_| AgentError::Setup("closed".into()))?;
        let session = session.clone();
        let per_uid = per_uid.clone();
        tokio::select! {
            accepted = unix.accept() => {
                let Ok((stream, _)) = accepted.inspect_err(|e| tracing::warn!("accept on the socket: {e}")) else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                tokio::spawn(async move {
                    let workload = attest::unix_peer(&stream);
                    serve(stream, workload, &session, &per_uid).await;
                    drop(permit);
                });
            }
            accepted = async { tcp.as_ref().expect("only polled with a listener").accept().await }, if tcp.is_some() => {
                let Ok((stream, peer)) = accepted.inspect_err(|e| tracing::warn!("accept on {:?}: {e}", config.listen)) else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(local) = stream.local_addr() else { continue };
                tokio::spawn(async move {
                    let workload = attest::tcp_peer(local, peer);
                    serve(stream, workload, &session, &per_uid).await;
                    drop(permit);
                });
            }
        }
    }
}

/// Answers one caller: reads its request head, and hands it a token if Arca says its workload may
/// have one.
async fn serve<S>(mut stream: S, workload: std::io::Result<attest::Workload>, session: &Session, per_uid: &PerUid)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _slot = match &workload {
        Ok(w) => match per_uid.take(w.uid) {
            Some(slot) => Some(slot),
            None => {
                // Read what the caller sent first: closing a socket with unread data resets it, and
                // the caller would see no answer at all.
                let _ = tokio::time::timeout(REFUSAL_DRAIN_TIMEOUT, read_head(&mut stream)).await;
                let refusal = imds::Refusal {
                    status: 429,
                    error: "too_many_requests",
                    description: format!("more than {CALLERS_PER_UID_MAX} requests of this user at once; retry"),
                };
                let _ = stream.write_all(&imds::response(429, &imds::refusal_body(&refusal))).await;
                let _ = stream.shutdown().await;
                return;
            }
        },
        Err(_) => None,
    };
    let answer = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => answer(&head, workload, session).await,
        Ok(Err(refusal)) => imds::response(refusal.status, &imds::refusal_body(&refusal)),
        Err(_) => return,
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

async fn read_head<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, imds::Refusal> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = imds::head_end(&buffer) {
            buffer.truncate(end);
            return Ok(buffer);
        }
        if buffer.len() > imds::REQUEST_HEAD_BYTES_MAX {
            return Err(imds::Refusal {
                status: 400,
                error: "invalid_request",
                description: format!("the request head is longer than {} bytes", imds::REQUEST_HEAD_BYTES_MAX),
            });
        }
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return Err(imds::Refusal {
                status: 400,
                error: "invalid_request",
                description: "the request ended early".into(),
            });
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

async fn answer(head: &[u8], workload: std::io::Result<attest::Workload>, session: &Session) -> Vec<u8> {
    let refuse = |status: u16, error: &'static str, description: String| {
        imds::response(status, &imds::refusal_body(&imds::Refusal { status, error, description }))
    };
    let query = match imds::parse(head) {
        Ok(query) => query,
        Err(refusal) => return imds::response(refusal.status, &imds::refusal_body(&refusal)),
    };
    let workload = match workload {
        Ok(w) => w,
        Err(e) => return refuse(403, "forbidden", format!("the caller could not be attested: {e}")),
    };
    let request = pb::IssueManagedIdentityTokenRequest {
        identity: query.identity.clone().unwrap_or_default(),
        workload: Some(pb::AttestedWorkload {
            uid: workload.uid,
            gid: workload.gid,
            pid: workload.pid,
            executable: workload.executable.clone().unwrap_or_default(),
            service_account_token: query.service_account_token.clone().unwrap_or_default(),
        }),
        lifetime: None,
    };
    match session.client().agents().issue_managed_identity_token(request).await {
        Ok(token) => {
            let token = token.into_inner();
            let expires_on = token.expires_on.map_or(0, |t| t.seconds);
            let client_id = query.identity.unwrap_or_default();
            tracing::info!(uid = workload.uid, pid = workload.pid, "issued a managed identity token");
            imds::response(
                200,
                &imds::token_body(&token.access_token, &client_id, &query.resource, token.expires_in, expires_on),
            )
        }
        Err(status) => {
            let e = arca_client::ClientError::from(status);
            tracing::info!(uid = workload.uid, pid = workload.pid, "refused a token: {}", e.message);
            match e.code {
                tonic::Code::PermissionDenied | tonic::Code::NotFound => refuse(403, "forbidden", e.message),
                tonic::Code::InvalidArgument => refuse(400, "invalid_request", e.message),
                _ => refuse(503, "unavailable", e.message),
            }
        }
    }
}
