//! A 256 MiB artifact streamed in and out through a real server on both stores, with the
//! memory of the process watched throughout: a transfer holds a few chunks, never the artifact.
//! (A test binary of its own, so no other test's allocations blur the figure.)

mod support;

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use conclave::proto::{self, artifact_service_client::ArtifactServiceClient, download_artifact_response, upload_artifact_request::Part};
use serde_json::json;
use sha2::Digest as _;
use support::{create, fast_config, test_registry, wait_for_state, StepCounter, TestDatabase, TestServer};
use tonic::transport::Channel;

const SIZE: u64 = 256 << 20;
const CHUNK: usize = 1 << 20;
/// What the process may grow by while the transfers run: a few chunks per transfer in each of
/// the client, the server and the HTTP/2 windows, and the allocator's slack, with the two
/// stores' tests running at once. Holding one whole artifact would take 256 MiB.
const MAX_GROWTH: u64 = 160 << 20;

/// The resident set of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Samples the resident set every few milliseconds until stopped; returns the peak.
fn watch_memory() -> (Arc<AtomicBool>, Arc<AtomicU64>) {
    let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(resident_bytes())));
    let (stopping, peaking) = (stop.clone(), peak.clone());
    std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            peaking.fetch_max(resident_bytes(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    (stop, peak)
}

/// Chunk `index` of the artifact: deterministic bytes, made when sent.
fn chunk(index: u64) -> Vec<u8> {
    let mut state = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

async fn a_256_mib_artifact_streams_in_and_out_in_bounded_memory(database: &TestDatabase) {
    let server = TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await;
    let mut runs = server.client().await;
    let run = runs.create_run(create("noop", json!({}))).await.unwrap().into_inner();
    wait_for_state(&mut runs, &run.id, &[proto::RunState::Succeeded], Duration::from_secs(20)).await;
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap();
    let mut client = ArtifactServiceClient::new(channel);

    let baseline = resident_bytes();
    let (stop, peak) = watch_memory();
    let chunks = SIZE / CHUNK as u64;
    let expected = {
        let mut hasher = sha2::Sha256::new();
        for index in 0..chunks {
            hasher.update(chunk(index));
        }
        hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect::<String>()
    };
    let header = proto::UploadHeader {
        run_id: run.id.clone(),
        name: "big/model-weights.bin".into(),
        size: Some(SIZE),
        sha256: expected.clone(),
        ..Default::default()
    };
    let messages = futures::stream::iter(
        std::iter::once(proto::UploadArtifactRequest { part: Some(Part::Header(header)) })
            .chain((0..chunks).map(|index| proto::UploadArtifactRequest { part: Some(Part::Chunk(chunk(index).into())) })),
    );
    let artifact = client.upload_artifact(messages).await.expect("upload").into_inner();
    assert_eq!((artifact.size, artifact.sha256.as_str()), (SIZE, expected.as_str()));

    let request = proto::DownloadArtifactRequest { artifact: Some(proto::ArtifactRef { id: artifact.id.clone(), ..Default::default() }), ..Default::default() };
    let mut stream = client.download_artifact(request).await.expect("download").into_inner();
    let (mut hasher, mut received) = (sha2::Sha256::new(), 0u64);
    while let Some(message) = stream.message().await.expect("a whole download") {
        if let Some(download_artifact_response::Part::Chunk(bytes)) = message.part {
            received += bytes.len() as u64;
            hasher.update(&bytes);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let digest: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!((received, digest), (SIZE, expected));
    let growth = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!("{}: resident set grew by {} MiB at most while 256 MiB went in and out", database.url, growth >> 20);
    assert!(growth < MAX_GROWTH, "the process grew by {} MiB: a transfer held the artifact in memory", growth >> 20);
    server.shutdown().await;
}

on_both_stores!(a_256_mib_artifact_streams_in_and_out_in_bounded_memory);
