//! A client generated in another language from `proto/` alone (Python, grpcio-tools) creates a vault
//! and stores, reads, versions, deletes, recovers, purges, backs up and restores a secret over TLS.
//!
//! Needs a Python with `grpcio` and `grpcio-tools`: `.ci/test` makes one and passes it in `ARCA_PYTHON`.

use std::path::Path;
use std::process::Command;

use arca_testkit::TestCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_protos_works() {
    let python = std::env::var("ARCA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python).args(["-c", "import grpc, grpc_tools"]).status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "{python} lacks grpcio/grpcio-tools: run the suite with .ci/test, which sets ARCA_PYTHON"
    );
    let cluster = TestCluster::start(1).await.unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let stubs = cluster.dir.path().join("py");
    std::fs::create_dir_all(&stubs).unwrap();
    let protos: Vec<String> =
        ["common", "vaults", "secrets", "operator", "cluster"].iter().map(|p| format!("arca/v1/{p}.proto")).collect();
    let status = Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I"])
        .arg(&root)
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .args(&protos)
        .status()
        .unwrap();
    assert!(status.success(), "protoc from grpcio-tools failed");
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
