//! Artifacts end to end, through a real server and the generated client, on both stores:
//! versions and etags, ranged downloads that resume a broken one, content stored once,
//! concurrent writers, the lease rule, a crash in the middle of an upload, every bad input,
//! collection of unreferenced content, and lineage across runs with a replay that reads what
//! the original read.

mod support;

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use conclave::{
    artifacts::{ArtifactRef, ArtifactsConfig, UploadHeader},
    domain::ArtifactKind,
    engine::{RunContext, Workflow, WorkflowError},
    models::ModelsConfig,
    proto::{
        self, admin_service_client::AdminServiceClient, artifact_service_client::ArtifactServiceClient,
        download_artifact_response, upload_artifact_request::Part,
    },
};
use serde_json::{json, Value};
use sha2::Digest as _;
use support::{artifacts_dir, create, fast_config, test_registry, wait_for_state, StepCounter, TestDatabase, TestServer};
use tonic::{transport::Channel, Code};
use tonic_types::StatusExt;

const WAIT: Duration = Duration::from_secs(20);

type Client = ArtifactServiceClient<Channel>;

async fn artifact_client(server: &TestServer) -> Client {
    let channel = Channel::from_shared(format!("http://{}", server.addr)).expect("uri").connect().await.expect("connect");
    ArtifactServiceClient::new(channel).max_decoding_message_size(64 << 20)
}

/// A finished `noop` run to hold artifacts.
async fn finished_run(server: &TestServer) -> String {
    let mut runs = server.client().await;
    let run = runs.create_run(create("noop", json!({}))).await.expect("create").into_inner();
    wait_for_state(&mut runs, &run.id, &[proto::RunState::Succeeded], WAIT).await;
    run.id
}

fn header(run_id: &str, name: &str) -> proto::UploadHeader {
    proto::UploadHeader { run_id: run_id.to_owned(), name: name.to_owned(), media_type: "text/plain".into(), ..Default::default() }
}

fn messages(header: proto::UploadHeader, content: &[u8], chunk: usize) -> Vec<proto::UploadArtifactRequest> {
    let mut messages = vec![proto::UploadArtifactRequest { part: Some(Part::Header(header)) }];
    messages.extend(content.chunks(chunk.max(1)).map(|chunk| proto::UploadArtifactRequest { part: Some(Part::Chunk(chunk.to_vec().into())) }));
    messages
}

async fn upload(client: &mut Client, header: proto::UploadHeader, content: &[u8]) -> Result<proto::Artifact, tonic::Status> {
    client.upload_artifact(tokio_stream::iter(messages(header, content, 64 << 10))).await.map(tonic::Response::into_inner)
}

fn by_name(run_id: &str, name: &str, version: u32) -> Option<proto::ArtifactRef> {
    Some(proto::ArtifactRef { run_id: run_id.to_owned(), name: name.to_owned(), version, ..Default::default() })
}

fn by_id(id: &str) -> Option<proto::ArtifactRef> {
    Some(proto::ArtifactRef { id: id.to_owned(), ..Default::default() })
}

/// Downloads a range; returns the artifact and the bytes.
async fn download(client: &mut Client, reference: Option<proto::ArtifactRef>, offset: u64, length: u64) -> Result<(proto::Artifact, Vec<u8>), tonic::Status> {
    let request = proto::DownloadArtifactRequest { artifact: reference, offset, length, consumer: None };
    let mut stream = client.download_artifact(request).await?.into_inner();
    let mut artifact = None;
    let mut content = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(download_artifact_response::Part::Artifact(found)) => artifact = Some(found),
            Some(download_artifact_response::Part::Chunk(chunk)) => content.extend_from_slice(&chunk),
            None => {}
        }
    }
    Ok((artifact.expect("the first message carries the artifact"), content))
}

/// A text field of a run's output.
fn output_text(run: &proto::Run, field: &str) -> String {
    use prost_types::value::Kind;
    let Some(Kind::StructValue(output)) = run.output.clone().and_then(|value| value.kind) else { panic!("no output: {run:?}") };
    match output.fields.get(field).and_then(|value| value.kind.clone()) {
        Some(Kind::StringValue(text)) => text,
        other => panic!("output field {field} is {other:?}"),
    }
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data).iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Deterministic pseudo-random content.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

