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
mod stages;
mod tasks;
pub mod status;
mod workers;

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::{domain::RunEvent, engine::Delivery};

pub use admin::AdminApi;
pub use artifacts::ArtifactApi;
pub use debates::DebateApi;
pub use missions::MissionApi;
pub use models::ModelApi;
pub use runs::RunApi;
pub use stages::{CardApi, RecipeApi, SkillApi};
pub use tasks::TaskApi;
pub use workers::WorkerApi;

/// The response stream of a server-streaming RPC.
type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A resource's view of its run's event stream (a debate's transcript, a mission's progress):
/// the events `encode` keeps, without the run stream's heartbeats and catch-up notices.
fn resource_events<M: Send + 'static>(
    deliveries: mpsc::Receiver<crate::error::Result<Delivery<RunEvent>>>,
    encode: fn(&RunEvent) -> Option<M>,
) -> ResponseStream<M> {
    let events = ReceiverStream::new(deliveries).flat_map(move |delivery| {
        let events: Vec<Result<M, tonic::Status>> = match delivery {
            Ok(Delivery::Items(events)) => events.iter().filter_map(encode).map(Ok).collect(),
            Ok(Delivery::Heartbeat { .. } | Delivery::Lagged { .. }) => Vec::new(),
            Err(err) => vec![Err(tonic::Status::from(err))],
        };
        futures::stream::iter(events)
    });
    Box::pin(events)
}
