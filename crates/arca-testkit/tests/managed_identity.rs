//! Managed identities through the node-local agent (`arca agent run`), on real processes: the agent
//! enrolls once with its one-time secret, attests each local caller by what the kernel says (uid,
//! executable), and hands out tokens only of the identities Arca has bound to it and to that caller;
//! it rotates its own certificate with no failed request, and a killed agent resumes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use arca_client::{pb, ArcaClient, ClientError, Credential};
use arca_testkit::{binary, AgentProcess, TestCluster};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// `arca ARGS` against node 0 as root (`root`), or with no token, with `env` set.
fn arca(cluster: &TestCluster, root: bool, env: &[(&str, &str)], args: &[&str]) -> (bool, Value) {
    let mut cmd = Command::new(binary("arca"));
    cmd.args(["--addr", &cluster.nodes[0].api_addr()]).arg("--cacert").arg(cluster.dir.path().join("certs/ca.pem"));
    if root {
        cmd.args(["--token", &cluster.root_token]);
    }
    for var in [
        "ARCA_TOKEN",
        "ARCA_CLIENT_ID",
        "ARCA_CLIENT_SECRET",
        "ARCA_CLIENT_CERTIFICATE_PATH",
        "ARCA_CLIENT_CERTIFICATE_TLS",
        "ARCA_IDENTITY_ENDPOINT",
        "ARCA_IDENTITY_CLIENT_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).args(args);
    let out = cmd.output().expect("run arca");
    let text = if out.status.success() { out.stdout } else { out.stderr };
    (
        out.status.success(),
        serde_json::from_slice(&text).unwrap_or(Value::String(String::from_utf8_lossy(&text).into())),
    )
}

/// A directory every local user may enter (the agent's socket lives in it).
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn start_agent(
    cluster: &TestCluster,
    state: &Path,
    socket: &Path,
    enroll: Option<(&str, &str)>,
    lifetime_s: u32,
) -> AgentProcess {
    cluster.start_agent(state, socket, enroll, lifetime_s).unwrap()
}

/// Asks the agent with curl (optionally as another user, and with extra headers); returns the
/// HTTP status and the JSON body.
fn curl(socket: &Path, uid: Option<u32>, query: &str, headers: &[&str]) -> (u16, Value) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--unix-socket"]).arg(socket);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(format!("http://localhost/metadata/identity/oauth2/token?api-version=2018-02-01&resource=arca{query}"));
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().expect("run curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<String, ClientError> {
    let r = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(r).await?.into_inner().value)
}

/// The uid this test runs as.
fn my_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap();
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn running_as_root() -> bool {
    my_uid() == 0
}