fn violation_fields(status: &tonic::Status) -> Vec<String> {
    status
        .get_error_details()
        .bad_request()
        .map(|bad| bad.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The blob files (and temporary files) under an artifact directory.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

fn blobs(database: &TestDatabase) -> Vec<String> {
    files_under(&artifacts_dir(&database.url).join("sha256"))
}

fn temp_files(database: &TestDatabase) -> Vec<String> {
    files_under(&artifacts_dir(&database.url).join("tmp"))
}

async fn start(database: &TestDatabase) -> TestServer {
    TestServer::start(&database.url, test_registry(&StepCounter::default()), fast_config()).await
}

/// A server whose artifacts are collected as soon as nothing references them, with a small
/// size limit.
async fn start_strict(database: &TestDatabase, registry: conclave::engine::Registry) -> TestServer {
    let artifacts = ArtifactsConfig {
        max_bytes: 1 << 20,
        collect_after: Duration::ZERO,
        abandon_upload_after: Duration::ZERO,
        ..ArtifactsConfig::in_dir(artifacts_dir(&database.url))
    };
    TestServer::start_full(&database.url, registry, fast_config(), ModelsConfig::default(), artifacts).await
}

async fn versions_etags_and_listing(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;

    let first = upload(&mut client, header(&run_id, "out/report.md"), b"draft one").await.expect("first version");
    assert_eq!((first.version, first.size, first.sha256.as_str()), (1, 9, sha256_hex(b"draft one").as_str()));
    assert_eq!(first.etag, first.id);
    let mut next = header(&run_id, "out/report.md");
    next.expected_etag = first.etag.clone();
    let second = upload(&mut client, next.clone(), b"draft two").await.expect("a write naming the latest etag");
    assert_eq!(second.version, 2);

    // The etag of version 1 is stale now: refused, and nothing is added.
    let stale = upload(&mut client, next, b"lost update").await.expect_err("a stale etag");
    assert_eq!((stale.code(), reason(&stale).as_str()), (Code::Aborted, "ETAG_MISMATCH"), "{stale:?}");
    let mut absent = header(&run_id, "out/report.md");
    absent.if_absent = true;
    let exists = upload(&mut client, absent, b"new").await.expect_err("if_absent on an existing name");
    assert_eq!((exists.code(), reason(&exists).as_str()), (Code::Aborted, "ARTIFACT_EXISTS"));

    let latest = client.get_artifact(proto::GetArtifactRequest { artifact: by_name(&run_id, "out/report.md", 0) }).await.unwrap().into_inner();
    assert_eq!(latest.id, second.id);
    let (old, bytes) = download(&mut client, by_name(&run_id, "out/report.md", 1), 0, 0).await.expect("version 1");
    assert_eq!((old.id.as_str(), bytes.as_slice()), (first.id.as_str(), b"draft one".as_slice()));

    let mut labelled = header(&run_id, "notes/a.txt");
    labelled.kind = proto::ArtifactKind::Document as i32;
    labelled.labels.insert("stage".into(), "review".into());
    upload(&mut client, labelled, b"a").await.expect("labelled");
    upload(&mut client, header(&run_id, "notes/b.txt"), b"b").await.expect("plain");

    let list = |name_prefix: &str, all_versions: bool| proto::ListArtifactsRequest {
        run_id: run_id.clone(),
        name_prefix: name_prefix.to_owned(),
        all_versions,
        ..Default::default()
    };
    let names = |response: proto::ListArtifactsResponse| -> Vec<(String, u32)> {
        response.artifacts.into_iter().map(|artifact| (artifact.name, artifact.version)).collect()
    };
    let latest_only = client.list_artifacts(list("", false)).await.unwrap().into_inner();
    assert_eq!(names(latest_only), [("out/report.md".to_owned(), 2), ("notes/a.txt".into(), 1), ("notes/b.txt".into(), 1)]);
    let every = client.list_artifacts(list("out/", true)).await.unwrap().into_inner();
    assert_eq!(names(every), [("out/report.md".to_owned(), 1), ("out/report.md".into(), 2)]);
    let mut by_label = list("", false);
    by_label.labels.insert("stage".into(), "review".into());
    assert_eq!(names(client.list_artifacts(by_label).await.unwrap().into_inner()), [("notes/a.txt".to_owned(), 1)]);
    let by_kind = proto::ListArtifactsRequest { kind: proto::ArtifactKind::Document as i32, ..list("", false) };
    assert_eq!(names(client.list_artifacts(by_kind).await.unwrap().into_inner()), [("notes/a.txt".to_owned(), 1)]);
    // A prefix is literal: `_` and `%` are not wildcards.
    assert!(client.list_artifacts(list("notes_", false)).await.unwrap().into_inner().artifacts.is_empty());

    // Pages of one, then the token refuses other filters.
    let mut page = proto::ListArtifactsRequest { page_size: 1, ..list("", true) };
    let mut seen = Vec::new();
    loop {
        let response = client.list_artifacts(page.clone()).await.unwrap().into_inner();
        seen.extend(response.artifacts.iter().map(|artifact| artifact.id.clone()));
        if response.next_page_token.is_empty() {
            break;
        }
        page.page_token = response.next_page_token;
    }
    assert_eq!(seen.len(), 4);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "oldest first, by id");
    let first_page = client.list_artifacts(proto::ListArtifactsRequest { page_size: 1, ..list("", true) }).await.unwrap().into_inner();
    let other_filters = proto::ListArtifactsRequest { page_token: first_page.next_page_token, ..list("out/", true) };
    let refused = client.list_artifacts(other_filters).await.expect_err("a token of another listing");
    assert_eq!(violation_fields(&refused), ["page_token"]);
    server.shutdown().await;
}

async fn ranged_downloads_resume_a_broken_one(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;
    let data = content(3 << 20, 7);
    let artifact = upload(&mut client, header(&run_id, "big.bin"), &data).await.expect("upload");

    // Read a little, then drop the stream: the download broke.
    let request = proto::DownloadArtifactRequest { artifact: by_id(&artifact.id), ..Default::default() };
    let mut stream = client.download_artifact(request).await.unwrap().into_inner();
    let mut received = Vec::new();
    while received.len() < 300_000 {
        match stream.message().await.unwrap().and_then(|message| message.part) {
            Some(download_artifact_response::Part::Chunk(chunk)) => received.extend_from_slice(&chunk),
            Some(download_artifact_response::Part::Artifact(_)) => {}
            None => panic!("the stream ended early"),
        }
    }
    drop(stream);

    // Resume from what arrived.
    let (_, rest) = download(&mut client, by_id(&artifact.id), received.len() as u64, 0).await.expect("resume");
    received.extend_from_slice(&rest);
    assert_eq!(received.len(), data.len());
    assert_eq!(sha256_hex(&received), artifact.sha256);

    // A range in the middle, and the edges.
    let (_, middle) = download(&mut client, by_id(&artifact.id), 1_000_000, 12_345).await.unwrap();
    assert_eq!(middle, data[1_000_000..1_012_345]);
    let (_, none) = download(&mut client, by_id(&artifact.id), data.len() as u64, 0).await.unwrap();
    assert!(none.is_empty());
    let past = download(&mut client, by_id(&artifact.id), data.len() as u64 + 1, 0).await.expect_err("past the end");
    assert_eq!(violation_fields(&past), ["offset"]);
    server.shutdown().await;
}

async fn identical_content_is_stored_once(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let (run_a, run_b) = (finished_run(&server).await, finished_run(&server).await);
    let data = content(200_000, 3);
    let a = upload(&mut client, header(&run_a, "x.bin"), &data).await.unwrap();
    let b = upload(&mut client, header(&run_b, "copy/of/x.bin"), &data).await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.sha256, b.sha256);
    let stored: Vec<String> = blobs(database).into_iter().filter(|path| path.ends_with(&a.sha256)).collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(temp_files(database).is_empty());
    server.shutdown().await;
}

