//! The gRPC adapters: one file per service, each decoding a request, calling the domain and
//! encoding the answer. `status.rs` maps every domain error to a gRPC status in one place;
//! `convert.rs` holds the conversions between protobuf and domain types.

mod admin;
mod artifacts;
mod debates;
mod missions;
pub(crate) mod convert;
mod models;
mod runs;
pub mod status;
mod workers;

use std::pin::Pin;

use futures::Stream;

pub use admin::AdminApi;
pub use artifacts::ArtifactApi;
pub use debates::DebateApi;
pub use missions::MissionApi;
pub use models::ModelApi;
pub use runs::RunApi;
pub use workers::WorkerApi;

/// The response stream of a server-streaming RPC.
type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;
