//! `--suite versus`: Arca side by side with etcd, and Arca's per-call server CPU against a bare gRPC
//! echo, each measured in the same run on the same machine.
//!
//! Both clusters run on loopback with three members, TLS on client and peer links, and the same load
//! generator drives both: the same client tasks, one HTTP/2 connection per member with clients spread
//! over them, the same value size, key count and duration. etcd is Debian's `etcd-server` (3.4),
//! installed when missing; it runs without authentication, while Arca checks a bearer token on every
//! call.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arca_client::{pb, ArcaClient};
use arca_testkit::{free_port, TestCluster};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::crypto;

mod echo_pb {
    tonic::include_proto!("arca.bench.v1");
}
mod etcd_pb {
    tonic::include_proto!("etcdserverpb");
}

/// Concurrent clients at each write point.
pub const WRITE_CLIENTS: [usize; 3] = [16, 64, 256];
/// Concurrent clients for the read point and the CPU measurements.
pub const READ_CLIENTS: usize = 64;
/// Distinct keys the load spreads over.
pub const KEYS: u64 = 1000;
const ETCD: &str = "/usr/bin/etcd";
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// What one point of load measured.
#[derive(Clone, Copy, Default)]
pub struct Measured {
    pub done: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            self.throughput,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.errors
        )
    }
}

/// The load generator both systems share: `clients` tasks, each calling `op(client, key)` back to back
/// for `seconds`; client `i`'s `n`-th call uses key `(i + n * clients) % KEYS`.
pub async fn drive<F, Fut>(clients: usize, seconds: u64, op: F) -> Measured
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors, mut n) = (Vec::new(), 0u64, 0u64);
                while Instant::now() < deadline {
                    let key = (i as u64 + n * clients as u64) % KEYS;
                    n += 1;
                    let start = Instant::now();
                    if op(i, key).await {
                        latencies.push(start.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.expect("a client task panicked");
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied();
    Measured {
        done: all.len() as u64,
        errors,
        throughput: all.len() as f64 / seconds as f64,
        p50: pct(0.50).unwrap_or_default(),
        p99: pct(0.99).unwrap_or_default(),
    }
}

/// [`drive`], and the server CPU per call of the processes `pids` meanwhile (seconds).
async fn measure<F, Fut>(pids: &[u32], clients: usize, seconds: u64, op: F) -> (Measured, f64)
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let before = cpu_of(pids);
    let m = drive(clients, seconds, op).await;
    (m, (cpu_of(pids) - before) / m.done.max(1) as f64)
}

/// Installs what the suite needs from Debian's packages when it is missing: etcd and a font for the
/// chart's text.
fn ensure_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = [(ETCD, "etcd-server"), (FONT, "fonts-dejavu-core")]
        .into_iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(_, package)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {} from Debian's packages", missing.join(", "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        let _ = Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()).status();
        if !install().context("run apt-get")?.success() {
            bail!("could not install {} (run as root on Debian or Ubuntu, or install them)", missing.join(", "));
        }
    }
    Ok(())
}

/// A 3-member etcd cluster on loopback with TLS on client and peer links; killed on drop.
struct Etcd {
    members: Vec<(Child, PathBuf, u16)>,
    ca_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for (child, _, _) in &mut self.members {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes a CA and a certificate for 127.0.0.1 (server and client use) into `dir`; returns the CA PEM.
fn write_certs(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let ca = arca_crypto::tls::generate_ca("bench CA")?;
    let cert = arca_crypto::tls::issue_node_cert(&ca, "bench", &["127.0.0.1".into(), "localhost".into()])?;
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem)?;
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem)?;
    std::fs::write(dir.join("key.pem"), &cert.key_pem)?;
    Ok(ca.cert_pem.into_bytes())
}

