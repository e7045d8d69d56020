//! `arca`, the command-line client. Verbs mirror `az keyvault …` and `az keyvault secret …`.
//!
//! Connection settings come from flags or `ARCA_ADDR` and `ARCA_CACERT`; credentials from `--token`,
//! or as Azure's `DefaultAzureCredential` finds them: `ARCA_TOKEN`, else `ARCA_CLIENT_ID` with
//! `ARCA_CLIENT_SECRET` or a certificate (exchanged for an access token at the token endpoint), else
//! the local `arca agent`, else the sign-in `arca login` cached.
#![forbid(unsafe_code)]

mod ad_cmd;
mod agent_cmd;
mod audit_cmd;
mod key_cmd;
mod login_cmd;
mod output;

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use arca_client::{pb, ArcaClient, ConnectOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use output::{print_value, Format};

#[derive(Parser)]
#[command(name = "arca", version, about = "Arca key vault client")]
struct Cli {
    /// Node address, e.g. https://127.0.0.1:8200
    #[arg(long, env = "ARCA_ADDR", global = true, default_value = "https://127.0.0.1:8200")]
    addr: String,
    #[arg(long, env = "ARCA_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA that signed the node's certificate.
    #[arg(long, env = "ARCA_CACERT", global = true)]
    cacert: Option<PathBuf>,
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Json)]
    output: Format,
    /// Sign in as the managed identity the local arca agent gives this process (as `az login
    /// --identity`); ARCA_IDENTITY_CLIENT_ID picks one when several are bound.
    #[arg(long, global = true)]
    identity: bool,
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Vaults and their secrets (like `az keyvault`).
    Keyvault {
        #[command(subcommand)]
        command: VaultCmd,
    },
    /// Keys and the crypto service (like `az keyvault key`).
    Key {
        #[command(subcommand)]
        command: key_cmd::KeyCmd,
    },
    /// Initialize, unseal, seal, rotate.
    Operator {
        #[command(subcommand)]
        command: OperatorCmd,
    },
    /// Membership and status.
    Cluster {
        #[command(subcommand)]
        command: ClusterCmd,
    },
    /// Principals: service principals, groups, users (like `az ad`).
    Ad {
        #[command(subcommand)]
        command: ad_cmd::AdCmd,
    },
    /// Role definitions and role assignments (like `az role`).
    Role {
        #[command(subcommand)]
        command: ad_cmd::RoleCmd,
    },
    /// Check an audit log's hash chain (and, with --cluster, its anchors).
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCmd,
    },
    /// The node-local identity agent that gives workloads managed identities.
    Agent {
        #[command(subcommand)]
        command: agent_cmd::AgentCmd,
    },
    /// Managed identities (like `az identity`).
    Identity {
        #[command(subcommand)]
        command: agent_cmd::IdentityCmd,
    },
    /// The CLI's own sign-in (like `az account`).
    Account {
        #[command(subcommand)]
        command: agent_cmd::AccountCmd,
    },
    /// Sign in as a person through an OpenID Connect provider (device code), and keep the sign-in
    /// for later commands (like `az login --use-device-code`).
    Login(login_cmd::LoginArgs),
    /// Forget the cached sign-in.
    Logout,
}

#[derive(Clone, Copy, ValueEnum)]
enum SkuArg {
    Standard,
    Premium,
}

#[derive(Subcommand)]
enum VaultCmd {
    Create {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, value_enum, default_value_t = SkuArg::Standard)]
        sku: SkuArg,
        #[arg(long, default_value_t = 90)]
        retention_days: i32,
        #[arg(long)]
        enable_purge_protection: bool,
        /// Tags as key=value (repeatable).
        #[arg(long = "tags", num_args = 1..)]
        tags: Vec<String>,
    },
    Show {
        #[arg(long, short = 'n')]
        name: String,
    },
    List {
        #[arg(long)]
        max_results: Option<i32>,
    },
    Update {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long = "tags", num_args = 1..)]
        tags: Option<Vec<String>>,
        #[arg(long)]
        enable_purge_protection: bool,
        /// What the network rules do with an address no IP rule names (Allow or Deny, as az takes them).
        #[arg(long, value_enum, ignore_case = true)]
        default_action: Option<DefaultActionArg>,
    },
    Delete {
        #[arg(long, short = 'n')]
        name: String,
    },
    ListDeleted,
    ShowDeleted {
        #[arg(long, short = 'n')]
        name: String,
    },
    Recover {
        #[arg(long, short = 'n')]
        name: String,
    },
    Purge {
        #[arg(long, short = 'n')]
        name: String,
    },
    /// Secrets (like `az keyvault secret`).
    Secret {
        #[command(subcommand)]
        command: SecretCmd,
    },
    /// Which addresses may use the vault's contents (like `az keyvault network-rule`).
    NetworkRule {
        #[command(subcommand)]
        command: NetworkRuleCmd,
    },
}

