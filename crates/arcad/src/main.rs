//! `arcad`, the Arca server.
//!
//! - `arcad dev` starts a single initialized, unsealed node with a local data dir and its own CA.
//! - `arcad serve` starts a cluster node (bootstrap, join, or restart from its data dir).
//! - `arcad witness` starts a failover witness (the third site; no data, no keys).
//! - `arcad gen-certs` makes a CA and node certificates for a test or development cluster.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
mod hardening;
mod node;
mod rejoin;

use arca_server::JoinPlan;
use clap::{Args, Parser, Subcommand};
use node::NodeConfig;

#[derive(Parser)]
#[command(name = "arcad", version, about = "Arca key vault server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a single development node: initialized, unsealed, with a self-signed CA.
    Dev {
        /// Where data, TLS material and the dev credentials live.
        #[arg(long, env = "ARCA_DEV_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8200")]
        api_addr: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8201")]
        cluster_addr: SocketAddr,
        /// The CAs (PEM) trusted for identity providers' HTTPS (default: the system's).
        #[arg(long)]
        oidc_ca_file: Option<PathBuf>,
    },
    /// Start a cluster node.
    Serve(Box<ServeArgs>),
    /// Start a failover witness: the third site (beside the primary and the secondary region) of
    /// the decision which region takes writes. It keeps the epoch record only: no data, no keys.
    Witness(WitnessArgs),
    /// Create a CA and certificates (PEM) for the API listeners of a development or test cluster.
    /// An existing ca.pem/ca.key in the output dir is reused, so more certificates can be added later
    /// (for example one for a name that is not a node, to see the cluster listener refuse it).
    GenCerts {
        #[arg(long)]
        out: PathBuf,
        /// Certificate names; each gets NAME.pem and NAME.key.
        #[arg(long, value_delimiter = ',', default_value = "node")]
        names: Vec<String>,
        /// Host names and IP addresses every certificate is valid for.
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1")]
        hosts: Vec<String>,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// Address of the public gRPC API.
    #[arg(long)]
    api_addr: SocketAddr,
    /// Address of the node-to-node listener (mutual TLS).
    #[arg(long)]
    cluster_addr: SocketAddr,
    /// Address clients should use for this node (defaults to --api-addr).
    #[arg(long)]
    advertise_api: Option<String>,
    /// Address peers should use for this node (defaults to --cluster-addr).
    #[arg(long)]
    advertise_cluster: Option<String>,
    /// The API listener's certificate (PEM, chain first to last) from the CA clients trust. The
    /// cluster listener does not use it: each node holds a certificate from the cluster's own CA.
    #[arg(long)]
    cert: PathBuf,
    /// The key of --cert (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Start a new cluster with this node as its first member.
    #[arg(long, conflicts_with = "join")]
    bootstrap: bool,
    /// Join the cluster of this member (its cluster address) on first start; needs a join token.
    #[arg(long, requires = "join_token_source")]
    join: Option<String>,
    /// The join token from `arca cluster join-token create` (visible to other users in `ps`: prefer
    /// --join-token-file or ARCA_JOIN_TOKEN).
    #[arg(long, env = "ARCA_JOIN_TOKEN", group = "join_token_source", hide_env_values = true)]
    join_token: Option<String>,
    /// A file holding the join token.
    #[arg(long, group = "join_token_source")]
    join_token_file: Option<PathBuf>,
    /// Join as a learner (an asynchronous replica that never votes).
    #[arg(long)]
    learner: bool,
    /// The region (failure domain) this node runs in: 1-32 letters, digits and hyphens. The
    /// bootstrapping node's region is the primary; a node of another region joins as an asynchronous
    /// replica (a learner), off the commit path.
    #[arg(long, default_value = arca_types::RegionName::DEFAULT, value_parser = parse_region)]
    region: arca_types::RegionName,
    /// A file holding an unseal key (from `arca operator init --auto-unseal-key`).
    #[arg(long)]
    unseal_key_file: Option<PathBuf>,
    #[arg(long, default_value_t = 2000)]
    snapshot_every_entries: u64,
    #[arg(long, default_value_t = 1000)]
    keep_after_snapshot_entries: u64,
    #[arg(long, default_value = "vault.arca.local")]
    vault_suffix: String,
    /// Where the audit log goes (default: audit.log in the data dir). Put it on its own disk: when it
    /// cannot be written the node refuses requests, while Raft on the data disk carries on.
    #[arg(long)]
    audit_log: Option<PathBuf>,
    /// How often the node records the head of its audit log's hash chain in the cluster (seconds), so
    /// `arca audit verify --cluster` can tell a log cut short or replaced.
    #[arg(long, default_value_t = arca_server::server::AUDIT_ANCHOR_INTERVAL_S_DEFAULT)]
    audit_anchor_interval_s: u64,
    /// The CA certificates (PEM) trusted when fetching identity providers' discovery documents and
    /// keys over HTTPS (default: the system's, /etc/ssl/certs/ca-certificates.crt).
    #[arg(long)]
    oidc_ca_file: Option<PathBuf>,
    /// Lock memory so keys never reach swap: auto (when the process may), on (or refuse to start), off.
    #[arg(long, value_enum, default_value_t = hardening::MlockMode::Auto)]
    mlock: hardening::MlockMode,
    /// Testing only (builds with the danger-faults feature): shift the clock by the number of seconds
    /// in this file (read on every use).
    #[arg(long, env = "ARCA_DANGER_CLOCK_OFFSET_FILE", hide = true)]
    danger_clock_offset_file: Option<PathBuf>,
    /// Testing only (builds with the danger-faults feature): switch on a deliberate fault.
    #[arg(long = "danger-fault", hide = true)]
    danger_faults: Vec<String>,
}

