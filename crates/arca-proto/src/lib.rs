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

/// The encoded `FileDescriptorSet` of every Arca proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/arca_descriptor.bin"));
