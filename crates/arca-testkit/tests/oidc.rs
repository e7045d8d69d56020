//! People signing in through an OpenID Connect provider, on real processes: a local provider
//! (`arca-test-issuer`, HTTPS with its own CA) serves discovery, its JWKS and the device code grant;
//! three nodes fetch its keys by discovery (trusting its CA through `--oidc-ca-file`); `arca login`
//! signs a person in with a device code, and the groups claim of their ID token makes them members
//! of the Arca groups that stand for those names. The provider rotates its key mid-test, tokens with
//! made-up key ids cannot make a node hammer it, and a provider that goes down leaves recent keys in
//! use.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient, ClientError, Credential};
use arca_testkit::{binary, files_containing, IssuerProcess, TestCluster};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

const ALICE: &str = "alice-7f3e21";
const BOB: &str = "bob-0c99d4";
const READERS_CLAIM: &str = "grp-readers-91b2";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `arca ARGS` against node 0: as root (`root`), or with no token and the sign-in cached in `config`.
fn arca(cluster: &TestCluster, root: bool, config: &Path, args: &[&str]) -> (bool, Value) {
    let out = arca_command(cluster, root, config, args).output().expect("run arca");
    let text = if out.status.success() { out.stdout } else { out.stderr };
    (
        out.status.success(),
        serde_json::from_slice(&text).unwrap_or(Value::String(String::from_utf8_lossy(&text).into())),
    )
}

fn arca_command(cluster: &TestCluster, root: bool, config: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary("arca"));
    cmd.args(["--addr", &cluster.nodes[0].api_addr()]).arg("--cacert").arg(cluster.dir.path().join("certs/ca.pem"));
    if root {
        cmd.args(["--token", &cluster.root_token]);
    }
    for var in ["ARCA_TOKEN", "ARCA_CLIENT_ID", "ARCA_IDENTITY_ENDPOINT", "HOME"] {
        cmd.env_remove(var);
    }
    cmd.env("ARCA_CONFIG_DIR", config);
    cmd.args(args);
    cmd
}

/// Exchanges a provider's ID token at node `node`'s token endpoint.
async fn sign_in(cluster: &TestCluster, node: usize, id_token: &str) -> Result<pb::TokenResponse, ClientError> {
    let anonymous = cluster.client_with_token(node, None).await.unwrap();
    let r = pb::TokenRequest { grant_type: JWT_BEARER.into(), assertion: id_token.into(), ..Default::default() };
    Ok(anonymous.auth().token(r).await?.into_inner())
}

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<String, ClientError> {
    let r = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(r).await?.into_inner().value)
}

