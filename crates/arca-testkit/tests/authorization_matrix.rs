//! Every RPC a client can reach, called by a service principal, a managed identity (its token from
//! the identity agent) and a user (signed in through an OpenID Connect provider, holding the role
//! through the Arca group their groups claim names) holding each built-in role at each of five
//! scopes (the cluster, its own vault, its own objects, other objects of that vault, another vault),
//! on a real 3-node cluster. What each call may do is written out here by hand — which
//! actions each role holds, and which action at which scope each RPC needs — independently of the
//! server's tables, and every answer is compared with it: a call is either refused for its role
//! (`FORBIDDEN_BY_RBAC`) or gets past authorization (whatever it then answers). Lists must show
//! exactly what the caller may see. Calls that would destroy something aim at objects that do not
//! exist, so an allowed call answers "not found" and a refused one must not tell whether it exists.
//! A call without a token, or with an expired one, is refused for every RPC.
//!
//! A test beside it holds the list of RPCs to the proto: a new RPC fails it until it is added to
//! the matrix, or to the short list of RPCs that need no token.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arca_client::{pb, ArcaClient, ClientError, Credential};
use arca_testkit::{IssuerProcess, TestCluster};
use futures::StreamExt;
use prost::Message;

// ---------------------------------------------------------------------------------------------
// The expected answers, by hand.

/// Data actions under `Microsoft.KeyVault/vaults/`, and control actions, by short names.
const SECRETS_ALL: &[&str] = &[
    "secrets/readMetadata",
    "secrets/getSecret",
    "secrets/setSecret",
    "secrets/update",
    "secrets/delete",
    "secrets/backup",
    "secrets/restore",
    "secrets/recover",
    "secrets/purge",
];
const KEYS_ALL: &[&str] = &[
    "keys/read",
    "keys/create",
    "keys/import",
    "keys/update",
    "keys/delete",
    "keys/backup",
    "keys/restore",
    "keys/recover",
    "keys/purge",
    "keys/encrypt",
    "keys/decrypt",
    "keys/wrap",
    "keys/unwrap",
    "keys/sign",
    "keys/verify",
    "keys/release",
    "keys/rotate",
    "policy/read",
    "policy/write",
];
/// What Azure's Key Vault roles share among the control actions Arca knows: reading deleted vaults,
/// role assignments and role definitions (`Microsoft.Authorization/*/read`).
const COMMON: &[&str] = &["deletedVaults/read", "roleAssignments/read", "roleDefinitions/read"];

/// The roles a Key Vault Data Access Administrator may hand out or take away (Azure's condition).
const DAA_MAY_ASSIGN: &[&str] = &[
    "Key Vault Administrator",
    "Key Vault Certificates Officer",
    "Key Vault Crypto Officer",
    "Key Vault Crypto Service Encryption User",
    "Key Vault Crypto User",
    "Key Vault Reader",
    "Key Vault Secrets Officer",
    "Key Vault Secrets User",
];

/// Every built-in role, with what it holds.
fn roles() -> Vec<(&'static str, Vec<&'static str>)> {
    let join = |lists: &[&[&'static str]]| lists.iter().flat_map(|l| l.iter().copied()).collect::<Vec<_>>();
    vec![
        ("Key Vault Administrator", join(&[SECRETS_ALL, KEYS_ALL, COMMON])),
        ("Key Vault Reader", join(&[&["secrets/readMetadata", "keys/read", "policy/read"], COMMON])),
        ("Key Vault Secrets Officer", join(&[SECRETS_ALL, COMMON])),
        ("Key Vault Secrets User", vec!["secrets/readMetadata", "secrets/getSecret"]),
        // Certificates are not served yet: what is left is the common reads.
        ("Key Vault Certificates Officer", COMMON.to_vec()),
        ("Key Vault Certificate User", vec!["secrets/readMetadata", "secrets/getSecret", "keys/read"]),
        ("Key Vault Crypto Officer", join(&[KEYS_ALL, COMMON])),
        (
            "Key Vault Crypto User",
            vec![
                "keys/read",
                "keys/update",
                "keys/backup",
                "keys/encrypt",
                "keys/decrypt",
                "keys/wrap",
                "keys/unwrap",
                "keys/sign",
                "keys/verify",
            ],
        ),
        ("Key Vault Crypto Service Encryption User", vec!["keys/read", "keys/wrap", "keys/unwrap"]),
        ("Key Vault Crypto Service Release User", vec!["keys/release"]),
        (
            "Key Vault Data Access Administrator",
            vec!["roleAssignments/read", "roleAssignments/write", "roleAssignments/delete", "roleDefinitions/read"],
        ),
        (
            "Key Vault Contributor",
            vec![
                "roleAssignments/read",
                "roleDefinitions/read",
                "vaults/read",
                "vaults/write",
                "vaults/delete",
                "deletedVaults/read",
            ],
        ),
        (
            "User Access Administrator",
            vec![
                "vaults/read",
                "deletedVaults/read",
                "principals/read",
                "cluster/read",
                "roleAssignments/read",
                "roleAssignments/write",
                "roleAssignments/delete",
                "roleDefinitions/read",
                "roleDefinitions/write",
                "roleDefinitions/delete",
            ],
        ),
        (
            "Cluster Operator",
            vec![
                "cluster/read",
                "cluster/joinTokens",
                "cluster/removeNode",
                "cluster/failover",
                "cluster/divergence",
                "cluster/seal",
                "cluster/rotate",
                "rng",
            ],
        ),
        (
            "Identity Administrator",
            vec!["principals/read", "principals/write", "principals/delete", "principals/credentials"],
        ),
    ]
}

/// Where a principal's role is assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Cluster,
    /// `/vaults/home`.
    Home,
    /// The secret `obj` and the key `kobj` of `home` (two assignments).
    Objects,
    /// The secret `other` and the key `kother` of `home`.
    OtherObjects,
    /// `/vaults/away`.
    Away,
}

const COLS: [Col; 5] = [Col::Cluster, Col::Home, Col::Objects, Col::OtherObjects, Col::Away];

impl Col {
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Col::Cluster => &["/"],
            Col::Home => &["/vaults/home"],
            Col::Objects => &["/vaults/home/secrets/obj", "/vaults/home/keys/kobj"],
            Col::OtherObjects => &["/vaults/home/secrets/other", "/vaults/home/keys/kother"],
            Col::Away => &["/vaults/away"],
        }
    }
}

