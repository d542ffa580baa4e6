//! The `artifacts` workload of `conclave bench` (`--only artifacts`): how fast `ArtifactService`
//! stores and serves content, against copying the same bytes between files on the same disk,
//! and how much memory a transfer holds.
//!
//! The bench server is started on the store with its artifact directory in a fresh directory
//! next to the bench's SQLite file (in the system's temporary directory with Postgres); the
//! baseline copies are made in that directory too, so both write to the same filesystem.
//! Every artifact is distinct content (a seed of its own), so every upload writes a new blob:
//! identical content is stored once, and the bench would otherwise measure the deduplication.
//!
//! * **copy baseline**: `--small-artifacts` distinct 1 MiB files and one `--large-artifact-mib`
//!   file are written, synced and read once (so they are in the page cache, as a client's bytes
//!   are in memory). Each round then copies them to new files in two ways: `std::fs::copy` and
//!   `File::sync_all` of the copy (what `cp` and a sync do), and a read/write loop with a 1 MiB
//!   buffer and `sync_all`. A third way, the loop into a temporary file then a rename and a sync
//!   of the directory (as the blob store does), is reported beside them. MiB/s per round (all
//!   bytes / the round's time), median of `--artifact-rounds`.
//! * **1 MiB artifacts**: `--small-artifacts` sequential uploads of distinct 1 MiB contents into
//!   a `noop` run, then one whole download of each. MiB/s = all bytes / all the time, each call
//!   timed from its start until its answer (an upload's `Artifact`, which the server sends once
//!   the blob is synced, renamed and recorded) or its stream's end. The same uploads are then
//!   made to a second server, on a runtime like Conclave's and with its HTTP/2 settings, whose
//!   `UploadArtifact` only counts the bytes and answers: what carrying a 1 MiB upload costs,
//!   apart from storing it (reported without a target, for the reading of the figures).
//! * **large artifacts**: `--artifact-rounds` rounds, each the upload of one distinct
//!   `--large-artifact-mib` content and then its whole download; median MiB/s.
//! * **HTTP/2 frames**: the transfers above are made by a client that accepts frames of
//!   [`HTTP2_MAX_FRAME_BYTES`], as Conclave's own clients do (the server accepts the same, so
//!   uploads come in such frames from any client). Downloads come in frames the size the client
//!   accepts, so the 1 MiB and the large downloads are made again, on a connection of their own,
//!   by a client with HTTP/2's default of 16 KiB (grpcurl's, grpc-go's and grpcio's), and
//!   reported beside them without a target.
//! * **concurrent transfers**: `--concurrent-transfers` uploads of 64 MiB each at once, each on
//!   an HTTP/2 connection of its own, then the same downloads at once. A thread samples the
//!   process's `VmRSS` every 5 ms; the figure is (peak − the RSS just before) / transfers. The
//!   server runs in this process, so it includes the clients' buffers: an upper bound of what
//!   the server holds.
//! * **blobs alone**: the same 1 MiB and large contents written to and read back from a
//!   [`BlobStore`] of their own on the same filesystem, without gRPC or the store: what the
//!   server's disk path costs (hash, write, fsync, rename, directory fsyncs; read and verify).
//! * **parts timed alone**: SHA-256 over memory (the server hashes every byte on upload and on
//!   download) and the client's generation of the content, for the reading of the figures.
//!
//! Nothing the bench writes is deleted before its end (then the whole directory is). On a
//! virtual machine, a file written right after another was deleted can be written several times
//! faster: on the machine of `BENCHMARKS.md`, a 1 MiB write loop of 256 MiB usually took
//! 0.17–0.20 s right after a file of that size was deleted and 0.46–0.99 s otherwise, the time
//! being in `write()`, not in the sync. The server deletes nothing while it stores blobs, so no
//! copy and no blob is written just after a deletion by the bench. (The likely cause: that
//! machine's balloon device has free page reporting, so memory left free for a few seconds is
//! handed back to the host and is slow to touch again, while a deletion frees page-cache pages
//! that are fast to reuse. Blob I/O is direct, from pooled buffers, so only the copies and the
//! sources pay for it.)
//!
//! Uploads are sent in 1 MiB chunks, as large as the blob writer's buffer, which hashes and
//! writes one 1 MiB buffer while the next fills. Downloads come in the server's own chunks
//! (`ArtifactsConfig::chunk_bytes`, 1 MiB). The client generates each chunk as it is sent,
//! from one pseudo-random 1 MiB block with the artifact's seed and the chunk's index xored into
//! its first 16 bytes, so it never holds an artifact in memory; it checks only the byte counts
//! (the server verifies the SHA-256 on both ways).
//!
//! Targets: each upload and download at least half the `std::fs::copy` + `sync_all` baseline of
//! the same size ("within 2x of copying the same bytes between files on the same disk").