impl Etcd {
    fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca_pem = write_certs(dir.path())?;
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> =
            ports.iter().enumerate().map(|(i, (_, peer))| format!("m{i}=https://127.0.0.1:{peer}")).collect();
        let file = |name: &str| dir.path().join(name).display().to_string();
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("m{i}"));
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log")))?;
            let child = Command::new(ETCD)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(&data)
                .args(["--listen-client-urls", &format!("https://127.0.0.1:{client}")])
                .args(["--advertise-client-urls", &format!("https://127.0.0.1:{client}")])
                .args(["--listen-peer-urls", &format!("https://127.0.0.1:{peer}")])
                .args(["--initial-advertise-peer-urls", &format!("https://127.0.0.1:{peer}")])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-token", "bench", "--initial-cluster-state", "new"])
                .args(["--cert-file", &file("cert.pem"), "--key-file", &file("key.pem")])
                .args(["--peer-cert-file", &file("cert.pem"), "--peer-key-file", &file("key.pem")])
                .args(["--peer-trusted-ca-file", &file("ca.pem"), "--peer-client-cert-auth"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .context("start etcd")?;
            members.push((child, data, *client));
        }
        Ok(Self { members, ca_pem, _dir: dir })
    }

    async fn clients(&self) -> anyhow::Result<Vec<etcd_pb::kv_client::KvClient<Channel>>> {
        let mut out = Vec::new();
        for (_, _, port) in &self.members {
            let channel = endpoint(&format!("https://127.0.0.1:{port}"), &self.ca_pem)?.connect_lazy();
            out.push(etcd_pb::kv_client::KvClient::new(channel));
        }
        let probe = out[0].clone();
        let started = Instant::now();
        loop {
            let put = etcd_pb::PutRequest { key: b"ready".to_vec(), value: b"1".to_vec(), ..Default::default() };
            match probe.clone().put(put).await {
                Ok(_) => return Ok(out),
                Err(e) if started.elapsed() > Duration::from_secs(30) => bail!("etcd did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// A channel configured as Arca's client configures its own (TLS with the given CA, same timeouts).
fn endpoint(addr: &str, ca_pem: &[u8]) -> anyhow::Result<Endpoint> {
    Ok(Endpoint::from_shared(addr.to_owned())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)))?)
}

/// Bytes the files under `dir` take on disk (allocated blocks, as `du` counts them).
fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Bytes of audit logs directly in `dir`.
fn audit_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.blocks() * 512)
        .sum()
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().map(|p| cpu_seconds(*p)).sum()
}

/// Runs a bare echo server over TLS in this process until killed (`arca-bench --echo-server PORT`).
pub async fn serve_echo(port: u16, tls_dir: &Path) -> anyhow::Result<()> {
    struct Echo;
    #[tonic::async_trait]
    impl echo_pb::echo_server::Echo for Echo {
        async fn echo(
            &self,
            request: tonic::Request<echo_pb::EchoMessage>,
        ) -> Result<tonic::Response<echo_pb::EchoMessage>, tonic::Status> {
            Ok(tonic::Response::new(request.into_inner()))
        }
    }
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(tls_dir.join("cert.pem"))?,
        std::fs::read(tls_dir.join("key.pem"))?,
    );
    tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?
        .add_service(echo_pb::echo_server::EchoServer::new(Echo))
        .serve(([127, 0, 0, 1], port).into())
        .await?;
    Ok(())
}

/// One row of the side-by-side table.
pub struct Row {
    pub what: &'static str,
    pub clients: usize,
    pub arca: Measured,
    pub etcd: Measured,
    /// Server CPU per call, summed over the members: (Arca, etcd), in seconds.
    pub cpu: (f64, f64),
}