#[derive(Subcommand)]
enum NetworkRuleCmd {
    /// Allows an address or range (a.b.c.d, a.b.c.d/n, IPv6); takes effect with --default-action Deny.
    Add {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, num_args = 1..)]
        ip_address: Vec<String>,
    },
    Remove {
        #[arg(long, short = 'n')]
        name: String,
        #[arg(long, num_args = 1..)]
        ip_address: Vec<String>,
    },
    List {
        #[arg(long, short = 'n')]
        name: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DefaultActionArg {
    Allow,
    Deny,
}

/// Reads a vault's network rules, changes them with `change`, and writes them back.
async fn change_network_rules(
    v: &mut pb::vault_service_client::VaultServiceClient<arca_client::Authed>,
    name: &str,
    change: impl FnOnce(&mut pb::NetworkAcls),
) -> anyhow::Result<pb::Vault> {
    let current = v
        .get_vault(pb::GetVaultRequest { name: name.to_owned(), read_options: None })
        .await
        .map_err(arca_client::ClientError::from)?
        .into_inner();
    let mut acls = current.network_acls.unwrap_or_default();
    change(&mut acls);
    let r = v
        .set_vault_network_rules(pb::SetVaultNetworkRulesRequest { name: name.to_owned(), network_acls: Some(acls) })
        .await
        .map_err(arca_client::ClientError::from)?;
    Ok(r.into_inner())
}

#[derive(Args, Clone)]
struct SecretRef {
    #[arg(long)]
    vault_name: String,
    #[arg(long, short = 'n')]
    name: String,
}

#[derive(Subcommand)]
enum SecretCmd {
    Set {
        #[command(flatten)]
        r: SecretRef,
        #[arg(long, conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from a file.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        content_type: Option<String>,
        #[arg(long = "tags", num_args = 1..)]
        tags: Vec<String>,
        #[arg(long)]
        disabled: bool,
        /// Not-before time, Unix seconds.
        #[arg(long)]
        not_before: Option<i64>,
        /// Expiry time, Unix seconds.
        #[arg(long)]
        expires: Option<i64>,
    },
    Show {
        #[command(flatten)]
        r: SecretRef,
        #[arg(long)]
        version: Option<String>,
        /// Serve from the local replica if it heard from the leader within this many milliseconds.
        #[arg(long)]
        max_staleness_ms: Option<u64>,
    },
    List {
        #[arg(long)]
        vault_name: String,
        #[arg(long)]
        max_results: Option<i32>,
    },
    ListVersions {
        #[command(flatten)]
        r: SecretRef,
    },
    SetAttributes {
        #[command(flatten)]
        r: SecretRef,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        content_type: Option<String>,
        #[arg(long = "tags", num_args = 1..)]
        tags: Option<Vec<String>>,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        not_before: Option<i64>,
        #[arg(long)]
        expires: Option<i64>,
    },
    Delete {
        #[command(flatten)]
        r: SecretRef,
    },
    ShowDeleted {
        #[command(flatten)]
        r: SecretRef,
    },
    ListDeleted {
        #[arg(long)]
        vault_name: String,
    },
    Recover {
        #[command(flatten)]
        r: SecretRef,
    },
    Purge {
        #[command(flatten)]
        r: SecretRef,
    },
    Backup {
        #[command(flatten)]
        r: SecretRef,
        /// Where to write the backup blob.
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    Restore {
        #[arg(long)]
        vault_name: String,
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum OperatorCmd {
    Init {
        #[arg(long, default_value_t = 5)]
        key_shares: u32,
        #[arg(long, default_value_t = 3)]
        key_threshold: u32,
        /// Also print a single unseal key for nodes that unseal from a file.
        #[arg(long)]
        auto_unseal_key: bool,
        /// The file the node started with --bootstrap wrote its one-time secret to
        /// (`<data dir>/bootstrap.secret`).
        #[arg(long, required_unless_present = "bootstrap_secret")]
        bootstrap_secret_file: Option<PathBuf>,
        /// The bootstrap secret itself (prefer --bootstrap-secret-file).
        #[arg(long, env = "ARCA_BOOTSTRAP_SECRET", hide_env_values = true, conflicts_with = "bootstrap_secret_file")]
        bootstrap_secret: Option<String>,
    },
    Unseal {
        /// One share; prompts are not used so scripts can pipe it.
        share: String,
        /// The nonce the first share's answer printed (needed for every later share).
        #[arg(long, default_value = "")]
        nonce: String,
        /// Discard the shares of the unseal in progress (needs --nonce).
        #[arg(long)]
        reset: bool,
    },
    Seal,
    Status,
    Rotate,
    /// Mint a new root token from a quorum of unseal shares. The first call (without --nonce) makes a
    /// one-time pad and saves it to --otp-file; the call that completes decodes the token with it.
    GenerateRoot {
        share: String,
        #[arg(long, default_value = "")]
        nonce: String,
        /// Where the one-time pad is kept between calls (only you should read it).
        #[arg(long, default_value = "generate-root.otp")]
        otp_file: PathBuf,
        #[arg(long)]
        cancel: bool,
    },
    /// New unseal shares (and a new root key, so the old shares stop working) from a quorum of the
    /// current ones.
    Rekey {
        share: String,
        #[arg(long, default_value = "")]
        nonce: String,
        #[arg(long, default_value_t = 5)]
        key_shares: u32,
        #[arg(long, default_value_t = 3)]
        key_threshold: u32,
        #[arg(long)]
        auto_unseal_key: bool,
        #[arg(long)]
        cancel: bool,
    },
    /// Tokens by accessor: list, revoke.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    List,
    /// Revoke a token (the root token's own included) by its accessor.
    Revoke {
        #[arg(long)]
        accessor: String,
    },
}

/// 64 bytes from the operating system's generator, as hex.
fn random_hex_64() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 64];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[derive(Subcommand)]
enum ClusterCmd {
    Status,
    /// Join tokens: one per new node, single-use, short-lived.
    JoinToken {
        #[command(subcommand)]
        command: JoinTokenCmd,
    },
    /// Ask the node at --addr (not yet a member) to join the cluster of --peer, with a join token.
    Join {
        /// Cluster address (host:port) of any member.
        #[arg(long)]
        peer: String,
        /// A join token from `arca cluster join-token create` (or use --join-token-file).
        #[arg(long, env = "ARCA_JOIN_TOKEN", hide_env_values = true, required_unless_present = "join_token_file")]
        join_token: Option<String>,
        #[arg(long, conflicts_with = "join_token")]
        join_token_file: Option<std::path::PathBuf>,
        #[arg(long)]
        learner: bool,
    },
    Remove {
        #[arg(long)]
        node_id: u64,
    },
    /// Sent to a node of the secondary region while the primary and the witness are both lost:
    /// promote this region now, with its own nodes' agreement alone. Writes the primary acknowledged
    /// that this region lacks are lost (printed), and if the primary is only cut off rather than
    /// lost it may still be taking writes until its lease runs out. Audited.
    Failover {
        /// Required: you accept the data loss printed.
        #[arg(long)]
        force: bool,
    },
    /// A planned switchover, or the failback after one: hand writes from the primary region to the
    /// secondary with nothing acknowledged lost, while both and the witness are up. The primary takes
    /// no writes from now on; the secondary takes over within a lease and the drift margin, and the
    /// old primary's nodes rejoin as its replicas. Audited.
    Switchover {
        /// The region to hand writes to (the secondary region), named to guard against a slip.
        #[arg(long)]
        to: String,
        /// Withdraw a handover the secondary has not completed instead.
        #[arg(long)]
        cancel: bool,
    },
    /// Print the node's cluster events as they happen (FailoverStarted, SwitchoverStarted,
    /// FailoverCompleted), one per line, until interrupted. Watch a node of each region to hear of
    /// both sides.
    Events,
    /// What a displaced primary's nodes held that the epoch which replaced them lacks, filed when
    /// they came back.
    Divergence {
        #[command(subcommand)]
        command: DivergenceCmd,
    },
}

#[derive(Subcommand)]
enum DivergenceCmd {
    /// Every divergence record: the epoch, the node that filed it, how many entries it holds.
    List,
    /// One record's entries: the objects, versions and operations each changed (no values).
    Show {
        #[arg(long)]
        epoch: u64,
        /// The node's id in the lineage it was displaced from (as `list` shows).
        #[arg(long)]
        node_id: u64,
    },
    /// One record's entries with the secret values they set (Arca/cluster/divergence/export/action;
    /// audited): what to write again by hand.
    Export {
        #[arg(long)]
        epoch: u64,
        #[arg(long)]
        node_id: u64,
    },
}

#[derive(Subcommand)]
enum JoinTokenCmd {
    /// Mint a join token for one new node.
    Create {
        /// How long it may be used: seconds, or with a unit (90s, 15m, 2h); 60 s to 24 h.
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Print only the token (for `$(...)` in scripts).
        #[arg(long)]
        token_only: bool,
    },
}

/// Writes a file only its owner can read (decrypted output, unwrapped keys, backups), narrowing the
/// permissions of a file that was there before.
pub(crate) fn write_private(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    file.write_all(contents).with_context(|| format!("write {}", path.display()))
}

/// Parses `90`, `90s`, `15m` or `2h` into seconds.
fn parse_seconds(raw: &str) -> anyhow::Result<i64> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => raw.split_at(at),
        None => (raw, "s"),
    };
    let n: i64 = digits.parse().map_err(|_| anyhow::anyhow!("'{raw}' is not a duration like 90s, 15m or 2h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => anyhow::bail!("'{raw}' is not a duration like 90s, 15m or 2h"),
    };
    n.checked_mul(scale).ok_or_else(|| anyhow::anyhow!("'{raw}' is too long"))
}

pub(crate) fn parse_tags(raw: &[String]) -> anyhow::Result<HashMap<String, String>> {
    raw.iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("tag '{t}' must look like key=value"),
        })
        .collect()
}