async fn concurrent_writers_never_lose_a_version(database: &TestDatabase) {
    let server = start(database).await;
    let client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;

    // Unconditional writers: each gets a version of its own.
    let writers: Vec<_> = (0..8)
        .map(|index| {
            let (mut client, run_id) = (client.clone(), run_id.clone());
            tokio::spawn(async move { upload(&mut client, header(&run_id, "shared.txt"), &content(50_000 + index, index as u64)).await })
        })
        .collect();
    let mut versions = Vec::new();
    for writer in writers {
        let artifact = writer.await.unwrap().expect("an unconditional write");
        let index = artifact.size as usize - 50_000;
        assert_eq!(sha256_hex(&content(50_000 + index, index as u64)), artifact.sha256, "each version has its own writer's bytes");
        versions.push(artifact.version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u32>>());

    // Writers conditioned on the same etag: exactly one wins.
    let latest = client.clone().get_artifact(proto::GetArtifactRequest { artifact: by_name(&run_id, "shared.txt", 0) }).await.unwrap().into_inner();
    let racers: Vec<_> = (0..8)
        .map(|index| {
            let (mut client, mut header) = (client.clone(), header(&run_id, "shared.txt"));
            header.expected_etag = latest.etag.clone();
            tokio::spawn(async move { upload(&mut client, header, format!("racer {index}").as_bytes()).await })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(artifact) => {
                assert_eq!(artifact.version, 9);
                won += 1;
            }
            Err(status) => assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "ETAG_MISMATCH")),
        }
    }
    assert_eq!(won, 1);
    server.shutdown().await;
}

