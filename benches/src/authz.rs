//! `--suite authz`: what token validation and role-based authorization add to a linearizable secret
//! get. The same gets run with a root token (a keyed-hash lookup of the token, no role evaluation)
//! and with a service principal's access token (Ed25519 signature check, revocation and generation
//! lookups, the principal's and its groups' assignments evaluated against its role), alternating
//! root and principal phases so drift on a shared machine falls on both sides equally. The ratio of
//! the principal's throughput to root's is the cost.

use arca_client::{pb, ArcaClient};
use arca_testkit::TestCluster;

use crate::{run_phase, Args, Phase};

/// Rounds of (root phase, principal phase).
const ROUNDS: usize = 3;

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let cluster = TestCluster::start(args.nodes).await?;
    let mut roots = Vec::new();
    for i in 0..args.nodes {
        roots.push(cluster.client(i).await?);
    }
    let root = &roots[0];
    root.vaults().create_vault(pb::CreateVaultRequest { name: "bench".into(), ..Default::default() }).await?;
    // The names the get phases read: each client reads its own 16.
    let value = "v".repeat(args.value_bytes);
    for i in 0..args.clients {
        let mut writes = Vec::new();
        for k in 0..16 {
            let client = roots[(i + k) % roots.len()].clone();
            let r = pb::SetSecretRequest {
                vault: "bench".into(),
                name: format!("s{i}-{k}"),
                value: value.clone(),
                ..Default::default()
            };
            writes.push(tokio::spawn(async move { client.secrets().set_secret(r).await }));
        }
        for w in writes {
            w.await??;
        }
    }

    // The principal: Key Vault Secrets User on the vault only, as an application would be set up.
    let created = root
        .principals()
        .create_principal(pb::CreatePrincipalRequest {
            kind: pb::PrincipalKind::ServicePrincipal as i32,
            display_name: "bench app".into(),
            with_secret: true,
            years: 1,
        })
        .await?
        .into_inner();
    let principal = created.principal.expect("a created principal");
    root.roles()
        .create_role_assignment(pb::CreateRoleAssignmentRequest {
            assignee: principal.id.clone(),
            role: "Key Vault Secrets User".into(),
            scope: "/vaults/bench".into(),
        })
        .await?;
    let anonymous = cluster.client_with_token(0, None).await?;
    let token = anonymous
        .auth()
        .token(pb::TokenRequest {
            grant_type: "client_credentials".into(),
            client_id: principal.app_id.clone(),
            client_secret: created.password.clone(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .access_token;
    let mut apps: Vec<ArcaClient> = Vec::new();
    for i in 0..args.nodes {
        apps.push(cluster.client_with_token(i, Some(&token)).await?);
    }

    println!(
        "{} nodes, {} clients spread over all nodes, {} s per phase, {}-byte values, {ROUNDS} rounds",
        args.nodes, args.clients, args.seconds, args.value_bytes
    );
    let (mut root_total, mut app_total) = (0.0, 0.0);
    for round in 1..=ROUNDS {
        let r = run_phase(&roots, args, Phase::GetLinearizable, &format!("get, root token (round {round})"), &[]).await;
        println!();
        let a =
            run_phase(&apps, args, Phase::GetLinearizable, &format!("get, Secrets User token (round {round})"), &[])
                .await;
        println!();
        root_total += r;
        app_total += a;
    }
    println!(
        "principal / root throughput over {ROUNDS} rounds: {:.1}% (authorization costs {:.1}%)",
        100.0 * app_total / root_total,
        100.0 * (1.0 - app_total / root_total)
    );
    Ok(())
}