pub async fn run(seconds: u64, snapshot_every: u64) -> anyhow::Result<()> {
    ensure_packages()?;
    let etcd = Etcd::start()?;
    let etcd_clients = etcd.clients().await?;
    let cluster = TestCluster::start_with(3, snapshot_every).await?;
    let mut arca_clients = Vec::new();
    for i in 0..3 {
        arca_clients.push(cluster.client(i).await?);
    }
    arca_clients[0]
        .vaults()
        .create_vault(pb::CreateVaultRequest { name: "bench".into(), ..Default::default() })
        .await?;
    let value = "v".repeat(256);
    println!(
        "3 etcd members ({}) and 3 Arca nodes on loopback, TLS on client and peer links; 256-byte values, {KEYS} \
         keys, {seconds} s per point",
        etcd_version()
    );

    let arca_set = {
        let (clients, value) = (arca_clients.clone(), value.clone());
        move |i: usize, key: u64| {
            let mut secrets = clients[i % clients.len()].secrets();
            let r = pb::SetSecretRequest {
                vault: "bench".into(),
                name: format!("k{key}"),
                value: value.clone(),
                ..Default::default()
            };
            async move { secrets.set_secret(r).await.is_ok() }
        }
    };
    let etcd_put = {
        let (clients, value) = (etcd_clients.clone(), value.clone().into_bytes());
        move |i: usize, key: u64| {
            let mut kv = clients[i % clients.len()].clone();
            let r =
                etcd_pb::PutRequest { key: format!("k{key}").into_bytes(), value: value.clone(), ..Default::default() };
            async move { kv.put(r).await.is_ok() }
        }
    };
    let arca_dirs: Vec<PathBuf> = cluster.nodes.iter().map(|n| n.data_dir.clone()).collect();
    let etcd_dirs: Vec<PathBuf> = etcd.members.iter().map(|(_, d, _)| d.clone()).collect();
    let mean = |dirs: &[PathBuf], f: fn(&Path) -> u64| dirs.iter().map(|d| f(d)).sum::<u64>() / dirs.len() as u64;
    let (arca_before, audit_before, etcd_before) =
        (mean(&arca_dirs, disk_bytes), mean(&arca_dirs, audit_bytes), mean(&etcd_dirs, disk_bytes));

    let arca_pids: Vec<u32> = (0..cluster.nodes.len()).filter_map(|i| cluster.pid(i)).collect();
    let etcd_pids: Vec<u32> = etcd.members.iter().map(|(c, _, _)| c.id()).collect();
    let mut rows = Vec::new();
    let (mut arca_writes, mut etcd_writes) = (0, 0);
    for clients in WRITE_CLIENTS {
        let (arca, arca_cpu) = measure(&arca_pids, clients, seconds, arca_set.clone()).await;
        println!("Arca SetSecret  {clients:>3} clients  {arca}   server CPU {:.0} µs/call", arca_cpu * 1e6);
        let (etcd, etcd_cpu) = measure(&etcd_pids, clients, seconds, etcd_put.clone()).await;
        println!("etcd Put        {clients:>3} clients  {etcd}   server CPU {:.0} µs/call", etcd_cpu * 1e6);
        arca_writes += arca.done;
        etcd_writes += etcd.done;
        rows.push(Row { what: "write", clients, arca, etcd, cpu: (arca_cpu, etcd_cpu) });
    }
    let arca_audit = mean(&arca_dirs, audit_bytes).saturating_sub(audit_before);
    let arca_disk = mean(&arca_dirs, disk_bytes).saturating_sub(arca_before) - arca_audit;
    let etcd_disk = mean(&etcd_dirs, disk_bytes).saturating_sub(etcd_before);
    let per = |bytes: u64, writes: u64| bytes as f64 / writes.max(1) as f64;

    // The hot key: every client sets the same secret (puts the same key), as when many writers
    // rotate one config secret. A name of its own, so it starts with no versions; a secret holds at
    // most SECRET_VERSIONS_MAX versions, so the writers move on to a fresh name every HOT_SETS_PER_NAME
    // sets (all of them still write to one secret at a time).
    const HOT_SETS_PER_NAME: u64 = 5_000;
    const _: () = assert!(HOT_SETS_PER_NAME < arca_types::limits::SECRET_VERSIONS_MAX as u64);
    let hot_sets = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let arca_hot = {
        let (clients, value) = (arca_clients.clone(), value.clone());
        move |i: usize, _key: u64| {
            let mut secrets = clients[i % clients.len()].secrets();
            let n = hot_sets.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / HOT_SETS_PER_NAME;
            let r = pb::SetSecretRequest {
                vault: "bench".into(),
                name: format!("hot-{n}"),
                value: value.clone(),
                ..Default::default()
            };
            async move { secrets.set_secret(r).await.is_ok() }
        }
    };
    let etcd_hot = {
        let (clients, value) = (etcd_clients.clone(), value.clone().into_bytes());
        move |i: usize, _key: u64| {
            let mut kv = clients[i % clients.len()].clone();
            let r = etcd_pb::PutRequest { key: b"hot".to_vec(), value: value.clone(), ..Default::default() };
            async move { kv.put(r).await.is_ok() }
        }
    };
    let (arca, arca_cpu) = measure(&arca_pids, READ_CLIENTS, seconds, arca_hot).await;
    println!(
        "Arca SetSecret  {READ_CLIENTS:>3} clients, one secret  {arca}   server CPU {:.0} µs/call",
        arca_cpu * 1e6
    );
    let (etcd_hot, etcd_cpu) = measure(&etcd_pids, READ_CLIENTS, seconds, etcd_hot).await;
    println!(
        "etcd Put        {READ_CLIENTS:>3} clients, one key     {etcd_hot}   server CPU {:.0} µs/call",
        etcd_cpu * 1e6
    );
    rows.push(Row { what: "hot", clients: READ_CLIENTS, arca, etcd: etcd_hot, cpu: (arca_cpu, etcd_cpu) });

    let arca_get = {
        let clients = arca_clients.clone();
        move |i: usize, key: u64| {
            let mut secrets = clients[i % clients.len()].secrets();
            let r = pb::GetSecretRequest { vault: "bench".into(), name: format!("k{key}"), ..Default::default() };
            async move { secrets.get_secret(r).await.is_ok_and(|r| !r.into_inner().value.is_empty()) }
        }
    };
    let etcd_range = {
        let clients = etcd_clients.clone();
        move |i: usize, key: u64| {
            let mut kv = clients[i % clients.len()].clone();
            let r = etcd_pb::RangeRequest { key: format!("k{key}").into_bytes(), ..Default::default() };
            async move { kv.range(r).await.is_ok_and(|r| r.into_inner().kvs.len() == 1) }
        }
    };
    let (arca, arca_cpu) = measure(&arca_pids, READ_CLIENTS, seconds, arca_get).await;
    println!("Arca GetSecret  {READ_CLIENTS:>3} clients  {arca}   server CPU {:.0} µs/call", arca_cpu * 1e6);
    let (etcd_read, etcd_cpu) = measure(&etcd_pids, READ_CLIENTS, seconds, etcd_range).await;
    println!("etcd Range      {READ_CLIENTS:>3} clients  {etcd_read}   server CPU {:.0} µs/call", etcd_cpu * 1e6);
    rows.push(Row { what: "read", clients: READ_CLIENTS, arca, etcd: etcd_read, cpu: (arca_cpu, etcd_cpu) });
    drop(etcd);

    println!(
        "bytes on disk per acknowledged write (mean over members): Arca {:.0} B (and {:.0} B of audit log), etcd \
         {:.0} B",
        per(arca_disk, arca_writes),
        per(arca_audit, arca_writes),
        per(etcd_disk, etcd_writes)
    );
    let disk = Disk {
        arca: per(arca_disk, arca_writes),
        arca_audit: per(arca_audit, arca_writes),
        etcd: per(etcd_disk, etcd_writes),
    };

    let cpu = cpu_per_call(&cluster, &arca_clients, seconds, (arca, arca_cpu)).await?;
    let report = report(&rows, &disk, &cpu);
    println!("\n{report}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("versus.md"), &report)?;
    chart(&rows, &out.join("versus.png"))?;
    println!("wrote {} and {}", out.join("versus.md").display(), out.join("versus.png").display());
    Ok(())
}

fn etcd_version() -> String {
    Command::new(ETCD)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
        .unwrap_or_else(|| "etcd".into())
}

pub struct Disk {
    pub arca: f64,
    pub arca_audit: f64,
    pub etcd: f64,
}

/// Server CPU per call: the echo floor, and Arca's P-256 sign, A256KW wrap and secret get.
pub struct Cpu {
    pub echo: f64,
    pub raw_sign: f64,
    pub calls: Vec<(&'static str, f64, Measured)>,
}

async fn cpu_per_call(
    cluster: &TestCluster,
    clients: &[ArcaClient],
    seconds: u64,
    read: (Measured, f64),
) -> anyhow::Result<Cpu> {
    // The echo server runs in its own process, so its CPU time is the server's alone.
    let tls = tempfile::tempdir()?;
    let ca_pem = write_certs(tls.path())?;
    let port = free_port();
    let mut server = Command::new(std::env::current_exe()?)
        .args(["--echo-server", &port.to_string(), "--echo-tls-dir"])
        .arg(tls.path())
        .stdout(Stdio::null())
        .spawn()
        .context("start the echo server")?;
    let channel = endpoint(&format!("https://127.0.0.1:{port}"), &ca_pem)?.connect_lazy();
    let echo_client = echo_pb::echo_client::EchoClient::new(channel);
    let echo = move |_: usize, _: u64| {
        let mut c = echo_client.clone();
        async move { c.echo(echo_pb::EchoMessage { payload: vec![7; 32] }).await.is_ok() }
    };
    let started = Instant::now();
    while !echo(0, 0).await {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = server.kill();
            bail!("the echo server did not start");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (m, echo_cpu) = measure(&[server.id()], READ_CLIENTS, seconds, echo).await;
    let _ = server.kill();
    let _ = server.wait();
    println!("bare gRPC echo  {READ_CLIENTS:>3} clients  {m}   server CPU {:.1} µs/call", echo_cpu * 1e6);

    let pids: Vec<u32> = (0..cluster.nodes.len()).filter_map(|i| cluster.pid(i)).collect();
    let mut calls = Vec::new();
    for (op, stale) in [(crypto::Op::P256Sign, false), (crypto::Op::P256Sign, true), (crypto::Op::A256KwWrap, false)] {
        if !stale {
            crypto::create_key(&clients[0], op).await?;
        }
        let input = crypto::prepare(&clients[0], op).await?;
        let clients = clients.to_vec();
        let call = move |i: usize, _: u64| {
            let (client, input) = (clients[i % clients.len()].clone(), input.clone());
            async move { crypto::call(&client, op, &input, if stale { crate::bounded() } else { None }).await }
        };
        let (m, cpu) = measure(&pids, READ_CLIENTS, seconds, call).await;
        let label = if stale { "P-256 sign (staleness <= 1 s)" } else { op.label() };
        println!("Arca {label:<30} {READ_CLIENTS:>3} clients  {m}   server CPU {:.1} µs/call", cpu * 1e6);
        calls.push((label, cpu, m));
    }
    calls.push(("secret get (linearizable)", read.1, read.0));
    let (raw_rate, _) = crypto::in_process(crypto::Op::P256Sign, Duration::from_secs(2));
    Ok(Cpu { echo: echo_cpu, raw_sign: 1.0 / raw_rate, calls })
}

fn report(rows: &[Row], disk: &Disk, cpu: &Cpu) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::from(
        "| point | clients | Arca | etcd | Arca / etcd | p99 Arca | p99 etcd | server CPU per call, Arca | etcd | failed calls, Arca | etcd |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let what = match r.what {
            "write" => "SetSecret vs Put",
            "hot" => "SetSecret vs Put, all to one key",
            _ => "GetSecret vs Range (linearizable)",
        };
        out.push_str(&format!(
            "| {what} | {} | {:.0} ops/s | {:.0} ops/s | {:.2} | {:.1} ms | {:.1} ms | {:.0} µs | {:.0} µs | {} | {} |\n",
            r.clients,
            r.arca.throughput,
            r.etcd.throughput,
            r.arca.throughput / r.etcd.throughput.max(1e-9),
            ms(r.arca.p99),
            ms(r.etcd.p99),
            r.cpu.0 * 1e6,
            r.cpu.1 * 1e6,
            r.arca.errors,
            r.etcd.errors
        ));
    }
    out.push_str(&format!(
        "\nBytes on disk per acknowledged write (mean over members): Arca {:.0} B (plus {:.0} B of audit log), etcd \
         {:.0} B: ratio {:.2}.\n",
        disk.arca,
        disk.arca_audit,
        disk.etcd,
        disk.arca / disk.etcd.max(1e-9)
    ));
    out.push_str(&format!(
        "\nServer CPU per call at {READ_CLIENTS} clients: bare gRPC echo over TLS {:.1} µs; raw P-256 sign {:.1} µs \
         (one core, in process).\n\n| call | server CPU per call | ratio to echo + raw sign | throughput |\n|---|---:|---:|---:|\n",
        cpu.echo * 1e6,
        cpu.raw_sign * 1e6
    ));
    for (label, per_call, m) in &cpu.calls {
        out.push_str(&format!(
            "| {label} | {:.1} µs | {:.2} | {:.0} ops/s |\n",
            per_call * 1e6,
            per_call / (cpu.echo + cpu.raw_sign),
            m.throughput
        ));
    }
    out
}

/// Throughput and p99 of the write points against clients, Arca against etcd, as a PNG.
fn chart(rows: &[Row], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let font: &'static [u8] = Box::leak(std::fs::read(FONT).context("read the chart's font")?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a font"))?;
    let writes: Vec<&Row> = rows.iter().filter(|r| r.what == "write").collect();
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    fn throughput(m: &Measured) -> f64 {
        m.throughput
    }
    fn p99_ms(m: &Measured) -> f64 {
        m.p99.as_secs_f64() * 1e3
    }
    type Metric = fn(&Measured) -> f64;
    let panels = [
        (&left, "Writes: throughput", "ops/s", throughput as Metric),
        (&right, "Writes: p99 latency", "ms", p99_ms as Metric),
    ];
    for (area, title, unit, value) in panels {
        let top = writes.iter().flat_map(|r| [value(&r.arca), value(&r.etcd)]).fold(1.0, f64::max) * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.3f64..(writes.len() as f64 - 0.7), 0f64..top)?;
        let labels: Vec<usize> = writes.iter().map(|r| r.clients).collect();
        chart
            .configure_mesh()
            .x_labels(writes.len() * 4)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    labels.get(i as usize).map(|c| c.to_string()).unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .x_desc("concurrent clients")
            .y_desc(unit)
            .draw()?;
        for (name, color, pick) in
            [("Arca", BLUE, (|r: &Row| r.arca) as fn(&Row) -> Measured), ("etcd", RED, |r: &Row| r.etcd)]
        {
            let points: Vec<(f64, f64)> = writes.iter().enumerate().map(|(i, r)| (i as f64, value(&pick(r)))).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_load_generator_spreads_calls_over_every_key_and_counts_failures() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
        let record = seen.clone();
        let m = drive(8, 1, move |_, key| {
            let record = record.clone();
            async move {
                record.lock().unwrap().insert(key);
                tokio::task::yield_now().await;
                key % 10 != 0
            }
        })
        .await;
        assert_eq!(seen.lock().unwrap().len() as u64, KEYS, "every key is used");
        assert!(m.done > 0 && m.errors > 0);
        assert!((m.errors as f64 / (m.done + m.errors) as f64 - 0.1).abs() < 0.02, "one call in ten failed");
        assert_eq!(m.throughput, m.done as f64);
    }

    #[test]
    fn cpu_time_is_read_from_proc_for_this_process() {
        let before = cpu_seconds(std::process::id());
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = cpu_seconds(std::process::id()) - before;
        assert!(used > 0.1 && used < 1.0, "busy 0.3 s, measured {used} s");
        assert_eq!(cpu_seconds(u32::MAX), 0.0, "no such process");
    }
}