#[derive(Args)]
struct WitnessArgs {
    /// Where the witness keeps its cluster certificate and the epoch record.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address nodes reach it on (mutual TLS with cluster certificates).
    #[arg(long)]
    listen: SocketAddr,
    /// Address nodes should use (defaults to --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// The cluster address of any member; the witness registers through it at every start.
    #[arg(long)]
    join: String,
    /// A file holding a join token (needed on first start only, until the witness holds a cluster
    /// certificate).
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    /// How long a granted renewal lets the primary take writes, in milliseconds.
    #[arg(long, default_value_t = arca_failover::Timing::default().lease_ms)]
    lease_ms: u64,
    /// How much longer than a lease an acceptor keeps its promise, for clocks that run at different
    /// rates, in milliseconds (with the defaults, clocks may run 14 % apart from real time).
    #[arg(long, default_value_t = arca_failover::Timing::default().drift_margin_ms)]
    drift_margin_ms: u64,
    /// How long the secondary must have lost the primary before it promotes itself, in milliseconds.
    #[arg(long, default_value_t = arca_failover::Timing::default().failover_after_ms)]
    failover_after_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARCA_LOG").unwrap_or_else(|_| "info,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A core dump, a debugger or swap would expose the root key and decrypted secrets of an unsealed
    // node: close each before any key exists.
    let mlock = match &cli.command {
        Command::Serve(args) => args.mlock,
        _ => hardening::MlockMode::Auto,
    };
    let report = hardening::harden(mlock).map_err(anyhow::Error::msg)?;
    if !matches!(cli.command, Command::GenCerts { .. }) {
        if report.all_done() {
            tracing::info!("process hardening: {report}");
        } else {
            tracing::warn!("process hardening: {report}");
        }
    }
    if rustls::crypto::aws_lc_rs::default_provider().install_default().is_err() {
        bail!("failed to install the TLS crypto provider");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start the runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Dev { data_dir, api_addr, cluster_addr, oidc_ca_file } => {
                dev(data_dir, api_addr, cluster_addr, oidc_ca_file).await
            }
            Command::Serve(args) => serve(*args).await,
            Command::Witness(args) => witness(args).await,
            Command::GenCerts { out, names, hosts } => gen_certs(&out, &names, &hosts),
        }
    })
}

