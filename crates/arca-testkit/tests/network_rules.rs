//! Per-vault network rules on a real 3-node cluster: with the default action Deny, only the ranges
//! named may use the vault's secrets, keys and cryptography — whatever token the caller holds, root
//! included — on every node, from the next request on. Managing the vault stays open, so nobody can
//! lock the vault away for good. The address judged is the one the node's listener saw: a client
//! bound to another loopback address is judged by that one, and a forwarded-for header is ignored.

use std::time::Duration;

use arca_client::{pb, ArcaClient, ClientError};
use arca_testkit::TestCluster;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

async fn set_rules(c: &ArcaClient, vault: &str, deny: bool, rules: &[&str]) -> Result<pb::Vault, ClientError> {
    let acls = pb::NetworkAcls {
        default_action: if deny { pb::DefaultAction::Deny } else { pb::DefaultAction::Allow } as i32,
        ip_rules: rules.iter().map(|r| (*r).to_owned()).collect(),
    };
    let r = pb::SetVaultNetworkRulesRequest { name: vault.into(), network_acls: Some(acls) };
    Ok(c.vaults().set_vault_network_rules(r).await?.into_inner())
}

async fn get(c: &ArcaClient, vault: &str, name: &str) -> Result<String, ClientError> {
    let r = pb::GetSecretRequest { vault: vault.into(), name: name.into(), ..Default::default() };
    Ok(c.secrets().get_secret(r).await?.into_inner().value)
}

fn firewalled(result: Result<impl std::fmt::Debug, ClientError>) -> ClientError {
    let e = result.expect_err("the network rules should have refused the call");
    assert_eq!(e.code, tonic::Code::PermissionDenied, "{e:?}");
    assert_eq!(e.reason.as_deref(), Some("FORBIDDEN_BY_FIREWALL"), "{e:?}");
    e
}