/// Sets up vaults `appa` and `appb` (each with a secret `db`), an agent, and a managed identity
/// `app-b` with Key Vault Secrets User on `appb` only, bound to the agent for `uid`. Returns the
/// agent's appId and enrollment secret.
fn setup(cluster: &TestCluster, agent_name: &str, uid: u32) -> (String, String) {
    for vault in ["appa", "appb"] {
        assert!(arca(cluster, true, &[], &["keyvault", "create", "--name", vault]).0);
        let value = format!("{vault}-secret");
        let set = ["keyvault", "secret", "set", "--vault-name", vault, "--name", "db", "--value", &value];
        assert!(arca(cluster, true, &[], &set).0);
    }
    let (ok, agent) = arca(cluster, true, &[], &["agent", "create", "--name", agent_name]);
    assert!(ok, "{agent}");
    let (ok, mi) = arca(cluster, true, &[], &["identity", "create", "--name", "app-b"]);
    assert!(ok, "{mi}");
    assert_eq!(mi["objectType"], "ManagedIdentity");
    let assign = ["role", "assignment", "create", "--assignee", "app-b", "--role", "Key Vault Secrets User"];
    let (ok, out) = arca(cluster, true, &[], &[&assign[..], &["--scope", "/vaults/appb"]].concat());
    assert!(ok, "{out}");
    let uid = uid.to_string();
    let (ok, binding) =
        arca(cluster, true, &[], &["identity", "bind", "--name", "app-b", "--agent", agent_name, "--uid", &uid]);
    assert!(ok, "{binding}");
    assert_eq!(binding["type"], "AgentBinding");
    (agent["appId"].as_str().unwrap().to_owned(), agent["enrollmentSecret"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_reads_its_vault_as_its_managed_identity_and_nothing_more() {
    let cluster = TestCluster::start(3).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = open_dir();
    let socket = run.path().join("agent.sock");
    let (agent_id, secret) = setup(&cluster, "host-1", my_uid());
    let _agent = start_agent(&cluster, state.path(), &socket, Some((&agent_id, &secret)), 3600);

    // Through the CLI, as `az login --identity` would: its own vault, and not the other.
    let socket_env = [("ARCA_IDENTITY_ENDPOINT", socket.to_str().unwrap())];
    let show =
        |vault: &'static str| ["--identity", "keyvault", "secret", "show", "--vault-name", vault, "--name", "db"];
    let (ok, secret_b) = arca(&cluster, false, &socket_env, &show("appb"));
    assert!(ok, "{secret_b}");
    assert_eq!(secret_b["value"], "appb-secret");
    let (ok, err) = arca(&cluster, false, &socket_env, &show("appa"));
    assert!(!ok);
    assert_eq!(err["reason"], "FORBIDDEN_BY_RBAC", "{err}");

    // The token says who it is for and how it was won.
    let (ok, token) = arca(&cluster, false, &socket_env, &["--identity", "account", "get-access-token"]);
    assert!(ok, "{token}");
    let c = claims(token["accessToken"].as_str().unwrap());
    assert_eq!(c["idtyp"], "ManagedIdentity", "{c}");
    assert_eq!(c["amr"], serde_json::json!(["managed_identity"]));
    assert!(c.get("cnf").is_none(), "a workload's token is a plain bearer token: {c}");

    // Through arca-client, on every node, with nothing but the socket.
    for node in 0..3 {
        let credential = Credential::ManagedIdentity { socket: socket.clone(), client_id: None };
        let app = cluster.client_as(node, credential).await.unwrap();
        assert_eq!(get(&app, "appb", "db").await.unwrap(), "appb-secret");
        assert_eq!(get(&app, "appa", "db").await.unwrap_err().reason.as_deref(), Some("FORBIDDEN_BY_RBAC"));
    }

    // The enrollment secret worked once: it is gone.
    let e = cluster
        .client_as(1, Credential::ClientSecret { client_id: agent_id.clone(), secret: secret.clone().into() })
        .await
        .err()
        .expect("the enrollment secret is refused");
    assert!(e.to_string().contains("INVALID_CLIENT") || format!("{e:?}").contains("InvalidClient"), "{e:?}");
    let (ok, listed) = arca(&cluster, true, &[], &["ad", "sp", "credential", "list", "--id", &agent_id]);
    assert!(ok, "{listed}");
    let types: Vec<&str> = listed.as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["AsymmetricX509Cert"], "{listed}");

    // IMDS's rules: no Metadata header, or a proxy's header, and nothing is handed out.
    let (status, body) = curl(&socket, None, "", &[]);
    assert_eq!(status, 400, "{body}");
    let (status, _) = curl(&socket, None, "", &["Metadata: true", "X-Forwarded-For: 10.1.2.3"]);
    assert_eq!(status, 400);
    let (status, body) = curl(&socket, None, "", &["Metadata: true"]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_str().unwrap().parse::<u64>().unwrap() > 3000, "{body}");

    // One local user holding many idle connections is refused more at once, and served again after.
    let idle: Vec<std::os::unix::net::UnixStream> = (0..arca_agent::CALLERS_PER_UID_MAX)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = curl(&socket, None, "", &["Metadata: true"]);
    assert_eq!(status, 429, "{body}");
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = curl(&socket, None, "", &["Metadata: true"]);
    assert_eq!(status, 200, "{body}");

    // An identity nobody bound to this agent is refused, named or not, and so is one that does not exist.
    let (ok, _) = arca(&cluster, true, &[], &["identity", "create", "--name", "unbound"]);
    assert!(ok);
    for query in ["&client_id=unbound", "&client_id=00000000-0000-0000-0000-000000000000"] {
        let (status, body) = curl(&socket, None, query, &["Metadata: true"]);
        assert_eq!(status, 403, "{query}: {body}");
    }

    if !running_as_root() {
        eprintln!("not root: the test of another user's process is skipped");
        return;
    }
    // Another user's process on the same machine is refused: the binding names uid 0.
    let nobody = 65534;
    let (status, body) = curl(&socket, Some(nobody), "", &["Metadata: true"]);
    assert_eq!(status, 403, "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("uid 65534"), "{body}");
    // Bound for that uid and executable, it gets the identity; the same uid running something else does not.
    let (ok, _) = arca(&cluster, true, &[], &["identity", "create", "--name", "curl-job"]);
    assert!(ok);
    let curl_path = std::fs::canonicalize(which("curl")).unwrap();
    let bind = [
        "identity",
        "bind",
        "--name",
        "curl-job",
        "--agent",
        "host-1",
        "--uid",
        "65534",
        "--executable",
        curl_path.to_str().unwrap(),
    ];
    let (ok, binding) = arca(&cluster, true, &[], &bind);
    assert!(ok, "{binding}");
    let (status, body) = curl(&socket, Some(nobody), "", &["Metadata: true"]);
    assert_eq!(status, 200, "{body}");
    let (ok, mi) = arca(&cluster, true, &[], &["ad", "sp", "show", "--id", "curl-job"]);
    assert!(ok);
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], mi["id"]);
    // Root (uid 0) asking for it by name is refused: the binding is for uid 65534.
    let (status, _) = curl(&socket, None, "&client_id=curl-job", &["Metadata: true"]);
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rotates_its_certificate_with_no_failed_request_and_resumes_after_sigkill() {
    let cluster = TestCluster::start(1).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = open_dir();
    let socket = run.path().join("agent.sock");
    let (agent_id, secret) = setup(&cluster, "host-2", my_uid());
    // Each certificate is honoured 10 s, so the agent registers a new one every 5 s.
    let agent = start_agent(&cluster, state.path(), &socket, Some((&agent_id, &secret)), 10);
    let first = std::fs::read(state.path().join("agent.pem")).unwrap();

    let root = cluster.client(0).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(17);
    let mut requests = 0;
    while Instant::now() < deadline {
        let credential = Credential::ManagedIdentity { socket: socket.clone(), client_id: None };
        let app = cluster.client_as(0, credential).await.expect("a token from the agent, mid-rotation too");
        assert_eq!(get(&app, "appb", "db").await.unwrap(), "appb-secret");
        requests += 1;
        let listed = root.principals().list_credentials(pb::ListCredentialsRequest { id: agent_id.clone() }).await;
        let credentials = listed.unwrap().into_inner().credentials;
        assert!(credentials.len() <= 2, "at most the current certificate and the next: {credentials:?}");
        assert!(credentials.iter().all(|c| c.r#type == "AsymmetricX509Cert"), "{credentials:?}");
        seen.extend(credentials.into_iter().map(|c| c.thumbprint));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen.len() >= 3, "the agent registered new certificates as they aged: {seen:?} over {requests} requests");

    // The first certificate, rotated out (and past its end), signs in no more.
    let old = state.path().join("first.pem");
    std::fs::write(&old, &first).unwrap();
    let e = cluster
        .client_as(0, Credential::ClientCertificateTls { client_id: agent_id.clone(), pem_path: old })
        .await
        .err()
        .expect("the first certificate is refused");
    assert!(format!("{e:?}").contains("INVALID_CLIENT"), "{e:?}");

    // Killed mid-stream, the agent restarts from its state directory (no secret: it was used up) and serves.
    let mut agent = agent;
    sigkill(agent.child.id());
    let _ = agent.child.wait();
    std::fs::remove_file(&socket).ok();
    let _restarted = start_agent(&cluster, state.path(), &socket, None, 10);
    let credential = Credential::ManagedIdentity { socket: socket.clone(), client_id: None };
    let app = cluster.client_as(0, credential).await.unwrap();
    assert_eq!(get(&app, "appb", "db").await.unwrap(), "appb-secret");
    drop(agent);
}

/// SIGKILL, through `kill -9`.
fn sigkill(pid: u32) {
    let status = Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(program)).find(|p| p.exists()))
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_enrolled_agent_obtains_identities_and_only_those_bound_to_it() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    let (agent_id, secret) = setup(&cluster, "host-3", my_uid());
    let workload = Some(pb::AttestedWorkload { uid: my_uid(), ..Default::default() });
    let ask = |identity: &str| pb::IssueManagedIdentityTokenRequest {
        identity: identity.into(),
        workload: workload.clone(),
        lifetime: None,
    };

    // Signed in with its enrollment secret, the agent has not enrolled: no identities for it.
    let early = cluster
        .client_as(0, Credential::ClientSecret { client_id: agent_id.clone(), secret: secret.clone().into() })
        .await
        .unwrap();
    let e = ClientError::from(early.agents().issue_managed_identity_token(ask("app-b")).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_RBAC"), "{e:?}");
    assert!(e.message.contains("mutual TLS"), "{e:?}");

    // A service principal, even one that may manage principals, is not an agent; nor is root.
    let (ok, sp) = arca(&cluster, true, &[], &["ad", "sp", "create-for-rbac", "--name", "admin app"]);
    assert!(ok, "{sp}");
    let assign = ["role", "assignment", "create", "--assignee", "admin app", "--role", "Identity Administrator"];
    assert!(arca(&cluster, true, &[], &[&assign[..], &["--scope", "/"]].concat()).0);
    let admin = cluster
        .client_as(
            0,
            Credential::ClientSecret {
                client_id: sp["appId"].as_str().unwrap().into(),
                secret: sp["password"].as_str().unwrap().to_owned().into(),
            },
        )
        .await
        .unwrap();
    for client in [&admin, &root] {
        let e = ClientError::from(client.agents().issue_managed_identity_token(ask("app-b")).await.unwrap_err());
        assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_RBAC"), "{e:?}");
        assert!(e.message.contains("not an agent principal"), "{e:?}");
        let pem = arca_crypto::client_cert::self_signed("not an agent", unix_now(), 1).unwrap();
        let r = pb::RegisterAgentCertificateRequest { certificate_pem: pem, lifetime: None };
        let e = ClientError::from(client.agents().register_agent_certificate(r).await.unwrap_err());
        assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_RBAC"), "{e:?}");
        assert!(e.message.contains("not an agent principal"), "{e:?}");
    }
    // An identity administrator cannot take an agent over to obtain identities holding roles it could
    // not assign: resetting the agent's credential needs the right to assign app-b's role.
    let reset = pb::ResetCredentialRequest { id: "host-3".into(), ..Default::default() };
    let e = ClientError::from(admin.principals().reset_credential(reset).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_RBAC"), "{e:?}");
    // Nor can anyone give an agent a certificate: the agent makes its own.
    let pem = arca_crypto::client_cert::self_signed("planted", unix_now(), 1).unwrap();
    let cert_only = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    let plant = pb::ResetCredentialRequest { id: "host-3".into(), certificate_pem: cert_only, ..Default::default() };
    let e = ClientError::from(root.principals().reset_credential(plant).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{e:?}");

    // Another enrolled agent gets nothing bound to host-3, whatever workload it claims.
    let (ok, other) = arca(&cluster, true, &[], &["agent", "create", "--name", "host-4"]);
    assert!(ok);
    let dir = tempfile::tempdir().unwrap();
    let pem = arca_crypto::client_cert::self_signed("host-4", unix_now(), 1).unwrap();
    let pem_path = dir.path().join("host-4.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let other_id = other["appId"].as_str().unwrap().to_owned();
    let secret_4 = other["enrollmentSecret"].as_str().unwrap().to_owned();
    let enrolling = cluster
        .client_as(0, Credential::ClientSecret { client_id: other_id.clone(), secret: secret_4.into() })
        .await
        .unwrap();
    // A certificate sent with its private key is refused: the key never leaves the agent.
    let with_key = pb::RegisterAgentCertificateRequest { certificate_pem: pem.clone(), lifetime: None };
    let e = ClientError::from(enrolling.agents().register_agent_certificate(with_key).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{e:?}");
    assert!(e.message.contains("private key"), "{e:?}");
    let cert_only = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    let too_short = pb::RegisterAgentCertificateRequest {
        certificate_pem: cert_only.clone(),
        lifetime: Some(prost_types::Duration { seconds: 9, nanos: 0 }),
    };
    let e = ClientError::from(enrolling.agents().register_agent_certificate(too_short).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{e:?}");
    let at_least = pb::RegisterAgentCertificateRequest {
        certificate_pem: cert_only,
        lifetime: Some(prost_types::Duration { seconds: 10, nanos: 0 }),
    };
    enrolling.agents().register_agent_certificate(at_least).await.unwrap();
    let host_4 = cluster
        .client_as(0, Credential::ClientCertificateTls { client_id: other_id.clone(), pem_path: pem_path.clone() })
        .await
        .unwrap();
    for identity in ["app-b", ""] {
        let e = ClientError::from(host_4.agents().issue_managed_identity_token(ask(identity)).await.unwrap_err());
        assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_RBAC"), "{identity:?}: {e:?}");
    }
    // Its token is bound to its certificate: without it, the token is refused.
    let token = host_4.access_token().unwrap();
    let stolen = cluster.client_with_token(0, Some(&token)).await.unwrap();
    let e = ClientError::from(stolen.agents().issue_managed_identity_token(ask("")).await.unwrap_err());
    assert_eq!(e.code, tonic::Code::Unauthenticated, "{e:?}");

    // Bindings are checked: only a managed identity is bound, only to an agent, only to an absolute path.
    let bind = |id: &str, agent: &str, exe: &str| pb::BindManagedIdentityRequest {
        id: id.into(),
        agent: agent.into(),
        uid: Some(0),
        executable: exe.into(),
        years: 0,
        ..Default::default()
    };
    for (request, field) in [
        (bind("admin app", "host-3", ""), "id"),
        (bind("app-b", "admin app", ""), "agent"),
        (bind("app-b", "host-3", "curl"), "executable"),
        (bind("app-b", "host-3", &format!("/{}", "x".repeat(4096))), "executable"),
    ] {
        let e = ClientError::from(root.principals().bind_managed_identity(request).await.unwrap_err());
        assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{field}: {e:?}");
    }
    let at_limit = format!("/{}", "x".repeat(4095));
    root.principals().bind_managed_identity(bind("app-b", "host-3", &at_limit)).await.unwrap();

    // Once host-3's binding is deleted, host-3 gets app-b no more (the next request, no caching).
    let state = tempfile::tempdir().unwrap();
    let run = open_dir();
    let socket = run.path().join("agent.sock");
    let _agent = start_agent(&cluster, state.path(), &socket, Some((&agent_id, &secret)), 3600);
    let (status, body) = curl(&socket, None, "&client_id=app-b", &["Metadata: true"]);
    assert_eq!(status, 200, "{body}");
    // Enrolled, the agent's enrollment secret and every token won with it are gone: a token taken
    // before enrollment cannot register a certificate of its own afterwards.
    let pem = arca_crypto::client_cert::self_signed("squatter", unix_now(), 1).unwrap();
    let cert_only = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    let late = pb::RegisterAgentCertificateRequest { certificate_pem: cert_only, lifetime: None };
    let e = ClientError::from(early.agents().register_agent_certificate(late).await.unwrap_err());
    assert_eq!(e.code, tonic::Code::Unauthenticated, "{e:?}");
    let listed = root.principals().list_credentials(pb::ListCredentialsRequest { id: "app-b".into() }).await.unwrap();
    for binding in listed.into_inner().credentials {
        let r = pb::DeleteCredentialRequest { id: "app-b".into(), key_id: binding.key_id };
        root.principals().delete_credential(r).await.unwrap();
    }
    let (status, body) = curl(&socket, None, "&client_id=app-b", &["Metadata: true"]);
    assert_eq!(status, 403, "{body}");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_that_requires_a_service_account_serves_only_workloads_presenting_its_token() {
    use arca_testkit::IssuerProcess;
    // The local provider stands in for a Kubernetes cluster's service account issuer.
    let issuer_dir = tempfile::tempdir().unwrap();
    let k8s = IssuerProcess::start(issuer_dir.path()).await.unwrap();
    let ca = k8s.ca_file.to_str().unwrap().to_owned();
    let cluster = TestCluster::start_with_node_args(1, &["--oidc-ca-file", &ca]).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let run = open_dir();
    let socket = run.path().join("agent.sock");
    let (agent_id, secret) = setup(&cluster, "node-1", my_uid());
    let _agent = start_agent(&cluster, state.path(), &socket, Some((&agent_id, &secret)), 3600);

    // A pod's identity: any uid on the node (containers share them), but only for a workload that
    // presents its service account's token.
    let (ok, _) = arca(&cluster, true, &[], &["identity", "create", "--name", "pod-app"]);
    assert!(ok);
    let assign = ["role", "assignment", "create", "--assignee", "pod-app", "--role", "Key Vault Secrets User"];
    assert!(arca(&cluster, true, &[], &[&assign[..], &["--scope", "/vaults/appa"]].concat()).0);
    let subject = "system:serviceaccount:prod:app";
    let bind = [
        "identity",
        "bind",
        "--name",
        "pod-app",
        "--agent",
        "node-1",
        "--any-uid",
        "--service-account",
        subject,
        "--service-account-issuer",
        &k8s.url,
    ];
    let (ok, binding) = arca(&cluster, true, &[], &bind);
    assert!(ok, "{binding}");
    assert_eq!(binding["serviceAccount"], subject, "{binding}");

    let aud = "api://ArcaTokenExchange";
    let header = |token: &str| format!("X-Arca-Service-Account-Token: {token}");
    let ask = |token: Option<String>| {
        let socket = socket.clone();
        let headers: Vec<String> = ["Metadata: true".to_owned()].into_iter().chain(token.map(|t| header(&t))).collect();
        move || {
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            curl(&socket, None, "&client_id=pod-app", &refs)
        }
    };
    let good = k8s.issue(subject, aud, &[], 600).await.unwrap();
    let (status, body) = tokio::task::spawn_blocking(ask(Some(good.clone()))).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (ok, mi) = arca(&cluster, true, &[], &["ad", "sp", "show", "--id", "pod-app"]);
    assert!(ok);
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], mi["id"]);

    // No token, another service account, another audience, expired, a key the issuer never had.
    let forged = {
        let key = arca_crypto::cluster_pki::Ed25519Key::generate(&arca_crypto::OsEntropy);
        let mut c = claims(&good);
        c["jti"] = "forged".into();
        arca_crypto::jwt::sign_eddsa(&key, &serde_json::json!({ "alg": "EdDSA", "kid": "key-1" }), &c)
    };
    let refused = [
        ("no token", None),
        ("another service account", Some(k8s.issue("system:serviceaccount:prod:other", aud, &[], 600).await.unwrap())),
        ("another audience", Some(k8s.issue(subject, "https://kubernetes.default.svc", &[], 600).await.unwrap())),
        ("expired", Some(k8s.issue(subject, aud, &[], -600).await.unwrap())),
        ("forged", Some(forged)),
        (
            "issued for two days (a long-lived token, not a pod's)",
            Some(k8s.issue(subject, aud, &[], 2 * 86400).await.unwrap()),
        ),
    ];
    for (what, token) in refused {
        let (status, body) = tokio::task::spawn_blocking(ask(token)).await.unwrap();
        assert_eq!(status, 403, "{what}: {body}");
    }

    // Through the CLI as a pod runs it: the projected token's file, read at each request.
    let token_file = state.path().join("sa-token");
    std::fs::write(&token_file, &good).unwrap();
    let env = [
        ("ARCA_IDENTITY_ENDPOINT", socket.to_str().unwrap()),
        ("ARCA_IDENTITY_CLIENT_ID", "pod-app"),
        ("ARCA_SERVICE_ACCOUNT_TOKEN_FILE", token_file.to_str().unwrap()),
    ];
    let show = ["--identity", "keyvault", "secret", "show", "--vault-name", "appa", "--name", "db"];
    let (ok, out) = arca(&cluster, false, &env, &show);
    assert!(ok, "{out}");
    assert_eq!(out["value"], "appa-secret");
    let (ok, out) = arca(
        &cluster,
        false,
        &env,
        &["--identity", "keyvault", "secret", "show", "--vault-name", "appb", "--name", "db"],
    );
    assert!(!ok && out["reason"] == "FORBIDDEN_BY_RBAC", "{out}");

    // A service account narrows nothing beside a binding without one: app-b is bound to this agent
    // for a uid, so requiring a service account too is refused until that binding goes.
    let narrower = [
        "identity",
        "bind",
        "--name",
        "app-b",
        "--agent",
        "node-1",
        "--any-uid",
        "--service-account",
        subject,
        "--service-account-issuer",
        &k8s.url,
    ];
    let (ok, out) = arca(&cluster, true, &[], &narrower);
    assert!(!ok && out.to_string().contains("CONFLICT"), "{out}");

    // A binding names both the service account and its issuer, or neither.
    let half =
        ["identity", "bind", "--name", "pod-app", "--agent", "node-1", "--any-uid", "--service-account", subject];
    assert!(!arca(&cluster, true, &[], &half).0);
}
