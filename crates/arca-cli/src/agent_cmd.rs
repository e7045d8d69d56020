//! `arca agent …` (the node-local identity agent), `arca identity …` (managed identities, as `az
//! identity`) and `arca account get-access-token` (as `az account get-access-token`).

use std::path::PathBuf;

use anyhow::Context;
use arca_client::{pb, ArcaClient, ConnectOptions};
use clap::Subcommand;
use serde_json::json;

use crate::ad_cmd::{credential, principal};
use crate::output::{print_value, Format};

#[derive(Subcommand)]
pub enum AgentCmd {
    /// Register an agent for one machine. Prints its appId and a one-time enrollment secret (valid a
    /// day) for `arca agent run` on that machine.
    Create {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Run the agent: enroll on first start, then serve managed identity tokens to local processes on
    /// a Unix socket (and optionally a loopback port), as Azure's IMDS does, rotating its own
    /// certificate before it expires.
    Run {
        /// Where the agent keeps its key and certificate.
        #[arg(long, default_value = "/var/lib/arca-agent")]
        state_dir: PathBuf,
        #[arg(long, env = "ARCA_IDENTITY_ENDPOINT", default_value = arca_client::credential::AGENT_SOCKET_DEFAULT)]
        socket: PathBuf,
        /// Also serve on this loopback address, e.g. 127.0.0.1:50342.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The agent's appId (first start only, with ARCA_AGENT_ENROLLMENT_SECRET).
        #[arg(long)]
        client_id: Option<String>,
        /// How long Arca honours each of the agent's certificates, in seconds (rotated at half).
        #[arg(long, default_value_t = 86_400)]
        certificate_lifetime_s: i64,
    },
}

#[derive(Subcommand)]
pub enum IdentityCmd {
    /// Create a managed identity (as `az identity create`).
    Create {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Let an agent obtain the identity's tokens for the local processes that match.
    Bind {
        /// The managed identity (object id, client id or name).
        #[arg(long, short = 'n')]
        name: String,
        /// The agent (object id, client id or name).
        #[arg(long)]
        agent: String,
        /// Only processes running as this user id (the boundary between local users).
        #[arg(long, required_unless_present = "any_uid")]
        uid: Option<u32>,
        /// Any local user's processes (as an Azure VM's system-assigned identity is): say so explicitly.
        #[arg(long, conflicts_with = "uid")]
        any_uid: bool,
        /// Only processes running this executable (absolute path). Narrows within a uid; not a
        /// boundary between processes of one user.
        #[arg(long)]
        executable: Option<String>,
        /// Only workloads that also present a token of this Kubernetes service account
        /// (system:serviceaccount:NAMESPACE:NAME), in the X-Arca-Service-Account-Token header.
        #[arg(long, requires = "service_account_issuer")]
        service_account: Option<String>,
        /// The Kubernetes cluster's service account issuer (its keys by discovery, or --service-account-jwks-file).
        #[arg(long, requires = "service_account")]
        service_account_issuer: Option<String>,
        /// The audience the token must be for (default api://ArcaTokenExchange).
        #[arg(long, requires = "service_account")]
        service_account_audience: Option<String>,
        /// The issuer's JWKS (kubectl get --raw /openid/v1/jwks).
        #[arg(long, requires = "service_account")]
        service_account_jwks_file: Option<std::path::PathBuf>,
    },
    /// The identity's bindings.
    ListBindings {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum AccountCmd {
    /// Print the access token the CLI's credential yields (ARCA_TOKEN, a service principal, or with
    /// --identity the local agent's managed identity).
    GetAccessToken,
}

pub async fn agent(client: &ArcaClient, node: &ConnectOptions, command: AgentCmd, f: Format) -> anyhow::Result<()> {
    match command {
        AgentCmd::Create { name } => {
            let r = client
                .principals()
                .create_principal(pb::CreatePrincipalRequest {
                    kind: pb::PrincipalKind::Agent as i32,
                    display_name: name,
                    with_secret: true,
                    ..Default::default()
                })
                .await
                .map_err(arca_client::ClientError::from)?
                .into_inner();
            let p = r.principal.unwrap_or_default();
            print_value(
                f,
                &json!({ "id": p.id, "appId": p.app_id, "displayName": p.display_name, "enrollmentSecret": r.password }),
            );
            Ok(())
        }
        AgentCmd::Run { state_dir, socket, listen, client_id, certificate_lifetime_s } => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("ARCA_LOG").unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .try_init();
            let secret = std::env::var("ARCA_AGENT_ENROLLMENT_SECRET").ok().filter(|s| !s.is_empty());
            let enrollment = match (client_id, secret) {
                (Some(id), Some(secret)) => Some((id, zeroize::Zeroizing::new(secret))),
                (None, None) => None,
                _ => anyhow::bail!("enrolling needs both --client-id and ARCA_AGENT_ENROLLMENT_SECRET"),
            };
            let config = arca_agent::AgentConfig {
                node: ConnectOptions { token: None, ..node.clone() },
                state_dir,
                socket,
                listen,
                enrollment,
                certificate_lifetime_s,
            };
            arca_agent::run(config).await.context("arca agent")
        }
    }
}

pub async fn identity(client: &ArcaClient, command: IdentityCmd, f: Format) -> anyhow::Result<()> {
    let mut p = client.principals();
    match command {
        IdentityCmd::Create { name } => {
            let r = p
                .create_principal(pb::CreatePrincipalRequest {
                    kind: pb::PrincipalKind::ManagedIdentity as i32,
                    display_name: name,
                    ..Default::default()
                })
                .await
                .map_err(arca_client::ClientError::from)?
                .into_inner();
            print_value(f, &principal(&r.principal.unwrap_or_default()));
        }
        IdentityCmd::Bind {
            name,
            agent,
            uid,
            any_uid: _,
            executable,
            service_account,
            service_account_issuer,
            service_account_audience,
            service_account_jwks_file,
        } => {
            let service_account_jwks_json = match &service_account_jwks_file {
                Some(file) => std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?,
                None => String::new(),
            };
            let r = p
                .bind_managed_identity(pb::BindManagedIdentityRequest {
                    id: name,
                    agent,
                    uid,
                    executable: executable.unwrap_or_default(),
                    years: 0,
                    service_account_issuer: service_account_issuer.unwrap_or_default(),
                    service_account: service_account.unwrap_or_default(),
                    service_account_audience: service_account_audience.unwrap_or_default(),
                    service_account_jwks_json,
                })
                .await
                .map_err(arca_client::ClientError::from)?
                .into_inner();
            print_value(f, &credential(&r));
        }
        IdentityCmd::ListBindings { name } => {
            let r = p
                .list_credentials(pb::ListCredentialsRequest { id: name })
                .await
                .map_err(arca_client::ClientError::from)?
                .into_inner();
            let bindings: Vec<_> =
                r.credentials.iter().filter(|c| c.r#type == "AgentBinding").map(credential).collect();
            print_value(f, &json!(bindings));
        }
    }
    Ok(())
}

pub async fn account(client: &ArcaClient, command: AccountCmd, f: Format) -> anyhow::Result<()> {
    match command {
        AccountCmd::GetAccessToken => {
            let token =
                client.access_token().context("no credential: set ARCA_TOKEN, ARCA_CLIENT_ID, or use --identity")?;
            print_value(f, &json!({ "accessToken": token, "tokenType": "Bearer" }));
        }
    }
    Ok(())
}