/// Follows `next_page_token` from the first page until the last one, or until at least `max_results`
/// items are in hand. `fetch` gets a page token and returns that page's items and the next token.
pub(crate) async fn all_pages<Fut>(
    max_results: Option<i32>,
    mut fetch: impl FnMut(String) -> Fut,
) -> anyhow::Result<serde_json::Value>
where
    Fut: std::future::Future<Output = Result<(Vec<serde_json::Value>, String), tonic::Status>>,
{
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let (items, next) = fetch(token).await.map_err(arca_client::ClientError::from)?;
        all.extend(items);
        token = next;
        if token.is_empty() || max_results.is_some_and(|m| all.len() >= m as usize) {
            return Ok(serde_json::Value::Array(all));
        }
    }
}

/// The update mask of the fields a set-attributes command was given: (given, path, flag) each. Refuses
/// a command that gives none, naming the flags.
pub(crate) fn update_mask(fields: &[(bool, &str, &str)]) -> anyhow::Result<prost_types::FieldMask> {
    let paths: Vec<String> = fields.iter().filter(|(given, _, _)| *given).map(|(_, p, _)| p.to_string()).collect();
    if paths.is_empty() {
        let flags: Vec<&str> = fields.iter().map(|(_, _, f)| *f).collect();
        let (last, rest) = flags.split_last().unwrap_or((&"", &[]));
        bail!("nothing to update: pass {} or {last}", rest.join(", "));
    }
    Ok(prost_types::FieldMask { paths })
}

