//! `arca login` and `arca logout`: a person signs in through an OpenID Connect provider with the
//! device authorization grant (as `az login --use-device-code`), and the Arca access token the
//! provider's ID token is exchanged for is cached for the CLI and `arca-client` to use (and renew
//! with the provider's refresh token when it runs out).

use std::path::PathBuf;

use anyhow::Context;
use arca_client::login::{self, Login};
use arca_client::ArcaClient;
use clap::Args;
use serde_json::json;

use crate::output::{print_value, Format};

#[derive(Args)]
pub struct LoginArgs {
    /// The provider's issuer URL (https://), whose discovery document names its endpoints.
    #[arg(long, env = "ARCA_LOGIN_ISSUER")]
    issuer: String,
    /// This CLI's client id at the provider (the audience of the ID tokens it gets).
    #[arg(long, env = "ARCA_LOGIN_CLIENT_ID", default_value = "arca")]
    client_id: String,
    /// PEM file of the CAs trusted for the provider's HTTPS (default: the system's).
    #[arg(long, env = "ARCA_LOGIN_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[arg(long, default_value = "openid profile offline_access")]
    scope: String,
}

pub async fn login(client: &ArcaClient, endpoint: &str, args: LoginArgs, f: Format) -> anyhow::Result<()> {
    // Which cluster this is: the sign-in is kept for it alone.
    let status = client
        .operator()
        .get_seal_status(arca_client::pb::GetSealStatusRequest {})
        .await
        .map_err(arca_client::ClientError::from)
        .context("ask the node which cluster it belongs to")?
        .into_inner();
    let https = arca_oidc::HttpsClient::new(args.ca_file.as_deref())?;
    let provider =
        arca_oidc::device::discover(&https, &args.issuer).await.context("read the provider's discovery document")?;
    let code = arca_oidc::device::start(&https, &provider, &args.client_id, &args.scope)
        .await
        .context("ask the provider for a device code")?;
    eprintln!("To sign in, open {} and enter the code {}", code.verification_uri, code.user_code);
    let tokens =
        arca_oidc::device::poll(&https, &provider, &args.client_id, &code).await.context("wait for the sign-in")?;
    let (access_token, lifetime) = arca_client::credential::exchange_id_token(client, &tokens.id_token)
        .await
        .context("sign in to Arca with the provider's ID token")?;
    let ca_file = args.ca_file.map(|p| std::fs::canonicalize(&p).unwrap_or(p));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let cached = Login {
        issuer: args.issuer.clone(),
        client_id: args.client_id,
        ca_file,
        endpoint: endpoint.to_owned(),
        cluster_id: status.cluster_id,
        access_token,
        expires_on: now + lifetime,
        refresh_token: tokens.refresh_token,
    };
    let path = login::path().context("no HOME or ARCA_CONFIG_DIR to keep the sign-in in")?;
    login::save(&path, &cached).map_err(anyhow::Error::msg)?;
    print_value(f, &json!({ "issuer": args.issuer, "expiresIn": lifetime, "cache": path.display().to_string() }));
    Ok(())
}

pub fn logout(f: Format) -> anyhow::Result<()> {
    let path = login::path().context("no HOME or ARCA_CONFIG_DIR")?;
    let removed = login::remove(&path).map_err(anyhow::Error::msg)?;
    print_value(f, &json!({ "signedOut": removed }));
    Ok(())
}