fn gen_certs(out: &Path, names: &[String], hosts: &[String]) -> anyhow::Result<()> {
    use arca_crypto::tls::{generate_ca, issue_node_cert, PemPair};
    std::fs::create_dir_all(out).context("create the output dir")?;
    let (ca_pem, ca_key) = (out.join("ca.pem"), out.join("ca.key"));
    let ca = if ca_pem.exists() && ca_key.exists() {
        let read = |p: &Path| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
        PemPair { cert_pem: read(&ca_pem)?, key_pem: read(&ca_key)? }
    } else {
        let ca = generate_ca("Arca development CA").context("generate the CA")?;
        write_private(&ca_pem, &ca.cert_pem)?;
        write_private(&ca_key, &ca.key_pem)?;
        ca
    };
    for name in names {
        let node = issue_node_cert(&ca, name, hosts).context("issue a node certificate")?;
        write_private(&out.join(format!("{name}.pem")), &node.cert_pem)?;
        write_private(&out.join(format!("{name}.key")), &node.key_pem)?;
    }
    println!("wrote ca.pem and {} node certificate(s) to {}", names.len(), out.display());
    Ok(())
}

/// Mints the one-time secret `arca operator init` must present to this bootstrapping node, and writes
/// it where only this user can read it. A new one each start; once the cluster is initialized it
/// opens nothing.
fn write_bootstrap_secret(data_dir: &Path) -> anyhow::Result<String> {
    use arca_crypto::Entropy;
    std::fs::create_dir_all(data_dir).context("create the data dir")?;
    let mut bytes = [0u8; 32];
    arca_crypto::OsEntropy.fill(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = data_dir.join("bootstrap.secret");
    write_private(&path, &format!("{secret}\n"))?;
    tracing::info!("the bootstrap secret for `arca operator init` is in {}", path.display());
    Ok(secret)
}

/// The clock offset file, honoured only by a build with the danger-faults feature: whoever can write
/// the file would control the node's time (retention, expiry, token lifetimes).
/// Switches on the deliberate faults named (a danger-faults build only; any other refuses to start).
fn danger_faults(names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let faults = names
        .iter()
        .map(|n| arca_types::faults::Fault::parse(n).with_context(|| format!("no fault is named {n}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    #[cfg(feature = "danger-faults")]
    {
        tracing::warn!(?faults, "deliberate faults are on: for tests only");
        arca_types::faults::set_active(&faults);
        Ok(())
    }
    #[cfg(not(feature = "danger-faults"))]
    {
        let _ = faults;
        bail!("--danger-fault needs an arcad built with the danger-faults feature")
    }
}

fn danger_clock(file: Option<PathBuf>) -> Option<PathBuf> {
    if cfg!(feature = "danger-faults") {
        return file;
    }
    if let Some(file) = file {
        tracing::warn!(
            "ignoring the clock offset file {}: this arcad was built without the danger-faults feature",
            file.display()
        );
    }
    None
}

/// Writes a file readable only by its owner, whether or not it existed before.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("write {}", path.display()))?;
    // `mode` applies only when the file is created: narrow an existing file too, before writing.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("write {}", path.display()))
}

async fn witness(args: WitnessArgs) -> anyhow::Result<()> {
    let token = match &args.join_token_file {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("read the join token file {}", file.display()))?
            .trim()
            .to_owned(),
        None => String::new(),
    };
    let timing = arca_failover::Timing {
        lease_ms: args.lease_ms,
        drift_margin_ms: args.drift_margin_ms,
        failover_after_ms: args.failover_after_ms,
    };
    timing.check().map_err(|e| anyhow::anyhow!(e))?;
    let options = arca_server::witness::WitnessOptions {
        cluster_advertise: args.advertise.unwrap_or_else(|| args.listen.to_string()),
        join: JoinPlan { peer: args.join, token },
        timing,
    };
    let addr = node::start_witness(&args.data_dir, args.listen, options).await.map_err(|e| anyhow::anyhow!(e))?;
    tracing::info!(%addr, "witness listening");
    tokio::signal::ctrl_c().await.context("wait for ctrl-c")?;
    Ok(())
}

fn parse_region(raw: &str) -> Result<arca_types::RegionName, String> {
    arca_types::RegionName::parse(raw).map_err(|e| e.message)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let join = match args.join {
        None => None,
        Some(peer) => {
            let token = match (args.join_token, &args.join_token_file) {
                (Some(token), _) => token,
                (None, Some(file)) => std::fs::read_to_string(file)
                    .with_context(|| format!("read the join token file {}", file.display()))?
                    .trim()
                    .to_owned(),
                (None, None) => bail!("--join needs --join-token or --join-token-file"),
            };
            Some(JoinPlan { peer, token })
        }
    };
    danger_faults(&args.danger_faults)?;
    let bootstrap_secret = if args.bootstrap { Some(write_bootstrap_secret(&args.data_dir)?) } else { None };
    let audit_log = args.audit_log.unwrap_or_else(|| args.data_dir.join("audit.log"));
    let config = NodeConfig {
        audit_log,
        data_dir: args.data_dir,
        api_listen: args.api_addr,
        cluster_listen: args.cluster_addr,
        api_advertise: args.advertise_api.unwrap_or_else(|| args.api_addr.to_string()),
        cluster_advertise: args.advertise_cluster.unwrap_or_else(|| args.cluster_addr.to_string()),
        api_cert: args.cert,
        api_key: args.key,
        bootstrap: args.bootstrap,
        bootstrap_secret,
        join,
        join_as_learner: args.learner,
        region: args.region,
        unseal_key_file: args.unseal_key_file,
        raft: arca_raft::RaftSettings {
            snapshot_every_entries: args.snapshot_every_entries,
            keep_after_snapshot_entries: args.keep_after_snapshot_entries,
            ..Default::default()
        },
        vault_suffix: args.vault_suffix,
        audit_anchor_interval_s: args.audit_anchor_interval_s,
        danger_clock_offset_file: danger_clock(args.danger_clock_offset_file),
        oidc_ca_file: args.oidc_ca_file,
    };
    let data_dir = config.data_dir.clone();
    let node = node::start(config).await.map_err(anyhow::Error::msg).context("start the node")?;
    tracing::info!(api = %node.api_addr, cluster = %node.cluster_addr, "arcad is serving");
    // Until interrupted, or until a newer lineage displaced this node and it filed its divergence:
    // then it starts again and rejoins (see rejoin.rs).
    if data_dir.join(rejoin::PLAN_FILE).exists() {
        let (engine, dir) = (node.engine.clone(), data_dir.clone());
        tokio::spawn(async move {
            while engine.raft().is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            if let Err(e) = rejoin::forget_plan(&dir) {
                tracing::warn!("{e}");
            }
        });
    }
    let mut rejoin = node.engine.rejoin.subscribe();
    tokio::select! {
        stopped = tokio::signal::ctrl_c() => stopped.context("wait for ctrl-c")?,
        plan = rejoin.wait_for(Option::is_some) => {
            let plan = plan.context("wait for a rejoin")?.clone().context("a rejoin plan")?;
            rejoin::write_plan(&data_dir, &plan).map_err(anyhow::Error::msg)?;
            tracing::warn!(epoch = plan.epoch, "starting again to rejoin the cluster under a new node id");
            bail!(rejoin::restart());
        }
    }
    Ok(())
}

fn default_dev_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".arca").join("dev"),
        None => PathBuf::from(".arca-dev"),
    }
}

