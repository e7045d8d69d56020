//! Generated gRPC types for Arca's public API (`arca.v1`) and node-to-node API (`arca.cluster.v1`).
//!
//! **Architecture Invariant:** this is the only crate that runs protobuf code generation. The `.proto`
//! files in `proto/` are the contract; a client in any language can be generated from them alone.
#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("arca.v1");
}

pub mod cluster {
    pub mod v1 {
        tonic::include_proto!("arca.cluster.v1");
    }
}

// `Debug` for messages that carry secrets: those fields print as `<redacted>` (see build.rs).
include!(concat!(env!("OUT_DIR"), "/redacted_debug.rs"));

/// The encoded `FileDescriptorSet` of every Arca proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/arca_descriptor.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    /// Field names that carry secret values wherever they appear.
    const SECRET_NAMES: &[&str] = &[
        "value",
        "plaintext",
        "share",
        "shares",
        "root_token",
        "unseal_key",
        "token",
        "d",
        "p",
        "q",
        "dp",
        "dq",
        "qi",
        "k",
        "key_hsm",
        "password",
        "client_secret",
        "client_assertion",
        "access_token",
    ];
    /// Fields named like secrets that are not, as (message, field); each needs a reason beside it.
    const NOT_SECRET: &[(&str, &str)] = &[
        // Backup blobs are barrier ciphertext that opens only under this cluster's keyring.
        ("arca.v1.BackupSecretResponse", "value"),
        ("arca.v1.BackupKeyResponse", "value"),
    ];

    #[test]
    fn every_field_named_like_a_secret_prints_redacted() {
        let fds = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let mut missing = Vec::new();
        for file in &fds.file {
            for message in &file.message_type {
                let full = format!("{}.{}", file.package(), message.name());
                for field in &message.field {
                    let bytes_or_string = matches!(
                        field.r#type(),
                        prost_types::field_descriptor_proto::Type::Bytes
                            | prost_types::field_descriptor_proto::Type::String
                    );
                    let secret_name = SECRET_NAMES.contains(&field.name())
                        || (field.name() == "key"
                            && field.r#type() == prost_types::field_descriptor_proto::Type::Bytes);
                    if !(secret_name && bytes_or_string) || NOT_SECRET.contains(&(full.as_str(), field.name())) {
                        continue;
                    }
                    if !redacted(&full, field.name()) {
                        missing.push(format!("{full}.{}", field.name()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "these look like secrets: add them to REDACTED in arca-proto/build.rs (or to NOT_SECRET with a reason): {missing:?}"
        );
    }

    fn redacted(message: &str, field: &str) -> bool {
        let samples: Vec<(&str, String)> = vec![
            (
                "arca.v1.InitResponse",
                format!(
                    "{:?}",
                    super::v1::InitResponse {
                        shares: vec!["S-planted".into()],
                        threshold: 3,
                        root_token: "T-planted".into(),
                        unseal_key: "U-planted".into()
                    }
                ),
            ),
            (
                "arca.v1.GenerateRootRequest",
                format!(
                    "{:?}",
                    super::v1::GenerateRootRequest {
                        otp: "O-planted".into(),
                        share: "S-planted".into(),
                        ..Default::default()
                    }
                ),
            ),
            (
                "arca.v1.RekeyRequest",
                format!("{:?}", super::v1::RekeyRequest { share: "S-planted".into(), ..Default::default() }),
            ),
            (
                "arca.v1.RekeyStatus",
                format!(
                    "{:?}",
                    super::v1::RekeyStatus {
                        shares: vec!["S-planted".into()],
                        unseal_key: "U-planted".into(),
                        ..Default::default()
                    }
                ),
            ),
            (
                "arca.v1.UnsealRequest",
                format!("{:?}", super::v1::UnsealRequest { share: "S-planted".into(), ..Default::default() }),
            ),
            ("arca.v1.Secret", format!("{:?}", super::v1::Secret { value: "V-planted".into(), ..Default::default() })),
            (
                "arca.v1.DivergentChange",
                format!("{:?}", super::v1::DivergentChange { value: "V-planted".into(), ..Default::default() }),
            ),
            (
                "arca.cluster.v1.DivergenceReceipt",
                format!(
                    "{:?}",
                    super::cluster::v1::DivergenceReceipt { join_token: "J-planted".into(), peer: "a:1".into() }
                ),
            ),
            (
                "arca.v1.SetSecretRequest",
                format!("{:?}", super::v1::SetSecretRequest { value: "V-planted".into(), ..Default::default() }),
            ),
            (
                "arca.v1.JsonWebKey",
                format!(
                    "{:?}",
                    super::v1::JsonWebKey {
                        d: b"D-planted".to_vec(),
                        p: b"P-planted".to_vec(),
                        q: b"Q-planted".to_vec(),
                        dp: b"DP-planted".to_vec(),
                        dq: b"DQ-planted".to_vec(),
                        qi: b"QI-planted".to_vec(),
                        k: b"K-planted".to_vec(),
                        key_hsm: b"H-planted".to_vec(),
                        ..Default::default()
                    }
                ),
            ),
            (
                "arca.v1.EncryptRequest",
                format!("{:?}", super::v1::EncryptRequest { plaintext: b"P-planted".to_vec(), ..Default::default() }),
            ),
            (
                "arca.v1.DecryptResponse",
                format!("{:?}", super::v1::DecryptResponse { plaintext: b"P-planted".to_vec(), ..Default::default() }),
            ),
            (
                "arca.v1.WrapKeyRequest",
                format!("{:?}", super::v1::WrapKeyRequest { key: b"K-planted".to_vec(), ..Default::default() }),
            ),
            (
                "arca.v1.UnwrapKeyResponse",
                format!("{:?}", super::v1::UnwrapKeyResponse { key: b"K-planted".to_vec(), ..Default::default() }),
            ),
            (
                "arca.v1.GetRandomBytesResponse",
                format!("{:?}", super::v1::GetRandomBytesResponse { value: b"R-planted".to_vec() }),
            ),
            (
                "arca.v1.JoinToken",
                format!("{:?}", super::v1::JoinToken { token: "J-planted".into(), ..Default::default() }),
            ),
            (
                "arca.v1.JoinClusterRequest",
                format!("{:?}", super::v1::JoinClusterRequest { token: "J-planted".into(), ..Default::default() }),
            ),
            (
                "arca.cluster.v1.JoinRequest",
                format!("{:?}", super::cluster::v1::JoinRequest { token: "J-planted".into() }),
            ),
            (
                "arca.v1.TokenRequest",
                format!(
                    "{:?}",
                    super::v1::TokenRequest {
                        client_secret: "C-planted".into(),
                        client_assertion: "A-planted".into(),
                        ..Default::default()
                    }
                ),
            ),
            (
                "arca.v1.TokenResponse",
                format!("{:?}", super::v1::TokenResponse { access_token: "T-planted".into(), ..Default::default() }),
            ),
            (
                "arca.v1.CreatePrincipalResponse",
                format!(
                    "{:?}",
                    super::v1::CreatePrincipalResponse { password: "P-planted".into(), ..Default::default() }
                ),
            ),
            (
                "arca.v1.RevokeAccessTokenRequest",
                format!("{:?}", super::v1::RevokeAccessTokenRequest { access_token: "T-planted".into() }),
            ),
            (
                "arca.v1.ResetCredentialResponse",
                format!(
                    "{:?}",
                    super::v1::ResetCredentialResponse { password: "P-planted".into(), ..Default::default() }
                ),
            ),
        ];
        let Some((_, text)) = samples.iter().find(|(m, _)| *m == message) else { return false };
        let planted_bytes = |t: &str| t.contains("planted") || t.contains("112, 108, 97, 110, 116, 101, 100");
        assert!(!planted_bytes(text), "{message} prints a secret: {text}");
        assert!(text.contains(&format!("{field}: \"<redacted>\"")), "{message}.{field}: {text}");
        true
    }
}
