//! The device authorization grant (RFC 8628), as `arca login` uses it: ask the provider for a code,
//! show the person where to enter it, and poll the token endpoint until they have (or refuse, or
//! the code expires). Also the refresh grant that renews a login without asking again.

use std::time::Duration;

use serde::Deserialize;

use crate::{discovery, HttpsClient, OidcError};

/// The grant type of RFC 8628 §3.4.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The largest answer read from a provider's device or token endpoint, in bytes.
pub const ANSWER_BYTES_MAX: usize = 64 * 1024;
/// Polling never goes faster than this, whatever the provider says.
pub const POLL_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Nor slower than this.
pub const POLL_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// What the person is shown, and what the CLI polls with.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// What a provider's token endpoint gives back.
#[derive(Clone, Deserialize)]
pub struct Tokens {
    pub id_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens { <redacted> }")
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A provider's discovery document.
pub async fn discover(client: &HttpsClient, issuer: &str) -> Result<discovery::ProviderMetadata, OidcError> {
    let body = client.get(&discovery::discovery_url(issuer)?, discovery::DISCOVERY_BYTES_MAX).await?;
    discovery::parse(issuer, &body)
}

fn endpoint<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, OidcError> {
    value.as_deref().ok_or_else(|| OidcError::Document(format!("the provider publishes no {what}")))
}

/// Asks for a device code (RFC 8628 §3.1).
pub async fn start(
    client: &HttpsClient,
    provider: &discovery::ProviderMetadata,
    client_id: &str,
    scope: &str,
) -> Result<DeviceAuthorization, OidcError> {
    let url = endpoint(&provider.device_authorization_endpoint, "device_authorization_endpoint")?;
    let form = [("client_id", client_id), ("scope", scope)];
    post_for(client, url, &form, "the device authorization answer is not the expected JSON").await
}

/// Posts `form` to `url` and reads a 200 answer as `T`; any other status is the provider's refusal.
async fn post_for<T: serde::de::DeserializeOwned>(
    client: &HttpsClient,
    url: &str,
    form: &[(&str, &str)],
    unreadable: &str,
) -> Result<T, OidcError> {
    let answer = client.post_form(url, form, ANSWER_BYTES_MAX).await?;
    if answer.status != 200 {
        return Err(oauth_error(url, answer.status, &answer.body));
    }
    serde_json::from_slice(&answer.body).map_err(|_| OidcError::Document(unreadable.to_owned()))
}

fn oauth_error(url: &str, status: u16, body: &[u8]) -> OidcError {
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => OidcError::Document(format!(
            "the provider refused: {}{}",
            e.error,
            e.error_description.map(|d| format!(" ({d})")).unwrap_or_default()
        )),
        Err(_) => OidcError::Status { url: url.to_owned(), status },
    }
}

/// Polls until the person has approved (RFC 8628 §3.4-3.5): `authorization_pending` waits,
/// `slow_down` waits 5 s longer from then on, anything else ends it; so does the code's expiry.
pub async fn poll(
    client: &HttpsClient,
    provider: &discovery::ProviderMetadata,
    client_id: &str,
    authorization: &DeviceAuthorization,
) -> Result<Tokens, OidcError> {
    let url = endpoint(&provider.token_endpoint, "token_endpoint")?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(authorization.expires_in.min(3600));
    let mut interval = Duration::from_secs(authorization.interval).clamp(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX);
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() >= deadline {
            return Err(OidcError::Document("the code expired before it was entered; run arca login again".into()));
        }
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", authorization.device_code.as_str()),
            ("client_id", client_id),
        ];
        let answer = client.post_form(url, &form, ANSWER_BYTES_MAX).await?;
        if answer.status == 200 {
            return serde_json::from_slice(&answer.body)
                .map_err(|_| OidcError::Document("the token answer has no id_token".into()));
        }
        match serde_json::from_slice::<OAuthError>(&answer.body).map(|e| e.error).as_deref() {
            Ok("authorization_pending") => {}
            Ok("slow_down") => interval = (interval + Duration::from_secs(5)).min(POLL_INTERVAL_MAX),
            _ => return Err(oauth_error(url, answer.status, &answer.body)),
        }
    }
}

/// Renews tokens with a refresh token (RFC 6749 §6).
pub async fn refresh(
    client: &HttpsClient,
    provider: &discovery::ProviderMetadata,
    client_id: &str,
    refresh_token: &str,
) -> Result<Tokens, OidcError> {
    let url = endpoint(&provider.token_endpoint, "token_endpoint")?;
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", client_id)];
    post_for(client, url, &form, "the token answer has no id_token").await
}
