//! A local OpenID Connect provider for tests and demonstrations, never for production: it serves
//! discovery and a JWKS over HTTPS (its own CA, written beside it), the device authorization grant
//! `arca login` uses, and test-only admin endpoints that stand in for a person at a browser (approve
//! a code as some subject with some groups), mint workload tokens, rotate the signing key, and count
//! JWKS fetches. It listens on 127.0.0.1 only; the admin endpoints have no authentication at all.
//!
//! ```text
//! arca-test-issuer --dir DIR [--port N]
//! ```
//! writes `DIR/ca.pem` (trust it with `arcad --oidc-ca-file` and `arca login --ca-file`) and
//! `DIR/issuer.url`, then prints the issuer URL on stdout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use arca_crypto::cluster_pki::Ed25519Key;
use arca_crypto::{Entropy, OsEntropy};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

const CODE_LIFETIME_S: u64 = 600;
const ID_TOKEN_LIFETIME_S: i64 = 600;

struct Pending {
    client_id: String,
    device_code: String,
    /// Set once approved: the subject and groups the ID token will carry; or refused.
    outcome: Option<Result<(String, Vec<String>), ()>>,
}

struct State {
    issuer: String,
    keys: Vec<(String, Ed25519Key)>,
    next_kid: u32,
    pending: HashMap<String, Pending>,
    refresh: HashMap<String, (String, String, Vec<String>)>,
    jwks_fetches: u64,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn random_hex() -> String {
    OsEntropy.bytes16().iter().map(|b| format!("{b:02x}")).collect()
}

impl State {
    fn rotate(&mut self, keep_old: bool) -> String {
        self.next_kid += 1;
        let kid = format!("key-{}", self.next_kid);
        if !keep_old {
            self.keys.clear();
        }
        self.keys.push((kid.clone(), Ed25519Key::generate(&OsEntropy)));
        kid
    }

    fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .map(|(kid, k)| {
                json!({ "kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(k.public_key()) })
            })
            .collect();
        json!({ "keys": keys })
    }

    /// A token signed with the newest key.
    fn sign(&self, sub: &str, aud: &str, groups: &[String], lifetime: i64) -> String {
        self.sign_with(sub, aud, groups, lifetime, None, "JWT", None)
    }

    /// A token signed with the newest key; `aud` with commas becomes an array; `extra` (a JSON
    /// object) adds claims.
    #[allow(clippy::too_many_arguments)]
    fn sign_with(
        &self,
        sub: &str,
        aud: &str,
        groups: &[String],
        lifetime: i64,
        azp: Option<&str>,
        typ: &str,
        extra: Option<&Value>,
    ) -> String {
        let (kid, key) = self.keys.last().expect("the issuer always has a key");
        let now = now();
        let aud = if aud.contains(',') { json!(aud.split(',').collect::<Vec<_>>()) } else { json!(aud) };
        let mut claims = json!({ "iss": self.issuer, "sub": sub, "aud": aud, "iat": now, "nbf": now,
            "exp": now + lifetime, "jti": random_hex() });
        if !groups.is_empty() {
            claims["groups"] = json!(groups);
        }
        if let Some(azp) = azp {
            claims["azp"] = json!(azp);
        }
        if let Some(Value::Object(more)) = extra {
            for (k, v) in more {
                claims[k] = v.clone();
            }
        }
        arca_crypto::jwt::sign_eddsa(key, &json!({ "alg": "EdDSA", "typ": typ, "kid": kid }), &claims)
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response is valid")
}

fn oauth_error(error: &str) -> Response<Full<Bytes>> {
    answer(400, json!({ "error": error }))
}

fn list(value: Option<&String>) -> Vec<String> {
    value.map(|g| g.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let post = request.method() == hyper::Method::POST;
    let body = match Limited::new(request.into_body(), 64 * 1024).collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => return Ok(answer(413, json!({ "error": "too large" }))),
    };
    let form: HashMap<String, String> = arca_oidc::https::decode_form(&body).into_iter().collect();
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let issuer = s.issuer.clone();
    let response = match (post, path.as_str()) {
        (false, "/.well-known/openid-configuration") => answer(
            200,
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/jwks"),
                "device_authorization_endpoint": format!("{issuer}/device_authorization"),
                "token_endpoint": format!("{issuer}/token"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "grant_types_supported": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            }),
        ),
        (false, "/jwks") => {
            s.jwks_fetches += 1;
            answer(200, s.jwks())
        }
        (true, "/device_authorization") => {
            let Some(client_id) = form.get("client_id").cloned() else { return Ok(oauth_error("invalid_client")) };
            let device_code = random_hex();
            let raw = random_hex().to_uppercase();
            let user_code = format!("{}-{}", &raw[..4], &raw[4..8]);
            s.pending.insert(user_code.clone(), Pending { client_id, device_code: device_code.clone(), outcome: None });
            answer(
                200,
                json!({ "device_code": device_code, "user_code": user_code,
                    "verification_uri": format!("{issuer}/device"), "expires_in": CODE_LIFETIME_S, "interval": 1 }),
            )
        }
        (true, "/token") => match form.get("grant_type").map(String::as_str) {
            Some("urn:ietf:params:oauth:grant-type:device_code") => {
                let code = form.get("device_code").cloned().unwrap_or_default();
                let found = s.pending.iter().find(|(_, p)| p.device_code == code).map(|(k, _)| k.clone());
                match found {
                    None => oauth_error("invalid_grant"),
                    Some(user_code) => {
                        let pending = &s.pending[&user_code];
                        match pending.outcome.clone() {
                            None => oauth_error("authorization_pending"),
                            Some(Err(())) => {
                                s.pending.remove(&user_code);
                                oauth_error("access_denied")
                            }
                            Some(Ok((sub, groups))) => {
                                let client_id = pending.client_id.clone();
                                s.pending.remove(&user_code);
                                let id_token = s.sign(&sub, &client_id, &groups, ID_TOKEN_LIFETIME_S);
                                let refresh_token = random_hex();
                                s.refresh.insert(refresh_token.clone(), (client_id, sub, groups));
                                answer(
                                    200,
                                    json!({ "id_token": id_token, "access_token": random_hex(), "token_type": "Bearer",
                                        "expires_in": ID_TOKEN_LIFETIME_S, "refresh_token": refresh_token }),
                                )
                            }
                        }
                    }
                }
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").cloned().unwrap_or_default();
                match s.refresh.get(&token).cloned() {
                    Some((client_id, sub, groups)) if form.get("client_id") == Some(&client_id) => {
                        let id_token = s.sign(&sub, &client_id, &groups, ID_TOKEN_LIFETIME_S);
                        answer(
                            200,
                            json!({ "id_token": id_token, "access_token": random_hex(), "token_type": "Bearer",
                                "expires_in": ID_TOKEN_LIFETIME_S, "refresh_token": token }),
                        )
                    }
                    _ => oauth_error("invalid_grant"),
                }
            }
            _ => oauth_error("unsupported_grant_type"),
        },
        // Test-only: what a person at the verification page would do.
        (true, "/admin/approve") | (true, "/admin/deny") => {
            let code = form.get("user_code").cloned().unwrap_or_default();
            let outcome = if path == "/admin/approve" {
                Ok((form.get("sub").cloned().unwrap_or_default(), list(form.get("groups"))))
            } else {
                Err(())
            };
            match s.pending.get_mut(&code) {
                Some(p) => {
                    p.outcome = Some(outcome);
                    answer(200, json!({ "ok": true }))
                }
                None => answer(404, json!({ "error": "no such user code" })),
            }
        }
        // Test-only: a workload token (as a Kubernetes or CI provider would project one).
        (true, "/admin/issue") => {
            let sub = form.get("sub").cloned().unwrap_or_default();
            let aud = form.get("aud").cloned().unwrap_or_else(|| "api://ArcaTokenExchange".into());
            let lifetime = form.get("lifetime").and_then(|l| l.parse().ok()).unwrap_or(ID_TOKEN_LIFETIME_S);
            let azp = form.get("azp").map(String::as_str);
            let typ = form.get("typ").map_or("JWT", String::as_str);
            let extra: Option<Value> = form.get("extra").and_then(|e| serde_json::from_str(e).ok());
            let token = s.sign_with(&sub, &aud, &list(form.get("groups")), lifetime, azp, typ, extra.as_ref());
            answer(200, json!({ "token": token }))
        }
        (true, "/admin/rotate") => {
            let keep = form.get("keep_old").is_some_and(|v| v == "1" || v == "true");
            let kid = s.rotate(keep);
            answer(200, json!({ "kid": kid }))
        }
        (false, "/admin/stats") => answer(200, json!({ "jwks_fetches": s.jwks_fetches })),
        _ => answer(404, json!({ "error": "not found" })),
    };
    Ok(response)
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(arg("--dir").context("usage: arca-test-issuer --dir DIR [--port N]")?);
    let port: u16 = arg("--port").map(|p| p.parse()).transpose().context("--port")?.unwrap_or(0);
    std::fs::create_dir_all(&dir)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let issuer = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let ca = arca_crypto::tls::generate_ca("arca test issuer CA")?;
    let leaf = arca_crypto::tls::issue_node_cert(&ca, "arca test issuer", &["127.0.0.1".into(), "localhost".into()])?;
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem)?;
    std::fs::write(dir.join("issuer.url"), &issuer)?;
    let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let mut state = State {
        issuer: issuer.clone(),
        keys: Vec::new(),
        next_kid: 0,
        pending: HashMap::new(),
        refresh: HashMap::new(),
        jwks_fetches: 0,
    };
    state.rotate(false);
    let state = Arc::new(Mutex::new(state));
    println!("{issuer}");
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, state) = (acceptor.clone(), state.clone());
        tokio::spawn(async move {
            let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                return;
            };
            let service = hyper::service::service_fn(move |r| handle(state.clone(), r));
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
