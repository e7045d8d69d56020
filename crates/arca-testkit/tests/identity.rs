//! Identity and role-based access on a real 3-node cluster: service principals sign in with a
//! client secret at the token endpoint and get only what their role assignments allow, at the scope
//! they were given; a revoked assignment, secret or token stops working on the very next request,
//! on a follower too; the mistakes others shipped in this kind of code are each tried.

use arca_client::{pb, ArcaClient, ClientError, Credential};
use arca_testkit::TestCluster;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

async fn create_vault(c: &ArcaClient, name: &str) {
    c.vaults().create_vault(pb::CreateVaultRequest { name: name.into(), ..Default::default() }).await.unwrap();
}

async fn set(c: &ArcaClient, vault: &str, name: &str, value: &str) -> Result<pb::Secret, ClientError> {
    let r = pb::SetSecretRequest { vault: vault.into(), name: name.into(), value: value.into(), ..Default::default() };
    Ok(c.secrets().set_secret(r).await?.into_inner())
}

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<String, ClientError> {
    let r = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(r).await?.into_inner().value)
}

/// A principal of `kind`, through `client` (a service principal with a client secret if `with_secret`).
async fn create(
    client: &ArcaClient,
    kind: pb::PrincipalKind,
    name: &str,
    with_secret: bool,
) -> pb::CreatePrincipalResponse {
    let request = pb::CreatePrincipalRequest { kind: kind as i32, display_name: name.into(), with_secret, years: 1 };
    client.principals().create_principal(request).await.unwrap().into_inner()
}

/// A service principal with a client secret: (object id, client id, secret).
async fn service_principal(root: &ArcaClient, name: &str) -> (String, String, String) {
    let created = create(root, pb::PrincipalKind::ServicePrincipal, name, true).await;
    let p = created.principal.unwrap();
    (p.id, p.app_id, created.password)
}