async fn a_stale_lease_cannot_write(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let mut runs = server.client().await;
    let run = runs.create_run(create("stubborn", json!({ "ms": 60_000 }))).await.unwrap().into_inner();
    let running = wait_for_state(&mut runs, &run.id, &[proto::RunState::Running], WAIT).await;
    let epoch = running.lease.expect("a running run has a lease").epoch;

    let mut current = header(&run.id, "out.txt");
    current.lease_epoch = Some(epoch);
    upload(&mut client, current, b"by the holder").await.expect("the lease holder writes");
    let mut stale = header(&run.id, "out.txt");
    stale.lease_epoch = Some(epoch - 1);
    let refused = upload(&mut client, stale, b"by a former holder").await.expect_err("a stale epoch");
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::Aborted, "STALE_LEASE"));
    let listed = client.list_artifacts(proto::ListArtifactsRequest { run_id: run.id.clone(), all_versions: true, ..Default::default() }).await;
    assert_eq!(listed.unwrap().into_inner().artifacts.len(), 1);

    // Once the run has finished, no lease holds it.
    runs.force_fail_run(proto::ForceFailRunRequest { id: run.id.clone(), reason: "done".into() }).await.unwrap();
    let mut after = header(&run.id, "out.txt");
    after.lease_epoch = Some(epoch);
    let refused = upload(&mut client, after, b"late").await.expect_err("a finished run");
    assert_eq!(reason(&refused), "STALE_LEASE");
    server.shutdown().await;
}

async fn a_crash_during_an_upload_leaves_no_blob(database: &TestDatabase) {
    let server = start_strict(database, test_registry(&StepCounter::default())).await;
    let mut client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;
    let data = content(512 << 10, 11);
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let mut uploading = client.clone();
    let upload_task = tokio::spawn(async move { uploading.upload_artifact(tokio_stream::wrappers::ReceiverStream::new(receiver)).await });
    sender.send(proto::UploadArtifactRequest { part: Some(Part::Header(header(&run_id, "partial.bin"))) }).await.unwrap();
    sender.send(proto::UploadArtifactRequest { part: Some(Part::Chunk(data[..200_000].to_vec().into())) }).await.unwrap();
    // The chunk reached the server's temporary file.
    let deadline = tokio::time::Instant::now() + WAIT;
    while temp_files(database).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.crash().await;
    assert!(upload_task.await.unwrap().is_err());
    drop(sender);
    drop(client);

    let server = start_strict(database, test_registry(&StepCounter::default())).await;
    client = artifact_client(&server).await;
    let listed = client.list_artifacts(proto::ListArtifactsRequest { run_id: run_id.clone(), ..Default::default() }).await.unwrap();
    assert!(listed.into_inner().artifacts.is_empty());
    assert!(blobs(database).is_empty(), "a partial upload became a blob: {:?}", blobs(database));
    // Its temporary file goes with the next retention pass (the restarted server's first
    // maintenance tick may already have taken it).
    let mut admin = AdminServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap());
    admin.prune_history(proto::PruneHistoryRequest::default()).await.unwrap();
    assert!(temp_files(database).is_empty(), "{:?}", temp_files(database));
    server.shutdown().await;
}