use std::{
    ffi::CString,
    fs::File,
    io::{self, Read as _, Write as _},
    net::SocketAddr,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::{stream, StreamExt as _};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinSet;
use tokio::net::TcpListener;
use tonic::{
    transport::{Channel, Endpoint},
    Request, Response, Status, Streaming,
};

use super::{
    connect, create, noop_request, number, progress, rpc, task_failed, BenchArgs, BenchServer, CpuSample, Report, Setup, Target,
};
use crate::{
    artifacts::{blob::BlobStore, ArtifactsConfig},
    domain::{Digest, WorkerId},
    engine::EngineConfig,
    error::{Error, Result},
    proto::{self, artifact_service_client::ArtifactServiceClient, download_artifact_response, upload_artifact_request},
    proto::artifact_service_server::{ArtifactService, ArtifactServiceServer},
    server::{self, HTTP2_MAX_FRAME_BYTES},
};

/// A mebibyte.
const MIB: usize = 1 << 20;
/// The size of the small artifacts and baseline files.
const SMALL_BYTES: u64 = MIB as u64;
/// Bytes per upload message, and the buffer of the read/write baseline.
const CHUNK_BYTES: usize = MIB;
/// The size of each concurrent transfer, in MiB.
const CONCURRENT_TRANSFER_MIB: u64 = 64;
/// How often the memory sampler reads `VmRSS`.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(5);
/// The most concurrent transfers a measurement may make.
pub(super) const MAX_CONCURRENT_TRANSFERS: usize = 64;
/// The media type of every upload.
const MEDIA_TYPE: &str = "application/octet-stream";

/// What to measure, as the bench's arguments say.
#[derive(Debug, Clone, Copy)]
struct Plan {
    rounds: usize,
    small: usize,
    large_mib: u64,
    transfers: usize,
}

/// Measures uploads and downloads on a server of its own over the store at `url`, and the copy
/// baseline on the same filesystem, and adds the figures to `report`.
pub(super) async fn bench(setup: Setup, url: &str, args: &BenchArgs, report: &mut Report) -> Result<()> {
    let plan = Plan {
        rounds: args.artifact_rounds,
        small: args.small_artifacts,
        large_mib: args.large_artifact_mib,
        transfers: args.concurrent_transfers,
    };
    let scratch = Scratch::create(url)?;
    check_free_space(&scratch.path, plan)?;
    let blobs = scratch.path.join("blobs");
    let engine = EngineConfig {
        worker_id: WorkerId::new(format!("bench-{}", std::process::id())),
        worker_slots: args.workers,
        ..EngineConfig::default()
    };
    let server = BenchServer::start(url.to_owned(), engine, args.db_connections, ArtifactsConfig::in_dir(&blobs)).await?;
    progress(setup, format_args!("server listening on {}, artifacts in {} ({})", server.addr, blobs.display(), filesystem(&scratch.path)));
    let result = measure(setup, server.addr, plan, &scratch.path, report).await;
    let stopped = server.shutdown().await;
    let removed = scratch.remove();
    result.and(stopped).and(removed)
}

async fn measure(setup: Setup, addr: SocketAddr, plan: Plan, dir: &Path, report: &mut Report) -> Result<()> {
    let content = Content::new();
    let mut seeds = Seeds::default();
    let baseline = copy_baseline(setup, plan, dir, &content, &mut seeds, report).await?;

    let mut runs = connect(addr).await?;
    let run = create(&mut runs, noop_request()).await?;
    let transport = BenchServer::start_artifact_transport().await?;
    let mut clients = Clients {
        conclave: connect_artifacts(addr, Frames::Conclave).await?,
        default: connect_artifacts(addr, Frames::Default).await?,
        transport: connect_artifacts(transport.addr, Frames::Conclave).await?,
    };
    // One uncounted transfer each way: the connections and the server's first blob directories.
    let warm_up = upload(&mut clients.conclave, &run.id, "warm-up".into(), &content, seeds.next(), SMALL_BYTES).await?;
    download(&mut clients.conclave, &warm_up.id, SMALL_BYTES).await?;
    download(&mut clients.default, &warm_up.id, SMALL_BYTES).await?;
    upload(&mut clients.transport, &run.id, "warm-up".into(), &content, seeds.next(), SMALL_BYTES).await?;

    small_artifacts(setup, plan, &mut clients, &run.id, &content, &mut seeds, baseline.small_copy, report).await?;
    transport.shutdown().await?;
    large_artifacts(setup, plan, &mut clients, &run.id, &content, &mut seeds, baseline.large_copy, report).await?;
    concurrent_transfers(setup, addr, plan, &run.id, &content, &mut seeds, report).await?;
    blobs_alone(setup, plan, dir, &content, &mut seeds, report).await?;
    parts_alone(setup, plan, &content, report).await?;
    report.note(format!(
        "artifacts [{setup}]: the bench server runs in this process, so the memory per transfer includes the clients' buffers \
         (an upper bound of the server's); uploads are sent in {} KiB chunks, downloads come in the server's {} KiB chunks; \
         blobs and baseline copies on {}",
        CHUNK_BYTES >> 10,
        ArtifactsConfig::default().chunk_bytes >> 10,
        filesystem(dir),
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The copy baseline.

/// The `std::fs::copy` + `sync_all` medians, in MiB/s, the targets are derived from.
struct Baseline {
    small_copy: f64,
    large_copy: f64,
}

/// How a baseline round copies a file.
#[derive(Debug, Clone, Copy)]
enum CopyMethod {
    /// `std::fs::copy`, then `sync_all` of the copy.
    FsCopy,
    /// A read/write loop with a 1 MiB buffer, then `sync_all` of the copy.
    Loop,
    /// As the blob store stores an upload: the loop into a temporary file, `sync_all`, a rename
    /// to the final name, and a sync of the directory. No target is derived from it: it shows
    /// what the rename and the directory sync add.
    Durable,
}

/// Copies files of the two sizes both ways, `--artifact-rounds` times, on the filesystem of the
/// artifact directory.
async fn copy_baseline(setup: Setup, plan: Plan, dir: &Path, content: &Content, seeds: &mut Seeds, report: &mut Report) -> Result<Baseline> {
    let sources = dir.join("sources");
    let copies = dir.join("copies");
    for made in [&sources, &copies] {
        std::fs::create_dir_all(made).map_err(|err| storage(format_args!("creating {}", made.display()), err))?;
    }
    let large_bytes = plan.large_mib << 20;
    progress(
        setup,
        format_args!(
            "artifacts: copy baseline: preparing {} files of 1 MiB and one of {} MiB in {}",
            plan.small,
            plan.large_mib,
            sources.display()
        ),
    );
    let small_seeds: Vec<u64> = (0..plan.small).map(|_| seeds.next()).collect();
    let large_seed = seeds.next();
    let (small, large) = {
        let (sources, content) = (sources.clone(), content.clone());
        blocking(move || {
            let small = small_seeds
                .iter()
                .enumerate()
                .map(|(index, &seed)| prepare_source(&sources.join(format!("small-{index}")), &content, seed, SMALL_BYTES))
                .collect::<Result<Vec<_>>>()?;
            let large = prepare_source(&sources.join("large"), &content, large_seed, large_bytes)?;
            Ok((small, large))
        })
        .await?
    };

    let mut medians = Vec::new();
    for (workload, files, bytes) in [
        ("artifacts: copy baseline, 1 MiB files".to_owned(), small, SMALL_BYTES * plan.small as u64),
        (format!("artifacts: copy baseline, {} MiB file", plan.large_mib), vec![large], large_bytes),
    ] {
        progress(setup, format_args!("{workload}: {} rounds of {} copies in each of 3 ways", plan.rounds, files.len()));
        let cpu = CpuSample::take(&[]);
        let mut rates = [Rates::default(), Rates::default(), Rates::default()];
        for round in 0..plan.rounds {
            for (method, rates) in [CopyMethod::FsCopy, CopyMethod::Loop, CopyMethod::Durable].into_iter().zip(rates.iter_mut()) {
                let (files, copies) = (files.clone(), copies.clone());
                let elapsed = blocking(move || copy_round(method, round, &files, &copies)).await?;
                rates.push(mib_per_second(bytes, elapsed));
            }
        }
        report.cpu_since(&workload, setup, cpu);
        let [fs_copy, looped, durable] = rates;
        report.add(&workload, setup, "std::fs::copy + sync_all (median)", fs_copy.median(), "MiB/s", None);
        report.add(&workload, setup, "1 MiB read/write loop + sync_all (median)", looped.median(), "MiB/s", None);
        report.add(&workload, setup, "loop + sync_all + rename + dir sync (median)", durable.median(), "MiB/s", None);
        report.note(format!(
            "{workload} [{setup}]: per round, std::fs::copy {fs_copy}; read/write loop {looped}; loop, rename and directory sync {durable}"
        ));
        medians.push(fs_copy.median());
    }
    Ok(Baseline { small_copy: medians.first().copied().unwrap_or(0.0), large_copy: medians.get(1).copied().unwrap_or(0.0) })
}

/// Writes `bytes` of the seed's content to `path`, syncs it, and reads it back once so it is in
/// the page cache.
fn prepare_source(path: &Path, content: &Content, seed: u64, bytes: u64) -> Result<PathBuf> {
    let writing = |err| storage(format_args!("writing {}", path.display()), err);
    let mut file = File::create_new(path).map_err(writing)?;
    for index in 0..bytes.div_ceil(CHUNK_BYTES as u64) {
        file.write_all(&content.chunk(seed, index, chunk_len(bytes, index))).map_err(writing)?;
    }
    file.sync_all().map_err(writing)?;
    drop(file);
    let mut buffer = vec![0; CHUNK_BYTES];
    let mut file = File::open(path).map_err(|err| storage(format_args!("reading {}", path.display()), err))?;
    while file.read(&mut buffer).map_err(|err| storage(format_args!("reading {}", path.display()), err))? > 0 {}
    Ok(path.to_owned())
}

/// Copies each file to a new file in `copies` and syncs the copy; returns the time that took.
/// The copies are kept (see the module's doc: writes into space freed a moment ago are faster).
fn copy_round(method: CopyMethod, round: usize, files: &[PathBuf], copies: &Path) -> Result<Duration> {
    let mut buffer = vec![0; CHUNK_BYTES];
    let targets: Vec<PathBuf> = files
        .iter()
        .map(|source| {
            let name = source.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            copies.join(format!("{method:?}-{round}-{name}"))
        })
        .collect();
    let started = Instant::now();
    for (source, target) in files.iter().zip(&targets) {
        let copied = match method {
            CopyMethod::FsCopy => std::fs::copy(source, target).and_then(|_| File::options().write(true).open(target)?.sync_all()),
            CopyMethod::Loop => copy_loop(source, target, &mut buffer),
            CopyMethod::Durable => {
                let temp = target.with_extension("part");
                copy_loop(source, &temp, &mut buffer).and_then(|()| std::fs::rename(&temp, target)).and_then(|()| File::open(copies)?.sync_all())
            }
        };
        copied.map_err(|err| storage(format_args!("copying {} to {}", source.display(), target.display()), err))?;
    }
    Ok(started.elapsed())
}

/// Copies `source` to a new file `target` through `buffer`, and syncs it.
fn copy_loop(source: &Path, target: &Path, buffer: &mut [u8]) -> io::Result<()> {
    let mut from = File::open(source)?;
    let mut to = File::create_new(target)?;
    loop {
        let read = from.read(buffer)?;
        if read == 0 {
            break;
        }
        to.write_all(&buffer[..read])?;
    }
    to.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Transfers.

/// `--small-artifacts` uploads of 1 MiB one at a time, then a download of each, then as many
/// uploads to the transport-only server.
#[allow(clippy::too_many_arguments)]
async fn small_artifacts(
    setup: Setup,
    plan: Plan,
    clients: &mut Clients,
    run_id: &str,
    content: &Content,
    seeds: &mut Seeds,
    baseline: f64,
    report: &mut Report,
) -> Result<()> {
    let client = &mut clients.conclave;
    let workload = "artifacts: 1 MiB artifacts";
    progress(
        setup,
        format_args!("{workload}: {} uploads one at a time, a download of each, and as many uploads to a server storing nothing", plan.small),
    );
    let bytes = SMALL_BYTES * plan.small as u64;
    let cpu = CpuSample::take(&[]);
    let mut ids = Vec::with_capacity(plan.small);
    let started = Instant::now();
    for index in 0..plan.small {
        let artifact = upload(client, run_id, format!("small/{index}"), content, seeds.next(), SMALL_BYTES).await?;
        ids.push(artifact.id);
    }
    let uploaded_in = started.elapsed();
    let started = Instant::now();
    for id in &ids {
        download(client, id, SMALL_BYTES).await?;
    }
    let downloaded_in = started.elapsed();
    report.cpu_since(workload, setup, cpu);
    let started = Instant::now();
    for index in 0..plan.small {
        upload(&mut clients.transport, run_id, format!("small/{index}"), content, seeds.next(), SMALL_BYTES).await?;
    }
    let transport_in = started.elapsed();
    let started = Instant::now();
    for id in &ids {
        download(&mut clients.default, id, SMALL_BYTES).await?;
    }
    let default_frames_in = started.elapsed();
    let target = Some(Target::at_least(baseline / 2.0));
    report.add(workload, setup, "upload", mib_per_second(bytes, uploaded_in), "MiB/s", target);
    report.add(workload, setup, "download", mib_per_second(bytes, downloaded_in), "MiB/s", target);
    report.add(workload, setup, DEFAULT_FRAMES_DOWNLOAD, mib_per_second(bytes, default_frames_in), "MiB/s", None);
    let per_call_ms = |elapsed: Duration| elapsed.as_secs_f64() * 1000.0 / plan.small as f64;
    report.add(workload, setup, "upload mean time per artifact", per_call_ms(uploaded_in), "ms", None);
    report.add(workload, setup, "download mean time per artifact", per_call_ms(downloaded_in), "ms", None);
    report.add(workload, setup, "upload to a server that stores nothing (the transport alone)", mib_per_second(bytes, transport_in), "MiB/s", None);
    report.add(workload, setup, "upload mean time per artifact, server storing nothing", per_call_ms(transport_in), "ms", None);
    Ok(())
}

/// `--artifact-rounds` uploads of one distinct large content, each downloaded after.
#[allow(clippy::too_many_arguments)]
async fn large_artifacts(
    setup: Setup,
    plan: Plan,
    clients: &mut Clients,
    run_id: &str,
    content: &Content,
    seeds: &mut Seeds,
    baseline: f64,
    report: &mut Report,
) -> Result<()> {
    let client = &mut clients.conclave;
    let workload = format!("artifacts: {} MiB artifact", plan.large_mib);
    let bytes = plan.large_mib << 20;
    progress(setup, format_args!("{workload}: {} rounds of an upload and its download", plan.rounds));
    let cpu = CpuSample::take(&[]);
    let (mut uploads, mut downloads, mut default_frames) = (Rates::default(), Rates::default(), Rates::default());
    for round in 0..plan.rounds {
        let started = Instant::now();
        let artifact = upload(client, run_id, format!("large/{round}"), content, seeds.next(), bytes).await?;
        uploads.push(mib_per_second(bytes, started.elapsed()));
        let started = Instant::now();
        download(client, &artifact.id, bytes).await?;
        downloads.push(mib_per_second(bytes, started.elapsed()));
        let started = Instant::now();
        download(&mut clients.default, &artifact.id, bytes).await?;
        default_frames.push(mib_per_second(bytes, started.elapsed()));
    }
    report.cpu_since(&workload, setup, cpu);
    let target = Some(Target::at_least(baseline / 2.0));
    report.add(&workload, setup, "upload (median)", uploads.median(), "MiB/s", target);
    report.add(&workload, setup, "download (median)", downloads.median(), "MiB/s", target);
    report.add(&workload, setup, "download, client with 16 KiB HTTP/2 frames (median)", default_frames.median(), "MiB/s", None);
    report.note(format!(
        "{workload} [{setup}]: per round, upload {uploads}; download {downloads}; {DEFAULT_FRAMES_DOWNLOAD} {default_frames}"
    ));
    Ok(())
}

/// `--concurrent-transfers` uploads of 64 MiB at once, then their downloads at once, with the
/// process's resident memory sampled.
async fn concurrent_transfers(
    setup: Setup,
    addr: SocketAddr,
    plan: Plan,
    run_id: &str,
    content: &Content,
    seeds: &mut Seeds,
    report: &mut Report,
) -> Result<()> {
    let transfers = plan.transfers;
    let workload = format!("artifacts: {transfers} concurrent transfers of {CONCURRENT_TRANSFER_MIB} MiB");
    progress(setup, format_args!("{workload}: uploads at once, then downloads at once, VmRSS sampled every 5 ms"));
    let bytes = CONCURRENT_TRANSFER_MIB << 20;
    let mut clients = Vec::with_capacity(transfers);
    for _ in 0..transfers {
        clients.push(connect_artifacts(addr, Frames::Conclave).await?);
    }
    let cpu = CpuSample::take(&[]);

    let sampler = RssSampler::start()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, client) in clients.iter().enumerate() {
        let (mut client, run_id, content, seed) = (client.clone(), run_id.to_owned(), content.clone(), seeds.next());
        tasks.spawn(async move { upload(&mut client, &run_id, format!("concurrent/{index}"), &content, seed, bytes).await.map(|artifact| artifact.id) });
    }
    let mut ids = Vec::with_capacity(transfers);
    while let Some(joined) = tasks.join_next().await {
        ids.push(joined.map_err(task_failed)??);
    }
    let uploaded_in = started.elapsed();
    let (upload_baseline, upload_peak) = sampler.finish();

    let sampler = RssSampler::start()?;
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (client, id) in clients.iter().zip(ids) {
        let mut client = client.clone();
        tasks.spawn(async move { download(&mut client, &id, bytes).await });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(task_failed)??;
    }
    let downloaded_in = started.elapsed();
    let (download_baseline, download_peak) = sampler.finish();
    report.cpu_since(&workload, setup, cpu);

    let total = bytes * transfers as u64;
    let per_transfer = |baseline: u64, peak: u64| peak.saturating_sub(baseline) as f64 / 1024.0 / transfers as f64;
    report.add(&workload, setup, "upload: RSS peak − before, per transfer", per_transfer(upload_baseline, upload_peak), "MiB", None);
    report.add(&workload, setup, "download: RSS peak − before, per transfer", per_transfer(download_baseline, download_peak), "MiB", None);
    report.add(&workload, setup, "upload, all transfers", mib_per_second(total, uploaded_in), "MiB/s", None);
    report.add(&workload, setup, "download, all transfers", mib_per_second(total, downloaded_in), "MiB/s", None);
    report.note(format!(
        "{workload} [{setup}]: VmRSS before the uploads {} MiB, peak {} MiB; before the downloads {} MiB, peak {} MiB \
         (server and clients in one process; each transfer on a connection of its own)",
        number(upload_baseline as f64 / 1024.0),
        number(upload_peak as f64 / 1024.0),
        number(download_baseline as f64 / 1024.0),
        number(download_peak as f64 / 1024.0),
    ));
    Ok(())
}

/// Writes `--small-artifacts` 1 MiB contents and one large content to a [`BlobStore`] of their
/// own (on the bench's runtime, beside the server's directory), then reads each back whole,
/// verified, in the server's download chunks: the server's disk path without gRPC and without
/// the artifact's record in the store.
async fn blobs_alone(setup: Setup, plan: Plan, dir: &Path, content: &Content, seeds: &mut Seeds, report: &mut Report) -> Result<()> {
    let root = dir.join("blobs-alone");
    let blobs = BlobStore::open(&root)?;
    let config = ArtifactsConfig::default();
    for (workload, count, bytes) in [
        ("artifacts: 1 MiB blobs alone".to_owned(), plan.small, SMALL_BYTES),
        (format!("artifacts: {} MiB blob alone", plan.large_mib), 1, plan.large_mib << 20),
    ] {
        progress(setup, format_args!("{workload}: {count} × a write to a BlobStore, then a verified read of each"));
        let cpu = CpuSample::take(&[]);
        let mut digests = Vec::with_capacity(count);
        let started = Instant::now();
        for _ in 0..count {
            let mut writer = blobs.writer(config.max_bytes, Some(bytes));
            let seed = seeds.next();
            for index in 0..bytes.div_ceil(CHUNK_BYTES as u64) {
                writer.write(&content.chunk(seed, index, chunk_len(bytes, index))).await?;
            }
            digests.push(writer.finish(None).await?.digest);
        }
        let written_in = started.elapsed();
        let started = Instant::now();
        for digest in &digests {
            read_blob(&blobs, digest, bytes, config.chunk_bytes).await?;
        }
        let read_in = started.elapsed();
        report.cpu_since(&workload, setup, cpu);
        let total = bytes * count as u64;
        report.add(&workload, setup, "BlobStore write + finish (synced)", mib_per_second(total, written_in), "MiB/s", None);
        report.add(&workload, setup, "BlobStore read, verified", mib_per_second(total, read_in), "MiB/s", None);
    }
    Ok(())
}

/// Reads a whole blob in chunks of `chunk_bytes`, as a download does (verified as it streams).
async fn read_blob(blobs: &BlobStore, digest: &Digest, bytes: u64, chunk_bytes: usize) -> Result<()> {
    let reader = blobs.open_blob(digest).await?.ok_or_else(|| Error::Internal(format!("blob {digest} is not stored")))?;
    let mut chunks = std::pin::pin!(reader.chunks(0, None, chunk_bytes).await?);
    let mut read = 0u64;
    while let Some(chunk) = chunks.next().await {
        read += chunk?.len() as u64;
    }
    if read != bytes {
        return Err(Error::Internal(format!("blob {digest}: read {read} bytes, expected {bytes}")));
    }
    Ok(())
}

/// Times, over memory on this thread, what every transferred byte costs besides the disk and the
/// network: one SHA-256 (the server hashes each byte once on upload and once on download), and
/// the client's generation of the content.
async fn parts_alone(setup: Setup, plan: Plan, content: &Content, report: &mut Report) -> Result<()> {
    let workload = "artifacts: parts timed alone";
    let bytes = plan.large_mib << 20;
    progress(setup, format_args!("{workload}: SHA-256 and the content generation over {} MiB in memory", plan.large_mib));
    let content = content.clone();
    let (hashed, generated) = blocking(move || {
        let started = Instant::now();
        let mut hasher = Sha256::new();
        for _ in 0..bytes.div_ceil(CHUNK_BYTES as u64) {
            hasher.update(content.block.as_slice());
        }
        std::hint::black_box(hasher.finalize());
        let hashed = started.elapsed();
        let started = Instant::now();
        for index in 0..bytes.div_ceil(CHUNK_BYTES as u64) {
            std::hint::black_box(content.chunk(1, index, chunk_len(bytes, index)));
        }
        Ok((hashed, started.elapsed()))
    })
    .await?;
    report.add(workload, setup, "SHA-256 (one core)", mib_per_second(bytes, hashed), "MiB/s", None);
    report.add(workload, setup, "client content generation (one core)", mib_per_second(bytes, generated), "MiB/s", None);
    Ok(())
}

type ArtifactClient = ArtifactServiceClient<Channel>;

/// The figure of downloads to a client with HTTP/2's default frames.
const DEFAULT_FRAMES_DOWNLOAD: &str = "download, client with 16 KiB HTTP/2 frames";

/// The bench's two artifact clients, each on an HTTP/2 connection of its own.
struct Clients {
    /// Transfers and targets: frames of [`HTTP2_MAX_FRAME_BYTES`], as Conclave's own clients.
    conclave: ArtifactClient,
    /// Downloads again, with HTTP/2's default 16 KiB frames (as grpcurl, grpc-go and grpcio).
    default: ArtifactClient,
    /// Uploads again, to a server that stores nothing ([`TransportOnly`]).
    transport: ArtifactClient,
}

/// The largest HTTP/2 frame a bench client accepts, which sets the frames of its downloads.
#[derive(Debug, Clone, Copy)]
enum Frames {
    /// [`HTTP2_MAX_FRAME_BYTES`], as Conclave's own clients.
    Conclave,
    /// HTTP/2's default, 16 KiB, as most gRPC clients.
    Default,
}

/// An artifact client on an HTTP/2 connection of its own, configured as the other bench clients
/// but for its frames.
async fn connect_artifacts(addr: SocketAddr, frames: Frames) -> Result<ArtifactClient> {
    let max_frame_bytes = match frames {
        Frames::Conclave => Some(HTTP2_MAX_FRAME_BYTES),
        Frames::Default => None,
    };
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|err| Error::Internal(format!("bad server address {addr}: {err}")))?
        .tcp_nodelay(true)
        .max_frame_size(max_frame_bytes)
        .connect()
        .await
        .map_err(|err| Error::Internal(format!("cannot connect to the bench server at {addr}: {err}")))?;
    Ok(ArtifactServiceClient::new(channel))
}

/// Uploads `bytes` of the seed's content as `name` in the run, generating each chunk as the
/// stream asks for it; checks the size the server stored.
async fn upload(client: &mut ArtifactClient, run_id: &str, name: String, content: &Content, seed: u64, bytes: u64) -> Result<proto::Artifact> {
    let header = proto::UploadArtifactRequest {
        part: Some(upload_artifact_request::Part::Header(proto::UploadHeader {
            run_id: run_id.to_owned(),
            name,
            media_type: MEDIA_TYPE.into(),
            size: Some(bytes),
            ..Default::default()
        })),
    };
    let content = content.clone();
    let chunks = (0..bytes.div_ceil(CHUNK_BYTES as u64)).map(move |index| proto::UploadArtifactRequest {
        part: Some(upload_artifact_request::Part::Chunk(content.chunk(seed, index, chunk_len(bytes, index)).into())),
    });
    let messages = stream::iter(std::iter::once(header).chain(chunks));
    let artifact = client.upload_artifact(messages).await.map_err(rpc("UploadArtifact"))?.into_inner();
    if artifact.size != bytes {
        return Err(Error::Internal(format!("artifact {} was stored with {} bytes, {bytes} were sent", artifact.id, artifact.size)));
    }
    Ok(artifact)
}

/// Downloads the whole artifact, counting its bytes; fails unless they are `bytes`.
async fn download(client: &mut ArtifactClient, id: &str, bytes: u64) -> Result<()> {
    let request = proto::DownloadArtifactRequest {
        artifact: Some(proto::ArtifactRef { id: id.to_owned(), ..Default::default() }),
        ..Default::default()
    };
    let mut stream = client.download_artifact(request).await.map_err(rpc("DownloadArtifact"))?.into_inner();
    let (mut head, mut received) = (false, 0u64);
    while let Some(message) = stream.message().await.map_err(rpc("DownloadArtifact"))? {
        match message.part {
            Some(download_artifact_response::Part::Artifact(_)) => head = true,
            Some(download_artifact_response::Part::Chunk(chunk)) => received += chunk.len() as u64,
            None => {}
        }
    }
    if !head || received != bytes {
        return Err(Error::Internal(format!("artifact {id}: downloaded {received} bytes (head: {head}), expected {bytes}")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The transport alone.

/// An `ArtifactService` whose uploads store nothing: each counts the bytes that came and answers
/// with their number. Served with Conclave's HTTP/2 settings on a runtime like its own, it times
/// what carrying an upload costs apart from storing it. It takes uploads only.
struct TransportOnly;

/// The refusal of every call but an upload.
fn uploads_only() -> Status {
    Status::unimplemented("the bench's transport-only server takes uploads only")
}

#[tonic::async_trait]
impl ArtifactService for TransportOnly {
    async fn upload_artifact(&self, request: Request<Streaming<proto::UploadArtifactRequest>>) -> Result<Response<proto::Artifact>, Status> {
        let mut messages = request.into_inner();
        let mut size = 0;
        while let Some(message) = messages.message().await? {
            if let Some(upload_artifact_request::Part::Chunk(chunk)) = message.part {
                size += chunk.len() as u64;
            }
        }
        Ok(Response::new(proto::Artifact { size, ..Default::default() }))
    }

    type DownloadArtifactStream = stream::Empty<Result<proto::DownloadArtifactResponse, Status>>;

    async fn download_artifact(&self, _: Request<proto::DownloadArtifactRequest>) -> Result<Response<Self::DownloadArtifactStream>, Status> {
        Err(uploads_only())
    }

    async fn get_artifact(&self, _: Request<proto::GetArtifactRequest>) -> Result<Response<proto::Artifact>, Status> {
        Err(uploads_only())
    }

    async fn list_artifacts(&self, _: Request<proto::ListArtifactsRequest>) -> Result<Response<proto::ListArtifactsResponse>, Status> {
        Err(uploads_only())
    }

    async fn delete_artifact(&self, _: Request<proto::DeleteArtifactRequest>) -> Result<Response<proto::DeleteArtifactResponse>, Status> {
        Err(uploads_only())
    }

    async fn get_artifact_lineage(&self, _: Request<proto::GetArtifactLineageRequest>) -> Result<Response<proto::ArtifactLineage>, Status> {
        Err(uploads_only())
    }
}

/// Serves [`TransportOnly`] on `listener` until `stop` resolves.
pub(super) async fn serve_transport_only(listener: TcpListener, stop: impl Future<Output = ()> + Send) -> Result<()> {
    let service = ArtifactServiceServer::new(TransportOnly).max_decoding_message_size(super::MAX_MESSAGE_BYTES);
    server::http2_server()
        .add_service(service)
        .serve_with_incoming_shutdown(server::incoming(listener), stop)
        .await
        .map_err(|err| Error::Internal(format!("the transport-only server failed: {err}")))
}

// ---------------------------------------------------------------------------------------------
// Content.

/// Distinct content for each seed, made a chunk at a time: one pseudo-random 1 MiB block, with
/// the seed xored into its first 8 bytes and the chunk's index into the next 8.
#[derive(Clone)]
struct Content {
    block: Arc<Vec<u8>>,
}

impl Content {
    /// The block, from splitmix64.
    fn new() -> Self {
        let mut state = 0x5eed_c0de_u64;
        let mut block = Vec::with_capacity(CHUNK_BYTES);
        while block.len() < CHUNK_BYTES {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut mixed = state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            block.extend_from_slice(&(mixed ^ (mixed >> 31)).to_le_bytes());
        }
        Self { block: Arc::new(block) }
    }

    /// Chunk `index` of the seed's content, `len` bytes (at most the block's).
    fn chunk(&self, seed: u64, index: u64, len: usize) -> Vec<u8> {
        let mut chunk = self.block[..len.min(self.block.len())].to_vec();
        for (at, value) in [(0, seed), (8, index)] {
            if let Some(bytes) = chunk.get_mut(at..at + 8) {
                for (byte, mask) in bytes.iter_mut().zip(value.to_le_bytes()) {
                    *byte ^= mask;
                }
            }
        }
        chunk
    }
}

/// The length of chunk `index` of content of `bytes` bytes.
fn chunk_len(bytes: u64, index: u64) -> usize {
    let left = bytes.saturating_sub(index * CHUNK_BYTES as u64);
    usize::try_from(left.min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES)
}

/// A seed for each content, never the same twice in a bench.
#[derive(Default)]
struct Seeds(u64);

impl Seeds {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// Figures.

/// MiB/s of some rounds, in their order.
#[derive(Default)]
struct Rates(Vec<f64>);

impl Rates {
    fn push(&mut self, rate: f64) {
        self.0.push(rate);
    }

    /// The median (the mean of the middle two of an even count).
    fn median(&self) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        match sorted.len() {
            0 => 0.0,
            len if len % 2 == 1 => sorted[len / 2],
            len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
        }
    }
}

impl std::fmt::Display for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rates: Vec<String> = self.0.iter().map(|rate| number(*rate)).collect();
        write!(f, "{} MiB/s", rates.join(", "))
    }
}

fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    if elapsed.is_zero() { 0.0 } else { bytes as f64 / MIB as f64 / elapsed.as_secs_f64() }
}

// ---------------------------------------------------------------------------------------------
// Memory.

/// A thread reading this process's `VmRSS` every [`RSS_SAMPLE_INTERVAL`] and keeping the peak.
struct RssSampler {
    /// `VmRSS` when sampling began, in KiB, after free heap memory was returned to the system.
    before: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start() -> Result<Self> {
        release_free_memory();
        let before = rss_kib().ok_or_else(|| Error::Internal("cannot read VmRSS from /proc/self/status".into()))?;
        let peak = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-rss".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(rss) = rss_kib() {
                            peak.fetch_max(rss, Ordering::Relaxed);
                        }
                        std::thread::sleep(RSS_SAMPLE_INTERVAL);
                    }
                })
                .map_err(|err| Error::Internal(format!("cannot start the memory sampler: {err}")))?
        };
        Ok(Self { before, peak, stop, thread: Some(thread) })
    }

    /// Stops sampling; returns `VmRSS` before and at its peak, in KiB.
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(rss) = rss_kib() {
            self.peak.fetch_max(rss, Ordering::Relaxed);
        }
        (self.before, self.peak.load(Ordering::Relaxed))
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// This process's resident memory, in KiB.
fn rss_kib() -> Option<u64> {
    status_rss_kib(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `VmRSS` of a status file, in KiB.
fn status_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.get("VmRSS:".len()..)?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Returns the allocator's free memory to the system, so that memory freed by an earlier phase
/// and kept by the allocator is not reused unseen by the next (glibc only).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free memory of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Files.

/// The bench's directory of blobs and copies, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A fresh directory next to the SQLite file of `url`, or in the system's temporary
    /// directory for Postgres.
    fn create(url: &str) -> Result<Self> {
        let parent = url
            .strip_prefix("sqlite://")
            .and_then(|file| Path::new(file).parent())
            .filter(|parent| !parent.as_os_str().is_empty())
            .map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = parent.join(format!("conclave-bench-artifacts-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).map_err(|err| storage(format_args!("creating {}", path.display()), err))?;
        Ok(Self { path })
    }

    fn remove(mut self) -> Result<()> {
        let path = std::mem::take(&mut self.path);
        std::fs::remove_dir_all(&path).map_err(|err| storage(format_args!("removing the bench directory {}", path.display()), err))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Fails unless the filesystem has room for everything the bench writes (it keeps it all until
/// it ends), with 1 GiB to spare.
fn check_free_space(dir: &Path, plan: Plan) -> Result<()> {
    let rounds = plan.rounds as u64;
    // The sources, three copies per round, the uploads and the blobs written alone.
    let large = (1 + 3 * rounds + rounds + 1) * (plan.large_mib << 20);
    let small = (1 + 3 * rounds + 1 + 1) * SMALL_BYTES * plan.small as u64;
    let needed = large + small + plan.transfers as u64 * (CONCURRENT_TRANSFER_MIB << 20) + (1 << 30);
    let Some(free) = free_bytes(dir) else { return Ok(()) };
    if free < needed {
        return Err(Error::invalid(
            "large_artifact_mib",
            format!("the bench needs about {} MiB of disk in {}, which has {} MiB free", needed >> 20, dir.display(), free >> 20),
        ));
    }
    Ok(())
}

/// The bytes free to unprivileged users on the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let name = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statvfs` is a valid value of the plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a NUL-terminated path and `stat` a valid, writable `statvfs`.
    if unsafe { libc::statvfs(name.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// The type of the filesystem holding `path`, as `statfs` names it.
fn filesystem(path: &Path) -> String {
    let Ok(name) = CString::new(path.as_os_str().as_bytes()) else { return "an unknown filesystem".into() };
    // SAFETY: an all-zero `statfs` is a valid value of the plain C struct.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is a NUL-terminated path and `stat` a valid, writable `statfs`.
    if unsafe { libc::statfs(name.as_ptr(), &mut stat) } != 0 {
        return "an unknown filesystem".into();
    }
    #[allow(clippy::useless_conversion)]
    let kind = i64::from(stat.f_type);
    match kind {
        0xef53 => "ext2/3/4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0x794c_7630 => "overlayfs".into(),
        other => format!("filesystem type {other:#x}"),
    }
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(task_failed)?
}

fn storage(what: std::fmt::Arguments<'_>, err: io::Error) -> Error {
    Error::Internal(format!("artifacts bench: {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_differ_by_seed_and_chunk() {
        let content = Content::new();
        let first = content.chunk(1, 0, CHUNK_BYTES);
        assert_eq!(first.len(), CHUNK_BYTES);
        assert_ne!(first, content.chunk(2, 0, CHUNK_BYTES));
        assert_ne!(first, content.chunk(1, 1, CHUNK_BYTES));
        assert_eq!(first, content.chunk(1, 0, CHUNK_BYTES));
        assert_eq!(first[16..], content.block[16..], "only the first 16 bytes vary");
        assert_eq!(content.chunk(1, 0, 10).len(), 10);
    }

    #[test]
    fn chunks_cover_the_content() {
        let bytes = 3 * CHUNK_BYTES as u64 + 5;
        let lens: Vec<usize> = (0..bytes.div_ceil(CHUNK_BYTES as u64)).map(|index| chunk_len(bytes, index)).collect();
        assert_eq!(lens, [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 5]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_transport_only_server_counts_an_upload_and_takes_nothing_else() {
        let server = BenchServer::start_artifact_transport().await.unwrap();
        let mut client = connect_artifacts(server.addr, Frames::Conclave).await.unwrap();
        let bytes = 2 * CHUNK_BYTES as u64 + 7;
        let answer = upload(&mut client, "any-run", "any-name".into(), &Content::new(), 1, bytes).await.unwrap();
        assert_eq!(answer.size, bytes);
        let request = proto::GetArtifactRequest::default();
        let refused = client.get_artifact(request).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused:?}");
        server.shutdown().await.unwrap();
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(Rates(vec![3.0, 1.0, 2.0]).median(), 2.0);
        assert_eq!(Rates(vec![4.0, 1.0, 2.0, 3.0]).median(), 2.5);
        assert_eq!(Rates::default().median(), 0.0);
    }

    #[test]
    fn status_files_give_the_resident_memory() {
        assert_eq!(status_rss_kib("Name:\tconclave\nVmRSS:\t   12345 kB\nThreads:\t9\n"), Some(12345));
        assert_eq!(status_rss_kib("Name:\tconclave\n"), None);
    }

    #[test]
    fn the_artifacts_workload_is_named_alone_and_takes_positive_counts() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parse = |line: &[&str]| <Cli as clap::Parser>::try_parse_from(line).unwrap().args;

        let args = parse(&["bench", "--only", "artifacts"]);
        assert_eq!(args.only, Some(super::super::Workload::Artifacts));
        assert_eq!((args.artifact_rounds, args.small_artifacts, args.large_artifact_mib, args.concurrent_transfers), (3, 64, 256, 8));
        assert!(super::super::validate(&args).is_ok());
        for zero in ["--artifact-rounds", "--small-artifacts", "--large-artifact-mib", "--concurrent-transfers"] {
            assert!(super::super::validate(&parse(&["bench", "--only", "artifacts", zero, "0"])).is_err(), "{zero} 0");
        }
        assert!(super::super::validate(&parse(&["bench", "--only", "artifacts", "--large-artifact-mib", "5000"])).is_err());
        assert!(super::super::validate(&parse(&["bench", "--only", "artifacts", "--concurrent-transfers", "65"])).is_err());
        assert!(super::super::validate(&parse(&["bench", "--store", "postgres", "--processes", "2", "--only", "artifacts"])).is_err());
    }
}