async fn assign(root: &ArcaClient, assignee: &str, role: &str, scope: &str) -> pb::RoleAssignment {
    root.roles()
        .create_role_assignment(pb::CreateRoleAssignmentRequest {
            assignee: assignee.into(),
            role: role.into(),
            scope: scope.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

fn secret_credential(client_id: &str, secret: &str) -> Credential {
    Credential::ClientSecret { client_id: client_id.into(), secret: zeroize::Zeroizing::new(secret.into()) }
}

async fn token(
    cluster: &TestCluster,
    node: usize,
    client_id: &str,
    secret: &str,
) -> Result<pb::TokenResponse, ClientError> {
    let anonymous = cluster.client_with_token(node, None).await.unwrap();
    let r = pb::TokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        ..Default::default()
    };
    Ok(anonymous.auth().token(r).await?.into_inner())
}

fn refused(e: &ClientError, reason: &str) {
    assert_eq!(e.reason.as_deref(), Some(reason), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_app_reads_its_own_vault_and_is_refused_the_other() {
    let cluster = TestCluster::start(3).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "app-a").await;
    create_vault(&root, "app-b").await;
    set(&root, "app-a", "db", "a-secret").await.unwrap();
    set(&root, "app-b", "db", "b-secret").await.unwrap();
    let (_, a_client, a_secret) = service_principal(&root, "app a").await;
    let (b_id, b_client, b_secret) = service_principal(&root, "app b").await;
    assign(&root, &a_client, "Key Vault Secrets User", "/vaults/app-a").await;
    assign(&root, &b_id, "4633458b-17de-408a-b874-0445c86b69e6", "/vaults/app-b").await;

    for node in 0..3 {
        let a = cluster.client_as(node, secret_credential(&a_client, &a_secret)).await.unwrap();
        let b = cluster.client_as(node, secret_credential(&b_client, &b_secret)).await.unwrap();
        assert_eq!(get(&a, "app-a", "db").await.unwrap(), "a-secret");
        assert_eq!(get(&b, "app-b", "db").await.unwrap(), "b-secret");
        let e = get(&a, "app-b", "db").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::PermissionDenied);
        refused(&e, "FORBIDDEN_BY_RBAC");
        assert!(!e.message.contains("b-secret"));
        refused(&get(&b, "app-a", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
        // Secrets User reads; it does not write, delete or manage anything.
        refused(&set(&a, "app-a", "db", "overwritten").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
        let delete =
            a.secrets().delete_secret(pb::DeleteSecretRequest { vault: "app-a".into(), name: "db".into() }).await;
        refused(&ClientError::from(delete.unwrap_err()), "FORBIDDEN_BY_RBAC");
        let vault = a.vaults().create_vault(pb::CreateVaultRequest { name: "mine".into(), ..Default::default() }).await;
        refused(&ClientError::from(vault.unwrap_err()), "FORBIDDEN_BY_RBAC");
        let own = a
            .roles()
            .create_role_assignment(pb::CreateRoleAssignmentRequest {
                assignee: a_client.clone(),
                role: "Key Vault Administrator".into(),
                scope: "/".into(),
            })
            .await;
        refused(&ClientError::from(own.unwrap_err()), "FORBIDDEN_BY_RBAC");
        let seal = a.operator().seal(pb::SealRequest {}).await;
        refused(&ClientError::from(seal.unwrap_err()), "FORBIDDEN_BY_RBAC");
    }
    assert_eq!(get(&root, "app-a", "db").await.unwrap(), "a-secret", "refused writes changed nothing");

    // The audit log names the caller and the assignment that allowed it, and a refused caller too.
    let audit = std::fs::read_to_string(cluster.nodes[0].data_dir.join("audit.log")).unwrap();
    let records: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let allowed = records
        .iter()
        .find(|r| r["operation"] == "SecretGet" && r["client_id"] == a_client.as_str() && r["result"] == "success")
        .expect("an allowed read by app a");
    assert_eq!(allowed["role"], "Key Vault Secrets User");
    assert_eq!(allowed["action"], "Microsoft.KeyVault/vaults/secrets/getSecret/action");
    assert_eq!(allowed["principal_type"], "ServicePrincipal");
    assert_eq!(allowed["auth_method"], "client_secret");
    let denied = records
        .iter()
        .find(|r| {
            r["operation"] == "SecretGet" && r["client_id"] == a_client.as_str() && r["code"] == "ForbiddenByRbac"
        })
        .expect("a refused read by app a");
    assert!(denied["principal"].as_str().is_some_and(|p| !p.is_empty()), "{denied}");
    assert!(!audit.contains("a-secret") && !audit.contains(&a_secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_take_effect_on_the_next_request_on_a_follower() {
    let cluster = TestCluster::start(3).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "shared").await;
    set(&root, "shared", "db", "v").await.unwrap();
    let leader = cluster.leader_index().await.unwrap();
    let follower = (leader + 1) % 3;
    let (sp_id, client_id, secret) = service_principal(&root, "worker").await;
    let assignment = assign(&root, &sp_id, "Key Vault Secrets User", "/vaults/shared").await;
    let app = cluster.client_as(follower, secret_credential(&client_id, &secret)).await.unwrap();
    assert_eq!(get(&app, "shared", "db").await.unwrap(), "v");

    // The assignment is deleted through the leader; the very next read on the follower is refused.
    let on_leader = cluster.client(leader).await.unwrap();
    on_leader
        .roles()
        .delete_role_assignment(pb::DeleteRoleAssignmentRequest { id: assignment.id, ..Default::default() })
        .await
        .unwrap();
    refused(&get(&app, "shared", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");

    // Given back, through a group this time: membership counts on the next request as well.
    let group = create(&root, pb::PrincipalKind::Group, "readers", false).await.principal.unwrap();
    assign(&root, &group.id, "Key Vault Secrets User", "/vaults/shared").await;
    refused(&get(&app, "shared", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    on_leader
        .principals()
        .add_group_member(pb::GroupMemberRequest { group: group.id.clone(), member: sp_id.clone() })
        .await
        .unwrap();
    // A token carries who the caller is, not what it may do: the old token sees the new group.
    assert_eq!(get(&app, "shared", "db").await.unwrap(), "v");

    // Revoking the principal's tokens: the token in hand stops at once; a new one works.
    on_leader.principals().revoke_tokens(pb::RevokeTokensRequest { id: sp_id.clone() }).await.unwrap();
    let e = get(&app, "shared", "db").await.unwrap_err();
    assert_eq!(e.code, tonic::Code::Unauthenticated, "{e:?}");
    let again = cluster.client_as(follower, secret_credential(&client_id, &secret)).await.unwrap();
    assert_eq!(get(&again, "shared", "db").await.unwrap(), "v");

    // Resetting the secret: the old one gets no token any more, on any node.
    let reset = on_leader
        .principals()
        .reset_credential(pb::ResetCredentialRequest { id: client_id.clone(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    for node in 0..3 {
        let e = token(&cluster, node, &client_id, &secret).await.unwrap_err();
        refused(&e, "INVALID_CLIENT");
        assert!(token(&cluster, node, &client_id, &reset.password).await.is_ok());
    }

    // Deleting the principal: its tokens stop, and its assignments go with it.
    let fresh = cluster.client_as(follower, secret_credential(&client_id, &reset.password)).await.unwrap();
    on_leader.principals().delete_principal(pb::DeletePrincipalRequest { id: sp_id.clone() }).await.unwrap();
    assert_eq!(get(&fresh, "shared", "db").await.unwrap_err().code, tonic::Code::Unauthenticated);
    let left = root
        .roles()
        .list_role_assignments(pb::ListRoleAssignmentsRequest { scope: "/".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert!(left.role_assignments.iter().all(|a| a.principal_id != sp_id), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_never_tells_unknown_from_wrong_and_never_yields_a_token_on_error() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    let (_, client_id, secret) = service_principal(&root, "svc").await;
    let unknown = "00000000-0000-4000-8000-000000000001";
    let cases = [
        (client_id.as_str(), "arcs_wrong"),
        (client_id.as_str(), ""),
        (unknown, secret.as_str()),
        (client_id.as_str(), &secret[..secret.len() - 1]),
    ];
    let mut messages = std::collections::BTreeSet::new();
    for (id, s) in cases {
        let e = token(&cluster, 0, id, s).await.unwrap_err();
        refused(&e, "INVALID_CLIENT");
        assert_eq!(e.code, tonic::Code::Unauthenticated);
        messages.insert(e.message);
    }
    assert_eq!(messages.len(), 1, "one message whatever was wrong: {messages:?}");
    // The secret of one principal is worthless for another's client id.
    let (_, other_client, _) = service_principal(&root, "svc2").await;
    refused(&token(&cluster, 0, &other_client, &secret).await.unwrap_err(), "INVALID_CLIENT");
    // Another grant type is refused as such.
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let e = anonymous
        .auth()
        .token(pb::TokenRequest { grant_type: "password".into(), client_id: client_id.clone(), ..Default::default() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert_eq!(e.code, tonic::Code::InvalidArgument);
    let good = token(&cluster, 0, &client_id, &secret).await.unwrap();
    assert!(good.expires_in > 3500 && good.expires_in <= 3600, "{}", good.expires_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_altered_access_tokens_are_refused() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "guarded").await;
    set(&root, "guarded", "s", "v").await.unwrap();
    let (sp_id, client_id, secret) = service_principal(&root, "reader").await;
    assign(&root, &sp_id, "Key Vault Secrets User", "/vaults/guarded").await;
    let real = token(&cluster, 0, &client_id, &secret).await.unwrap().access_token;
    let holder = cluster.client_with_token(0, Some(&real)).await.unwrap();
    assert_eq!(get(&holder, "guarded", "s").await.unwrap(), "v");

    let parts: Vec<&str> = real.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    // alg: none with no signature; HS256 "signed" with anything; claims changed under the old
    // signature (another subject: root's; a later expiry); a signature from another key.
    let mut escalated = claims.clone();
    escalated["sub"] = serde_json::json!("00000000-0000-0000-0000-000000000000");
    let mut longer = claims.clone();
    longer["exp"] = serde_json::json!(claims["exp"].as_i64().unwrap() + 86_400);
    let forged = [
        format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "at+jwt"})), parts[1]),
        format!("{}.{}.{}", b64(&serde_json::json!({"alg": "HS256", "typ": "at+jwt"})), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]),
        format!("{}.{}.{}", parts[0], b64(&longer), parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode([7u8; 64])),
        format!("{}.{}", parts[0], parts[1]),
        real.replace('.', ""),
    ];
    for f in forged {
        let forger = cluster.client_with_token(0, Some(&f)).await.unwrap();
        let e = get(&forger, "guarded", "s").await.unwrap_err();
        assert_eq!(e.code, tonic::Code::Unauthenticated, "{f}: {e:?}");
        assert!(!e.message.contains(&f));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_show_only_what_the_caller_may_see_and_object_scopes_stop_at_their_object() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "mixed").await;
    create_vault(&root, "other").await;
    for name in ["alpha", "beta", "gamma"] {
        set(&root, "mixed", name, name).await.unwrap();
    }
    let (sp_id, client_id, secret) = service_principal(&root, "narrow").await;
    assign(&root, &sp_id, "Key Vault Secrets User", "/vaults/mixed/secrets/beta").await;
    let app = cluster.client_as(0, secret_credential(&client_id, &secret)).await.unwrap();
    assert_eq!(get(&app, "mixed", "beta").await.unwrap(), "beta");
    refused(&get(&app, "mixed", "alpha").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    let listed = app
        .secrets()
        .list_secrets(pb::ListSecretsRequest { vault: "mixed".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = listed.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["beta"]);
    let vaults = app.vaults().list_vaults(pb::ListVaultsRequest::default()).await.unwrap().into_inner();
    assert_eq!(vaults.vaults.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), vec!["mixed"]);
    let e = app.secrets().list_secrets(pb::ListSecretsRequest { vault: "other".into(), ..Default::default() }).await;
    refused(&ClientError::from(e.unwrap_err()), "FORBIDDEN_BY_RBAC");
    // A list never carries values.
    assert!(listed.secrets.iter().all(|s| s.value.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_look_like_others_or_like_root_are_refused() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    service_principal(&root, "Payments").await;
    for name in ["payments", " PAYMENTS ", "Pаyments", "Root", " root", "rооt", "SYSTEM"] {
        let e = root
            .principals()
            .create_principal(pb::CreatePrincipalRequest {
                kind: pb::PrincipalKind::ServicePrincipal as i32,
                display_name: name.into(),
                with_secret: true,
                years: 1,
            })
            .await
            .map_err(ClientError::from)
            .unwrap_err();
        assert!(matches!(e.code, tonic::Code::AlreadyExists | tonic::Code::InvalidArgument), "{name:?}: {e:?}");
    }
    let all = root.principals().list_principals(pb::ListPrincipalsRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.principals.len(), 1, "nothing was created: {all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_access_administrator_assigns_only_the_roles_azure_lets_it() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "team").await;
    let (admin_id, admin_client, admin_secret) = service_principal(&root, "access admin").await;
    let (worker_id, _, _) = service_principal(&root, "worker").await;
    assign(&root, &admin_id, "Key Vault Data Access Administrator", "/vaults/team").await;
    let admin = cluster.client_as(0, secret_credential(&admin_client, &admin_secret)).await.unwrap();
    let try_assign = |role: &'static str, scope: &'static str| {
        let admin = admin.clone();
        let worker_id = worker_id.clone();
        async move {
            admin
                .roles()
                .create_role_assignment(pb::CreateRoleAssignmentRequest {
                    assignee: worker_id,
                    role: role.into(),
                    scope: scope.into(),
                })
                .await
                .map_err(ClientError::from)
        }
    };
    try_assign("Key Vault Secrets User", "/vaults/team").await.unwrap();
    refused(&try_assign("Key Vault Certificate User", "/vaults/team").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    refused(
        &try_assign("Key Vault Crypto Service Release User", "/vaults/team").await.unwrap_err(),
        "FORBIDDEN_BY_RBAC",
    );
    refused(&try_assign("User Access Administrator", "/vaults/team").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    refused(&try_assign("Key Vault Secrets User", "/").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    // It manages access; it does not read secrets itself.
    refused(&get(&admin, "team", "anything").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
}

/// A PEM file with a new self-signed certificate and its key, and the certificate's PEM alone.
fn certificate(dir: &std::path::Path, name: &str, cn: &str) -> (std::path::PathBuf, String) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let pem = arca_crypto::client_cert::self_signed(cn, now, 30).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &pem).unwrap();
    let cert_only = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    (path, cert_only)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// An assertion for `client_id`, signed with the key in `pem_path`, with claims `edit` may change.
fn assertion(
    pem_path: &std::path::Path,
    client_id: &str,
    cluster_id: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> String {
    let pem = std::fs::read_to_string(pem_path).unwrap();
    let (cert, key, algorithm) = arca_crypto::client_cert::read_certificate_and_key(&pem).unwrap();
    let now = unix_now();
    let id: [u8; 16] = hex::decode(cluster_id).unwrap().try_into().unwrap();
    let mut claims = serde_json::json!({
        "aud": arca_identity::client_assertion::audience(&id), "iss": client_id, "sub": client_id,
        "jti": format!("{now}-{}", rand_suffix()), "iat": now, "nbf": now, "exp": now + 300,
    });
    edit(&mut claims);
    let header = serde_json::json!({"typ": "JWT", "x5t#S256": arca_crypto::client_cert::thumbprint(&cert)});
    arca_crypto::jwt::sign_with_pkcs8(algorithm, &key, &header, &claims).unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn token_by_assertion(
    cluster: &TestCluster,
    node: usize,
    client_id: &str,
    assertion: &str,
) -> Result<pb::TokenResponse, ClientError> {
    let anonymous = cluster.client_with_token(node, None).await.unwrap();
    let r = pb::TokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.into(),
        client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        client_assertion: assertion.into(),
        ..Default::default()
    };
    Ok(anonymous.auth().token(r).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_holder_signs_in_with_a_single_use_assertion_and_nobody_else_can() {
    let cluster = TestCluster::start(3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "certs").await;
    set(&root, "certs", "db", "by-cert").await.unwrap();
    let sp = create(&root, pb::PrincipalKind::ServicePrincipal, "cert app", false).await.principal.unwrap();
    let (pem, cert) = certificate(dir.path(), "app.pem", "cert app");
    root.principals()
        .reset_credential(pb::ResetCredentialRequest { id: sp.id.clone(), certificate_pem: cert, ..Default::default() })
        .await
        .unwrap();
    assign(&root, &sp.id, "Key Vault Secrets User", "/vaults/certs").await;
    let cluster_id =
        root.operator().get_seal_status(pb::GetSealStatusRequest {}).await.unwrap().into_inner().cluster_id;

    // The client signs in with the certificate alone, on any node.
    for node in 0..3 {
        let credential = Credential::ClientCertificate { client_id: sp.app_id.clone(), pem_path: pem.clone() };
        let app = cluster.client_as(node, credential).await.unwrap();
        assert_eq!(get(&app, "certs", "db").await.unwrap(), "by-cert");
    }

    // An assertion is taken once in the whole cluster: replayed to another node, it is refused.
    let once = assertion(&pem, &sp.app_id, &cluster_id, |_| {});
    token_by_assertion(&cluster, 0, &sp.app_id, &once).await.unwrap();
    for node in 0..3 {
        refused(&token_by_assertion(&cluster, node, &sp.app_id, &once).await.unwrap_err(), "INVALID_CLIENT");
    }

    // Wrong audience (as a string and in an array), another issuer, too long, expired, not yet valid,
    // a claim of the wrong type: each refused alike.
    let other_cluster = format!("arca://{}/oauth2/token", "ab".repeat(16));
    let now = unix_now();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<Edit> = vec![
        Box::new(move |c| c["aud"] = serde_json::json!(other_cluster.clone())),
        Box::new(|c| c["aud"] = serde_json::json!(["https://vault.azure.net"])),
        Box::new(|c| c["iss"] = serde_json::json!("00000000-0000-4000-8000-000000000009")),
        Box::new(|c| c["sub"] = serde_json::json!("someone-else")),
        Box::new(move |c| c["exp"] = serde_json::json!(now + 1200)),
        Box::new(move |c| c["exp"] = serde_json::json!(now - 600)),
        Box::new(move |c| c["nbf"] = serde_json::json!(now + 3600)),
        Box::new(move |c| c["exp"] = serde_json::json!((now + 300).to_string())),
        Box::new(|c| drop(c.as_object_mut().unwrap().remove("jti"))),
    ];
    for edit in edits {
        let a = assertion(&pem, &sp.app_id, &cluster_id, edit);
        refused(&token_by_assertion(&cluster, 1, &sp.app_id, &a).await.unwrap_err(), "INVALID_CLIENT");
    }
    // An array audience that holds this cluster's token endpoint is fine.
    let id: [u8; 16] = hex::decode(&cluster_id).unwrap().try_into().unwrap();
    let audience = arca_identity::client_assertion::audience(&id);
    let in_array =
        assertion(&pem, &sp.app_id, &cluster_id, move |c| c["aud"] = serde_json::json!(["x", audience.clone()]));
    token_by_assertion(&cluster, 1, &sp.app_id, &in_array).await.unwrap();

    // CVE-2025-6037: a certificate with the same subject and another key matches nothing, whether it
    // names itself or the registered certificate's thumbprint.
    let (twin, _) = certificate(dir.path(), "twin.pem", "cert app");
    refused(
        &token_by_assertion(&cluster, 0, &sp.app_id, &assertion(&twin, &sp.app_id, &cluster_id, |_| {}))
            .await
            .unwrap_err(),
        "INVALID_CLIENT",
    );
    let registered =
        arca_crypto::client_cert::read_certificate_and_key(&std::fs::read_to_string(&pem).unwrap()).unwrap().0;
    let twin_pem = std::fs::read_to_string(&twin).unwrap();
    let (_, twin_key, algorithm) = arca_crypto::client_cert::read_certificate_and_key(&twin_pem).unwrap();
    let header = serde_json::json!({"typ": "JWT", "x5t#S256": arca_crypto::client_cert::thumbprint(&registered)});
    let claims = serde_json::json!({"aud": arca_identity::client_assertion::audience(&id), "iss": sp.app_id, "sub": sp.app_id,
        "jti": "twin-1", "exp": now + 300});
    let posing = arca_crypto::jwt::sign_with_pkcs8(algorithm, &twin_key, &header, &claims).unwrap();
    refused(&token_by_assertion(&cluster, 0, &sp.app_id, &posing).await.unwrap_err(), "INVALID_CLIENT");

    // alg none, and HS256 keyed with the certificate's public key, are refused before any key is used.
    let parts: Vec<String> = assertion(&pem, &sp.app_id, &cluster_id, |_| {}).split('.').map(str::to_owned).collect();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let x5t = arca_crypto::client_cert::thumbprint(&registered);
    for alg in ["none", "HS256", "RS512"] {
        let forged = format!("{}.{}.{}", b64(serde_json::json!({"alg": alg, "x5t#S256": x5t})), parts[1], parts[2]);
        refused(&token_by_assertion(&cluster, 0, &sp.app_id, &forged).await.unwrap_err(), "INVALID_CLIENT");
    }

    // Another service principal's certificate does not sign for this one.
    let other = create(&root, pb::PrincipalKind::ServicePrincipal, "other app", false).await.principal.unwrap();
    let (other_pem, other_cert) = certificate(dir.path(), "other.pem", "other app");
    root.principals()
        .reset_credential(pb::ResetCredentialRequest {
            id: other.id.clone(),
            certificate_pem: other_cert,
            ..Default::default()
        })
        .await
        .unwrap();
    refused(
        &token_by_assertion(&cluster, 0, &sp.app_id, &assertion(&other_pem, &sp.app_id, &cluster_id, |_| {}))
            .await
            .unwrap_err(),
        "INVALID_CLIENT",
    );
    // Deleting the certificate credential ends sign-in with it.
    let creds = root
        .principals()
        .list_credentials(pb::ListCredentialsRequest { id: sp.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(creds.credentials.len(), 1);
    assert_eq!(creds.credentials[0].r#type, "AsymmetricX509Cert");
    root.principals()
        .delete_credential(pb::DeleteCredentialRequest {
            id: sp.id.clone(),
            key_id: creds.credentials[0].key_id.clone(),
        })
        .await
        .unwrap();
    refused(
        &token_by_assertion(&cluster, 2, &sp.app_id, &assertion(&pem, &sp.app_id, &cluster_id, |_| {}))
            .await
            .unwrap_err(),
        "INVALID_CLIENT",
    );
}

/// A service principal with a secret and `role` at `scope`, signed in on node 0.
async fn signed_in(
    cluster: &TestCluster,
    root: &ArcaClient,
    name: &str,
    role: &str,
    scope: &str,
) -> (String, ArcaClient) {
    let (id, client_id, secret) = service_principal(root, name).await;
    assign(root, &id, role, scope).await;
    (id, cluster.client_as(0, secret_credential(&client_id, &secret)).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_managers_cannot_widen_a_role_or_take_over_a_privileged_principal() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "team-a").await;
    create_vault(&root, "team-b").await;
    set(&root, "team-b", "db", "b").await.unwrap();
    // A custom role assignable anywhere, held at the cluster by a lister.
    let lister_role = root
        .roles()
        .create_role_definition(pb::CreateRoleDefinitionRequest {
            role_definition_json:
                r#"{"Name": "Lister", "DataActions": ["Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
                                      "AssignableScopes": ["/"]}"#
                    .into(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, lister) = signed_in(&cluster, &root, "lister", &lister_role.id, "/").await;
    refused(&get(&lister, "team-b", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");

    // An access administrator of team-a rewrites the role to grant everything, "only at team-a": refused,
    // since the role is assignable (and assigned) beyond team-a.
    let (_, admin_a) = signed_in(&cluster, &root, "admin a", "User Access Administrator", "/vaults/team-a").await;
    let widened = format!(
        r#"{{"Id": "{}", "Name": "Lister", "DataActions": ["Microsoft.KeyVault/vaults/*"], "AssignableScopes": ["/vaults/team-a"]}}"#,
        lister_role.id
    );
    let e = admin_a
        .roles()
        .update_role_definition(pb::CreateRoleDefinitionRequest { role_definition_json: widened })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    refused(&get(&lister, "team-b", "db").await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    // Nor can anyone define a role under a built-in role's id.
    let shadow = r#"{"Id": "4633458b-17de-408a-b874-0445c86b69e6", "Name": "Shadow", "DataActions": ["*"], "AssignableScopes": ["/"]}"#;
    let e = root
        .roles()
        .create_role_definition(pb::CreateRoleDefinitionRequest { role_definition_json: shadow.into() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    assert_eq!(e.code, tonic::Code::InvalidArgument, "{e:?}");

    // An identity administrator manages principals, but cannot take over one that holds a role it
    // could not assign itself: not by resetting its secret, deleting its credential, deleting it, or
    // joining a group that holds such a role.
    let (_, idadmin) = signed_in(&cluster, &root, "id admin", "Identity Administrator", "/").await;
    let (admin_id, _, _) = service_principal(&root, "vault admin").await;
    assign(&root, &admin_id, "Key Vault Administrator", "/").await;
    let e = idadmin
        .principals()
        .reset_credential(pb::ResetCredentialRequest { id: admin_id.clone(), ..Default::default() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    let e = idadmin
        .principals()
        .delete_principal(pb::DeletePrincipalRequest { id: admin_id.clone() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    let admins = create(&root, pb::PrincipalKind::Group, "admins", false).await.principal.unwrap();
    assign(&root, &admins.id, "Key Vault Administrator", "/").await;
    let mine = create(&idadmin, pb::PrincipalKind::ServicePrincipal, "mine", true).await;
    let mine_id = mine.principal.unwrap().id;
    let e = idadmin
        .principals()
        .add_group_member(pb::GroupMemberRequest { group: admins.id.clone(), member: mine_id.clone() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    // A principal without roles it manages freely.
    idadmin
        .principals()
        .reset_credential(pb::ResetCredentialRequest { id: mine_id.clone(), ..Default::default() })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byok_import_may_use_only_a_key_exchange_key_the_caller_may_import_with() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    let premium = pb::CreateVaultRequest { name: "byok".into(), sku: pb::Sku::Premium as i32, ..Default::default() };
    root.vaults().create_vault(premium).await.unwrap();
    let kek = pb::CreateKeyRequest {
        vault: "byok".into(),
        name: "kek-b".into(),
        kty: "RSA-HSM".into(),
        key_ops: vec!["import".into()],
        ..Default::default()
    };
    root.keys().create_key(kek).await.unwrap();
    let (_, officer) =
        signed_in(&cluster, &root, "narrow officer", "Key Vault Crypto Officer", "/vaults/byok/keys/mine").await;
    let blob = serde_json::json!({
        "schema_version": "1.0.0",
        "header": {"kid": "kek-b", "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
        "ciphertext": URL_SAFE_NO_PAD.encode([0u8; 600]),
    });
    let import = |client: ArcaClient| {
        let blob = blob.to_string().into_bytes();
        async move {
            let key = pb::JsonWebKey { kty: "RSA-HSM".into(), key_hsm: blob, ..Default::default() };
            let r = pb::ImportKeyRequest {
                vault: "byok".into(),
                name: "mine".into(),
                key: Some(key),
                ..Default::default()
            };
            client.keys().import_key(r).await.map_err(ClientError::from)
        }
    };
    refused(&import(officer).await.unwrap_err(), "FORBIDDEN_BY_RBAC");
    // Root may use the key-exchange key: the same blob gets as far as its (bad) ciphertext.
    let e = import(root.clone()).await.unwrap_err();
    assert_eq!(e.code, tonic::Code::InvalidArgument, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_is_revoked_by_its_holder_and_root_tokens_only_by_root() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "tok").await;
    set(&root, "tok", "s", "v").await.unwrap();
    let (id, client_id, secret) = service_principal(&root, "holder").await;
    assign(&root, &id, "Key Vault Secrets User", "/vaults/tok").await;
    let first = token(&cluster, 0, &client_id, &secret).await.unwrap().access_token;
    let second = token(&cluster, 0, &client_id, &secret).await.unwrap().access_token;
    let one = cluster.client_with_token(0, Some(&first)).await.unwrap();
    let two = cluster.client_with_token(0, Some(&second)).await.unwrap();
    one.principals().revoke_access_token(pb::RevokeAccessTokenRequest { access_token: first.clone() }).await.unwrap();
    assert_eq!(get(&one, "tok", "s").await.unwrap_err().code, tonic::Code::Unauthenticated);
    assert_eq!(get(&two, "tok", "s").await.unwrap(), "v", "only that one token");
    // Someone else's token needs Arca/principals/write to revoke.
    let (_, other_client, other_secret) = service_principal(&root, "bystander").await;
    let bystander = cluster.client_as(0, secret_credential(&other_client, &other_secret)).await.unwrap();
    let e = bystander
        .principals()
        .revoke_access_token(pb::RevokeAccessTokenRequest { access_token: second.clone() })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    assert_eq!(get(&two, "tok", "s").await.unwrap(), "v");

    // A cluster operator runs the cluster but cannot list or revoke the root tokens (break glass).
    let (_, operator) = signed_in(&cluster, &root, "operator", "Cluster Operator", "/").await;
    operator.cluster().get_cluster_status(pb::GetClusterStatusRequest {}).await.unwrap();
    let e = operator.operator().list_tokens(pb::ListTokensRequest {}).await.map_err(ClientError::from).unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    let accessor =
        root.operator().list_tokens(pb::ListTokensRequest {}).await.unwrap().into_inner().tokens[0].accessor.clone();
    let e = operator
        .operator()
        .revoke_token(pb::RevokeTokenRequest { accessor })
        .await
        .map_err(ClientError::from)
        .unwrap_err();
    refused(&e, "FORBIDDEN_BY_RBAC");
    root.vaults().get_vault(pb::GetVaultRequest { name: "tok".into(), ..Default::default() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_never_hands_out_a_secret_that_was_not_stored() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    let request = pb::CreatePrincipalRequest {
        kind: pb::PrincipalKind::ServicePrincipal as i32,
        display_name: "retried".into(),
        with_secret: true,
        years: 1,
    };
    let first = root
        .principals()
        .create_principal(arca_testkit::named(request.clone(), "create-sp-1"))
        .await
        .unwrap()
        .into_inner();
    let again = root.principals().create_principal(arca_testkit::named(request, "create-sp-1")).await;
    let e = ClientError::from(again.unwrap_err());
    refused(&e, "OUTCOME_UNKNOWN");
    // The first answer's secret is the one that works.
    let app = first.principal.unwrap().app_id;
    token(&cluster, 0, &app, &first.password).await.unwrap();
}

/// A client of `node` whose TLS connection presents the certificate and key in `pem` (if any).
fn mtls_client(cluster: &TestCluster, node: usize, pem: Option<&std::path::Path>, token: Option<&str>) -> ArcaClient {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cluster.ca_pem));
    if let Some(pem) = pem {
        let bytes = std::fs::read(pem).unwrap();
        tls = tls.identity(Identity::from_pem(&bytes, &bytes));
    }
    let channel = Endpoint::from_shared(cluster.nodes[node].api_addr())
        .unwrap()
        .timeout(std::time::Duration::from_secs(30))
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    ArcaClient::from_channel(channel, token).unwrap()
}

async fn token_over_tls(client: &ArcaClient, client_id: &str) -> Result<pb::TokenResponse, ClientError> {
    let r =
        pb::TokenRequest { grant_type: "client_credentials".into(), client_id: client_id.into(), ..Default::default() };
    Ok(client.auth().token(r).await?.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_presented_over_mutual_tls_signs_in_and_its_token_works_only_with_it() {
    let cluster = TestCluster::start(3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "mtls").await;
    set(&root, "mtls", "db", "by-tls").await.unwrap();
    let sp = create(&root, pb::PrincipalKind::ServicePrincipal, "mtls app", false).await.principal.unwrap();
    let (pem, cert) = certificate(dir.path(), "app.pem", "mtls app");
    root.principals()
        .reset_credential(pb::ResetCredentialRequest { id: sp.id.clone(), certificate_pem: cert, ..Default::default() })
        .await
        .unwrap();
    assign(&root, &sp.id, "Key Vault Secrets User", "/vaults/mtls").await;

    // The client signs in by presenting the certificate, on any node, with no secret and no assertion.
    for node in 0..3 {
        let credential = Credential::ClientCertificateTls { client_id: sp.app_id.clone(), pem_path: pem.clone() };
        let app = cluster.client_as(node, credential).await.unwrap();
        assert_eq!(get(&app, "mtls", "db").await.unwrap(), "by-tls");
    }

    // The token names the certificate it is bound to (RFC 8705's cnf) and how it was won.
    let token = token_over_tls(&mtls_client(&cluster, 0, Some(&pem), None), &sp.app_id).await.unwrap().access_token;
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let pem_text = std::fs::read_to_string(&pem).unwrap();
    let (der, _, _) = arca_crypto::client_cert::read_certificate_and_key(&pem_text).unwrap();
    assert_eq!(payload["cnf"]["x5t#S256"], arca_crypto::client_cert::thumbprint(&der), "{payload}");
    assert_eq!(payload["amr"], serde_json::json!(["client_certificate"]));

    // Stolen, the token is worthless: it works only on a connection that presents the certificate.
    assert_eq!(get(&mtls_client(&cluster, 1, Some(&pem), Some(&token)), "mtls", "db").await.unwrap(), "by-tls");
    let e = get(&cluster.client_with_token(1, Some(&token)).await.unwrap(), "mtls", "db").await.unwrap_err();
    assert_eq!(e.code, tonic::Code::Unauthenticated, "{e:?}");
    let (other, _) = certificate(dir.path(), "other.pem", "mtls app");
    let e = get(&mtls_client(&cluster, 2, Some(&other), Some(&token)), "mtls", "db").await.unwrap_err();
    assert_eq!(e.code, tonic::Code::Unauthenticated, "{e:?}");

    // A certificate with the same name and another key wins nothing; nor does presenting none.
    refused(
        &token_over_tls(&mtls_client(&cluster, 0, Some(&other), None), &sp.app_id).await.unwrap_err(),
        "INVALID_CLIENT",
    );
    refused(&token_over_tls(&mtls_client(&cluster, 0, None, None), &sp.app_id).await.unwrap_err(), "INVALID_CLIENT");
    // The registered certificate wins nothing for another client id.
    let (_, other_app, _) = service_principal(&root, "other app").await;
    refused(
        &token_over_tls(&mtls_client(&cluster, 0, Some(&pem), None), &other_app).await.unwrap_err(),
        "INVALID_CLIENT",
    );

    // Once the certificate credential is deleted, it signs in no more, on any node.
    let listed = root.principals().list_credentials(pb::ListCredentialsRequest { id: sp.id.clone() }).await.unwrap();
    let key_id = listed.into_inner().credentials[0].key_id.clone();
    root.principals().delete_credential(pb::DeleteCredentialRequest { id: sp.id.clone(), key_id }).await.unwrap();
    for node in 0..3 {
        let e = token_over_tls(&mtls_client(&cluster, node, Some(&pem), None), &sp.app_id).await.unwrap_err();
        refused(&e, "INVALID_CLIENT");
    }

    // The audit log says how the caller signed in and over which TLS version.
    let audit = std::fs::read_to_string(cluster.nodes[0].data_dir.join("audit.log")).unwrap();
    let signed_in = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["operation"] == "Token" && r["auth_method"] == "client_certificate" && r["result"] == "success")
        .expect("a sign-in over mutual TLS in the audit log");
    assert_eq!(signed_in["tls_version"], "TLSv1_3", "{signed_in}");
}

/// A JWKS holding the public halves of `keys` (kid, key).
fn jwks(keys: &[(&str, &arca_crypto::cluster_pki::Ed25519Key)]) -> String {
    let keys: Vec<serde_json::Value> = keys
        .iter()
        .map(|(kid, k)| {
            serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(k.public_key()) })
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const K8S_SUBJECT: &str = "system:serviceaccount:prod:app";

/// A token as Kubernetes projects one into a pod, with `edit` applied to its claims.
fn k8s_token(
    kid: &str,
    key: &arca_crypto::cluster_pki::Ed25519Key,
    edit: impl FnOnce(&mut serde_json::Value),
) -> String {
    let now = unix_now();
    let mut claims = serde_json::json!({ "iss": K8S_ISSUER, "sub": K8S_SUBJECT, "aud": ["api://ArcaTokenExchange"],
        "iat": now, "nbf": now, "exp": now + 600,
        "kubernetes.io": { "namespace": "prod", "serviceaccount": { "name": "app" } } });
    edit(&mut claims);
    arca_crypto::jwt::sign_eddsa(key, &serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }), &claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_token_signs_in_as_its_workload_only_for_its_issuer_subject_and_audience() {
    use arca_crypto::cluster_pki::Ed25519Key;
    let cluster = TestCluster::start(3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = cluster.client(0).await.unwrap();
    create_vault(&root, "fed").await;
    set(&root, "fed", "db", "federated").await.unwrap();
    let sp = create(&root, pb::PrincipalKind::ServicePrincipal, "k8s app", false).await.principal.unwrap();
    assign(&root, &sp.id, "Key Vault Secrets User", "/vaults/fed").await;
    let k1 = Ed25519Key::generate(&arca_crypto::OsEntropy);
    let add = |jwks_json: String| pb::AddFederatedCredentialRequest {
        id: sp.id.clone(),
        name: "prod-app".into(),
        issuer: K8S_ISSUER.into(),
        subject: K8S_SUBJECT.into(),
        audiences: vec![],
        jwks_json,
        claims: vec![],
    };
    let credential = root.principals().add_federated_credential(add(jwks(&[("k1", &k1)]))).await.unwrap().into_inner();
    assert_eq!(credential.r#type, "FederatedIdentityCredential");
    assert_eq!(credential.audiences, ["api://ArcaTokenExchange"]);

    // The pod's projected token, read from its file on every sign-in, signs in on every node.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, k8s_token("k1", &k1, |_| {})).unwrap();
    for node in 0..3 {
        let credential = Credential::FederatedToken { client_id: sp.app_id.clone(), token_file: token_file.clone() };
        let app = cluster.client_as(node, credential).await.unwrap();
        assert_eq!(get(&app, "fed", "db").await.unwrap(), "federated");
    }
    let issued = token_by_assertion(&cluster, 1, &sp.app_id, &k8s_token("k1", &k1, |_| {})).await.unwrap();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(issued.access_token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(payload["amr"], serde_json::json!(["federated"]));
    assert_eq!(payload["sub"], sp.id);

    // Anything else is refused alike: another subject, audience or issuer, expired, another key,
    // alg none, HS256 keyed with the public key, and the right token for another client.
    let k9 = Ed25519Key::generate(&arca_crypto::OsEntropy);
    let payload_of = |t: &str| t.split('.').nth(1).unwrap().to_owned();
    let good = k8s_token("k1", &k1, |_| {});
    let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#), payload_of(&good));
    let hs256 = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k1"}"#),
        payload_of(&good),
        URL_SAFE_NO_PAD.encode(k1.public_key())
    );
    let (_, other_app, _) = service_principal(&root, "other app").await;
    let cases = [
        (
            "another subject",
            sp.app_id.clone(),
            k8s_token("k1", &k1, |c| c["sub"] = "system:serviceaccount:prod:admin".into()),
        ),
        (
            "another audience",
            sp.app_id.clone(),
            k8s_token("k1", &k1, |c| c["aud"] = "api://AzureADTokenExchange".into()),
        ),
        ("another issuer", sp.app_id.clone(), k8s_token("k1", &k1, |c| c["iss"] = "https://evil.example".into())),
        ("expired", sp.app_id.clone(), k8s_token("k1", &k1, |c| c["exp"] = (unix_now() - 3600).into())),
        ("an unknown key", sp.app_id.clone(), k8s_token("k9", &k9, |_| {})),
        ("a known kid, another key", sp.app_id.clone(), k8s_token("k1", &k9, |_| {})),
        ("alg none", sp.app_id.clone(), none),
        ("HS256", sp.app_id.clone(), hs256),
        ("another client", other_app.clone(), good.clone()),
    ];
    for (what, client_id, token) in cases {
        let e = token_by_assertion(&cluster, 2, &client_id, &token).await.unwrap_err();
        refused(&e, "INVALID_CLIENT");
        assert!(!format!("{e:?}").contains(&token[..20]), "{what}: the error must not echo the token");
    }

    // The issuer rotates its key: tokens of the new key are refused until the credential trusts it;
    // then both work while pods still hold tokens of the old one.
    let k2 = Ed25519Key::generate(&arca_crypto::OsEntropy);
    refused(
        &token_by_assertion(&cluster, 0, &sp.app_id, &k8s_token("k2", &k2, |_| {})).await.unwrap_err(),
        "INVALID_CLIENT",
    );
    let e = ClientError::from(root.principals().add_federated_credential(add(jwks(&[("k1", &k1)]))).await.unwrap_err());
    refused(&e, "CONFLICT");
    let r = pb::DeleteCredentialRequest { id: sp.id.clone(), key_id: credential.key_id.clone() };
    root.principals().delete_credential(r).await.unwrap();
    root.principals().add_federated_credential(add(jwks(&[("k1", &k1), ("k2", &k2)]))).await.unwrap();
    for (kid, key) in [("k1", &k1), ("k2", &k2)] {
        token_by_assertion(&cluster, 0, &sp.app_id, &k8s_token(kid, key, |_| {})).await.unwrap();
    }

    // Bad credentials are refused with the field named: a JWKS that is not one, two audiences, a
    // name out of its alphabet, an issuer past 600 characters (at 600 it is taken).
    let mut bad = vec![];
    let mut r = add("not json".into());
    r.name = "bad-jwks".into();
    bad.push((r, "JWKS"));
    let mut r = add(jwks(&[("k1", &k1)]));
    r.name = "two-auds".into();
    r.subject = "s2".into();
    r.audiences = vec!["a".into(), "b".into()];
    bad.push((r, "audience"));
    let mut r = add(jwks(&[("k1", &k1)]));
    r.name = "no spaces".into();
    r.subject = "s3".into();
    bad.push((r, "name"));
    let mut r = add(jwks(&[("k1", &k1)]));
    r.name = "long-issuer".into();
    r.issuer = "i".repeat(601);
    bad.push((r, "issuer"));
    for (request, field) in bad {
        let e = ClientError::from(root.principals().add_federated_credential(request).await.unwrap_err());
        refused(&e, "BAD_PARAMETER");
        assert!(e.message.contains(field), "{field}: {e:?}");
    }
    let mut r = add(jwks(&[("k1", &k1)]));
    r.name = "long-issuer".into();
    r.issuer = "i".repeat(600);
    root.principals().add_federated_credential(r).await.unwrap();

    // A managed identity trusts a provider the same way; a group's credential names no keys (its
    // members' own sign-ins are checked).
    let mi = create(&root, pb::PrincipalKind::ManagedIdentity, "k8s identity", false).await.principal.unwrap();
    let mut r = add(jwks(&[("k1", &k1)]));
    r.id = mi.id.clone();
    root.principals().add_federated_credential(r).await.unwrap();
    let issued = token_by_assertion(&cluster, 0, &mi.app_id, &k8s_token("k1", &k1, |_| {})).await.unwrap();
    assert!(!issued.access_token.is_empty());
    let group = create(&root, pb::PrincipalKind::Group, "a group", false).await.principal.unwrap();
    let mut r = add(jwks(&[("k1", &k1)]));
    r.id = group.id;
    let e = ClientError::from(root.principals().add_federated_credential(r).await.unwrap_err());
    refused(&e, "BAD_PARAMETER");
}