async fn bad_uploads_are_refused_and_leave_nothing(database: &TestDatabase) {
    let server = start_strict(database, test_registry(&StepCounter::default())).await;
    let mut client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;

    for (name, field) in [("../escape", "header.name"), ("/abs", "header.name"), ("a\u{7}b", "header.name"), ("", "header.name")] {
        let refused = upload(&mut client, header(&run_id, name), b"x").await.expect_err(name);
        assert_eq!((refused.code(), violation_fields(&refused)), (Code::InvalidArgument, vec![field.to_owned()]), "{name:?}");
    }
    let long = "n".repeat(513);
    assert_eq!(violation_fields(&upload(&mut client, header(&run_id, &long), b"x").await.unwrap_err()), ["header.name"]);
    let mut bad_labels = header(&run_id, "ok.txt");
    bad_labels.labels.insert("Bad Key".into(), "v".into());
    assert_eq!(violation_fields(&upload(&mut client, bad_labels, b"x").await.unwrap_err()), ["header.labels[Bad Key]"]);

    // Content that does not match what the header declares.
    let mut wrong_digest = header(&run_id, "ok.txt");
    wrong_digest.sha256 = sha256_hex(b"something else");
    let refused = upload(&mut client, wrong_digest, b"the real content").await.expect_err("a digest mismatch");
    assert_eq!(violation_fields(&refused), ["sha256"]);
    let mut truncated = header(&run_id, "ok.txt");
    truncated.size = Some(1000);
    let refused = upload(&mut client, truncated, &[1u8; 999]).await.expect_err("a truncated upload");
    assert_eq!(violation_fields(&refused), ["size"]);
    let refused = upload(&mut client, header(&run_id, "huge.bin"), &content((1 << 20) + 1, 5)).await.expect_err("past the limit");
    assert_eq!((refused.code(), reason(&refused).as_str()), (Code::FailedPrecondition, "ARTIFACT_TOO_LARGE"));
    let mut declared_huge = header(&run_id, "huge.bin");
    declared_huge.size = Some(2 << 20);
    assert_eq!(violation_fields(&upload(&mut client, declared_huge, b"x").await.unwrap_err()), ["header.size"]);
    // A trailer digest that contradicts the header's.
    let mut both = header(&run_id, "ok.txt");
    both.sha256 = sha256_hex(b"abc");
    let mut stream = messages(both, b"abc", 10);
    stream.push(proto::UploadArtifactRequest { part: Some(Part::Finish(proto::UploadFinish { sha256: sha256_hex(b"abd") })) });
    let refused = client.upload_artifact(tokio_stream::iter(stream)).await.expect_err("two digests");
    assert_eq!(violation_fields(&refused), ["finish.sha256"]);
    assert!(blobs(database).is_empty(), "{:?}", blobs(database));
    assert!(temp_files(database).is_empty(), "{:?}", temp_files(database));

    // The stream's shape.
    let no_header = vec![proto::UploadArtifactRequest { part: Some(Part::Chunk(b"x".to_vec().into())) }];
    assert_eq!(violation_fields(&client.upload_artifact(tokio_stream::iter(no_header)).await.unwrap_err()), ["header"]);
    let unknown_run = upload(&mut client, header(&conclave::domain::RunId::new().to_string(), "x.txt"), b"x").await.unwrap_err();
    assert_eq!(unknown_run.code(), Code::NotFound);
    // A trailer digest alone is checked too.
    let mut stream = messages(header(&run_id, "trailer.txt"), b"abc", 10);
    stream.push(proto::UploadArtifactRequest { part: Some(Part::Finish(proto::UploadFinish { sha256: sha256_hex(b"abc") })) });
    let artifact = client.upload_artifact(tokio_stream::iter(stream)).await.expect("a trailer digest").into_inner();

    // Deleted: gone for readers, and its content collected.
    let deleted = client.delete_artifact(proto::DeleteArtifactRequest { artifact: by_id(&artifact.id) }).await.unwrap().into_inner();
    assert_eq!(deleted.deleted, 1);
    assert_eq!(download(&mut client, by_id(&artifact.id), 0, 0).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client.delete_artifact(proto::DeleteArtifactRequest { artifact: by_id(&artifact.id) }).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(blobs(database).len(), 1);
    let mut admin = AdminServiceClient::new(Channel::from_shared(format!("http://{}", server.addr)).unwrap().connect().await.unwrap());
    let pruned = admin.prune_history(proto::PruneHistoryRequest::default()).await.unwrap().into_inner();
    assert_eq!(pruned.blobs_removed, 1);
    assert!(blobs(database).is_empty());

    // References name one version one way.
    let both_ways = proto::ArtifactRef { id: artifact.id.clone(), name: "x".into(), ..Default::default() };
    let refused = client.get_artifact(proto::GetArtifactRequest { artifact: Some(both_ways) }).await.unwrap_err();
    assert_eq!(violation_fields(&refused), ["artifact"]);
    let refused = client.get_artifact(proto::GetArtifactRequest { artifact: None }).await.unwrap_err();
    assert_eq!(violation_fields(&refused), ["artifact.run_id", "artifact.name"]);
    server.shutdown().await;
}

/// A write the store refuses (an unknown run, a name that exists, a stale etag) ends with its
/// refusal while the client is still streaming: the checks run as the content arrives, and
/// their refusal does not wait for the rest of it. Nothing is left behind.
async fn a_refused_upload_ends_before_its_content_is_sent(database: &TestDatabase) {
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let run_id = finished_run(&server).await;
    let first = upload(&mut client, header(&run_id, "taken.txt"), b"first").await.expect("the first version");
    upload(&mut client, header(&run_id, "taken.txt"), b"second").await.expect("the second version");
    let mut taken = header(&run_id, "taken.txt");
    taken.if_absent = true;
    let mut stale = header(&run_id, "taken.txt");
    stale.expected_etag = first.etag;
    let refusals = [
        (header(&conclave::domain::RunId::new().to_string(), "x.txt"), Code::NotFound, "RUN_NOT_FOUND"),
        (taken, Code::Aborted, "ARTIFACT_EXISTS"),
        (stale, Code::Aborted, "ETAG_MISMATCH"),
    ];
    for (refused_header, code, why) in refusals {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let mut uploading = client.clone();
        let call = tokio::spawn(async move { uploading.upload_artifact(tokio_stream::wrappers::ReceiverStream::new(receiver)).await });
        sender.send(proto::UploadArtifactRequest { part: Some(Part::Header(refused_header)) }).await.unwrap();
        // (The refusal may end the call before this chunk is sent.)
        let _ = sender.send(proto::UploadArtifactRequest { part: Some(Part::Chunk(content(300_000, 3).into())) }).await;
        // The stream stays open: the refusal comes without the rest of the content.
        let refused = tokio::time::timeout(WAIT, call).await.expect("refused while the stream is open").unwrap().unwrap_err();
        assert_eq!((refused.code(), reason(&refused).as_str()), (code, why), "{refused:?}");
        drop(sender);
    }
    let listed = client.list_artifacts(proto::ListArtifactsRequest { run_id: run_id.clone(), all_versions: true, ..Default::default() }).await;
    assert_eq!(listed.unwrap().into_inner().artifacts.len(), 2);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !temp_files(database).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "temp files left behind: {:?}", temp_files(database));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(blobs(database).len(), 2, "only the two versions' content is stored");
    server.shutdown().await;
}

