//! Test support: real `arcad` processes on loopback, with real TLS, real RocksDB and SIGKILL.
//!
//! The binaries must be built first (`cargo build --workspace --bins`, which the README's test command
//! does); they are found next to the test executable's `deps/` directory.
#![forbid(unsafe_code)]

pub mod attack;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arca_client::{pb, ArcaClient, ConnectOptions};

/// The path of a workspace binary built into the same target directory as the running test.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // Tests run from target/<profile>/deps; binaries such as the benchmark run from target/<profile>.
    let here = exe.parent().expect("an executable lives in a directory");
    let dir = if here.ends_with("deps") { here.parent().expect("deps has a parent") } else { here };
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace --bins` before the tests", path.display());
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// One `arcad` process and its files.
pub struct NodeProcess {
    pub name: String,
    /// The loopback address the node listens on and (for node-to-node traffic) connects from.
    pub ip: String,
    pub api_port: u16,
    pub cluster_port: u16,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub node_id: u64,
    child: Option<Child>,
    /// The member it joins through and the file holding its join token.
    join: Option<(String, PathBuf)>,
    learner: bool,
    /// Started with neither `--bootstrap` nor `--join`: waits for `arca cluster join`.
    standby: bool,
    /// More `arcad serve` arguments, for the next launch.
    pub extra_args: Vec<String>,
}

impl NodeProcess {
    pub fn api_addr(&self) -> String {
        format!("https://{}:{}", self.ip, self.api_port)
    }

    pub fn cluster_addr(&self) -> String {
        format!("{}:{}", self.ip, self.cluster_port)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running `arcad`.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A cluster of real `arcad` processes in a temporary directory.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProcess>,
    pub root_token: String,
    /// The five Shamir shares from init (threshold 3).
    pub shares: Vec<String>,
    pub ca_pem: Vec<u8>,
    pub snapshot_every_entries: u64,
    /// Each node on its own loopback address (127.0.0.11, .12, …), so [`TestCluster::partition`] can
    /// cut links between nodes with iptables.
    pub distinct_ips: bool,
    /// iptables rules this cluster added, removed by [`TestCluster::heal`] and on drop.
    partitions: Vec<(String, String)>,
    /// More `arcad serve` arguments for every node.
    pub node_args: Vec<String>,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        self.heal();
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

const CERT_NAMES: usize = 9;

impl TestCluster {
    /// Starts `voters` nodes: node 1 bootstraps and is initialized (5 shares, threshold 3, plus an unseal
    /// key file every node unseals from), the rest join.
    pub async fn start(voters: usize) -> anyhow::Result<Self> {
        Self::start_with(voters, 2000).await
    }

    pub async fn start_with(voters: usize, snapshot_every_entries: u64) -> anyhow::Result<Self> {
        Self::start_inner(voters, snapshot_every_entries, false).await
    }

    /// As [`TestCluster::start_with`], with every node on its own loopback address so that links
    /// between nodes can be cut ([`TestCluster::partition`], which needs root and iptables). Every
    /// such cluster uses the same addresses and the rules match addresses only, so a test using one
    /// belongs in the `iptables` test group of `.ci/nextest.toml` (one at a time).
    pub async fn start_partitionable(voters: usize, snapshot_every_entries: u64) -> anyhow::Result<Self> {
        Self::start_inner(voters, snapshot_every_entries, true).await
    }

    /// Starts node 1 with `--bootstrap` and stops there: the cluster is not initialized.
    pub async fn start_uninitialized() -> anyhow::Result<Self> {
        let mut cluster = Self::prepare(2000, false)?;
        cluster.spawn_node(None, false, false)?;
        cluster.wait_answering(0).await?;
        Ok(cluster)
    }

    fn prepare(snapshot_every_entries: u64, distinct_ips: bool) -> anyhow::Result<Self> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let certs = dir.path().join("certs");
        let names: Vec<String> = (1..=CERT_NAMES).map(|i| format!("node{i}")).collect();
        let status = Command::new(binary("arcad"))
            .args(["gen-certs", "--out"])
            .arg(&certs)
            .args(["--names", &names.join(","), "--hosts", &cert_hosts()])
            .stdout(Stdio::null())
            .status()
            .context("run arcad gen-certs")?;
        if !status.success() {
            bail!("arcad gen-certs failed");
        }
        let ca_pem = std::fs::read(certs.join("ca.pem"))?;
        Ok(Self {
            dir,
            nodes: Vec::new(),
            root_token: String::new(),
            shares: Vec::new(),
            ca_pem,
            snapshot_every_entries,
            distinct_ips,
            partitions: Vec::new(),
            node_args: Vec::new(),
        })
    }

    /// As [`TestCluster::start`], with more `arcad serve` arguments for every node.
    pub async fn start_with_node_args(voters: usize, node_args: &[&str]) -> anyhow::Result<Self> {
        Self::start_inner_with(voters, 2000, false, node_args).await
    }

    async fn start_inner(voters: usize, snapshot_every_entries: u64, distinct_ips: bool) -> anyhow::Result<Self> {
        Self::start_inner_with(voters, snapshot_every_entries, distinct_ips, &[]).await
    }

    async fn start_inner_with(
        voters: usize,
        snapshot_every_entries: u64,
        distinct_ips: bool,
        node_args: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cluster = Self::prepare(snapshot_every_entries, distinct_ips)?;
        cluster.node_args = node_args.iter().map(|a| a.to_string()).collect();
        cluster.spawn_node(None, false, false)?;
        cluster.wait_answering(0).await?;
        let client = cluster.client(0).await?;
        let init = cluster.init(&client).await?;
        write_private(&cluster.unseal_key_path(), init.unseal_key.as_bytes())?;
        cluster.root_token = init.root_token;
        cluster.shares = init.shares;
        cluster.wait_unsealed(0).await?;
        for _ in 1..voters {
            cluster.add_node(false).await?;
        }
        Ok(cluster)
    }

    /// The bootstrap secret node 1 wrote, which `Init` must present.
    pub fn bootstrap_secret(&self) -> anyhow::Result<String> {
        let path = self.nodes[0].data_dir.join("bootstrap.secret");
        Ok(std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?.trim().to_owned())
    }

    /// Initializes through node 1 (retrying while it is still minting the cluster's id).
    async fn init(&self, client: &ArcaClient) -> anyhow::Result<pb::InitResponse> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let request = pb::InitRequest {
                secret_shares: 5,
                secret_threshold: 3,
                auto_unseal_key: true,
                bootstrap_secret: self.bootstrap_secret()?,
                request_id: "testkit-init".to_owned(),
            };
            match client.operator().init(request).await {
                Ok(init) => return Ok(init.into_inner()),
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => return Err(arca_client::ClientError::from(s).into()),
            }
        }
    }

    /// Mints a join token through the first running node, retrying for up to 10 s while the cluster
    /// answers UNAVAILABLE (a voter that was just added may not have answered its first heartbeat).
    pub async fn join_token(&self) -> anyhow::Result<String> {
        let index = self.nodes.iter().position(NodeProcess::is_running).context("no running node")?;
        let client = self.client(index).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let request = pb::CreateJoinTokenRequest { ttl: None };
            match client.cluster().create_join_token(request).await.map_err(arca_client::ClientError::from) {
                Ok(token) => return Ok(token.into_inner().token),
                Err(e) if e.reason.as_deref() == Some("UNAVAILABLE") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Moves every node's clock forward: nodes read the offset on each use of the clock.
    pub fn advance_clock(&self, seconds: i64) {
        let path = self.dir.path().join("clock.offset");
        let current = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
        std::fs::write(&path, (current + seconds).to_string()).expect("write the clock offset");
    }

    pub fn unseal_key_path(&self) -> PathBuf {
        self.dir.path().join("unseal.key")
    }

    /// Starts a node that belongs to no cluster yet; it waits for `arca cluster join`.
    pub fn spawn_standby(&mut self) -> anyhow::Result<usize> {
        self.spawn_node(None, false, true)
    }

    /// [`Self::spawn_standby`], with more `arcad serve` arguments (such as `--region`).
    pub fn spawn_standby_with(&mut self, extra_args: &[&str]) -> anyhow::Result<usize> {
        self.spawn_node_with(None, false, true, extra_args.iter().map(|a| a.to_string()).collect())
    }

    fn spawn_node(&mut self, join: Option<(String, PathBuf)>, learner: bool, standby: bool) -> anyhow::Result<usize> {
        self.spawn_node_with(join, learner, standby, Vec::new())
    }

    fn spawn_node_with(
        &mut self,
        join: Option<(String, PathBuf)>,
        learner: bool,
        standby: bool,
        extra_args: Vec<String>,
    ) -> anyhow::Result<usize> {
        let index = self.nodes.len();
        if index >= CERT_NAMES {
            bail!("the test cluster has certificates for {CERT_NAMES} nodes");
        }
        let name = format!("node{}", index + 1);
        let ip = if self.distinct_ips { format!("127.0.0.{}", 11 + index) } else { "127.0.0.1".to_owned() };
        let node = NodeProcess {
            ip,
            data_dir: self.dir.path().join(&name),
            log_path: self.dir.path().join(format!("{name}.log")),
            name,
            api_port: free_port(),
            cluster_port: free_port(),
            node_id: 0,
            child: None,
            join,
            learner,
            standby,
            extra_args,
        };
        self.nodes.push(node);
        self.launch(index)?;
        Ok(index)
    }

    fn launch(&mut self, index: usize) -> anyhow::Result<()> {
        let certs = self.dir.path().join("certs");
        let unseal = self.unseal_key_path();
        let snapshot = self.snapshot_every_entries.to_string();
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&node.log_path)?;
        let mut cmd = Command::new(binary("arcad"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--api-addr", &format!("{}:{}", node.ip, node.api_port)])
            .args(["--cluster-addr", &format!("{}:{}", node.ip, node.cluster_port)])
            .arg("--cert")
            .arg(certs.join(format!("{}.pem", node.name)))
            .arg("--key")
            .arg(certs.join(format!("{}.key", node.name)))
            .arg("--unseal-key-file")
            .arg(&unseal)
            .args(["--snapshot-every-entries", &snapshot, "--keep-after-snapshot-entries", "50"])
            // Anchored often, so tests see their audit logs anchored within seconds.
            .args(["--audit-anchor-interval-s", "2"])
            .args(&self.node_args)
            .args(&node.extra_args)
            .env("ARCA_LOG", "info,openraft=info")
            .env("ARCA_DANGER_CLOCK_OFFSET_FILE", self.dir.path().join("clock.offset"))
            .stdout(Stdio::null())
            .stderr(log);
        match &node.join {
            None if node.standby => {}
            None => {
                cmd.arg("--bootstrap");
            }
            Some((peer, token_file)) => {
                cmd.args(["--join", peer]).arg("--join-token-file").arg(token_file);
                if node.learner {
                    cmd.arg("--learner");
                }
            }
        }
        node.child = Some(cmd.spawn().context("spawn arcad")?);
        Ok(())
    }

    /// Starts a new node that joins through node 0 (or the first running node) and waits until it is a
    /// member, unsealed, and caught up.
    pub async fn add_node(&mut self, learner: bool) -> anyhow::Result<usize> {
        self.add_node_with(learner, &[]).await
    }

    /// [`Self::add_node`], with more `arcad serve` arguments for the new node.
    pub async fn add_node_with(&mut self, learner: bool, extra_args: &[&str]) -> anyhow::Result<usize> {
        let peer =
            self.nodes.iter().find(|n| n.is_running()).map(NodeProcess::cluster_addr).context("no running node")?;
        let token_file = self.dir.path().join(format!("join-{}.token", self.nodes.len() + 1));
        std::fs::write(&token_file, self.join_token().await?)?;
        let extra_args = extra_args.iter().map(|a| a.to_string()).collect();
        let index = self.spawn_node_with(Some((peer, token_file)), learner, false, extra_args)?;
        let want = self.nodes.len();
        self.wait_for(Duration::from_secs(60), async move |c: &Self| match c.status(index).await {
            Ok(s) => s.nodes.len() >= want && s.node_id != 0,
            Err(_) => false,
        })
        .await
        .with_context(|| format!("node {} did not join", index + 1))?;
        self.wait_unsealed(index).await?;
        Ok(index)
    }

    pub async fn client(&self, index: usize) -> anyhow::Result<ArcaClient> {
        Ok(ArcaClient::connect_lazy(ConnectOptions {
            addr: self.nodes[index].api_addr(),
            ca_pem: Some(self.ca_pem.clone()),
            token: (!self.root_token.is_empty()).then(|| self.root_token.clone()),
            timeout: Some(Duration::from_secs(30)),
            // Tests see every answer as the server gave it; `client_retrying` turns retries on.
            attempts: 1,
        })?)
    }

    /// A client as the Rust client is by default: every call named with a request id and retried when
    /// it failed without saying it changed nothing.
    pub async fn client_retrying(&self, index: usize) -> anyhow::Result<ArcaClient> {
        Ok(ArcaClient::connect_lazy(ConnectOptions {
            addr: self.nodes[index].api_addr(),
            ca_pem: Some(self.ca_pem.clone()),
            token: (!self.root_token.is_empty()).then(|| self.root_token.clone()),
            timeout: Some(Duration::from_secs(30)),
            attempts: 0,
        })?)
    }

    /// A client that signs in with `credential` (a service principal's secret is exchanged at the
    /// token endpoint first).
    pub async fn client_as(&self, index: usize, credential: arca_client::Credential) -> anyhow::Result<ArcaClient> {
        let options = ConnectOptions {
            addr: self.nodes[index].api_addr(),
            ca_pem: Some(self.ca_pem.clone()),
            token: None,
            timeout: Some(Duration::from_secs(30)),
            attempts: 1,
        };
        Ok(ArcaClient::connect_with(options, credential).await?)
    }

    /// A client with a chosen token (or none).
    pub async fn client_with_token(&self, index: usize, token: Option<&str>) -> anyhow::Result<ArcaClient> {
        Ok(ArcaClient::connect_lazy(ConnectOptions {
            addr: self.nodes[index].api_addr(),
            ca_pem: Some(self.ca_pem.clone()),
            token: token.map(str::to_owned),
            timeout: Some(Duration::from_secs(30)),
            // Tests see every answer as the server gave it; `client_retrying` turns retries on.
            attempts: 1,
        })?)
    }

    pub async fn status(&self, index: usize) -> anyhow::Result<pb::ClusterStatus> {
        let client = self.client(index).await?;
        let mut c = client.cluster();
        let mut req = tonic_request(pb::GetClusterStatusRequest {});
        req.set_timeout(Duration::from_secs(2));
        Ok(c.get_cluster_status(req).await.map_err(arca_client::ClientError::from)?.into_inner())
    }

    /// The index of the node that currently leads, as seen by the running nodes.
    pub async fn leader_index(&self) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.is_running() {
                continue;
            }
            if let Ok(s) = self.status(i).await {
                if s.leader_id != 0 && s.leader_id == s.node_id && s.state == "leader" {
                    return Some(i);
                }
            }
        }
        None
    }

    /// Waits until a node answers on its API (seal status needs no token, so this works before init).
    pub async fn wait_answering(&self, index: usize) -> anyhow::Result<()> {
        self.wait_for(Duration::from_secs(30), async move |c: &Self| {
            let Ok(client) = c.client_with_token(index, None).await else { return false };
            client.operator().get_seal_status(pb::GetSealStatusRequest {}).await.is_ok()
        })
        .await
        .with_context(|| format!("node {} did not answer", index + 1))
    }

    pub async fn wait_unsealed(&self, index: usize) -> anyhow::Result<()> {
        self.wait_for(Duration::from_secs(30), async move |c: &Self| {
            let Ok(client) = c.client(index).await else { return false };
            match client.operator().get_seal_status(pb::GetSealStatusRequest {}).await {
                Ok(s) => !s.into_inner().sealed,
                Err(_) => false,
            }
        })
        .await
        .with_context(|| format!("node {} did not unseal", index + 1))
    }

    /// Polls `check` until it is true or `timeout` passes.
    pub async fn wait_for(&self, timeout: Duration, check: impl AsyncFn(&Self) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if check(self).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("condition not reached within {timeout:?}")
    }

    /// Kills a node with SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Cuts the link between nodes `a` and `b` in both directions (iptables DROP, so connections hang
    /// as in a real partition rather than fail fast). Needs a cluster from
    /// [`TestCluster::start_partitionable`], root and iptables.
    pub fn partition(&mut self, a: usize, b: usize) -> anyhow::Result<()> {
        if !self.distinct_ips {
            bail!("partitions need a cluster started with start_partitionable");
        }
        let (ia, ib) = (self.nodes[a].ip.clone(), self.nodes[b].ip.clone());
        for (from, to) in [(ia.clone(), ib.clone()), (ib, ia)] {
            iptables("-I", &from, &to)?;
            self.partitions.push((from, to));
        }
        Ok(())
    }

    /// Cuts node `a` off from every other node.
    pub fn isolate(&mut self, a: usize) -> anyhow::Result<()> {
        for b in 0..self.nodes.len() {
            if b != a {
                self.partition(a, b)?;
            }
        }
        Ok(())
    }

    /// Removes every partition this cluster made.
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.partitions) {
            let _ = iptables("-D", &from, &to);
        }
    }

    /// The process id of a running node.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.nodes[index].child.as_ref().map(|c| c.id())
    }

    /// Pauses a node with SIGSTOP (a long GC pause or a frozen VM, as its peers see it).
    pub fn pause(&self, index: usize) -> anyhow::Result<()> {
        self.signal(index, "-STOP")
    }

    /// Resumes a node paused with [`TestCluster::pause`] (SIGCONT).
    pub fn resume(&self, index: usize) -> anyhow::Result<()> {
        self.signal(index, "-CONT")
    }

    fn signal(&self, index: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self.pid(index).context("the node is not running")?;
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().context("run kill")?;
        if !status.success() {
            bail!("kill {signal} {pid} failed");
        }
        Ok(())
    }

    /// Restarts a killed node from its data dir (it rejoins with its old id and unseals from the file).
    pub async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.launch(index)?;
        self.wait_unsealed(index).await
    }

    /// Starts a killed node again without waiting for anything (a node expected to stay out).
    pub fn relaunch(&mut self, index: usize) -> anyhow::Result<()> {
        self.launch(index)
    }

    /// Every file under the cluster directory except the certificates and the unseal key, for plaintext
    /// scans: data dirs (RocksDB, Raft log, snapshots, audit log) and captured node logs.
    pub fn files_to_scan(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p, out);
                    } else {
                        out.push(p);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for n in &self.nodes {
            walk(&n.data_dir, &mut out);
            out.push(n.log_path.clone());
        }
        out
    }
}

/// Hosts every test certificate is valid for: localhost, 127.0.0.1 and the per-node addresses.
fn cert_hosts() -> String {
    let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    hosts.extend((0..CERT_NAMES).map(|i| format!("127.0.0.{}", 11 + i)));
    hosts.join(",")
}

fn iptables(op: &str, from: &str, to: &str) -> anyhow::Result<()> {
    let status = Command::new("iptables")
        .args([op, "OUTPUT", "-s", from, "-d", to, "-j", "DROP"])
        .status()
        .context("run iptables (install it; it needs root)")?;
    if !status.success() {
        bail!("iptables {op} OUTPUT -s {from} -d {to} failed");
    }
    Ok(())
}

fn tonic_request<T>(message: T) -> tonic::Request<T> {
    tonic::Request::new(message)
}

/// A request named with a client request id (`x-arca-request-id`), as a retrying client sends it.
pub fn named<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-arca-request-id", id.parse().expect("a request id fits in a header"));
    request
}

/// Writes a file only its owner may read (the unseal key file must be so, or arcad refuses it).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Whether `needle` occurs in any of `files`; returns the files that contain it.
pub fn files_containing(files: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| std::fs::read(p).map(|bytes| bytes.windows(needle.len()).any(|w| w == needle)).unwrap_or(false))
        .cloned()
        .collect()
}

/// A running `arca-test-issuer`: a local OpenID Connect provider (discovery, JWKS, device code) with
/// test-only endpoints that approve a sign-in, mint a token, rotate the key and count JWKS fetches.
/// Killed when dropped.
pub struct IssuerProcess {
    pub child: Child,
    /// The issuer URL (`https://127.0.0.1:PORT`).
    pub url: String,
    /// Its CA certificate (PEM file), for `arcad --oidc-ca-file` and `arca login --ca-file`.
    pub ca_file: PathBuf,
    https: arca_oidc::HttpsClient,
}

