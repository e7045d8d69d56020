//! Compiles `proto/` with protox (a pure-Rust protobuf compiler, so no system `protoc` is needed) and
//! generates tonic clients and servers. The descriptor set is kept for gRPC server reflection.
//!
//! Messages that carry secrets get a `Debug` that prints `<redacted>` for those fields instead of
//! prost's derived one (see [`REDACTED`]); `src/lib.rs` tests that every field named like a secret is
//! on that list.

/// (message, fields whose values are secret).
const REDACTED: &[(&str, &[&str])] = &[
    ("arca.v1.InitRequest", &["bootstrap_secret"]),
    ("arca.v1.InitResponse", &["shares", "root_token", "unseal_key"]),
    ("arca.v1.UnsealRequest", &["share"]),
    ("arca.v1.GenerateRootRequest", &["otp", "share"]),
    ("arca.v1.RekeyRequest", &["share"]),
    ("arca.v1.RekeyStatus", &["shares", "unseal_key"]),
    ("arca.v1.Secret", &["value"]),
    ("arca.v1.SetSecretRequest", &["value"]),
    ("arca.v1.JsonWebKey", &["d", "p", "q", "dp", "dq", "qi", "k", "key_hsm"]),
    ("arca.v1.EncryptRequest", &["plaintext"]),
    ("arca.v1.DecryptResponse", &["plaintext"]),
    ("arca.v1.WrapKeyRequest", &["key"]),
    ("arca.v1.UnwrapKeyResponse", &["key"]),
    ("arca.v1.GetRandomBytesResponse", &["value"]),
    ("arca.v1.JoinToken", &["token"]),
    ("arca.v1.JoinClusterRequest", &["token"]),
    ("arca.cluster.v1.JoinRequest", &["token"]),
    ("arca.cluster.v1.DivergenceReceipt", &["join_token"]),
    ("arca.v1.DivergentChange", &["value"]),
    ("arca.v1.TokenRequest", &["client_secret", "client_assertion"]),
    ("arca.v1.TokenResponse", &["access_token"]),
    ("arca.v1.CreatePrincipalResponse", &["password"]),
    ("arca.v1.ResetCredentialResponse", &["password"]),
    ("arca.v1.RevokeAccessTokenRequest", &["access_token"]),
];

fn rust_field(name: &str) -> String {
    const KEYWORDS: &[&str] = &["type", "ref", "match", "fn", "mod", "use", "crate", "self", "super", "impl", "in"];
    if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_owned()
    }
}

/// `Debug` impls for the [`REDACTED`] messages, from their descriptors.
fn redacted_debug(fds: &prost_types::FileDescriptorSet) -> Result<String, String> {
    let mut out = String::new();
    for (full, secret) in REDACTED {
        let (package, name) = full.rsplit_once('.').ok_or("a message name without a package")?;
        let message = fds
            .file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| f.message_type.iter())
            .find(|m| m.name() == name)
            .ok_or_else(|| format!("{full} is not in proto/"))?;
        for field in *secret {
            if !message.field.iter().any(|f| f.name() == *field) {
                return Err(format!("{full} has no field {field}"));
            }
        }
        let module = if package == "arca.v1" { "crate::v1" } else { "crate::cluster::v1" };
        out.push_str(&format!(
            "impl ::core::fmt::Debug for {module}::{name} {{\n    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{\n        f.debug_struct(\"{name}\")\n"
        ));
        let mut oneofs_done = std::collections::BTreeSet::new();
        for field in &message.field {
            let rust = match field.oneof_index {
                Some(i) if !field.proto3_optional() => {
                    if !oneofs_done.insert(i) {
                        continue;
                    }
                    rust_field(message.oneof_decl[i as usize].name())
                }
                _ => rust_field(field.name()),
            };
            if secret.contains(&field.name()) {
                out.push_str(&format!("            .field(\"{}\", &\"<redacted>\")\n", field.name()));
            } else {
                out.push_str(&format!("            .field(\"{}\", &self.{rust})\n", field.name()));
            }
        }
        out.push_str("            .finish()\n    }\n}\n\n");
    }
    Ok(out)
}

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
        "arca/v1/identity.proto",
        "arca/v1/audit.proto",
        "arca/cluster/v1/node.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("arca_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    std::fs::write(out_dir.join("redacted_debug.rs"), redacted_debug(&fds)?)?;
    let skip: Vec<String> = REDACTED.iter().map(|(m, _)| format!(".{m}")).collect();
    tonic_prost_build::configure().build_client(true).build_server(true).skip_debug(skip).compile_fds(fds)?;
    for f in files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    Ok(())
}
