//! A client generated in another language from `proto/` alone (Python, grpcio-tools) creates a vault
//! and stores, reads, versions, deletes, recovers, purges, backs up and restores a secret over TLS.
//!
//! It also signs in as a service principal (with a client secret, with a certificate over mutual
//! TLS, and with another provider's workload token), as a managed identity (a token from the local
//! `arca agent`) and as a person (an ID token from an OpenID Connect provider, exchanged with the
//! jwt-bearer grant), each reading only what its roles allow.
//!
//! Needs a Python with `grpcio` and `grpcio-tools`: `.ci/test` makes one and passes it in `ARCA_PYTHON`.

use std::path::Path;
use std::process::Command;

use arca_testkit::{IssuerProcess, TestCluster};

/// The Python to run, with grpcio and grpcio-tools.
fn python() -> String {
    let python = std::env::var("ARCA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python).args(["-c", "import grpc, grpc_tools"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "{python} lacks grpcio/grpcio-tools: run the suite with .ci/test, which sets ARCA_PYTHON"
    );
    python
}

/// Generates the Python stubs of `protos` into the cluster's directory; returns where.
fn stubs(python: &str, cluster: &TestCluster, protos: &[&str]) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let stubs = cluster.dir.path().join("py");
    std::fs::create_dir_all(&stubs).unwrap();
    let protos: Vec<String> = protos.iter().map(|p| format!("arca/v1/{p}.proto")).collect();
    let status = Command::new(python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&root)
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .args(&protos)
        .status()
        .unwrap();
    assert!(status.success(), "protoc from grpcio-tools failed");
    stubs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_protos_works() {
    let python = python();
    let cluster = TestCluster::start(1).await.unwrap();
    let stubs = stubs(&python, &cluster, &["common", "vaults", "secrets", "operator", "cluster"]);
    let ca = cluster.dir.path().join("certs/ca.pem");
    let addr = format!("127.0.0.1:{}", cluster.nodes[0].api_port);
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py"))
        .arg(&stubs)
        .arg(&addr)
        .arg(&ca)
        .arg(&cluster.root_token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("python client ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_signs_in_as_a_service_principal_a_managed_identity_and_a_person() {
    use arca_client::pb;
    let python = python();
    let issuer_dir = tempfile::tempdir().unwrap();
    let issuer = IssuerProcess::start(issuer_dir.path()).await.unwrap();
    let ca_arg = issuer.ca_file.to_str().unwrap().to_owned();
    let cluster = TestCluster::start_with_node_args(3, &["--oidc-ca-file", &ca_arg]).await.unwrap();
    let stubs = stubs(&python, &cluster, &["common", "secrets", "identity"]);
    let root = cluster.client(0).await.unwrap();
    for vault in ["appa", "appb"] {
        root.vaults().create_vault(pb::CreateVaultRequest { name: vault.into(), ..Default::default() }).await.unwrap();
        let value = format!("{vault}-secret");
        let r = pb::SetSecretRequest { vault: vault.into(), name: "db".into(), value, ..Default::default() };
        root.secrets().set_secret(r).await.unwrap();
    }
    let create = |kind: pb::PrincipalKind, name: &str, with_secret: bool| pb::CreatePrincipalRequest {
        kind: kind as i32,
        display_name: name.into(),
        with_secret,
        years: 0,
    };
    let mut principals = root.principals();
    let sp = principals.create_principal(create(pb::PrincipalKind::ServicePrincipal, "py app a", true));
    let sp = sp.await.unwrap().into_inner();
    let mi = principals.create_principal(create(pb::PrincipalKind::ManagedIdentity, "py app b", false));
    let mi = mi.await.unwrap().into_inner().principal.unwrap();
    let agent = principals.create_principal(create(pb::PrincipalKind::Agent, "py host", true));
    let agent = agent.await.unwrap().into_inner();
    for (who, vault) in [(&sp.principal.as_ref().unwrap().id, "appa"), (&mi.id, "appb")] {
        let r = pb::CreateRoleAssignmentRequest {
            assignee: who.clone(),
            role: "Key Vault Secrets User".into(),
            scope: format!("/vaults/{vault}"),
        };
        root.roles().create_role_assignment(r).await.unwrap();
    }
    let agent_id = agent.principal.unwrap().app_id;
    let bind = pb::BindManagedIdentityRequest { id: mi.id.clone(), agent: agent_id.clone(), ..Default::default() };
    root.principals().bind_managed_identity(bind).await.unwrap();
    // A person who signs in through the provider, a reader of appa through the group their
    // groups claim names.
    for (kind, name, subject, audiences) in [
        (pb::PrincipalKind::User, "py person", "py-person", vec!["arca".to_owned()]),
        (pb::PrincipalKind::Group, "py readers", "py-readers", vec![]),
    ] {
        let created = root.principals().create_principal(create(kind, name, false)).await.unwrap().into_inner();
        let id = created.principal.unwrap().id;
        let link = pb::AddFederatedCredentialRequest {
            id: id.clone(),
            name: "sign-in".into(),
            issuer: issuer.url.clone(),
            subject: subject.into(),
            audiences,
            jwks_json: String::new(),
            claims: vec![],
        };
        root.principals().add_federated_credential(link).await.unwrap();
        if kind == pb::PrincipalKind::Group {
            let r = pb::CreateRoleAssignmentRequest {
                assignee: id,
                role: "Key Vault Secrets User".into(),
                scope: "/vaults/appa".into(),
            };
            root.roles().create_role_assignment(r).await.unwrap();
        }
    }
    let id_token = issuer.issue("py-person", "arca", &["py-readers"], 600).await.unwrap();
    // A service principal with a certificate (presented over mutual TLS), reading appa; and one
    // that trusts the provider's workload tokens (no secret at all), reading appb.
    let mut apps = Vec::new();
    for (name, vault) in [("py cert app", "appa"), ("py federated app", "appb")] {
        let request = create(pb::PrincipalKind::ServicePrincipal, name, false);
        let created = root.principals().create_principal(request).await.unwrap().into_inner().principal.unwrap();
        let r = pb::CreateRoleAssignmentRequest {
            assignee: created.id.clone(),
            role: "Key Vault Secrets User".into(),
            scope: format!("/vaults/{vault}"),
        };
        root.roles().create_role_assignment(r).await.unwrap();
        apps.push(created);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let pem = arca_crypto::client_cert::self_signed("py cert app", now, 30).unwrap();
    let cert_only = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    let reset = pb::ResetCredentialRequest { id: apps[0].id.clone(), certificate_pem: cert_only, ..Default::default() };
    root.principals().reset_credential(reset).await.unwrap();
    let pem_dir = tempfile::tempdir().unwrap();
    let pem_path = pem_dir.path().join("py-cert-app.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let link = pb::AddFederatedCredentialRequest {
        id: apps[1].id.clone(),
        name: "workload".into(),
        issuer: issuer.url.clone(),
        subject: "system:serviceaccount:prod:py".into(),
        audiences: vec![],
        jwks_json: String::new(),
        claims: vec![],
    };
    root.principals().add_federated_credential(link).await.unwrap();
    let workload_token =
        issuer.issue("system:serviceaccount:prod:py", "api://ArcaTokenExchange", &[], 600).await.unwrap();
    let state = tempfile::tempdir().unwrap();
    let socket = state.path().join("agent.sock");
    let enroll = Some((agent_id.as_str(), agent.password.as_str()));
    let _agent = cluster.start_agent(&state.path().join("state"), &socket, enroll, 3600).unwrap();

    let ca = cluster.dir.path().join("certs/ca.pem");
    let addr = format!("127.0.0.1:{}", cluster.nodes[1].api_port);
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/identity.py"))
        .arg(&stubs)
        .arg(&addr)
        .arg(&ca)
        .arg(&sp.principal.unwrap().app_id)
        .arg(&sp.password)
        .arg(&socket)
        .arg(&id_token)
        .arg(&apps[0].app_id)
        .arg(&pem_path)
        .arg(&apps[1].app_id)
        .arg(&workload_token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("python identity ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