pub(crate) fn ts(seconds: Option<i64>) -> Option<prost_types::Timestamp> {
    seconds.map(|s| prost_types::Timestamp { seconds: s, nanos: 0 })
}

fn secret_req(r: &SecretRef) -> (String, String) {
    (r.vault_name.clone(), r.name.clone())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let format = cli.output;
    if let Err(e) = run(cli).await {
        match format {
            Format::Json => {
                let reason = e.downcast_ref::<arca_client::ClientError>().and_then(|c| c.reason.clone());
                eprintln!("{}", serde_json::json!({ "error": format!("{e:#}"), "reason": reason }));
            }
            Format::Table => eprintln!("error: {e:#}"),
        }
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca_pem = match &cli.cacert {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("read {}", p.display()))?),
        None => None,
    };
    let options =
        ConnectOptions { addr: cli.addr.clone(), ca_pem, token: cli.token.clone(), timeout: None, attempts: 0 };
    let credential = match &cli.token {
        _ if cli.identity => arca_client::Credential::managed_identity(true),
        Some(token) => Some(arca_client::Credential::Token(token.clone())),
        // The agent itself signs in with its own certificate.
        None if matches!(cli.command, Top::Agent { command: agent_cmd::AgentCmd::Run { .. } }) => None,
        // Signing in (or out) uses no earlier sign-in.
        None if matches!(cli.command, Top::Login(_) | Top::Logout) => None,
        None => arca_client::Credential::from_env(),
    };
    let client = match credential {
        Some(credential) if credential.is_exchanged() => {
            ArcaClient::connect_with(options.clone(), credential).await.context("sign in")?
        }
        Some(arca_client::Credential::Token(token)) => {
            ArcaClient::connect_lazy(ConnectOptions { token: Some(token), ..options.clone() })?
        }
        _ => ArcaClient::connect_lazy(options.clone())?,
    };
    let f = cli.output;
    match cli.command {
        Top::Keyvault { command } => vault(&client, command, f).await,
        Top::Key { command } => key_cmd::key(&client, command, f).await,
        Top::Operator { command } => operator(&client, command, f).await,
        Top::Cluster { command } => cluster(&client, &options, command, f).await,
        Top::Ad { command } => ad_cmd::ad(&client, command, f).await,
        Top::Role { command } => ad_cmd::role(&client, command, f).await,
        Top::Audit { command } => audit_cmd::audit(&client, command).await,
        Top::Agent { command } => agent_cmd::agent(&client, &options, command, f).await,
        Top::Identity { command } => agent_cmd::identity(&client, command, f).await,
        Top::Account { command } => agent_cmd::account(&client, command, f).await,
        Top::Login(args) => login_cmd::login(&client, &cli.addr, args, f).await,
        Top::Logout => login_cmd::logout(f),
    }
}

