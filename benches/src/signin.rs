//! `--suite signin`: whether a refused sign-in takes as long for an identity that exists as for one
//! that does not, so response times do not tell an attacker which client ids or sign-in names are
//! real. One caller, requests one at a time and interleaved (so drift falls on both sides), each
//! refused with `INVALID_CLIENT`: a service principal's client id with a wrong secret against a
//! client id nobody has; and a person's ID token for a user that exists, signed by a key the user's
//! provider does not have, against the same for a subject no user has. Reports the median and mean
//! of each and their ratio.

use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient};
use arca_crypto::cluster_pki::Ed25519Key;
use arca_testkit::TestCluster;

use crate::Args;

/// Requests of each kind (the token endpoint takes 200 a second).
const SAMPLES: usize = 600;
const ISSUER: &str = "https://idp.bench.example";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn id_token(key: &Ed25519Key, sub: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let claims = serde_json::json!({ "iss": ISSUER, "sub": sub, "aud": "arca", "iat": now, "exp": now + 3600 });
    arca_crypto::jwt::sign_eddsa(key, &serde_json::json!({ "alg": "EdDSA", "kid": "k1" }), &claims)
}

async fn refused(client: &ArcaClient, request: pb::TokenRequest) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let answer = client.auth().token(request).await;
    let took = started.elapsed();
    match answer {
        Err(status) if status.code() == tonic::Code::Unauthenticated => Ok(took),
        Err(status) => anyhow::bail!("expected INVALID_CLIENT, got {status:?}"),
        Ok(_) => anyhow::bail!("a wrong credential yielded a token"),
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let median = samples[samples.len() / 2].as_secs_f64() * 1e3;
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
    println!("{label:<52} median {median:>6.3} ms   mean {mean:>6.3} ms   ({} requests)", samples.len());
    (median, mean)
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let cluster = TestCluster::start(args.nodes).await?;
    let root = cluster.client(0).await?;
    let create = |kind: pb::PrincipalKind, name: &str, with_secret: bool| pb::CreatePrincipalRequest {
        kind: kind as i32,
        display_name: name.into(),
        with_secret,
        years: 1,
    };
    let mut principals = root.principals();
    let sp = principals.create_principal(create(pb::PrincipalKind::ServicePrincipal, "bench app", true)).await?;
    let sp = sp.into_inner().principal.expect("a created principal");
    let user = principals.create_principal(create(pb::PrincipalKind::User, "bench person", false)).await?;
    let user = user.into_inner().principal.expect("a created principal");
    let provider_key = Ed25519Key::generate(&arca_crypto::OsEntropy);
    let jwks = serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "k1",
        "x": b64(&provider_key.public_key()) }] });
    root.principals()
        .add_federated_credential(pb::AddFederatedCredentialRequest {
            id: user.id,
            name: "sign-in".into(),
            issuer: ISSUER.into(),
            subject: "bench-person".into(),
            audiences: vec!["arca".into()],
            jwks_json: jwks.to_string(),
            claims: vec![],
        })
        .await?;
    let anonymous = cluster.client_with_token(0, None).await?;
    // Well-formed (as Arca makes them), so both sides get past the format check.
    let wrong_secret = format!("arcs_{}", "A".repeat(43));
    let secret = |client_id: &str| pb::TokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.into(),
        client_secret: wrong_secret.clone(),
        ..Default::default()
    };
    let forger = Ed25519Key::generate(&arca_crypto::OsEntropy);
    let person = |sub: &str| pb::TokenRequest {
        grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
        assertion: id_token(&forger, sub),
        ..Default::default()
    };
    let unknown_client = "3f0c2b1e-9d7a-4c55-8e21-6b0f4a9d2c17";
    let (mut known, mut unknown, mut user_known, mut user_unknown) = (vec![], vec![], vec![], vec![]);
    // Warm up both paths before measuring.
    for _ in 0..20 {
        refused(&anonymous, secret(&sp.app_id)).await?;
        refused(&anonymous, secret(unknown_client)).await?;
        refused(&anonymous, person("bench-person")).await?;
        refused(&anonymous, person("nobody-here")).await?;
    }
    for i in 0..SAMPLES {
        // Alternate which goes first, so neither side always follows the other.
        if i % 2 == 0 {
            known.push(refused(&anonymous, secret(&sp.app_id)).await?);
            unknown.push(refused(&anonymous, secret(unknown_client)).await?);
            user_known.push(refused(&anonymous, person("bench-person")).await?);
            user_unknown.push(refused(&anonymous, person("nobody-here")).await?);
        } else {
            unknown.push(refused(&anonymous, secret(unknown_client)).await?);
            known.push(refused(&anonymous, secret(&sp.app_id)).await?);
            user_unknown.push(refused(&anonymous, person("nobody-here")).await?);
            user_known.push(refused(&anonymous, person("bench-person")).await?);
        }
        // Stay under the token endpoint's rate limit (200 a second, 4 requests per round).
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    println!("{} nodes, one caller, refused sign-ins one at a time, interleaved", args.nodes);
    let (k, _) = summary("client secret, a client id that exists", known);
    let (u, _) = summary("client secret, a client id nobody has", unknown);
    println!("  exists / does not: {:.3}", k / u);
    let (k, _) = summary("ID token, a user that exists (forged signature)", user_known);
    let (u, _) = summary("ID token, a subject no user has", user_unknown);
    println!("  exists / does not: {:.3}", k / u);
    Ok(())
}