fn refused(e: &ClientError, reason: &str) {
    assert_eq!(e.reason.as_deref(), Some(reason), "{e:?}");
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `arca login` as a person would run it: the CLI shows a code, the person approves it at the
/// provider (here: the provider's test endpoint) as `sub` in `groups`, and the CLI caches the sign-in.
async fn login(cluster: &TestCluster, issuer: &IssuerProcess, config: &Path, sub: &str, groups: &[&str]) -> Value {
    let ca = issuer.ca_file.to_str().unwrap();
    let mut child = arca_command(cluster, false, config, &["login", "--issuer", &issuer.url, "--ca-file", ca])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        lines.next().and_then(Result::ok).unwrap_or_default()
    })
    .await
    .unwrap();
    let code = line.rsplit(' ').next().unwrap().to_owned();
    assert!(line.contains("enter the code") && code.len() == 9, "the CLI shows a code: {line:?}");
    issuer.approve(&code, sub, groups).await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "arca login: {}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_a_discovered_provider_and_gets_what_their_groups_allow() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = IssuerProcess::start(&dir.path().join("issuer")).await.unwrap();
    let ca = issuer.ca_file.to_str().unwrap().to_owned();
    let cluster = TestCluster::start_with_node_args(3, &["--oidc-ca-file", &ca]).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    for (vault, value) in [("team-a", "a-secret"), ("team-b", "b-secret")] {
        root.vaults().create_vault(pb::CreateVaultRequest { name: vault.into(), ..Default::default() }).await.unwrap();
        let r =
            pb::SetSecretRequest { vault: vault.into(), name: "db".into(), value: value.into(), ..Default::default() };
        root.secrets().set_secret(r).await.unwrap();
    }
    let config = dir.path().join("alice-config");

    // People and the provider's group, through the CLI: no JWKS given, so keys come by discovery.
    let (ok, alice) = arca(
        &cluster,
        true,
        &config,
        &["ad", "user", "create", "--display-name", "alice", "--issuer", &issuer.url, "--subject", ALICE],
    );
    assert!(ok, "{alice}");
    let (ok, bob) = arca(
        &cluster,
        true,
        &config,
        &["ad", "user", "create", "--display-name", "bob", "--issuer", &issuer.url, "--subject", BOB],
    );
    assert!(ok, "{bob}");
    let (ok, out) = arca(
        &cluster,
        true,
        &config,
        &["ad", "user", "create", "--display-name", "alice twin", "--issuer", &issuer.url, "--subject", ALICE],
    );
    assert!(!ok && out.to_string().contains("CONFLICT"), "one user per sign-in name: {out}");
    let (ok, group) = arca(
        &cluster,
        true,
        &config,
        &[
            "ad",
            "group",
            "create",
            "--display-name",
            "team a readers",
            "--issuer",
            &issuer.url,
            "--external-name",
            READERS_CLAIM,
        ],
    );
    assert!(ok, "{group}");
    let (ok, out) = arca(
        &cluster,
        true,
        &config,
        &[
            "role",
            "assignment",
            "create",
            "--assignee",
            "team a readers",
            "--role",
            "Key Vault Secrets User",
            "--scope",
            "/vaults/team-a",
        ],
    );
    assert!(ok, "{out}");

    // Alice signs in with a device code; her groups claim makes her a reader of team-a, not team-b.
    let out = login(&cluster, &issuer, &config, ALICE, &[READERS_CLAIM, "not-an-arca-group"]).await;
    assert_eq!(out["issuer"], issuer.url.as_str());
    let cache = config.join("login.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(ok, "{out}");
    assert_eq!(out["value"], "a-secret");
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-b", "--name", "db"]);
    assert!(!ok && out.to_string().contains("FORBIDDEN_BY_RBAC"), "{out}");
    let cached: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    let token = claims(cached["access_token"].as_str().unwrap());
    assert_eq!(token["sub"], alice["id"]);
    assert_eq!(token["idtyp"], "User");
    assert_eq!(token["amr"], serde_json::json!(["federated"]));
    assert_eq!(token["grp"], serde_json::json!([group["id"]]));

    // The cached token runs out: the CLI renews it with the provider's refresh token, unasked.
    let mut stale = cached.clone();
    stale["expires_on"] = 1.into();
    std::fs::write(&cache, serde_json::to_vec(&stale).unwrap()).unwrap();
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(ok, "{out}");
    let renewed: Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert!(renewed["expires_on"].as_i64().unwrap() > unix_now() + 600);
    assert_ne!(renewed["access_token"], cached["access_token"]);

    // Every node takes an ID token; Bob, in no group, gets in but reads nothing.
    for node in 0..3 {
        let t =
            sign_in(&cluster, node, &issuer.issue(ALICE, "arca", &[READERS_CLAIM], 600).await.unwrap()).await.unwrap();
        let c = cluster.client_as(node, Credential::Token(t.access_token)).await.unwrap();
        assert_eq!(get(&c, "team-a", "db").await.unwrap(), "a-secret");
    }
    let bob_id_token = issuer.issue(BOB, "arca", &[], 600).await.unwrap();
    let t = sign_in(&cluster, 1, &bob_id_token).await.unwrap();
    assert_eq!(claims(&t.access_token)["sub"], bob["id"]);
    let c = cluster.client_as(1, Credential::Token(t.access_token)).await.unwrap();
    refused(&get(&c, "team-a", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");

    // Everything else is refused alike: another audience, a subject no user has, expired, a known
    // kid signed by another key, another issuer; client fields beside the assertion, and none, are
    // bad requests.
    let good = issuer.issue(ALICE, "arca", &[], 600).await.unwrap();
    let header = good.split('.').next().unwrap().to_owned();
    let forged = {
        let key = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
        let kid = serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(&header).unwrap()).unwrap()["kid"].clone();
        arca_crypto::jwt::sign_eddsa(&key, &serde_json::json!({ "alg": "EdDSA", "kid": kid }), &claims(&good))
    };
    let mut elsewhere = claims(&good);
    elsewhere["iss"] = "https://127.0.0.1:9".into();
    let elsewhere = arca_crypto::jwt::sign_eddsa(
        &arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy),
        &serde_json::json!({ "alg": "EdDSA", "kid": "x" }),
        &elsewhere,
    );
    let cases = [
        ("another audience", issuer.issue(ALICE, "api://someone-else", &[], 600).await.unwrap()),
        (
            "for another service that lists Arca among its audiences",
            issuer
                .issue_with(ALICE, "api://someone-else,arca", &[], 600, &[("azp", "api://someone-else")])
                .await
                .unwrap(),
        ),
        ("several audiences and no azp", issuer.issue(ALICE, "api://someone-else,arca", &[], 600).await.unwrap()),
        (
            "the provider's access token",
            issuer.issue_with(ALICE, "arca", &[], 600, &[("typ", "at+jwt")]).await.unwrap(),
        ),
        ("an unknown subject", issuer.issue("mallory", "arca", &[], 600).await.unwrap()),
        ("expired", issuer.issue(ALICE, "arca", &[], -600).await.unwrap()),
        ("a known kid, another key", forged),
        ("another issuer", elsewhere),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (what, token) in cases {
        let e = sign_in(&cluster, 2, &token).await.unwrap_err();
        assert_eq!(e.reason.as_deref(), Some("INVALID_CLIENT"), "{what}: {e:?}");
        assert!(!e.message.contains(ALICE), "{what}: the error names no subject");
    }
    // Several audiences are taken when the token was issued to Arca (azp); and a person's token
    // lasts an hour at most, whatever is asked.
    let multi = issuer.issue_with(ALICE, "api://someone-else,arca", &[], 600, &[("azp", "arca")]).await.unwrap();
    sign_in(&cluster, 2, &multi).await.unwrap();
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let long = pb::TokenRequest {
        grant_type: JWT_BEARER.into(),
        assertion: good.clone(),
        lifetime: Some(prost_types::Duration { seconds: 24 * 3600, nanos: 0 }),
        ..Default::default()
    };
    assert!(anonymous.auth().token(long).await.unwrap().into_inner().expires_in <= 3600);

    // Whoever manages principals can make a user whose credential holds a JWKS of their own, with
    // the provider's issuer: that user signs in, but its token's groups claim counts for nothing,
    // since only the provider's own keys (by discovery) speak for its groups.
    let forger = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
    let forger_jwks = serde_json::json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "forger",
        "x": URL_SAFE_NO_PAD.encode(forger.public_key()) }] });
    let mallory = root
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            kind: pb::PrincipalKind::User as i32,
            display_name: "mallory".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    let link = pb::AddFederatedCredentialRequest {
        id: mallory.id.clone(),
        name: "own-keys".into(),
        issuer: issuer.url.clone(),
        subject: "mallory-3c1d".into(),
        audiences: vec!["arca".into()],
        jwks_json: forger_jwks.to_string(),
        claims: vec![],
    };
    root.principals().add_federated_credential(link).await.unwrap();
    let now = unix_now();
    let forged_groups = arca_crypto::jwt::sign_eddsa(
        &forger,
        &serde_json::json!({ "alg": "EdDSA", "kid": "forger" }),
        &serde_json::json!({ "iss": issuer.url, "sub": "mallory-3c1d", "aud": "arca", "iat": now, "exp": now + 600,
            "groups": [READERS_CLAIM] }),
    );
    let t = sign_in(&cluster, 0, &forged_groups).await.unwrap();
    assert!(claims(&t.access_token).get("grp").is_none(), "{:?}", claims(&t.access_token));
    let c = cluster.client_as(0, Credential::Token(t.access_token)).await.unwrap();
    refused(&get(&c, "team-a", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");

    for request in [
        pb::TokenRequest { grant_type: JWT_BEARER.into(), ..Default::default() },
        pb::TokenRequest {
            grant_type: JWT_BEARER.into(),
            assertion: good.clone(),
            client_id: "x".into(),
            ..Default::default()
        },
        pb::TokenRequest { grant_type: "client_credentials".into(), assertion: good.clone(), ..Default::default() },
    ] {
        refused(&ClientError::from(anonymous.auth().token(request).await.unwrap_err()), "BAD_PARAMETER");
    }

    // A workload's federated credential (a CI job here) trusts the same provider by discovery, and
    // binds claims beyond issuer, subject and audience: a top-level one, and one by JSON pointer.
    let (ok, ci) = arca(&cluster, true, &config, &["ad", "sp", "create", "--display-name", "ci deploy"]);
    assert!(ok, "{ci}");
    let ci_app = ci["appId"].as_str().unwrap().to_owned();
    let main = "acme/app/.github/workflows/deploy.yml@refs/heads/main";
    let workflow = format!("job_workflow_ref={main}");
    let (ok, out) = arca(
        &cluster,
        true,
        &config,
        &[
            "ad",
            "sp",
            "federated-credential",
            "create",
            "--id",
            &ci_app,
            "--name",
            "deploy-main",
            "--issuer",
            &issuer.url,
            "--subject",
            "repo:acme/app:environment:prod",
            "--claim",
            &workflow,
            "--claim",
            "/runner/environment=self-hosted,github-hosted",
        ],
    );
    assert!(ok, "{out}");
    let (ok, listed) = arca(&cluster, true, &config, &["ad", "sp", "federated-credential", "list", "--id", &ci_app]);
    assert!(ok, "{listed}");
    assert_eq!(listed[0]["claims"]["/runner/environment"], serde_json::json!(["self-hosted", "github-hosted"]));
    let anonymous = cluster.client_with_token(1, None).await.unwrap();
    let ci_sign_in = async |extra: Value| {
        let extra = extra.to_string();
        let subject = "repo:acme/app:environment:prod";
        let more = [("extra", extra.as_str())];
        let token = issuer.issue_with(subject, "api://ArcaTokenExchange", &[], 600, &more).await.unwrap();
        let r = pb::TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: ci_app.clone(),
            client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            client_assertion: token,
            ..Default::default()
        };
        anonymous.auth().token(r).await.map_err(ClientError::from)
    };
    let carrying = serde_json::json!({ "job_workflow_ref": main, "runner": { "environment": "github-hosted" } });
    ci_sign_in(carrying).await.expect("a token carrying every bound claim signs in");
    let evil = "acme/app/.github/workflows/evil.yml@refs/heads/main";
    let dev = "acme/app/.github/workflows/deploy.yml@refs/heads/dev";
    for (what, extra) in [
        (
            "another workflow",
            serde_json::json!({ "job_workflow_ref": evil, "runner": { "environment": "github-hosted" } }),
        ),
        (
            "another branch",
            serde_json::json!({ "job_workflow_ref": dev, "runner": { "environment": "github-hosted" } }),
        ),
        ("no runner", serde_json::json!({ "job_workflow_ref": main })),
        (
            "a runner of another kind",
            serde_json::json!({ "job_workflow_ref": main, "runner": { "environment": "laptop" } }),
        ),
        ("the claim at the top level", serde_json::json!({ "job_workflow_ref": main, "environment": "github-hosted" })),
    ] {
        let e = ci_sign_in(extra).await.unwrap_err();
        assert_eq!(e.reason.as_deref(), Some("INVALID_CLIENT"), "{what}: {e:?}");
    }
    let (ok, out) = arca(
        &cluster,
        true,
        &config,
        &[
            "ad",
            "sp",
            "federated-credential",
            "create",
            "--id",
            &ci_app,
            "--name",
            "bad-claim",
            "--issuer",
            &issuer.url,
            "--subject",
            "x",
            "--claim",
            "sub=someone",
        ],
    );
    assert!(!ok && out.to_string().contains("BAD_PARAMETER"), "sub is bound by the credential itself: {out}");

    // Tokens naming made-up key ids make at most one fetch per node per interval, not one each.
    let before = issuer.jwks_fetches().await.unwrap();
    for i in 0..20 {
        let key = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
        let t = arca_crypto::jwt::sign_eddsa(
            &key,
            &serde_json::json!({ "alg": "EdDSA", "kid": format!("made-up-{i}") }),
            &claims(&good),
        );
        refused(&sign_in(&cluster, 0, &t).await.unwrap_err(), "INVALID_CLIENT");
    }
    let after = issuer.jwks_fetches().await.unwrap();
    assert!(after <= before + 1, "20 made-up kids fetched the JWKS {} times", after - before);

    // The provider rotates its key (the old one leaves its JWKS): the first token of the new key is
    // taken as soon as the node may look again, and the old key's tokens stop working.
    let old = issuer.issue(ALICE, "arca", &[], 600).await.unwrap();
    issuer.rotate(false).await.unwrap();
    let new = issuer.issue(ALICE, "arca", &[], 600).await.unwrap();
    let started = Instant::now();
    loop {
        match sign_in(&cluster, 0, &new).await {
            Ok(_) => break,
            Err(e) => {
                refused(&e, "INVALID_CLIENT");
                assert!(started.elapsed() < Duration::from_secs(45), "the new key was never fetched");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    refused(&sign_in(&cluster, 0, &old).await.unwrap_err(), "INVALID_CLIENT");

    // The cached sign-in goes to its own cluster only: pointed at another, the CLI refuses to send it.
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(ok, "{out}");
    let saved = std::fs::read(&cache).unwrap();
    let mut elsewhere: Value = serde_json::from_slice(&saved).unwrap();
    elsewhere["cluster_id"] = "ab".repeat(16).into();
    std::fs::write(&cache, serde_json::to_vec(&elsewhere).unwrap()).unwrap();
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(!ok && out.to_string().contains("the cached sign-in is for cluster"), "{out}");
    std::fs::write(&cache, &saved).unwrap();

    // The group stops standing for the provider's group: Alice's token, which names it, no longer
    // carries its role, on the next request.
    let group_id = group["id"].as_str().unwrap();
    let listed = root.principals().list_credentials(pb::ListCredentialsRequest { id: group_id.into() }).await.unwrap();
    let key_id = listed.into_inner().credentials[0].key_id.clone();
    root.principals().delete_credential(pb::DeleteCredentialRequest { id: group_id.into(), key_id }).await.unwrap();
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(!ok && out.to_string().contains("FORBIDDEN_BY_RBAC"), "{out}");

    // Deleting Alice's sign-in ends every token she holds, on the very next request.
    let alice_id = alice["id"].as_str().unwrap();
    let listed = root.principals().list_credentials(pb::ListCredentialsRequest { id: alice_id.into() }).await.unwrap();
    let key_id = listed.into_inner().credentials[0].key_id.clone();
    root.principals().delete_credential(pb::DeleteCredentialRequest { id: alice_id.into(), key_id }).await.unwrap();
    let (ok, out) =
        arca(&cluster, false, &config, &["keyvault", "secret", "show", "--vault-name", "team-a", "--name", "db"]);
    assert!(!ok && out.to_string().contains("UNAUTHORIZED"), "{out}");
    refused(&sign_in(&cluster, 1, &new).await.unwrap_err(), "INVALID_CLIENT");

    // The provider goes down: keys fetched recently are still used.
    let bob_id_token = issuer.issue(BOB, "arca", &[], 600).await.unwrap();
    drop(issuer);
    sign_in(&cluster, 0, &bob_id_token).await.expect("recent keys outlive the provider's outage");

    // No subject or group name is kept in the clear anywhere on disk.
    for needle in [ALICE, BOB, READERS_CLAIM] {
        let found = files_containing(&cluster.files_to_scan(), needle.as_bytes());
        assert!(found.is_empty(), "{needle} in the clear in {found:?}");
    }
    let (ok, out) = arca(&cluster, false, &config, &["logout"]);
    assert!(ok && out["signedOut"] == true, "{out}");
    assert!(!cache.exists());
}