/// `writer`: stores the plan it is given as `plan.md`.
struct Writer;

#[async_trait]
impl Workflow for Writer {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let plan = ctx.input().get("plan").and_then(Value::as_str).unwrap_or_default().to_owned();
        let header = UploadHeader { name: "plan.md".into(), kind: ArtifactKind::Document, media_type: "text/markdown".into(), ..Default::default() };
        let record = ctx.put_artifact("write-plan", header, plan.as_bytes()).await?;
        Ok(json!({ "artifact": record.id }))
    }
}

/// `reviewer`: reads another run's `plan.md` and stores a review of it.
struct Reviewer;

#[async_trait]
impl Workflow for Reviewer {
    async fn run(&self, ctx: &RunContext) -> Result<Value, WorkflowError> {
        let source = ctx.input().get("source").and_then(Value::as_str).unwrap_or_default().to_owned();
        let reference = ArtifactRef { run_id: source, name: "plan.md".into(), ..Default::default() };
        let (read, plan) = ctx.get_artifact("read-plan", reference).await?;
        let plan = String::from_utf8_lossy(&plan).into_owned();
        let mut header = UploadHeader { name: "review.md".into(), kind: ArtifactKind::Report, ..Default::default() };
        header.producer.tool = Some("reviewer".into());
        header.producer.tool_version = Some("1.0".into());
        let review = ctx.put_artifact("write-review", header, format!("looks good: {plan}").as_bytes()).await?;
        Ok(json!({ "plan": plan, "plan_version": read.version, "review": review.id }))
    }
}