async fn vault(client: &ArcaClient, command: VaultCmd, f: Format) -> anyhow::Result<()> {
    let mut v = client.vaults();
    match command {
        VaultCmd::Create { name, sku, retention_days, enable_purge_protection, tags } => {
            let sku = match sku {
                SkuArg::Standard => pb::Sku::Standard,
                SkuArg::Premium => pb::Sku::Premium,
            };
            let r = v
                .create_vault(pb::CreateVaultRequest {
                    name,
                    sku: sku as i32,
                    soft_delete_retention_days: retention_days,
                    enable_purge_protection,
                    tags: parse_tags(&tags)?,
                })
                .await
                .map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::Show { name } => {
            let r = v
                .get_vault(pb::GetVaultRequest { name, read_options: None })
                .await
                .map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::List { max_results } => {
            let all = all_pages(max_results, |page_token| {
                let mut v = v.clone();
                async move {
                    let r =
                        v.list_vaults(pb::ListVaultsRequest { page_size: 100, page_token, read_options: None }).await?;
                    let r = r.into_inner();
                    Ok((r.vaults.iter().map(output::vault).collect(), r.next_page_token))
                }
            })
            .await?;
            print_value(f, &all);
        }
        VaultCmd::Update { name, tags, enable_purge_protection, default_action } => {
            let mut paths = Vec::new();
            if tags.is_some() {
                paths.push("tags".to_owned());
            }
            if enable_purge_protection {
                paths.push("enable_purge_protection".to_owned());
            }
            if paths.is_empty() && default_action.is_none() {
                bail!("nothing to update: pass --tags, --enable-purge-protection and/or --default-action");
            }
            if let Some(action) = default_action {
                let action = match action {
                    DefaultActionArg::Allow => pb::DefaultAction::Allow,
                    DefaultActionArg::Deny => pb::DefaultAction::Deny,
                };
                let vault = change_network_rules(&mut v, &name, |acls| acls.default_action = action as i32).await?;
                if paths.is_empty() {
                    print_value(f, &output::vault(&vault));
                    return Ok(());
                }
            }
            let r = v
                .update_vault(pb::UpdateVaultRequest {
                    name,
                    tags: parse_tags(&tags.unwrap_or_default())?,
                    enable_purge_protection,
                    update_mask: Some(prost_types::FieldMask { paths }),
                })
                .await
                .map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::Delete { name } => {
            let r = v.delete_vault(pb::DeleteVaultRequest { name }).await.map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::ListDeleted => {
            let all = all_pages(None, |page_token| {
                let mut v = v.clone();
                async move {
                    let r = pb::ListVaultsRequest { page_size: 1000, page_token, read_options: None };
                    let r = v.list_deleted_vaults(r).await?.into_inner();
                    Ok((r.vaults.iter().map(output::vault).collect(), r.next_page_token))
                }
            })
            .await?;
            print_value(f, &all);
        }
        VaultCmd::ShowDeleted { name } => {
            let r = v
                .get_deleted_vault(pb::GetDeletedVaultRequest { name, read_options: None })
                .await
                .map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::Recover { name } => {
            let r = v
                .recover_deleted_vault(pb::RecoverDeletedVaultRequest { name })
                .await
                .map_err(arca_client::ClientError::from)?;
            print_value(f, &output::vault(&r.into_inner()));
        }
        VaultCmd::Purge { name } => {
            v.purge_deleted_vault(pb::PurgeDeletedVaultRequest { name })
                .await
                .map_err(arca_client::ClientError::from)?;
        }
        VaultCmd::Secret { command } => secret(client, command, f).await?,
        VaultCmd::NetworkRule { command } => match command {
            NetworkRuleCmd::Add { name, ip_address } => {
                let vault = change_network_rules(&mut v, &name, |acls| acls.ip_rules.extend(ip_address)).await?;
                print_value(f, &output::vault(&vault));
            }
            NetworkRuleCmd::Remove { name, ip_address } => {
                // Compared as the node shows them: a bare address is a /32 (or /128) range.
                let gone = |rule: &str| {
                    ip_address.iter().any(|a| rule == a || rule == format!("{a}/32") || rule == format!("{a}/128"))
                };
                let vault = change_network_rules(&mut v, &name, |acls| acls.ip_rules.retain(|r| !gone(r))).await?;
                print_value(f, &output::vault(&vault));
            }
            NetworkRuleCmd::List { name } => {
                let r = v
                    .get_vault(pb::GetVaultRequest { name, read_options: None })
                    .await
                    .map_err(arca_client::ClientError::from)?;
                let vault = output::vault(&r.into_inner());
                print_value(f, &vault["networkAcls"]);
            }
        },
    }
    Ok(())
}

async fn secret(client: &ArcaClient, command: SecretCmd, f: Format) -> anyhow::Result<()> {
    let mut s = client.secrets();
    let err = arca_client::ClientError::from;
    match command {
        SecretCmd::Set { r, value, file, content_type, tags, disabled, not_before, expires } => {
            let value = match (value, file) {
                (Some(v), None) => v,
                (None, Some(p)) => std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?,
                _ => bail!("pass the value with --value or --file"),
            };
            let (vault, name) = secret_req(&r);
            let resp = s
                .set_secret(pb::SetSecretRequest {
                    vault,
                    name,
                    value,
                    content_type: content_type.unwrap_or_default(),
                    tags: parse_tags(&tags)?,
                    enabled: Some(!disabled),
                    not_before: ts(not_before),
                    expires: ts(expires),
                })
                .await
                .map_err(err)?;
            print_value(f, &output::secret(&resp.into_inner()));
        }
        SecretCmd::Show { r, version, max_staleness_ms } => {
            let (vault, name) = secret_req(&r);
            let read_options = max_staleness_ms.map(|ms| pb::ReadOptions {
                consistency: pb::Consistency::BoundedStaleness as i32,
                max_staleness: Some(prost_types::Duration {
                    seconds: (ms / 1000) as i64,
                    nanos: ((ms % 1000) * 1_000_000) as i32,
                }),
            });
            let resp = s
                .get_secret(pb::GetSecretRequest { vault, name, version: version.unwrap_or_default(), read_options })
                .await
                .map_err(err)?;
            print_value(f, &output::secret(&resp.into_inner()));
        }
        SecretCmd::List { vault_name, max_results } => {
            let all = all_pages(max_results, |page_token| {
                let (mut s, vault) = (s.clone(), vault_name.clone());
                async move {
                    let r = pb::ListSecretsRequest { vault, page_size: 100, page_token, read_options: None };
                    let r = s.list_secrets(r).await?.into_inner();
                    Ok((r.secrets.iter().map(output::secret).collect(), r.next_page_token))
                }
            })
            .await?;
            print_value(f, &all);
        }
        SecretCmd::ListVersions { r } => {
            let (vault, name) = secret_req(&r);
            let all = all_pages(None, |page_token| {
                let (mut s, vault, name) = (s.clone(), vault.clone(), name.clone());
                async move {
                    let r =
                        pb::ListSecretVersionsRequest { vault, name, page_size: 100, page_token, read_options: None };
                    let r = s.list_secret_versions(r).await?.into_inner();
                    Ok((r.secrets.iter().map(output::secret).collect(), r.next_page_token))
                }
            })
            .await?;
            print_value(f, &all);
        }
        SecretCmd::SetAttributes { r, version, content_type, tags, enabled, not_before, expires } => {
            let (vault, name) = secret_req(&r);
            let mask = update_mask(&[
                (content_type.is_some(), "content_type", "--content-type"),
                (tags.is_some(), "tags", "--tags"),
                (enabled.is_some(), "enabled", "--enabled"),
                (not_before.is_some(), "not_before", "--not-before"),
                (expires.is_some(), "expires", "--expires"),
            ])?;
            let resp = s
                .update_secret(pb::UpdateSecretRequest {
                    vault,
                    name,
                    version: version.unwrap_or_default(),
                    content_type: content_type.unwrap_or_default(),
                    tags: parse_tags(&tags.unwrap_or_default())?,
                    enabled: enabled.unwrap_or(true),
                    not_before: ts(not_before),
                    expires: ts(expires),
                    update_mask: Some(mask),
                })
                .await
                .map_err(err)?;
            print_value(f, &output::secret(&resp.into_inner()));
        }
        SecretCmd::Delete { r } => {
            let (vault, name) = secret_req(&r);
            let resp = s.delete_secret(pb::DeleteSecretRequest { vault, name }).await.map_err(err)?;
            print_value(f, &output::deleted(&resp.into_inner()));
        }
        SecretCmd::ShowDeleted { r } => {
            let (vault, name) = secret_req(&r);
            let resp = s
                .get_deleted_secret(pb::GetDeletedSecretRequest { vault, name, read_options: None })
                .await
                .map_err(err)?;
            print_value(f, &output::deleted(&resp.into_inner()));
        }
        SecretCmd::ListDeleted { vault_name } => {
            let all = all_pages(None, |page_token| {
                let (mut s, vault) = (s.clone(), vault_name.clone());
                async move {
                    let r = pb::ListDeletedSecretsRequest { vault, page_size: 1000, page_token, read_options: None };
                    let r = s.list_deleted_secrets(r).await?.into_inner();
                    Ok((r.secrets.iter().map(output::deleted).collect(), r.next_page_token))
                }
            })
            .await?;
            print_value(f, &all);
        }
        SecretCmd::Recover { r } => {
            let (vault, name) = secret_req(&r);
            let resp = s.recover_deleted_secret(pb::RecoverDeletedSecretRequest { vault, name }).await.map_err(err)?;
            print_value(f, &output::secret(&resp.into_inner()));
        }
        SecretCmd::Purge { r } => {
            let (vault, name) = secret_req(&r);
            s.purge_deleted_secret(pb::PurgeDeletedSecretRequest { vault, name }).await.map_err(err)?;
        }
        SecretCmd::Backup { r, file } => {
            let (vault, name) = secret_req(&r);
            let resp = s.backup_secret(pb::BackupSecretRequest { vault, name }).await.map_err(err)?;
            let blob = resp.into_inner().value;
            use base64::Engine as _;
            write_private(&file, base64::engine::general_purpose::STANDARD.encode(&blob).as_bytes())?;
            print_value(f, &serde_json::json!({ "file": file.display().to_string(), "bytes": blob.len() }));
        }
        SecretCmd::Restore { vault_name, file } => {
            use base64::Engine as _;
            let text = std::fs::read_to_string(&file).with_context(|| format!("read {}", file.display()))?;
            let blob = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .context("the backup file is not base64")?;
            let resp =
                s.restore_secret(pb::RestoreSecretRequest { vault: vault_name, backup: blob }).await.map_err(err)?;
            print_value(f, &output::secret(&resp.into_inner()));
        }
    }
    Ok(())
}

async fn operator(client: &ArcaClient, command: OperatorCmd, f: Format) -> anyhow::Result<()> {
    let mut o = client.operator();
    let err = arca_client::ClientError::from;
    match command {
        OperatorCmd::Init { key_shares, key_threshold, auto_unseal_key, bootstrap_secret_file, bootstrap_secret } => {
            let bootstrap_secret = match (bootstrap_secret, bootstrap_secret_file) {
                (Some(s), _) => s,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .with_context(|| format!("read the bootstrap secret file {}", file.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => bail!("--bootstrap-secret-file is required"),
            };
            // One id for every attempt: a retry after a lost answer is told whether this init won.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            let request_id = format!("cli-{}-{nanos}", std::process::id());
            let request = pb::InitRequest {
                secret_shares: key_shares,
                secret_threshold: key_threshold,
                auto_unseal_key,
                bootstrap_secret,
                request_id,
            };
            let mut attempts = 0;
            let r = loop {
                attempts += 1;
                match o.init(request.clone()).await {
                    Ok(r) => break r.into_inner(),
                    Err(s)
                        if attempts < 10
                            && matches!(s.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Err(s) => return Err(err(s).into()),
                }
            };
            print_value(
                f,
                &serde_json::json!({
                    "unseal_shares": r.shares,
                    "unseal_threshold": r.threshold,
                    "root_token": r.root_token,
                    "unseal_key": if r.unseal_key.is_empty() { None } else { Some(r.unseal_key) },
                }),
            );
        }
        OperatorCmd::Unseal { share, nonce, reset } => {
            let r = o.unseal(pb::UnsealRequest { share, reset, nonce }).await.map_err(err)?;
            print_value(f, &output::seal(&r.into_inner()));
        }
        OperatorCmd::Seal => {
            let r = o.seal(pb::SealRequest {}).await.map_err(err)?;
            print_value(f, &output::seal(&r.into_inner()));
        }
        OperatorCmd::Status => {
            let r = o.get_seal_status(pb::GetSealStatusRequest {}).await.map_err(err)?;
            print_value(f, &output::seal(&r.into_inner()));
        }
        OperatorCmd::Rotate => {
            let r = o.rotate_keyring(pb::RotateKeyringRequest {}).await.map_err(err)?;
            print_value(f, &serde_json::json!({ "keyring_term": r.into_inner().term }));
        }
        OperatorCmd::GenerateRoot { share, nonce, otp_file, cancel } => {
            let otp = if nonce.is_empty() && !cancel {
                let otp = random_hex_64()?;
                write_private(&otp_file, otp.as_bytes())?;
                otp
            } else {
                String::new()
            };
            let r =
                o.generate_root(pb::GenerateRootRequest { otp, share, nonce, cancel }).await.map_err(err)?.into_inner();
            let token = if r.complete {
                let otp = std::fs::read_to_string(&otp_file).with_context(|| format!("read {}", otp_file.display()))?;
                let otp = hex::decode(otp.trim()).context("the one-time pad file is not hex")?;
                let encoded = hex::decode(&r.encoded_token).context("the encoded token is not hex")?;
                let _ = std::fs::remove_file(&otp_file);
                Some(String::from_utf8(encoded.iter().zip(otp.iter()).map(|(e, p)| e ^ p).collect())?)
            } else {
                None
            };
            print_value(
                f,
                &serde_json::json!({
                    "nonce": if r.nonce.is_empty() { None } else { Some(&r.nonce) },
                    "progress": r.progress,
                    "threshold": r.threshold,
                    "complete": r.complete,
                    "root_token": token,
                    "accessor": if r.accessor.is_empty() { None } else { Some(&r.accessor) },
                }),
            );
        }
        OperatorCmd::Rekey { share, nonce, key_shares, key_threshold, auto_unseal_key, cancel } => {
            let req = pb::RekeyRequest {
                secret_shares: key_shares,
                secret_threshold: key_threshold,
                auto_unseal_key,
                share,
                nonce,
                cancel,
            };
            let r = o.rekey(req).await.map_err(err)?.into_inner();
            print_value(
                f,
                &serde_json::json!({
                    "nonce": if r.nonce.is_empty() { None } else { Some(&r.nonce) },
                    "progress": r.progress,
                    "threshold": r.threshold,
                    "complete": r.complete,
                    "outcome_unknown": r.outcome_unknown,
                    "unseal_shares": r.shares,
                    "unseal_key": if r.unseal_key.is_empty() { None } else { Some(&r.unseal_key) },
                }),
            );
        }
        OperatorCmd::Token { command: TokenCmd::List } => {
            let r = o.list_tokens(pb::ListTokensRequest {}).await.map_err(err)?.into_inner();
            let tokens: Vec<serde_json::Value> = r
                .tokens
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "accessor": t.accessor,
                        "policy": t.policy,
                        "created": t.create_time.as_ref().map(|c| c.seconds),
                    })
                })
                .collect();
            print_value(f, &serde_json::Value::Array(tokens));
        }
        OperatorCmd::Token { command: TokenCmd::Revoke { accessor } } => {
            o.revoke_token(pb::RevokeTokenRequest { accessor: accessor.clone() }).await.map_err(err)?;
            print_value(f, &serde_json::json!({ "revoked": accessor }));
        }
    }
    Ok(())
}

async fn cluster(client: &ArcaClient, options: &ConnectOptions, command: ClusterCmd, f: Format) -> anyhow::Result<()> {
    let mut c = client.cluster();
    let err = arca_client::ClientError::from;
    let status = match command {
        ClusterCmd::Status => {
            let status = c.get_cluster_status(pb::GetClusterStatusRequest {}).await.map_err(err)?;
            // Replication progress (matched index, lag) is known only to the leader: ask it when it is
            // not the node we reached, and fall back to this node's view if it cannot be reached.
            let view = status.get_ref();
            let leader_api =
                view.nodes.iter().find(|n| n.leader && n.node_id != view.node_id).map(|n| n.api_addr.clone());
            match leader_api {
                Some(addr) => {
                    let leader = ArcaClient::connect_lazy(ConnectOptions {
                        addr: format!("https://{addr}"),
                        ca_pem: options.ca_pem.clone(),
                        token: options.token.clone(),
                        timeout: Some(std::time::Duration::from_secs(5)),
                        attempts: 0,
                    })?;
                    match leader.cluster().get_cluster_status(pb::GetClusterStatusRequest {}).await {
                        Ok(from_leader) => from_leader,
                        Err(_) => status,
                    }
                }
                None => status,
            }
        }
        ClusterCmd::JoinToken { command: JoinTokenCmd::Create { ttl, token_only } } => {
            let ttl = prost_types::Duration { seconds: parse_seconds(&ttl)?, nanos: 0 };
            let token =
                c.create_join_token(pb::CreateJoinTokenRequest { ttl: Some(ttl) }).await.map_err(err)?.into_inner();
            if token_only {
                println!("{}", token.token);
            } else {
                print_value(f, &output::join_token(&token));
            }
            return Ok(());
        }
        ClusterCmd::Join { peer, join_token, join_token_file, learner } => {
            let token = match (join_token, join_token_file) {
                (Some(t), _) => t,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("failed to read {}: {e}", file.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => anyhow::bail!("--join-token or --join-token-file is required"),
            };
            c.join_cluster(pb::JoinClusterRequest { peer, as_learner: learner, token }).await.map_err(err)?
        }
        ClusterCmd::Remove { node_id } => c.remove_node(pb::RemoveNodeRequest { node_id }).await.map_err(err)?,
        ClusterCmd::Events => {
            let mut events = c.watch_events(pb::WatchEventsRequest {}).await.map_err(err)?.into_inner();
            while let Some(event) = events.message().await.map_err(err)? {
                println!("{}", output::cluster_event(&event));
            }
            return Ok(());
        }
        ClusterCmd::Divergence { command } => {
            let value = match command {
                DivergenceCmd::List => {
                    let list = c.list_divergences(pb::ListDivergencesRequest {}).await.map_err(err)?.into_inner();
                    serde_json::Value::Array(list.records.iter().map(output::divergence).collect())
                }
                DivergenceCmd::Show { epoch, node_id } => output::divergence(
                    &c.get_divergence(pb::GetDivergenceRequest { epoch, node_id }).await.map_err(err)?.into_inner(),
                ),
                DivergenceCmd::Export { epoch, node_id } => output::divergence(
                    &c.export_divergence(pb::GetDivergenceRequest { epoch, node_id }).await.map_err(err)?.into_inner(),
                ),
            };
            print_value(f, &value);
            return Ok(());
        }
        ClusterCmd::Switchover { to, cancel } => {
            let req = pb::SwitchoverRequest { region: to, cancel };
            let handed = c.switchover(req).await.map_err(err)?.into_inner();
            print_value(f, &output::switchover(&handed));
            return Ok(());
        }
        ClusterCmd::Failover { force } => {
            if !force {
                anyhow::bail!(
                    "a failover without the witness loses every write the primary acknowledged that this region lacks: run it again with --force to accept that"
                );
            }
            let won = c.failover(pb::FailoverRequest { force }).await.map_err(err)?.into_inner();
            print_value(f, &output::failover(&won));
            return Ok(());
        }
    };
    print_value(f, &output::cluster(&status.into_inner()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_private_narrows_a_file_that_already_exists() {
        let dir = std::env::temp_dir().join(format!("arca-write-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, "new".as_ref()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
