//! Compiles the benchmark's own protos (`benches/proto`) with protox: a bare echo service (the floor
//! for the crypto path) and the part of etcd's KV API the side-by-side suite drives.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = ["echo.proto", "etcd_kv.proto"];
    let fds = protox::compile(files, [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    Ok(())
}