async fn lineage_across_two_runs_and_an_exact_replay(database: &TestDatabase) {
    let mut registry = test_registry(&StepCounter::default());
    registry.register("writer", Writer).register("reviewer", Reviewer);
    let server = TestServer::start(&database.url, registry, fast_config()).await;
    let mut client = artifact_client(&server).await;
    let mut runs = server.client().await;

    let writer = runs.create_run(create("writer", json!({ "plan": "ship it" }))).await.unwrap().into_inner();
    wait_for_state(&mut runs, &writer.id, &[proto::RunState::Succeeded], WAIT).await;
    let reviewer = runs.create_run(create("reviewer", json!({ "source": writer.id }))).await.unwrap().into_inner();
    let reviewed = wait_for_state(&mut runs, &reviewer.id, &[proto::RunState::Succeeded], WAIT).await;
    assert_eq!(output_text(&reviewed, "plan"), "ship it");

    let plan = client.get_artifact(proto::GetArtifactRequest { artifact: by_name(&writer.id, "plan.md", 0) }).await.unwrap().into_inner();
    let review = client.get_artifact(proto::GetArtifactRequest { artifact: by_name(&reviewer.id, "review.md", 0) }).await.unwrap().into_inner();
    let producer = review.producer.clone().unwrap();
    assert_eq!((producer.step.as_str(), producer.tool.as_str(), producer.tool_version.as_str()), ("write-review", "reviewer", "1.0"));
    assert_eq!(review.kind, proto::ArtifactKind::Report as i32);

    let lineage = |id: &str| proto::GetArtifactLineageRequest { artifact: by_id(id), depth: 0 };
    let down = client.get_artifact_lineage(lineage(&plan.id)).await.unwrap().into_inner();
    assert_eq!(down.downstream.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [review.id.as_str()]);
    assert!(down.upstream.is_empty());
    assert_eq!(down.uses.len(), 1);
    assert_eq!((down.uses[0].run_id.as_str(), down.uses[0].step.as_str()), (reviewer.id.as_str(), "read-plan"));
    let up = client.get_artifact_lineage(lineage(&review.id)).await.unwrap().into_inner();
    assert_eq!(up.upstream.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [plan.id.as_str()]);
    assert!(up.downstream.is_empty() && !up.truncated);
    let shallow = client.get_artifact_lineage(proto::GetArtifactLineageRequest { artifact: by_id(&review.id), depth: 21 }).await;
    assert_eq!(violation_fields(&shallow.unwrap_err()), ["depth"]);

    // A newer plan does not change what a replay reads: the journal names the version read.
    let mut newer = header(&writer.id, "plan.md");
    newer.expected_etag = plan.etag.clone();
    upload(&mut client, newer, b"scrap it").await.expect("a newer plan");
    let replay = runs.replay_run(proto::ReplayRunRequest { id: reviewer.id.clone(), ..Default::default() }).await.unwrap().into_inner();
    let replayed = wait_for_state(&mut runs, &replay.id, &[proto::RunState::Succeeded, proto::RunState::Failed], WAIT).await;
    assert_eq!(replayed.state, proto::RunState::Succeeded as i32, "{:?}", replayed.error);
    assert_eq!(replayed.output, reviewed.output);
    // The exact replay wrote nothing of its own.
    let written = client.list_artifacts(proto::ListArtifactsRequest { run_id: replay.id.clone(), ..Default::default() }).await.unwrap();
    assert!(written.into_inner().artifacts.is_empty());
    server.shutdown().await;
}

