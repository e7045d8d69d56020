//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed) and
//! generates tonic clients and servers. The descriptor set is kept for gRPC server reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build script compiled for another checkout must not look in that one's tree.
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "arca/v1/common.proto",
        "arca/v1/vaults.proto",
        "arca/v1/secrets.proto",
        "arca/v1/keys.proto",
        "arca/v1/crypto.proto",
        "arca/v1/operator.proto",
        "arca/v1/cluster.proto",
        "arca/cluster/v1/node.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("arca_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    Ok(())
}
