//! The gRPC adapters: one file per service, each decoding a request, calling the domain and
//! encoding the answer. `status.rs` maps every domain error to a gRPC status in one place;
//! `convert.rs` holds the conversions between protobuf and domain types.

mod convert;
mod runs;
pub mod status;

pub use runs::RunApi;