/// A remote worker's writes and reads go through `ArtifactService` under its lease: the same
/// rules as in the server's own pool, and the read is recorded for lineage.
async fn a_remote_worker_host_writes_and_reads_over_grpc(database: &TestDatabase) {
    use conclave::{
        domain::{Lease, RunId, Timestamp, WorkerId},
        engine::AttemptHost,
        worker::{RemoteHost, Servers},
    };
    let server = start(database).await;
    let mut client = artifact_client(&server).await;
    let mut runs = server.client().await;
    let run = runs.create_run(create("stubborn", json!({ "ms": 60_000 }))).await.unwrap().into_inner();
    let running = wait_for_state(&mut runs, &run.id, &[proto::RunState::Running], WAIT).await;
    let held = running.lease.expect("a lease");
    let run_id: RunId = run.id.parse().unwrap();
    let lease = Lease { run_id, worker_id: WorkerId::new(held.worker_id), epoch: held.epoch, expires_at: Timestamp::now() };
    let host = RemoteHost::new(Servers::new(&[format!("http://{}", server.addr)]).unwrap(), Duration::from_secs(15));

    let data = content(3 << 20, 21);
    let header = UploadHeader { run_id: run.id.clone(), name: "remote/out.bin".into(), lease_epoch: Some(lease.epoch), ..Default::default() };
    let written = host.put_artifact(&lease, header.clone(), &data).await.expect("a write under the lease");
    assert_eq!((written.version, written.size, written.sha256.as_str()), (1, data.len() as u64, sha256_hex(&data).as_str()));
    let stale = Lease { epoch: lease.epoch - 1, ..lease.clone() };
    let refused = host.put_artifact(&stale, UploadHeader { lease_epoch: Some(stale.epoch), ..header }, b"x").await;
    assert!(matches!(refused, Err(conclave::error::Error::StaleLease { .. })), "{refused:?}");

    let reference = ArtifactRef { run_id: run.id.clone(), name: "remote/out.bin".into(), ..Default::default() };
    let (read, bytes) = host.get_artifact(&lease, &reference, "read-back").await.expect("a read");
    assert_eq!((read.id.as_str(), bytes.len()), (written.id.as_str(), data.len()));
    assert_eq!(host.read_artifact(&read).await.expect("a read by record"), data);
    let lineage = client.get_artifact_lineage(proto::GetArtifactLineageRequest { artifact: by_id(&written.id), depth: 1 }).await.unwrap().into_inner();
    assert_eq!(lineage.uses.iter().map(|used| used.step.as_str()).collect::<Vec<_>>(), ["read-back"]);
    runs.force_fail_run(proto::ForceFailRunRequest { id: run.id.clone(), reason: "done".into() }).await.unwrap();
    server.shutdown().await;
}

on_both_stores!(
    a_remote_worker_host_writes_and_reads_over_grpc,
    versions_etags_and_listing,
    ranged_downloads_resume_a_broken_one,
    identical_content_is_stored_once,
    concurrent_writers_never_lose_a_version,
    a_stale_lease_cannot_write,
    a_crash_during_an_upload_leaves_no_blob,
    bad_uploads_are_refused_and_leave_nothing,
    a_refused_upload_ends_before_its_content_is_sent,
    lineage_across_two_runs_and_an_exact_replay,
);