impl Drop for IssuerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl IssuerProcess {
    /// Starts one that keeps its files in `dir`, and waits until it answers.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let child = Command::new(binary("arca-test-issuer"))
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn arca-test-issuer")?;
        let url_file = dir.join("issuer.url");
        let started = Instant::now();
        while !url_file.exists() {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("arca-test-issuer did not start");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ca_file = dir.join("ca.pem");
        let https = arca_oidc::HttpsClient::new(Some(&ca_file))?;
        let url = std::fs::read_to_string(&url_file)?;
        let issuer = Self { child, url, ca_file, https };
        Ok(issuer)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<serde_json::Value> {
        let answer = self.https.post_form(&format!("{}{path}", self.url), form, 64 * 1024).await?;
        if answer.status != 200 {
            bail!("{path}: HTTP {}", answer.status);
        }
        Ok(serde_json::from_slice(&answer.body)?)
    }

    /// What a person does at the verification page: approve `user_code` as `sub`, in `groups`.
    pub async fn approve(&self, user_code: &str, sub: &str, groups: &[&str]) -> anyhow::Result<()> {
        self.post("/admin/approve", &[("user_code", user_code), ("sub", sub), ("groups", &groups.join(","))]).await?;
        Ok(())
    }

    /// A token for `sub` and `aud` (several with commas), in `groups`, lasting `lifetime_s`
    /// (negative: already expired).
    pub async fn issue(&self, sub: &str, aud: &str, groups: &[&str], lifetime_s: i64) -> anyhow::Result<String> {
        self.issue_with(sub, aud, groups, lifetime_s, &[]).await
    }

    /// [`Self::issue`] with more form fields: `azp`, `typ` (the header's), `extra` (a JSON object of
    /// more claims).
    pub async fn issue_with(
        &self,
        sub: &str,
        aud: &str,
        groups: &[&str],
        lifetime_s: i64,
        more: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let lifetime = lifetime_s.to_string();
        let groups = groups.join(",");
        let mut form = vec![("sub", sub), ("aud", aud), ("groups", groups.as_str()), ("lifetime", lifetime.as_str())];
        form.extend_from_slice(more);
        let answer = self.post("/admin/issue", &form).await?;
        Ok(answer["token"].as_str().context("no token")?.to_owned())
    }

    /// A new signing key (the old one kept in the JWKS, or dropped); returns its kid.
    pub async fn rotate(&self, keep_old: bool) -> anyhow::Result<String> {
        let answer = self.post("/admin/rotate", &[("keep_old", if keep_old { "1" } else { "0" })]).await?;
        Ok(answer["kid"].as_str().context("no kid")?.to_owned())
    }

    /// How many times the JWKS was fetched.
    pub async fn jwks_fetches(&self) -> anyhow::Result<u64> {
        let body = self.https.get(&format!("{}/admin/stats", self.url), 4096).await?;
        let stats: serde_json::Value = serde_json::from_slice(&body)?;
        stats["jwks_fetches"].as_u64().context("no count")
    }
}

/// A running `arca agent run` process; killed when dropped.
pub struct AgentProcess {
    pub child: Child,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestCluster {
    /// Starts `arca agent run` against node 0 (enrolling when `enroll` gives the agent's client id
    /// and enrollment secret), each certificate honoured `lifetime_s`, and waits until it serves on
    /// `socket`.
    pub fn start_agent(
        &self,
        state: &Path,
        socket: &Path,
        enroll: Option<(&str, &str)>,
        lifetime_s: u32,
    ) -> anyhow::Result<AgentProcess> {
        let mut cmd = Command::new(binary("arca"));
        cmd.args(["--addr", &self.nodes[0].api_addr()])
            .arg("--cacert")
            .arg(self.dir.path().join("certs/ca.pem"))
            .args(["agent", "run", "--state-dir"])
            .arg(state)
            .arg("--socket")
            .arg(socket)
            .args(["--certificate-lifetime-s", &lifetime_s.to_string()])
            .env_remove("ARCA_TOKEN")
            .env_remove("ARCA_AGENT_ENROLLMENT_SECRET")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some((client_id, secret)) = enroll {
            cmd.args(["--client-id", client_id]).env("ARCA_AGENT_ENROLLMENT_SECRET", secret);
        }
        let mut agent = AgentProcess { child: cmd.spawn().context("start arca agent")? };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !socket.exists() {
            if let Some(status) = agent.child.try_wait()? {
                bail!("the agent exited before serving: {status}");
            }
            if Instant::now() > deadline {
                bail!("the agent did not start serving within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(agent)
    }
}

/// A running `arcad witness`; killed when dropped.
pub struct WitnessProcess {
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    pub port: u16,
    join: String,
    token_file: PathBuf,
    child: Option<Child>,
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl WitnessProcess {
    /// Kills it with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) from its data dir.
    pub fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path)?;
        let child = Command::new(binary("arcad"))
            .arg("witness")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--join", &self.join])
            .arg("--join-token-file")
            .arg(&self.token_file)
            .env("ARCA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("spawn arcad witness")?;
        self.child = Some(child);
        Ok(())
    }
}

impl TestCluster {
    /// Starts `arcad witness` joining through node 0 and waits until the leader reports it.
    pub async fn start_witness(&self) -> anyhow::Result<WitnessProcess> {
        self.start_witness_named("witness").await
    }

    /// [`Self::start_witness`] with its own data dir and log named `name` (a second witness).
    pub async fn start_witness_named(&self, name: &str) -> anyhow::Result<WitnessProcess> {
        let token_file = self.dir.path().join(format!("{name}.token"));
        std::fs::write(&token_file, self.join_token().await?)?;
        let mut witness = WitnessProcess {
            data_dir: self.dir.path().join(name),
            log_path: self.dir.path().join(format!("{name}.log")),
            port: free_port(),
            join: self.nodes[0].cluster_addr(),
            token_file,
            child: None,
        };
        witness.launch()?;
        self.wait_for(Duration::from_secs(60), async |c: &Self| match c.leader_index().await {
            Some(leader) => c.status(leader).await.is_ok_and(|s| s.witness_id != 0),
            None => false,
        })
        .await
        .context("the witness was not recorded")?;
        Ok(witness)
    }
}
