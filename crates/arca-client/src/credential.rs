//! Where a client's bearer token comes from, picked up as Azure's `DefaultAzureCredential` picks
//! its own: a token given outright (`ARCA_TOKEN`), or a service principal's client id and secret
//! (`ARCA_CLIENT_ID` + `ARCA_CLIENT_SECRET`), exchanged at the token endpoint and refreshed before it
//! expires, with no code in the application.

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
    ClientSecret { client_id: String, secret: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Credential::Token(<redacted>)"),
            Credential::ClientSecret { client_id, .. } => {
                write!(f, "Credential::ClientSecret {{ client_id: {client_id}, secret: <redacted> }}")
            }
        }
    }
}

/// The environment variables read, in order.
pub const ENV_TOKEN: &str = "ARCA_TOKEN";
pub const ENV_CLIENT_ID: &str = "ARCA_CLIENT_ID";
pub const ENV_CLIENT_SECRET: &str = "ARCA_CLIENT_SECRET";

impl Credential {
    /// The first credential the environment offers: `ARCA_TOKEN`, else `ARCA_CLIENT_ID` with
    /// `ARCA_CLIENT_SECRET`. `None` when there is neither.
    pub fn from_env() -> Option<Self> {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        if let Some(token) = var(ENV_TOKEN) {
            return Some(Credential::Token(token));
        }
        match (var(ENV_CLIENT_ID), var(ENV_CLIENT_SECRET)) {
            (Some(client_id), Some(secret)) => Some(Credential::ClientSecret { client_id, secret }),
            _ => None,
        }
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
const REFRESH_AT_LIFETIME_PERCENT: u64 = 80;
/// How long to wait before trying again after a refresh failed, in seconds.
const REFRESH_RETRY_S: u64 = 5;

/// Exchanges the client's secret for an access token; returns the token and its lifetime.
pub(crate) async fn fetch(
    client: &crate::ArcaClient,
    client_id: &str,
    secret: &str,
) -> Result<(String, Duration), crate::ClientError> {
    let response = client
        .auth()
        .token(pb::TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: client_id.to_owned(),
            client_secret: secret.to_owned(),
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok((response.access_token, Duration::from_secs(response.expires_in.max(1) as u64)))
}

/// Keeps `cell` holding a fresh token for as long as the client lives (a task that sleeps until the
/// refresh point, then fetches a new one; it stops when the last clone of the client is dropped).
pub(crate) fn keep_fresh(
    client: crate::ArcaClient,
    cell: TokenCell,
    client_id: String,
    secret: String,
    first: Duration,
) {
    let weak = Arc::downgrade(&cell.0);
    drop(cell);
    tokio::spawn(async move {
        let mut wait = first * REFRESH_AT_LIFETIME_PERCENT as u32 / 100;
        loop {
            tokio::time::sleep(wait).await;
            let Some(strong) = weak.upgrade() else { return };
            let cell = TokenCell(strong);
            wait = match fetch(&client, &client_id, &secret).await {
                Ok((token, lifetime)) if cell.set(&token).is_ok() => {
                    lifetime * REFRESH_AT_LIFETIME_PERCENT as u32 / 100
                }
                _ => Duration::from_secs(REFRESH_RETRY_S),
            };
        }
    });
}