/// Where a call acts.
#[derive(Debug, Clone, Copy)]
enum At {
    Cluster,
    Home,
    /// A vault that does not exist (or one being created).
    Elsewhere,
    Secret(&'static str),
    Key(&'static str),
}

fn covers(col: Col, at: At) -> bool {
    matches!(
        (col, at),
        (Col::Cluster, _)
            | (Col::Home, At::Home | At::Secret(_) | At::Key(_))
            | (Col::Objects, At::Secret("obj") | At::Key("kobj"))
            | (Col::OtherObjects, At::Secret("other") | At::Key("kother"))
    )
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    /// The action at the target.
    Needs(&'static str, At),
    /// A public-key operation: the action, or reading the key, at the key.
    PublicOp(&'static str, At),
    /// A batch whose first item is `kobj` and whose second is `kother`: the whole call is judged at
    /// the first, and the second item on its own.
    Batch(&'static str, bool),
    /// A listing in `home`, filtered to the objects the caller may see.
    List(&'static str, Kind),
    /// A listing of deleted objects in `home` (there are none): filtered like [`Rule::List`].
    ListDeleted(&'static str),
    /// Reading `home`: `vaults/read`, or any role that reads something in it.
    ReadVault,
    ListVaults,
    /// Assigning (or removing) the named role at `home`.
    Assign(&'static str),
    Unassign(&'static str),
    /// Only a root token.
    Never,
    /// Only an agent principal (no role grants it; root is refused too).
    AgentOnly,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Secrets,
    Keys,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Denied,
    /// Past authorization; for lists and batches, what was shown.
    Passed(Vec<String>),
    /// Anything else (no answer, an internal error, not signed in) is a failure.
    Broken(String),
}

fn allowed(holds: &[&str], action: &str, col: Col, at: At) -> bool {
    holds.contains(&action) && covers(col, at)
}

/// The vaults a principal sees in a list (and may read), from holding vault-reading actions within
/// them: `vaults/read` at the cluster shows all.
fn visible_vaults(holds: &[&str], col: Col) -> Option<Vec<String>> {
    let reads = ["vaults/read", "secrets/readMetadata", "secrets/getSecret", "keys/read"];
    if col == Col::Cluster && holds.contains(&"vaults/read") {
        return Some(vec!["away".into(), "home".into()]);
    }
    if col == Col::Cluster || !reads.iter().any(|a| holds.contains(a)) {
        return None;
    }
    Some(vec![if col == Col::Away { "away" } else { "home" }.into()])
}

fn expected(holds: &[&str], col: Col, rule: Rule) -> Seen {
    let pass = |ok: bool| if ok { Seen::Passed(vec![]) } else { Seen::Denied };
    match rule {
        Rule::Needs(action, at) => pass(allowed(holds, action, col, at)),
        Rule::PublicOp(action, at) => pass(allowed(holds, action, col, at) || allowed(holds, "keys/read", col, at)),
        Rule::Batch(action, public) => {
            let may = |key| {
                allowed(holds, action, col, At::Key(key)) || (public && allowed(holds, "keys/read", col, At::Key(key)))
            };
            if !may("kobj") {
                Seen::Denied
            } else {
                Seen::Passed(vec![format!("second {}", if may("kother") { "passed" } else { "denied" })])
            }
        }
        Rule::List(action, kind) => {
            if !holds.contains(&action) {
                return Seen::Denied;
            }
            let (mine, other) = match kind {
                Kind::Secrets => ("obj", "other"),
                Kind::Keys => ("kobj", "kother"),
            };
            match col {
                Col::Cluster | Col::Home => Seen::Passed(vec![mine.into(), other.into()]),
                Col::Objects => Seen::Passed(vec![mine.into()]),
                Col::OtherObjects => Seen::Passed(vec![other.into()]),
                Col::Away => Seen::Denied,
            }
        }
        Rule::ListDeleted(action) => pass(holds.contains(&action) && col != Col::Away),
        Rule::ReadVault => pass(
            allowed(holds, "vaults/read", col, At::Home)
                || visible_vaults(holds, col).is_some_and(|v| v.iter().any(|v| v == "home")),
        ),
        Rule::ListVaults => visible_vaults(holds, col).map_or(Seen::Denied, Seen::Passed),
        Rule::Assign(role) | Rule::Unassign(role) => {
            let action =
                if matches!(rule, Rule::Assign(_)) { "roleAssignments/write" } else { "roleAssignments/delete" };
            let is_daa = holds.contains(&"roleAssignments/write") && !holds.contains(&"roleDefinitions/write");
            pass(allowed(holds, action, col, At::Home) && (!is_daa || DAA_MAY_ASSIGN.contains(&role)))
        }
        Rule::Never | Rule::AgentOnly => Seen::Denied,
    }
}

/// Every RPC a client reaches with a token, and what it needs. A name after `#` tells variants apart.
fn cases() -> Vec<(&'static str, Rule)> {
    use At::*;
    use Rule::*;
    vec![
        // Vaults.
        ("arca.v1.VaultService/CreateVault", Needs("vaults/write", Cluster)),
        ("arca.v1.VaultService/GetVault", ReadVault),
        ("arca.v1.VaultService/ListVaults", ListVaults),
        ("arca.v1.VaultService/UpdateVault", Needs("vaults/write", Home)),
        ("arca.v1.VaultService/SetVaultNetworkRules", Needs("vaults/write", Home)),
        ("arca.v1.VaultService/DeleteVault", Needs("vaults/delete", Elsewhere)),
        ("arca.v1.VaultService/GetDeletedVault", Needs("deletedVaults/read", Cluster)),
        ("arca.v1.VaultService/ListDeletedVaults", Needs("deletedVaults/read", Cluster)),
        ("arca.v1.VaultService/RecoverDeletedVault", Needs("vaults/write", Cluster)),
        ("arca.v1.VaultService/PurgeDeletedVault", Needs("vaults/purge", Cluster)),
        // Secrets.
        ("arca.v1.SecretService/SetSecret", Needs("secrets/setSecret", Secret("obj"))),
        ("arca.v1.SecretService/GetSecret", Needs("secrets/getSecret", Secret("obj"))),
        ("arca.v1.SecretService/ListSecrets", List("secrets/readMetadata", Kind::Secrets)),
        ("arca.v1.SecretService/ListSecretVersions", Needs("secrets/readMetadata", Secret("obj"))),
        ("arca.v1.SecretService/UpdateSecret", Needs("secrets/update", Secret("obj"))),
        ("arca.v1.SecretService/DeleteSecret", Needs("secrets/delete", Secret("ghost"))),
        ("arca.v1.SecretService/GetDeletedSecret", Needs("secrets/readMetadata", Secret("ghost"))),
        ("arca.v1.SecretService/ListDeletedSecrets", ListDeleted("secrets/readMetadata")),
        ("arca.v1.SecretService/RecoverDeletedSecret", Needs("secrets/recover", Secret("ghost"))),
        ("arca.v1.SecretService/PurgeDeletedSecret", Needs("secrets/purge", Secret("ghost"))),
        ("arca.v1.SecretService/BackupSecret", Needs("secrets/backup", Secret("obj"))),
        ("arca.v1.SecretService/RestoreSecret", Needs("secrets/restore", Secret("obj"))),
        // Keys.
        ("arca.v1.KeyService/CreateKey", Needs("keys/create", Key("kobj"))),
        ("arca.v1.KeyService/ImportKey", Needs("keys/import", Key("kobj"))),
        ("arca.v1.KeyService/GetKey", Needs("keys/read", Key("kobj"))),
        ("arca.v1.KeyService/ListKeys", List("keys/read", Kind::Keys)),
        ("arca.v1.KeyService/ListKeyVersions", Needs("keys/read", Key("kobj"))),
        ("arca.v1.KeyService/UpdateKey", Needs("keys/update", Key("kobj"))),
        ("arca.v1.KeyService/DeleteKey", Needs("keys/delete", Key("ghost"))),
        ("arca.v1.KeyService/GetDeletedKey", Needs("keys/read", Key("ghost"))),
        ("arca.v1.KeyService/ListDeletedKeys", ListDeleted("keys/read")),
        ("arca.v1.KeyService/RecoverDeletedKey", Needs("keys/recover", Key("ghost"))),
        ("arca.v1.KeyService/PurgeDeletedKey", Needs("keys/purge", Key("ghost"))),
        ("arca.v1.KeyService/BackupKey", Needs("keys/backup", Key("kobj"))),
        ("arca.v1.KeyService/RestoreKey", Needs("keys/restore", Key("kobj"))),
        ("arca.v1.KeyService/RotateKey", Needs("keys/rotate", Key("kobj"))),
        ("arca.v1.KeyService/GetKeyRotationPolicy", Needs("policy/read", Key("kobj"))),
        ("arca.v1.KeyService/UpdateKeyRotationPolicy", Needs("policy/write", Key("kobj"))),
        ("arca.v1.KeyService/GetRandomBytes", Needs("rng", Cluster)),
        // Cryptography next to the key.
        ("arca.v1.CryptoService/Encrypt", PublicOp("keys/encrypt", Key("kobj"))),
        ("arca.v1.CryptoService/Decrypt", Needs("keys/decrypt", Key("kobj"))),
        ("arca.v1.CryptoService/WrapKey", PublicOp("keys/wrap", Key("kobj"))),
        ("arca.v1.CryptoService/UnwrapKey", Needs("keys/unwrap", Key("kobj"))),
        ("arca.v1.CryptoService/Sign", Needs("keys/sign", Key("kobj"))),
        ("arca.v1.CryptoService/Verify", PublicOp("keys/verify", Key("kobj"))),
        ("arca.v1.CryptoService/BatchEncrypt", Batch("keys/encrypt", true)),
        ("arca.v1.CryptoService/BatchDecrypt", Batch("keys/decrypt", false)),
        ("arca.v1.CryptoService/BatchWrapKey", Batch("keys/wrap", true)),
        ("arca.v1.CryptoService/BatchUnwrapKey", Batch("keys/unwrap", false)),
        ("arca.v1.CryptoService/BatchSign", Batch("keys/sign", false)),
        ("arca.v1.CryptoService/BatchVerify", Batch("keys/verify", true)),
        // The cluster.
        ("arca.v1.ClusterService/GetClusterStatus", Needs("cluster/read", Cluster)),
        ("arca.v1.ClusterService/CreateJoinToken", Needs("cluster/joinTokens", Cluster)),
        ("arca.v1.ClusterService/RemoveNode", Needs("cluster/removeNode", Cluster)),
        ("arca.v1.ClusterService/Failover", Needs("cluster/failover", Cluster)),
        ("arca.v1.ClusterService/Switchover", Needs("cluster/failover", Cluster)),
        ("arca.v1.ClusterService/WatchEvents", Needs("cluster/read", Cluster)),
        ("arca.v1.ClusterService/ListDivergences", Needs("cluster/divergence", Cluster)),
        ("arca.v1.ClusterService/GetDivergence", Needs("cluster/divergence", Cluster)),
        ("arca.v1.ClusterService/ExportDivergence", Needs("cluster/divergence/export", Cluster)),
        ("arca.v1.OperatorService/Seal", Needs("cluster/seal", Cluster)),
        ("arca.v1.OperatorService/RotateKeyring", Needs("cluster/rotate", Cluster)),
        ("arca.v1.OperatorService/ListTokens", Never),
        ("arca.v1.OperatorService/RevokeToken", Never),
        ("arca.v1.AuditService/ListAnchors", Needs("cluster/read", Cluster)),
        // Principals.
        ("arca.v1.PrincipalService/CreatePrincipal", Needs("principals/write", Cluster)),
        ("arca.v1.PrincipalService/GetPrincipal", Needs("principals/read", Cluster)),
        ("arca.v1.PrincipalService/ListPrincipals", Needs("principals/read", Cluster)),
        ("arca.v1.PrincipalService/DeletePrincipal", Needs("principals/delete", Cluster)),
        ("arca.v1.PrincipalService/ResetCredential", Needs("principals/credentials", Cluster)),
        ("arca.v1.PrincipalService/ListCredentials", Needs("principals/read", Cluster)),
        ("arca.v1.PrincipalService/DeleteCredential", Needs("principals/credentials", Cluster)),
        ("arca.v1.PrincipalService/AddGroupMember", Needs("principals/write", Cluster)),
        ("arca.v1.PrincipalService/RemoveGroupMember", Needs("principals/write", Cluster)),
        ("arca.v1.PrincipalService/RevokeTokens", Needs("principals/write", Cluster)),
        ("arca.v1.PrincipalService/RevokeAccessToken", Needs("principals/write", Cluster)),
        ("arca.v1.PrincipalService/BindManagedIdentity", Needs("principals/credentials", Cluster)),
        ("arca.v1.PrincipalService/AddFederatedCredential", Needs("principals/credentials", Cluster)),
        // The identity agent's own calls.
        ("arca.v1.AgentService/RegisterAgentCertificate", AgentOnly),
        ("arca.v1.AgentService/IssueManagedIdentityToken", AgentOnly),
        // Roles.
        ("arca.v1.RoleService/ListRoleDefinitions", Needs("roleDefinitions/read", Cluster)),
        ("arca.v1.RoleService/GetRoleDefinition", Needs("roleDefinitions/read", Cluster)),
        ("arca.v1.RoleService/CreateRoleDefinition", Needs("roleDefinitions/write", Home)),
        ("arca.v1.RoleService/UpdateRoleDefinition", Needs("roleDefinitions/write", Home)),
        ("arca.v1.RoleService/DeleteRoleDefinition", Needs("roleDefinitions/delete", Cluster)),
        ("arca.v1.RoleService/CreateRoleAssignment", Assign("Key Vault Reader")),
        ("arca.v1.RoleService/CreateRoleAssignment#uaa", Assign("User Access Administrator")),
        ("arca.v1.RoleService/ListRoleAssignments", Needs("roleAssignments/read", Home)),
        ("arca.v1.RoleService/DeleteRoleAssignment", Unassign("Key Vault Secrets User")),
        ("arca.v1.RoleService/DeleteRoleAssignment#uaa", Unassign("User Access Administrator")),
    ]
}

/// RPCs answered without a token: unsealing and joining come before any identity exists, and the
/// token endpoint is where identities sign in.
const OPEN: &[&str] = &[
    "arca.v1.OperatorService/Init",
    "arca.v1.OperatorService/Unseal",
    "arca.v1.OperatorService/GetSealStatus",
    "arca.v1.OperatorService/GenerateRoot",
    "arca.v1.OperatorService/Rekey",
    "arca.v1.ClusterService/JoinCluster",
    "arca.v1.AuthService/Token",
];

#[test]
fn every_rpc_of_the_api_is_in_the_matrix_or_needs_no_token() {
    let fds = prost_types::FileDescriptorSet::decode(arca_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut in_proto = BTreeSet::new();
    for file in &fds.file {
        // The node-to-node service is on the cluster listener, behind mutual TLS (attacks.rs).
        if file.package() != "arca.v1" {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                in_proto.insert(format!("arca.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    let mut covered: BTreeSet<String> = cases().iter().map(|(n, _)| n.split('#').next().unwrap().to_owned()).collect();
    covered.extend(OPEN.iter().map(|s| (*s).to_owned()));
    let missing: Vec<_> = in_proto.difference(&covered).collect();
    assert!(missing.is_empty(), "RPCs neither in the authorization matrix nor open: {missing:?}");
    let unknown: Vec<_> = covered.difference(&in_proto).collect();
    assert!(unknown.is_empty(), "the matrix names RPCs the API does not have: {unknown:?}");
}

// ---------------------------------------------------------------------------------------------
// Calling each RPC.

/// What the calls aim at, made by root before the matrix runs.
struct Ctx {
    bystander: String,
    bystander_token: String,
    secret_backup: Vec<u8>,
    key_backup: Vec<u8>,
    /// An enrolled identity agent (signed in with its certificate over mutual TLS), which obtains the
    /// managed identities' tokens, and the directory holding its key.
    agent: ArcaClient,
    agent_id: String,
    _agent_dir: tempfile::TempDir,
}

const GHOST_ID: &str = "3f0c6a52-9d1e-4b7a-8c2d-5e6f7a8b9c0d";

fn judge<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Seen> {
    result.map(tonic::Response::into_inner).map_err(|status| seen_error(ClientError::from(status)))
}

fn seen_error(e: ClientError) -> Seen {
    if e.reason.as_deref() == Some("FORBIDDEN_BY_RBAC") {
        return Seen::Denied;
    }
    // A key that does not allow the operation is refused after authorization.
    if e.reason.as_deref() == Some("KEY_OPERATION_FORBIDDEN") {
        return Seen::Passed(vec![]);
    }
    match e.code {
        tonic::Code::Unauthenticated
        | tonic::Code::Unavailable
        | tonic::Code::Internal
        | tonic::Code::Unknown
        | tonic::Code::DeadlineExceeded
        | tonic::Code::PermissionDenied => Seen::Broken(format!("{e:?}")),
        _ => Seen::Passed(vec![]),
    }
}

fn item_seen(error: Option<&pb::ItemError>) -> String {
    match error {
        Some(e) if e.reason == "FORBIDDEN_BY_RBAC" => "second denied".into(),
        _ => "second passed".into(),
    }
}

fn names(list: impl IntoIterator<Item = String>, known: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list.into_iter().filter(|n| known.contains(&n.as_str())).collect();
    out.sort();
    out
}

fn tags() -> HashMap<String, String> {
    HashMap::from([("matrix".to_owned(), "1".to_owned())])
}

fn mask(path: &str) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask { paths: vec![path.to_owned()] })
}

async fn call(c: &ArcaClient, rpc: &str, ctx: &Ctx, tag: &str) -> Seen {
    match call_inner(c, rpc, ctx, tag).await {
        Ok(details) => Seen::Passed(details),
        Err(seen) => seen,
    }
}

fn sec(name: &str) -> (String, String) {
    ("home".to_owned(), name.to_owned())
}

async fn call_inner(c: &ArcaClient, rpc: &str, ctx: &Ctx, tag: &str) -> Result<Vec<String>, Seen> {
    let none = Ok(vec![]);
    let (home, obj) = sec("obj");
    let ghost = "ghost".to_owned();
    let digest = vec![7u8; 32];
    macro_rules! just {
        ($e:expr) => {{
            match judge($e.await) {
                Ok(_) => none.clone(),
                Err(Seen::Passed(_)) => none.clone(),
                Err(other) => Err(other),
            }
        }};
    }
    macro_rules! batch {
        ($client:expr, $method:ident, $req:ident, $item:expr) => {{
            let item = |name: &str| {
                let mut i = $item;
                i.name = name.to_owned();
                i
            };
            let r = pb::$req { items: vec![item("kobj"), item("kother")], read_options: None };
            let out = judge($client.$method(r).await)?;
            Ok(vec![item_seen(out.results.get(1).and_then(|r| match &r.result {
                Some(x) => batch_error(x),
                None => None,
            }))])
        }};
    }
    match rpc {
        "arca.v1.VaultService/CreateVault" => {
            just!(c.vaults().create_vault(pb::CreateVaultRequest { name: format!("m{tag}"), ..Default::default() }))
        }
        "arca.v1.VaultService/GetVault" => {
            just!(c.vaults().get_vault(pb::GetVaultRequest { name: home.clone(), read_options: None }))
        }
        "arca.v1.VaultService/ListVaults" => {
            let out = judge(c.vaults().list_vaults(pb::ListVaultsRequest::default()).await)?;
            Ok(names(out.vaults.into_iter().map(|v| v.name), &["home", "away"]))
        }
        "arca.v1.VaultService/UpdateVault" => just!(c.vaults().update_vault(pb::UpdateVaultRequest {
            name: home.clone(),
            tags: tags(),
            update_mask: mask("tags"),
            ..Default::default()
        })),
        "arca.v1.VaultService/SetVaultNetworkRules" => {
            // Open to every address, as it was: an allowed caller changes nothing that matters.
            let acls = pb::NetworkAcls { default_action: pb::DefaultAction::Allow as i32, ip_rules: vec![] };
            let r = pb::SetVaultNetworkRulesRequest { name: home.clone(), network_acls: Some(acls) };
            just!(c.vaults().set_vault_network_rules(r))
        }
        "arca.v1.VaultService/DeleteVault" => {
            just!(c.vaults().delete_vault(pb::DeleteVaultRequest { name: ghost.clone() }))
        }
        "arca.v1.VaultService/GetDeletedVault" => {
            just!(c.vaults().get_deleted_vault(pb::GetDeletedVaultRequest { name: ghost.clone(), read_options: None }))
        }
        "arca.v1.VaultService/ListDeletedVaults" => {
            just!(c.vaults().list_deleted_vaults(pb::ListVaultsRequest::default()))
        }
        "arca.v1.VaultService/RecoverDeletedVault" => {
            just!(c.vaults().recover_deleted_vault(pb::RecoverDeletedVaultRequest { name: ghost.clone() }))
        }
        "arca.v1.VaultService/PurgeDeletedVault" => {
            just!(c.vaults().purge_deleted_vault(pb::PurgeDeletedVaultRequest { name: ghost.clone() }))
        }

        "arca.v1.SecretService/SetSecret" => just!(c.secrets().set_secret(pb::SetSecretRequest {
            vault: home.clone(),
            name: obj.clone(),
            value: format!("value by {tag}"),
            ..Default::default()
        })),
        "arca.v1.SecretService/GetSecret" => just!(c.secrets().get_secret(pb::GetSecretRequest {
            vault: home.clone(),
            name: obj.clone(),
            ..Default::default()
        })),
        "arca.v1.SecretService/ListSecrets" => {
            let r = pb::ListSecretsRequest { vault: home.clone(), ..Default::default() };
            let out = judge(c.secrets().list_secrets(r).await)?;
            // Metadata only: a listing never carries a value.
            let mut seen = names(out.secrets.iter().map(|s| s.name.clone()), &["obj", "other"]);
            if out.secrets.iter().any(|s| !s.value.is_empty()) {
                seen.push("a value was listed".into());
            }
            Ok(seen)
        }
        "arca.v1.SecretService/ListSecretVersions" => {
            let r = pb::ListSecretVersionsRequest { vault: home.clone(), name: obj.clone(), ..Default::default() };
            let out = judge(c.secrets().list_secret_versions(r).await)?;
            if out.secrets.iter().any(|s| !s.value.is_empty()) {
                return Ok(vec!["a value was listed".into()]);
            }
            none
        }
        "arca.v1.SecretService/UpdateSecret" => just!(c.secrets().update_secret(pb::UpdateSecretRequest {
            vault: home.clone(),
            name: obj.clone(),
            tags: tags(),
            update_mask: mask("tags"),
            ..Default::default()
        })),
        "arca.v1.SecretService/DeleteSecret" => {
            just!(c.secrets().delete_secret(pb::DeleteSecretRequest { vault: home.clone(), name: ghost.clone() }))
        }
        "arca.v1.SecretService/GetDeletedSecret" => {
            just!(c.secrets().get_deleted_secret(pb::GetDeletedSecretRequest {
                vault: home.clone(),
                name: ghost.clone(),
                read_options: None
            }))
        }
        "arca.v1.SecretService/ListDeletedSecrets" => {
            let r = pb::ListDeletedSecretsRequest { vault: home.clone(), ..Default::default() };
            just!(c.secrets().list_deleted_secrets(r))
        }
        "arca.v1.SecretService/RecoverDeletedSecret" => {
            let r = pb::RecoverDeletedSecretRequest { vault: home.clone(), name: ghost.clone() };
            just!(c.secrets().recover_deleted_secret(r))
        }
        "arca.v1.SecretService/PurgeDeletedSecret" => {
            let r = pb::PurgeDeletedSecretRequest { vault: home.clone(), name: ghost.clone() };
            just!(c.secrets().purge_deleted_secret(r))
        }
        "arca.v1.SecretService/BackupSecret" => {
            just!(c.secrets().backup_secret(pb::BackupSecretRequest { vault: home.clone(), name: obj.clone() }))
        }
        "arca.v1.SecretService/RestoreSecret" => just!(c
            .secrets()
            .restore_secret(pb::RestoreSecretRequest { vault: home.clone(), backup: ctx.secret_backup.clone() })),

        "arca.v1.KeyService/CreateKey" => just!(c.keys().create_key(pb::CreateKeyRequest {
            vault: home.clone(),
            name: "kobj".into(),
            kty: "EC".into(),
            crv: "P-256".into(),
            ..Default::default()
        })),
        "arca.v1.KeyService/ImportKey" => just!(c.keys().import_key(pb::ImportKeyRequest {
            vault: home.clone(),
            name: "kobj".into(),
            // Not a usable key: an allowed caller is told so after authorization.
            key: Some(pb::JsonWebKey { kty: "EC".into(), crv: "P-256".into(), ..Default::default() }),
            ..Default::default()
        })),
        "arca.v1.KeyService/GetKey" => just!(c.keys().get_key(pb::GetKeyRequest {
            vault: home.clone(),
            name: "kobj".into(),
            ..Default::default()
        })),
        "arca.v1.KeyService/ListKeys" => {
            let out =
                judge(c.keys().list_keys(pb::ListKeysRequest { vault: home.clone(), ..Default::default() }).await)?;
            Ok(names(out.keys.into_iter().map(|k| k.name), &["kobj", "kother"]))
        }
        "arca.v1.KeyService/ListKeyVersions" => just!(c.keys().list_key_versions(pb::ListKeyVersionsRequest {
            vault: home.clone(),
            name: "kobj".into(),
            ..Default::default()
        })),
        "arca.v1.KeyService/UpdateKey" => just!(c.keys().update_key(pb::UpdateKeyRequest {
            vault: home.clone(),
            name: "kobj".into(),
            tags: tags(),
            update_mask: mask("tags"),
            ..Default::default()
        })),
        "arca.v1.KeyService/DeleteKey" => {
            just!(c.keys().delete_key(pb::DeleteKeyRequest { vault: home.clone(), name: ghost.clone() }))
        }
        "arca.v1.KeyService/GetDeletedKey" => just!(c.keys().get_deleted_key(pb::GetDeletedKeyRequest {
            vault: home.clone(),
            name: ghost.clone(),
            read_options: None
        })),
        "arca.v1.KeyService/ListDeletedKeys" => {
            just!(c.keys().list_deleted_keys(pb::ListDeletedKeysRequest { vault: home.clone(), ..Default::default() }))
        }
        "arca.v1.KeyService/RecoverDeletedKey" => {
            let r = pb::RecoverDeletedKeyRequest { vault: home.clone(), name: ghost.clone() };
            just!(c.keys().recover_deleted_key(r))
        }
        "arca.v1.KeyService/PurgeDeletedKey" => {
            just!(c.keys().purge_deleted_key(pb::PurgeDeletedKeyRequest { vault: home.clone(), name: ghost.clone() }))
        }
        "arca.v1.KeyService/BackupKey" => {
            just!(c.keys().backup_key(pb::BackupKeyRequest { vault: home.clone(), name: "kobj".into() }))
        }
        "arca.v1.KeyService/RestoreKey" => {
            just!(c.keys().restore_key(pb::RestoreKeyRequest { vault: home.clone(), backup: ctx.key_backup.clone() }))
        }
        "arca.v1.KeyService/RotateKey" => {
            just!(c.keys().rotate_key(pb::RotateKeyRequest { vault: home.clone(), name: "kobj".into() }))
        }
        "arca.v1.KeyService/GetKeyRotationPolicy" => {
            let r = pb::GetKeyRotationPolicyRequest { vault: home.clone(), name: "kobj".into(), read_options: None };
            just!(c.keys().get_key_rotation_policy(r))
        }
        "arca.v1.KeyService/UpdateKeyRotationPolicy" => {
            let policy = pb::KeyRotationPolicy {
                expiry_time: Some(prost_types::Duration { seconds: 90 * 86_400, nanos: 0 }),
                ..Default::default()
            };
            let r =
                pb::UpdateKeyRotationPolicyRequest { vault: home.clone(), name: "kobj".into(), policy: Some(policy) };
            just!(c.keys().update_key_rotation_policy(r))
        }
        "arca.v1.KeyService/GetRandomBytes" => {
            just!(c.keys().get_random_bytes(pb::GetRandomBytesRequest { count: 16 }))
        }

        "arca.v1.CryptoService/Encrypt" => just!(c.crypto().encrypt(encrypt_item(&home))),
        "arca.v1.CryptoService/Decrypt" => just!(c.crypto().decrypt(decrypt_item(&home))),
        "arca.v1.CryptoService/WrapKey" => just!(c.crypto().wrap_key(wrap_item(&home))),
        "arca.v1.CryptoService/UnwrapKey" => just!(c.crypto().unwrap_key(unwrap_item(&home))),
        "arca.v1.CryptoService/Sign" => just!(c.crypto().sign(sign_item(&home, &digest))),
        "arca.v1.CryptoService/Verify" => just!(c.crypto().verify(verify_item(&home, &digest))),
        "arca.v1.CryptoService/BatchEncrypt" => {
            batch!(c.crypto(), batch_encrypt, BatchEncryptRequest, encrypt_item(&home))
        }
        "arca.v1.CryptoService/BatchDecrypt" => {
            batch!(c.crypto(), batch_decrypt, BatchDecryptRequest, decrypt_item(&home))
        }
        "arca.v1.CryptoService/BatchWrapKey" => {
            batch!(c.crypto(), batch_wrap_key, BatchWrapKeyRequest, wrap_item(&home))
        }
        "arca.v1.CryptoService/BatchUnwrapKey" => {
            batch!(c.crypto(), batch_unwrap_key, BatchUnwrapKeyRequest, unwrap_item(&home))
        }
        "arca.v1.CryptoService/BatchSign" => {
            batch!(c.crypto(), batch_sign, BatchSignRequest, sign_item(&home, &digest))
        }
        "arca.v1.CryptoService/BatchVerify" => {
            batch!(c.crypto(), batch_verify, BatchVerifyRequest, verify_item(&home, &digest))
        }

        "arca.v1.ClusterService/GetClusterStatus" => {
            just!(c.cluster().get_cluster_status(pb::GetClusterStatusRequest {}))
        }
        "arca.v1.ClusterService/CreateJoinToken" => {
            just!(c.cluster().create_join_token(pb::CreateJoinTokenRequest { ttl: None }))
        }
        "arca.v1.ClusterService/RemoveNode" => just!(c.cluster().remove_node(pb::RemoveNodeRequest { node_id: 99 })),
        // Allowed, it is answered "not of the secondary region": this cluster has none.
        "arca.v1.ClusterService/Failover" => just!(c.cluster().failover(pb::FailoverRequest { force: true })),
        // Allowed, it is answered "failover is not set up": this cluster has no witness.
        "arca.v1.ClusterService/Switchover" => {
            just!(c.cluster().switchover(pb::SwitchoverRequest { region: "east".into(), cancel: false }))
        }
        // Allowed, the stream opens (and is dropped at once).
        "arca.v1.ClusterService/WatchEvents" => just!(c.cluster().watch_events(pb::WatchEventsRequest {})),
        "arca.v1.ClusterService/ListDivergences" => just!(c.cluster().list_divergences(pb::ListDivergencesRequest {})),
        // Allowed, it is answered NOT_FOUND: no primary was ever displaced here.
        "arca.v1.ClusterService/GetDivergence" => {
            just!(c.cluster().get_divergence(pb::GetDivergenceRequest { epoch: 2, node_id: 1 }))
        }
        "arca.v1.ClusterService/ExportDivergence" => {
            just!(c.cluster().export_divergence(pb::GetDivergenceRequest { epoch: 2, node_id: 1 }))
        }
        "arca.v1.OperatorService/Seal" => just!(c.operator().seal(pb::SealRequest {})),
        "arca.v1.OperatorService/RotateKeyring" => just!(c.operator().rotate_keyring(pb::RotateKeyringRequest {})),
        "arca.v1.OperatorService/ListTokens" => just!(c.operator().list_tokens(pb::ListTokensRequest {})),
        "arca.v1.OperatorService/RevokeToken" => {
            just!(c.operator().revoke_token(pb::RevokeTokenRequest { accessor: "ghost".into() }))
        }
        "arca.v1.AuditService/ListAnchors" => just!(c.audit().list_anchors(pb::ListAnchorsRequest::default())),

        "arca.v1.PrincipalService/CreatePrincipal" => {
            just!(c.principals().create_principal(pb::CreatePrincipalRequest {
                kind: pb::PrincipalKind::Group as i32,
                display_name: format!("matrix group {tag}"),
                ..Default::default()
            }))
        }
        "arca.v1.PrincipalService/GetPrincipal" => {
            just!(c.principals().get_principal(pb::GetPrincipalRequest { id: ctx.bystander.clone() }))
        }
        "arca.v1.PrincipalService/ListPrincipals" => {
            just!(c.principals().list_principals(pb::ListPrincipalsRequest::default()))
        }
        "arca.v1.PrincipalService/DeletePrincipal" => {
            just!(c.principals().delete_principal(pb::DeletePrincipalRequest { id: GHOST_ID.into() }))
        }
        "arca.v1.PrincipalService/ResetCredential" => just!(c
            .principals()
            .reset_credential(pb::ResetCredentialRequest { id: GHOST_ID.into(), ..Default::default() })),
        "arca.v1.PrincipalService/AddFederatedCredential" => {
            let r = pb::AddFederatedCredentialRequest { id: GHOST_ID.into(), ..Default::default() };
            just!(c.principals().add_federated_credential(r))
        }
        "arca.v1.PrincipalService/BindManagedIdentity" => {
            let r =
                pb::BindManagedIdentityRequest { id: GHOST_ID.into(), agent: GHOST_ID.into(), ..Default::default() };
            just!(c.principals().bind_managed_identity(r))
        }
        "arca.v1.AgentService/RegisterAgentCertificate" => {
            let pem = arca_crypto::client_cert::self_signed("matrix agent", 1_800_000_000, 30).unwrap();
            let cert = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
            let r = pb::RegisterAgentCertificateRequest { certificate_pem: cert, lifetime: None };
            just!(c.agents().register_agent_certificate(r))
        }
        "arca.v1.AgentService/IssueManagedIdentityToken" => {
            let r = pb::IssueManagedIdentityTokenRequest {
                identity: ctx.bystander.clone(),
                workload: Some(pb::AttestedWorkload { uid: 0, ..Default::default() }),
                lifetime: None,
            };
            just!(c.agents().issue_managed_identity_token(r))
        }
        "arca.v1.PrincipalService/ListCredentials" => {
            just!(c.principals().list_credentials(pb::ListCredentialsRequest { id: ctx.bystander.clone() }))
        }
        "arca.v1.PrincipalService/DeleteCredential" => {
            let r = pb::DeleteCredentialRequest { id: GHOST_ID.into(), key_id: GHOST_ID.into() };
            just!(c.principals().delete_credential(r))
        }
        "arca.v1.PrincipalService/AddGroupMember" => {
            let r = pb::GroupMemberRequest { group: GHOST_ID.into(), member: ctx.bystander.clone() };
            just!(c.principals().add_group_member(r))
        }
        "arca.v1.PrincipalService/RemoveGroupMember" => {
            let r = pb::GroupMemberRequest { group: GHOST_ID.into(), member: ctx.bystander.clone() };
            just!(c.principals().remove_group_member(r))
        }
        "arca.v1.PrincipalService/RevokeTokens" => {
            just!(c.principals().revoke_tokens(pb::RevokeTokensRequest { id: GHOST_ID.into() }))
        }
        "arca.v1.PrincipalService/RevokeAccessToken" => {
            let r = pb::RevokeAccessTokenRequest { access_token: ctx.bystander_token.clone() };
            just!(c.principals().revoke_access_token(r))
        }

        "arca.v1.RoleService/ListRoleDefinitions" => {
            just!(c.roles().list_role_definitions(pb::ListRoleDefinitionsRequest::default()))
        }
        "arca.v1.RoleService/GetRoleDefinition" => {
            just!(c.roles().get_role_definition(pb::GetRoleDefinitionRequest { role: "Key Vault Reader".into() }))
        }
        "arca.v1.RoleService/CreateRoleDefinition" => {
            let json = serde_json::json!({
                "Name": format!("Matrix role {tag}"),
                "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
                "AssignableScopes": ["/vaults/home"],
            });
            let r = pb::CreateRoleDefinitionRequest { role_definition_json: json.to_string() };
            just!(c.roles().create_role_definition(r))
        }
        "arca.v1.RoleService/UpdateRoleDefinition" => {
            let json = serde_json::json!({
                "Id": GHOST_ID,
                "Name": format!("Matrix ghost role {tag}"),
                "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
                "AssignableScopes": ["/vaults/home"],
            });
            let r = pb::CreateRoleDefinitionRequest { role_definition_json: json.to_string() };
            just!(c.roles().update_role_definition(r))
        }
        "arca.v1.RoleService/DeleteRoleDefinition" => {
            just!(c.roles().delete_role_definition(pb::DeleteRoleDefinitionRequest { role: GHOST_ID.into() }))
        }
        "arca.v1.RoleService/CreateRoleAssignment" | "arca.v1.RoleService/CreateRoleAssignment#uaa" => {
            let role = if rpc.ends_with("#uaa") { "User Access Administrator" } else { "Key Vault Reader" };
            let r = pb::CreateRoleAssignmentRequest {
                assignee: ctx.bystander.clone(),
                role: role.into(),
                scope: "/vaults/home".into(),
            };
            just!(c.roles().create_role_assignment(r))
        }
        "arca.v1.RoleService/ListRoleAssignments" => {
            let r = pb::ListRoleAssignmentsRequest { scope: "/vaults/home".into(), ..Default::default() };
            just!(c.roles().list_role_assignments(r))
        }
        "arca.v1.RoleService/DeleteRoleAssignment" | "arca.v1.RoleService/DeleteRoleAssignment#uaa" => {
            // Neither assignment exists: an allowed caller is told so, a refused one is not.
            let role = if rpc.ends_with("#uaa") { "User Access Administrator" } else { "Key Vault Secrets User" };
            let r = pb::DeleteRoleAssignmentRequest {
                id: String::new(),
                assignee: GHOST_ID.into(),
                role: role.into(),
                scope: "/vaults/home".into(),
            };
            just!(c.roles().delete_role_assignment(r))
        }
        other => panic!("the matrix has no call for {other}"),
    }
}

trait BatchResult {
    fn error(&self) -> Option<&pb::ItemError>;
}

fn batch_error<R: BatchResult>(r: &R) -> Option<&pb::ItemError> {
    r.error()
}

macro_rules! batch_result {
    ($($t:ty),*) => {$(
        impl BatchResult for $t {
            fn error(&self) -> Option<&pb::ItemError> {
                match self {
                    Self::Error(e) => Some(e),
                    _ => None,
                }
            }
        }
    )*};
}
batch_result!(
    pb::encrypt_result::Result,
    pb::decrypt_result::Result,
    pb::wrap_key_result::Result,
    pb::unwrap_key_result::Result,
    pb::sign_result::Result,
    pb::verify_result::Result
);

fn encrypt_item(vault: &str) -> pb::EncryptRequest {
    pb::EncryptRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "RSA-OAEP-256".into(),
        plaintext: b"matrix".to_vec(),
        ..Default::default()
    }
}
fn decrypt_item(vault: &str) -> pb::DecryptRequest {
    pb::DecryptRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "RSA-OAEP-256".into(),
        ciphertext: vec![1; 256],
        ..Default::default()
    }
}
fn wrap_item(vault: &str) -> pb::WrapKeyRequest {
    pb::WrapKeyRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "RSA-OAEP-256".into(),
        key: vec![2; 32],
        ..Default::default()
    }
}
fn unwrap_item(vault: &str) -> pb::UnwrapKeyRequest {
    pb::UnwrapKeyRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "RSA-OAEP-256".into(),
        wrapped_key: vec![3; 256],
        ..Default::default()
    }
}
fn sign_item(vault: &str, digest: &[u8]) -> pb::SignRequest {
    pb::SignRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "ES256".into(),
        digest: digest.to_vec(),
        ..Default::default()
    }
}
fn verify_item(vault: &str, digest: &[u8]) -> pb::VerifyRequest {
    pb::VerifyRequest {
        vault: vault.into(),
        name: "kobj".into(),
        algorithm: "ES256".into(),
        digest: digest.to_vec(),
        signature: vec![4; 64],
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The cluster and its principals.

async fn service_principal(root: &ArcaClient, name: &str) -> (String, String, String) {
    let request = pb::CreatePrincipalRequest {
        kind: pb::PrincipalKind::ServicePrincipal as i32,
        display_name: name.into(),
        with_secret: true,
        years: 1,
    };
    let created = root.principals().create_principal(request).await.unwrap().into_inner();
    let p = created.principal.unwrap();
    (p.id, p.app_id, created.password)
}

async fn raw_token(cluster: &TestCluster, client_id: &str, secret: &str) -> String {
    let anonymous = cluster.client_with_token(0, None).await.unwrap();
    let r = pb::TokenRequest {
        grant_type: "client_credentials".into(),
        client_id: client_id.into(),
        client_secret: secret.into(),
        ..Default::default()
    };
    anonymous.auth().token(r).await.unwrap().into_inner().access_token
}

async fn prepare(cluster: &TestCluster) -> Ctx {
    let root = cluster.client(0).await.unwrap();
    for vault in ["home", "away"] {
        root.vaults().create_vault(pb::CreateVaultRequest { name: vault.into(), ..Default::default() }).await.unwrap();
    }
    for (vault, name) in [("home", "obj"), ("home", "other"), ("away", "obj")] {
        let r = pb::SetSecretRequest {
            vault: vault.into(),
            name: name.into(),
            value: "matrix".into(),
            ..Default::default()
        };
        root.secrets().set_secret(r).await.unwrap();
    }
    for name in ["kobj", "kother"] {
        let r = pb::CreateKeyRequest {
            vault: "home".into(),
            name: name.into(),
            kty: "EC".into(),
            crv: "P-256".into(),
            ..Default::default()
        };
        root.keys().create_key(r).await.unwrap();
    }
    let secret_backup = root
        .secrets()
        .backup_secret(pb::BackupSecretRequest { vault: "home".into(), name: "obj".into() })
        .await
        .unwrap()
        .into_inner()
        .value;
    let key_backup = root
        .keys()
        .backup_key(pb::BackupKeyRequest { vault: "home".into(), name: "kobj".into() })
        .await
        .unwrap()
        .into_inner()
        .value;
    let (bystander, client_id, secret) = service_principal(&root, "matrix bystander").await;
    let bystander_token = raw_token(cluster, &client_id, &secret).await;
    let (agent, agent_id, _agent_dir) = enrolled_agent(cluster, &root).await;
    Ctx { bystander, bystander_token, secret_backup, key_backup, agent, agent_id, _agent_dir }
}

/// An identity agent, enrolled as `arca agent run` enrolls: its one-time secret registers its
/// certificate, and it signs in with that certificate over mutual TLS.
async fn enrolled_agent(cluster: &TestCluster, root: &ArcaClient) -> (ArcaClient, String, tempfile::TempDir) {
    let request = pb::CreatePrincipalRequest {
        kind: pb::PrincipalKind::Agent as i32,
        display_name: "matrix agent".into(),
        with_secret: true,
        years: 0,
    };
    let created = root.principals().create_principal(request).await.unwrap().into_inner();
    let app_id = created.principal.unwrap().app_id;
    let secret = zeroize::Zeroizing::new(created.password);
    let enrolling = cluster.client_as(0, Credential::ClientSecret { client_id: app_id.clone(), secret }).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let pem = arca_crypto::client_cert::self_signed("matrix agent", now, 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("agent.pem");
    std::fs::write(&pem_path, &pem).unwrap();
    let cert = pem[..pem.find("-----BEGIN PRIVATE KEY-----").unwrap()].to_owned();
    let r = pb::RegisterAgentCertificateRequest { certificate_pem: cert, lifetime: None };
    enrolling.agents().register_agent_certificate(r).await.unwrap();
    let credential = Credential::ClientCertificateTls { client_id: app_id.clone(), pem_path };
    (retrying(cluster, 0, Some(credential), None).await, app_id, dir)
}

/// A client of `node` that retries what the server says to retry (`UNAVAILABLE`, with the same
/// request id), as every Arca client does: a role in the matrix may rotate the keyring, and a node
/// that has not loaded the new term yet answers "retry" for a moment. Refusals are never retried.
async fn retrying(
    cluster: &TestCluster,
    node: usize,
    credential: Option<Credential>,
    token: Option<&str>,
) -> ArcaClient {
    let options = arca_client::ConnectOptions {
        addr: cluster.nodes[node].api_addr(),
        ca_pem: Some(cluster.ca_pem.clone()),
        token: token.map(str::to_owned),
        timeout: Some(std::time::Duration::from_secs(30)),
        attempts: 0,
    };
    match credential {
        Some(credential) => ArcaClient::connect_with(options, credential).await.unwrap(),
        None => ArcaClient::connect_lazy(options).unwrap(),
    }
}

/// Who the matrix signs in as: a service principal (client secret), a managed identity whose
/// token the agent obtained, or a person who signed in through an OpenID Connect provider (its keys
/// found by discovery) and holds the role through the Arca group their token's groups claim names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    ServicePrincipal,
    ManagedIdentity,
    User,
}

/// Runs every case as one principal; returns how many calls were to get past authorization, and the
/// mismatches.
#[allow(clippy::too_many_arguments)]
async fn run_principal(
    cluster: &TestCluster,
    ctx: &Ctx,
    issuer: &IssuerProcess,
    r: usize,
    role: &str,
    holds: &[&str],
    col: Col,
    who: Who,
) -> (usize, Vec<String>) {
    let root = cluster.client(0).await.unwrap();
    let node = r % 3;
    // A person's sign-in name, and the groups claim value whose Arca group holds the role.
    let subject = format!("matrix-user-{r}-{col:?}");
    let mut assignee = None;
    let (id, client) = match who {
        Who::ServicePrincipal => {
            let (id, client_id, secret) = service_principal(&root, &format!("matrix r{r} {col:?}")).await;
            let credential = Credential::ClientSecret { client_id, secret: zeroize::Zeroizing::new(secret) };
            (id, Some(credential))
        }
        Who::User => {
            let mut ids = Vec::new();
            for (kind, name) in [(pb::PrincipalKind::User, "user"), (pb::PrincipalKind::Group, "group")] {
                let request = pb::CreatePrincipalRequest {
                    kind: kind as i32,
                    display_name: format!("matrix {name} r{r} {col:?}"),
                    ..Default::default()
                };
                let created = root.principals().create_principal(request).await.unwrap().into_inner();
                let id = created.principal.unwrap().id;
                let audiences = if kind == pb::PrincipalKind::User { vec!["arca".into()] } else { vec![] };
                let link = pb::AddFederatedCredentialRequest {
                    id: id.clone(),
                    name: "sign-in".into(),
                    issuer: issuer.url.clone(),
                    subject: format!("{subject}-{name}"),
                    audiences,
                    jwks_json: String::new(),
                    claims: vec![],
                };
                root.principals().add_federated_credential(link).await.unwrap();
                ids.push(id);
            }
            assignee = Some(ids[1].clone());
            (ids[0].clone(), None)
        }
        Who::ManagedIdentity => {
            let request = pb::CreatePrincipalRequest {
                kind: pb::PrincipalKind::ManagedIdentity as i32,
                display_name: format!("matrix mi r{r} {col:?}"),
                ..Default::default()
            };
            let created = root.principals().create_principal(request).await.unwrap().into_inner();
            let id = created.principal.unwrap().id;
            let bind = pb::BindManagedIdentityRequest {
                id: id.clone(),
                agent: ctx.agent_id.clone(),
                uid: Some(0),
                ..Default::default()
            };
            root.principals().bind_managed_identity(bind).await.unwrap();
            (id, None)
        }
    };
    let assignee = assignee.unwrap_or_else(|| id.clone());
    for scope in col.scopes() {
        let request =
            pb::CreateRoleAssignmentRequest { assignee: assignee.clone(), role: role.into(), scope: (*scope).into() };
        root.roles().create_role_assignment(request).await.unwrap();
    }
    let client = match client {
        Some(credential) => retrying(cluster, node, Some(credential), None).await,
        None if who == Who::User => {
            let group = format!("{subject}-group");
            let id_token = issuer.issue(&format!("{subject}-user"), "arca", &[&group], 3600).await.unwrap();
            let anonymous = retrying(cluster, node, None, None).await;
            let request = pb::TokenRequest {
                grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
                assertion: id_token,
                ..Default::default()
            };
            let token = anonymous.auth().token(request).await.unwrap().into_inner().access_token;
            retrying(cluster, node, None, Some(&token)).await
        }
        None => {
            let ask = pb::IssueManagedIdentityTokenRequest {
                identity: id.clone(),
                workload: Some(pb::AttestedWorkload { uid: 0, ..Default::default() }),
                lifetime: None,
            };
            let token = ctx.agent.agents().issue_managed_identity_token(ask).await.unwrap().into_inner().access_token;
            retrying(cluster, node, None, Some(&token)).await
        }
    };
    let kind = match who {
        Who::ServicePrincipal => "",
        Who::ManagedIdentity => "m",
        Who::User => "u",
    };
    let tag = format!("{kind}r{r}{}", format!("{col:?}").to_lowercase());
    let mut wrong = Vec::new();
    let mut passed = 0;
    for (rpc, rule) in cases() {
        let want = expected(holds, col, rule);
        passed += usize::from(want != Seen::Denied);
        if rpc == "arca.v1.OperatorService/Seal" && want != Seen::Denied {
            // Allowed: sealing a node would stop the matrix. The operator's seal is tested in operator tests.
            continue;
        }
        let got = call(&client, rpc, ctx, &tag).await;
        if got != want {
            wrong.push(format!(
                "{role} as a {who:?} at {col:?} (node {}): {rpc}: expected {want:?}, got {got:?}",
                node + 1
            ));
        }
    }
    (passed, wrong)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_each_built_in_role_at_each_scope_as_written() {
    let issuer_dir = tempfile::tempdir().unwrap();
    let issuer = IssuerProcess::start(issuer_dir.path()).await.unwrap();
    let ca = issuer.ca_file.to_str().unwrap().to_owned();
    let cluster = TestCluster::start_with_node_args(3, &["--oidc-ca-file", &ca]).await.unwrap();
    let ctx = prepare(&cluster).await;
    let roles = roles();
    // Every built-in role the cluster offers is in the matrix, and no other.
    let root = cluster.client(0).await.unwrap();
    let offered = root.roles().list_role_definitions(pb::ListRoleDefinitionsRequest::default()).await.unwrap();
    let offered: BTreeSet<String> =
        offered.into_inner().role_definitions.into_iter().filter(|d| !d.custom).map(|d| d.name).collect();
    assert_eq!(offered, roles.iter().map(|(n, _)| (*n).to_owned()).collect::<BTreeSet<_>>());
    let mut jobs = Vec::new();
    let kinds = [Who::ServicePrincipal, Who::ManagedIdentity, Who::User];
    for who in kinds {
        for (r, (role, holds)) in roles.iter().enumerate() {
            for col in COLS {
                jobs.push((r, *role, holds.clone(), col, who));
            }
        }
    }
    let (cluster_ref, ctx_ref, issuer_ref) = (&cluster, &ctx, &issuer);
    let results: Vec<(usize, Vec<String>)> = futures::stream::iter(jobs)
        .map(|(r, role, holds, col, who)| async move {
            run_principal(cluster_ref, ctx_ref, issuer_ref, r, role, &holds, col, who).await
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let passed: usize = results.iter().map(|(p, _)| p).sum();
    let calls = kinds.len() * roles.len() * COLS.len() * cases().len();
    let wrong: Vec<String> = results.into_iter().flat_map(|(_, w)| w).collect();
    assert!(wrong.is_empty(), "{} answers differ from the matrix:\n{}", wrong.len(), wrong.join("\n"));
    // Neither side of the matrix is empty: it tells allowed from refused rather than refusing all.
    eprintln!("{calls} calls: {passed} allowed, {} refused", calls - passed);
    assert!(passed > calls / 20 && calls - passed > calls / 2, "{passed} of {calls}");

    // Nobody changed what the matrix aimed at: the secret still reads as root set it, no vault or
    // node went away.
    let root = cluster.client(1).await.unwrap();
    let status = cluster.status(0).await.unwrap();
    assert_eq!(status.nodes.len(), 3, "{status:?}");
    let got = root
        .secrets()
        .get_secret(pb::GetSecretRequest { vault: "away".into(), name: "obj".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.value, "matrix");
    let vaults: BTreeMap<String, pb::Vault> = root
        .vaults()
        .list_vaults(pb::ListVaultsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .vaults
        .into_iter()
        .map(|v| (v.name.clone(), v))
        .collect();
    assert!(vaults.contains_key("home") && vaults.contains_key("away"), "{:?}", vaults.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_a_call_without_a_token_or_with_an_expired_revoked_or_foreign_one() {
    let cluster = TestCluster::start(3).await.unwrap();
    let ctx = prepare(&cluster).await;
    let root = cluster.client(0).await.unwrap();
    let (id, client_id, secret) = service_principal(&root, "matrix expiring").await;
    let request =
        pb::CreateRoleAssignmentRequest { assignee: id, role: "Key Vault Administrator".into(), scope: "/".into() };
    root.roles().create_role_assignment(request).await.unwrap();
    let token = raw_token(&cluster, &client_id, &secret).await;

    let anonymous = cluster.client_with_token(1, None).await.unwrap();
    let holder = cluster.client_with_token(2, Some(&token)).await.unwrap();
    // The token works before it expires.
    let before = call(&holder, "arca.v1.SecretService/GetSecret", &ctx, "x").await;
    assert_eq!(before, Seen::Passed(vec![]));

    // Another token of the same Key Vault Administrator, revoked.
    let revoked_token = raw_token(&cluster, &client_id, &secret).await;
    let revoked = cluster.client_with_token(0, Some(&revoked_token)).await.unwrap();
    assert_eq!(call(&revoked, "arca.v1.SecretService/GetSecret", &ctx, "x").await, Seen::Passed(vec![]));
    let r = pb::RevokeAccessTokenRequest { access_token: revoked_token.clone() };
    root.principals().revoke_access_token(r).await.unwrap();

    // A token another cluster issued (its issuer and audience are that cluster's) to a Key Vault
    // Administrator there.
    let elsewhere = TestCluster::start(1).await.unwrap();
    let other_root = elsewhere.client(0).await.unwrap();
    let (other_id, other_client, other_secret) = service_principal(&other_root, "matrix expiring").await;
    let request = pb::CreateRoleAssignmentRequest {
        assignee: other_id,
        role: "Key Vault Administrator".into(),
        scope: "/".into(),
    };
    other_root.roles().create_role_assignment(request).await.unwrap();
    let foreign_token = raw_token(&elsewhere, &other_client, &other_secret).await;
    let foreign = cluster.client_with_token(1, Some(&foreign_token)).await.unwrap();

    let mut wrong = Vec::new();
    let sweep = async |who: &str, client: &ArcaClient, wrong: &mut Vec<String>| {
        for (rpc, _) in cases() {
            match call_inner(client, rpc, &ctx, "x").await {
                Err(Seen::Broken(e)) if e.contains("Unauthenticated") => {}
                other => wrong.push(format!("{rpc} with {who}: {other:?}")),
            }
        }
    };
    sweep("no token", &anonymous, &mut wrong).await;
    sweep("a revoked token", &revoked, &mut wrong).await;
    sweep("another cluster's token (wrong issuer and audience)", &foreign, &mut wrong).await;
    cluster.advance_clock(2 * 3600);
    sweep("an expired token", &holder, &mut wrong).await;
    assert!(wrong.is_empty(), "calls that were not refused as unauthenticated:\n{}", wrong.join("\n"));
}
