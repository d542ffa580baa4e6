//! Conclave: a durable control plane for multi-agent LLM work, served over gRPC.
//!
//! Data flows one way: a request enters [`api`], which calls the domain ([`engine`] and
//! [`workflows`]); the domain calls [`store`]. Nothing below `api` knows tonic; nothing but
//! `store` knows SQL.

pub mod api;
pub mod artifacts;
pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod error;
pub mod models;
pub mod process;
pub mod server;
pub mod store;
pub mod workflows;
pub mod worker;

/// The generated protobuf messages, gRPC servers and clients of package `conclave.v1`.
pub mod proto {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("conclave.v1");

    /// The encoded descriptor set of every Conclave proto, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/conclave_descriptor.bin"));
}

pub use error::{Error, Result};