async fn dev(
    data_dir: Option<PathBuf>,
    api_addr: SocketAddr,
    cluster_addr: SocketAddr,
    oidc_ca_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let dir = data_dir.unwrap_or_else(default_dev_dir);
    let tls_dir = dir.join("tls");
    if !tls_dir.join("ca.pem").exists() {
        gen_certs(&tls_dir, &["node".to_owned()], &["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    }
    let unseal_key_file = dir.join("unseal.key");
    let token_file = dir.join("root.token");
    let config = NodeConfig {
        audit_log: dir.join("node").join("audit.log"),
        data_dir: dir.join("node"),
        api_listen: api_addr,
        cluster_listen: cluster_addr,
        api_advertise: api_addr.to_string(),
        cluster_advertise: cluster_addr.to_string(),
        api_cert: tls_dir.join("node.pem"),
        api_key: tls_dir.join("node.key"),
        bootstrap: true,
        bootstrap_secret: None,
        join: None,
        join_as_learner: false,
        region: arca_types::RegionName::default(),
        unseal_key_file: Some(unseal_key_file.clone()),
        raft: arca_raft::RaftSettings::default(),
        vault_suffix: "vault.arca.local".to_owned(),
        audit_anchor_interval_s: arca_server::server::AUDIT_ANCHOR_INTERVAL_S_DEFAULT,
        danger_clock_offset_file: None,
        oidc_ca_file,
    };
    let node = node::start(config).await.map_err(anyhow::Error::msg).context("start the dev node")?;
    let engine = node.engine.clone();
    // Wait for this node to lead its one-node cluster, then initialize on first start.
    for _ in 0..100 {
        if engine.raft().ok().is_some_and(|r| r.is_leader()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !engine.seal.status().map_err(anyhow::Error::msg)?.initialized {
        let init =
            arca_server::services::operator::initialize(&engine, 1, 1, true, None).await.map_err(anyhow::Error::msg)?;
        write_private(&unseal_key_file, &init.unseal_key)?;
        write_private(&token_file, &init.root_token)?;
    }
    for _ in 0..100 {
        if !engine.seal.is_sealed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = std::fs::read_to_string(&token_file).context("read the dev root token")?;
    println!("Arca dev node is running (data in {}). It is initialized and unsealed.", dir.display());
    println!("Use it from another shell with:\n");
    println!("    export ARCA_ADDR=https://{}", node.api_addr);
    println!("    export ARCA_CACERT={}", tls_dir.join("ca.pem").display());
    println!("    export ARCA_TOKEN={}", token.trim());
    println!("\n    arca keyvault create --name demo");
    println!("    arca keyvault secret set --vault-name demo --name db-password --value s3cret");
    println!("    arca keyvault secret show --vault-name demo --name db-password\n");
    println!(
        "The dev node keeps its unseal key and root token in {}: never use dev mode for real secrets.",
        dir.display()
    );
    tokio::signal::ctrl_c().await.context("wait for ctrl-c")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    /// `.ci/test` runs this once in the danger-faults build and once in a normal one.
    #[test]
    fn only_a_danger_faults_build_honours_the_clock_offset_file_or_takes_faults() {
        let file = Some(std::path::PathBuf::from("/var/lib/arca/clock.offset"));
        let fault = vec!["short-request-deadline".to_owned()];
        if cfg!(feature = "danger-faults") {
            assert_eq!(super::danger_clock(file.clone()), file);
            assert!(super::danger_faults(&fault).is_ok());
            assert!(arca_types::faults::active(arca_types::faults::Fault::ShortRequestDeadline));
            #[cfg(feature = "danger-faults")]
            arca_types::faults::set_active(&[]);
        } else {
            assert_eq!(super::danger_clock(file), None, "a normal build ignores the clock offset file");
            let err = super::danger_faults(&fault).unwrap_err();
            assert!(err.to_string().contains("danger-faults feature"), "{err}");
            assert!(!arca_types::faults::active(arca_types::faults::Fault::ShortRequestDeadline));
        }
        assert!(super::danger_faults(&["no-such-fault".to_owned()]).is_err());
    }

    #[test]
    fn write_private_narrows_a_file_that_already_exists() {
        let dir = std::env::temp_dir().join(format!("arca-write-private-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&path, "new").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