/// A root client whose connections leave from `local` (another loopback address than 127.0.0.1).
fn client_from(cluster: &TestCluster, node: usize, local: &str) -> ArcaClient {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&cluster.ca_pem));
    let channel = Endpoint::from_shared(cluster.nodes[node].api_addr())
        .unwrap()
        .local_address(Some(local.parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    ArcaClient::from_channel(channel, Some(&cluster.root_token)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vault_denying_by_default_serves_only_the_ranges_it_names() {
    let cluster = TestCluster::start(3).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    for name in ["walled", "open"] {
        root.vaults().create_vault(pb::CreateVaultRequest { name: name.into(), ..Default::default() }).await.unwrap();
        let r = pb::SetSecretRequest { vault: name.into(), name: "db".into(), value: "v".into(), ..Default::default() };
        root.secrets().set_secret(r).await.unwrap();
    }
    let key = pb::CreateKeyRequest {
        vault: "walled".into(),
        name: "k".into(),
        kty: "EC".into(),
        crv: "P-256".into(),
        ..Default::default()
    };
    root.keys().create_key(key).await.unwrap();

    // A vault without rules shows them as open.
    let shown = root.vaults().get_vault(pb::GetVaultRequest { name: "walled".into(), read_options: None }).await;
    let acls = shown.unwrap().into_inner().network_acls.unwrap();
    assert_eq!(acls.default_action, pb::DefaultAction::Allow as i32);
    assert!(acls.ip_rules.is_empty());

    // Deny, allowing only a range the test's address is not in.
    let vault = set_rules(&root, "walled", true, &["10.0.0.0/8", "2001:db8::/32"]).await.unwrap();
    let acls = vault.network_acls.unwrap();
    assert_eq!(acls.ip_rules, vec!["10.0.0.0/8", "2001:db8::/32"]);
    for node in 0..3 {
        let c = cluster.client(node).await.unwrap();
        let e = firewalled(get(&c, "walled", "db").await);
        assert!(e.message.contains("127.0.0.1"), "the refusal names the address it judged: {e:?}");
        let list = pb::ListSecretsRequest { vault: "walled".into(), ..Default::default() };
        firewalled(c.secrets().list_secrets(list).await.map_err(ClientError::from));
        let sign = pb::SignRequest {
            vault: "walled".into(),
            name: "k".into(),
            algorithm: "ES256".into(),
            digest: vec![1; 32],
            ..Default::default()
        };
        firewalled(c.crypto().sign(sign).await.map_err(ClientError::from));
        let write =
            pb::SetSecretRequest { vault: "walled".into(), name: "db".into(), value: "x".into(), ..Default::default() };
        firewalled(c.secrets().set_secret(write).await.map_err(ClientError::from));
        // The other vault is not affected, and managing the walled one still works.
        assert_eq!(get(&c, "open", "db").await.unwrap(), "v");
        c.vaults().get_vault(pb::GetVaultRequest { name: "walled".into(), read_options: None }).await.unwrap();
    }
    // A forwarded-for header is no way in: the address is the connection's.
    let mut spoofed =
        tonic::Request::new(pb::GetSecretRequest { vault: "walled".into(), name: "db".into(), ..Default::default() });
    spoofed.metadata_mut().insert("x-forwarded-for", "10.1.2.3".parse().unwrap());
    spoofed.metadata_mut().insert("forwarded", "for=10.1.2.3".parse().unwrap());
    firewalled(root.secrets().get_secret(spoofed).await.map_err(ClientError::from));

    // Allowing 127.0.0.1 alone (written in its IPv4-mapped IPv6 form) lets it in on every node at
    // once, and a client calling from 127.0.0.2 stays out.
    let vault = set_rules(&root, "walled", true, &["10.0.0.0/8", "::ffff:127.0.0.1"]).await.unwrap();
    assert_eq!(vault.network_acls.unwrap().ip_rules, vec!["10.0.0.0/8", "127.0.0.1/32"]);
    for node in 0..3 {
        let c = cluster.client(node).await.unwrap();
        assert_eq!(get(&c, "walled", "db").await.unwrap(), "v");
        let e = firewalled(get(&client_from(&cluster, node, "127.0.0.2"), "walled", "db").await);
        assert!(e.message.contains("127.0.0.2"), "{e:?}");
    }
    // A /31 takes in .2 as well, not .3.
    set_rules(&root, "walled", true, &["127.0.0.2/31"]).await.unwrap();
    assert_eq!(get(&client_from(&cluster, 1, "127.0.0.2"), "walled", "db").await.unwrap(), "v");
    assert_eq!(get(&client_from(&cluster, 2, "127.0.0.3"), "walled", "db").await.unwrap(), "v");
    firewalled(get(&client_from(&cluster, 2, "127.0.0.4"), "walled", "db").await);
    firewalled(get(&root, "walled", "db").await);

    // Back to Allow: every address again.
    set_rules(&root, "walled", false, &[]).await.unwrap();
    assert_eq!(get(&client_from(&cluster, 0, "127.0.0.9"), "walled", "db").await.unwrap(), "v");

    // The audit log names the address of each call, refused or not.
    let audit = std::fs::read_to_string(cluster.nodes[0].data_dir.join("audit.log")).unwrap();
    let refused = audit
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["code"] == "ForbiddenByFirewall")
        .expect("a refused call in the audit log");
    assert_eq!(refused["caller_address"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_are_refused_and_change_nothing_and_a_purged_vault_takes_its_rules_along() {
    let cluster = TestCluster::start(1).await.unwrap();
    let root = cluster.client(0).await.unwrap();
    root.vaults().create_vault(pb::CreateVaultRequest { name: "rules".into(), ..Default::default() }).await.unwrap();
    set_rules(&root, "rules", false, &["192.168.0.0/16"]).await.unwrap();
    let unchanged = |v: pb::Vault| v.network_acls.unwrap().ip_rules == vec!["192.168.0.0/16".to_owned()];

    for bad in [&["10.1.2.3/8"][..], &["10.0.0.0/33"], &["not-an-address"], &["fe80::1%eth0"], &[""]] {
        let e = set_rules(&root, "rules", true, bad).await.unwrap_err();
        assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{bad:?}: {e:?}");
    }
    let e = set_rules(&root, "rules", true, &["10.1.2.3/8"]).await.unwrap_err();
    assert!(e.message.contains("10.0.0.0/8"), "a refusal says what to write instead: {e:?}");
    let bad_action = pb::SetVaultNetworkRulesRequest {
        name: "rules".into(),
        network_acls: Some(pb::NetworkAcls { default_action: 7, ip_rules: vec![] }),
    };
    let e = ClientError::from(root.vaults().set_vault_network_rules(bad_action).await.unwrap_err());
    assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{e:?}");

    // 1,000 rules at most: 1,000 are taken, 1,001 are not.
    let at: Vec<String> = (0..1000).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256)).collect();
    let at_refs: Vec<&str> = at.iter().map(String::as_str).collect();
    let vault = set_rules(&root, "rules", false, &at_refs).await.unwrap();
    assert_eq!(vault.network_acls.unwrap().ip_rules.len(), 1000);
    let mut over = at_refs.clone();
    over.push("172.16.0.0/12");
    let e = set_rules(&root, "rules", true, &over).await.unwrap_err();
    assert_eq!(e.reason.as_deref(), Some("BAD_PARAMETER"), "{e:?}");
    assert!(e.message.contains("1000"), "{e:?}");
    set_rules(&root, "rules", false, &["192.168.0.0/16"]).await.unwrap();
    let shown = root.vaults().get_vault(pb::GetVaultRequest { name: "rules".into(), read_options: None }).await;
    assert!(unchanged(shown.unwrap().into_inner()));

    // A deleted vault's rules cannot be set; purged and created again, the vault starts open.
    set_rules(&root, "rules", true, &["10.0.0.0/8"]).await.unwrap();
    root.vaults().delete_vault(pb::DeleteVaultRequest { name: "rules".into() }).await.unwrap();
    let e = set_rules(&root, "rules", true, &[]).await.unwrap_err();
    assert_eq!(e.code, tonic::Code::NotFound, "{e:?}");
    root.vaults().purge_deleted_vault(pb::PurgeDeletedVaultRequest { name: "rules".into() }).await.unwrap();
    root.vaults().create_vault(pb::CreateVaultRequest { name: "rules".into(), ..Default::default() }).await.unwrap();
    let shown = root.vaults().get_vault(pb::GetVaultRequest { name: "rules".into(), read_options: None }).await;
    let acls = shown.unwrap().into_inner().network_acls.unwrap();
    assert_eq!((acls.default_action, acls.ip_rules.len()), (pb::DefaultAction::Allow as i32, 0));
    let r = pb::SetSecretRequest { vault: "rules".into(), name: "s".into(), value: "v".into(), ..Default::default() };
    root.secrets().set_secret(r).await.unwrap();
}
