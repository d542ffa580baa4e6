//! `conclave artifacts`: upload a file, download one (resuming a broken download at the byte
//! it reached), list them. Transfers show a progress bar on a terminal, none otherwise.

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    CliError, CliResult, Options, Outcome,
    client::connect,
    error::{code_name, is_transient},
    input,
    output::{self, Fields, Table, json_line, line},
    runs::Paging,
};
use crate::proto::{self, ArtifactKind, download_artifact_response, upload_artifact_request::Part};

/// Upload chunks: well under the default gRPC message limit.
const CHUNK: usize = 256 << 10;
/// Reconnection attempts in a row, without a byte received in between, before giving up.
const ATTEMPTS: u32 = 12;

#[derive(Debug, Args)]
pub struct ArtifactsArgs {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    command: ArtifactsCommand,
}

#[derive(Debug, Subcommand)]
enum ArtifactsCommand {
    /// Upload a file as a new version of a run's artifact; prints the artifact.
    Put {
        /// The run the artifact belongs to.
        run: String,
        /// The file to upload.
        file: PathBuf,
        /// Its name within the run (default: the file's name), e.g. `out/report.md`.
        #[arg(long)]
        name: Option<String>,
        /// The media type (default: guessed from the file's extension).
        #[arg(long)]
        media_type: Option<String>,
        /// file, document, patch, report, tool_output, model_output or url.
        #[arg(long, value_parser = input::artifact_kind)]
        kind: Option<ArtifactKind>,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", short, value_parser = input::label)]
        labels: Vec<(String, String)>,
        /// Write only if the name has no version yet (exit code 4 otherwise).
        #[arg(long)]
        if_absent: bool,
        /// Write only while this etag is the name's latest version (exit code 4 otherwise).
        #[arg(long)]
        expected_etag: Option<String>,
    },
    /// Download an artifact, by id or as `<run>/<name>`, to a file (-o) or stdout.
    Get {
        /// The artifact's id, or `<run id>/<name>` for the latest version of a name.
        artifact: String,
        /// Write to this file (replaced once the download is complete and verified).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// With `<run>/<name>`: this version instead of the latest.
        #[arg(long)]
        version: Option<u32>,
    },
    /// List artifacts (the latest version of each name), oldest first.
    List {
        /// Only this run's artifacts.
        run: Option<String>,
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only this kind.
        #[arg(long, value_parser = input::artifact_kind)]
        kind: Option<ArtifactKind>,
        /// Only artifacts with this label, `key=value` (repeatable).
        #[arg(long = "label", short, value_parser = input::label)]
        labels: Vec<(String, String)>,
        /// Every version, not only the latest of each name.
        #[arg(long)]
        all_versions: bool,
        /// The workspace (default `default`).
        #[arg(long)]
        workspace: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
}

pub async fn run(args: ArtifactsArgs) -> CliResult {
    let json = args.options.json;
    let conn = connect(&args.options).await?;
    let mut client = conn.artifacts();
    match args.command {
        ArtifactsCommand::Put { run, file, name, media_type, kind, labels, if_absent, expected_etag } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_name()
                    .and_then(|name| name.to_str())
                    .map(str::to_owned)
                    .ok_or_else(|| CliError::usage(format!("{}: give the artifact a --name", file.display())))?,
            };
            let opened = std::fs::File::open(&file).map_err(|err| CliError::usage(format!("cannot read {}: {err}", file.display())))?;
            let metadata = opened.metadata().map_err(|err| CliError::usage(format!("cannot read {}: {err}", file.display())))?;
            if !metadata.is_file() {
                return Err(CliError::usage(format!("{} is not a file", file.display())));
            }
            let size = metadata.len();
            let header = proto::UploadHeader {
                run_id: run,
                name,
                kind: kind.map_or(0, i32::from),
                media_type: media_type.unwrap_or_else(|| guess_media_type(&file).to_owned()),
                labels: input::labels(&labels),
                expected_etag: expected_etag.unwrap_or_default(),
                if_absent,
                size: Some(size),
                ..Default::default()
            };
            let bar = progress(size, json, "upload");
            let (tx, rx) = tokio::sync::mpsc::channel::<proto::UploadArtifactRequest>(4);
            let reader_bar = bar.clone();
            let reader = tokio::spawn(async move {
                let message = |part| proto::UploadArtifactRequest { part: Some(part) };
                if tx.send(message(Part::Header(header))).await.is_err() {
                    return Ok(());
                }
                let mut file = tokio::fs::File::from_std(opened);
                let mut hasher = Sha256::new();
                loop {
                    let mut buffer = vec![0; CHUNK];
                    let read = file.read(&mut buffer).await?;
                    if read == 0 {
                        break;
                    }
                    buffer.truncate(read);
                    hasher.update(&buffer);
                    if tx.send(message(Part::Chunk(buffer.into()))).await.is_err() {
                        return Ok(());
                    }
                    reader_bar.inc(read as u64);
                }
                let sha256 = format!("{:x}", hasher.finalize());
                let _ = tx.send(message(Part::Finish(proto::UploadFinish { sha256 }))).await;
                Ok::<(), std::io::Error>(())
            });
            let uploaded = client.upload_artifact(ReceiverStream::new(rx)).await;
            bar.finish_and_clear();
            match reader.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => return Err(CliError::other(format!("reading {}: {err}", file.display()))),
                Err(err) => return Err(CliError::other(format!("reading {}: {err}", file.display()))),
            }
            let artifact = uploaded?.into_inner();
            print_artifact(&artifact, json);
        }
        ArtifactsCommand::Get { artifact, output, version } => {
            let reference = parse_ref(&artifact, version)?;
            let mut sink = match &output {
                Some(path) => Sink::file(path)?,
                None => Sink::Stdout(std::io::stdout()),
            };
            let artifact = download(&mut client, reference, &mut sink, json).await?;
            sink.finish()?;
            if let Some(path) = output {
                if json {
                    json_line(&artifact);
                } else {
                    line(format!(
                        "{}: {} ({} version {}, sha256 {})",
                        path.display(),
                        output::bytes(artifact.size),
                        artifact.name,
                        artifact.version,
                        artifact.sha256
                    ));
                }
            }
        }
        ArtifactsCommand::List { run, prefix, kind, labels, all_versions, workspace, paging } => {
            let artifacts = paging
                .fetch(|page_token| {
                    let mut client = client.clone();
                    let request = proto::ListArtifactsRequest {
                        workspace: workspace.clone().unwrap_or_default(),
                        run_id: run.clone().unwrap_or_default(),
                        name_prefix: prefix.clone().unwrap_or_default(),
                        kind: kind.map_or(0, i32::from),
                        labels: input::labels(&labels),
                        all_versions,
                        page_size: paging.page_size.unwrap_or(0),
                        page_token,
                    };
                    async move {
                        let page = client.list_artifacts(request).await?.into_inner();
                        Ok((page.artifacts, page.next_page_token))
                    }
                })
                .await?;
            if json {
                artifacts.iter().for_each(json_line);
            } else {
                let mut table = Table::new(&["ID", "RUN", "NAME", "VERSION", "SIZE", "KIND", "MEDIA TYPE", "CREATED (UTC)"]);
                for artifact in &artifacts {
                    table.row(vec![
                        artifact.id.clone(),
                        artifact.run_id.clone(),
                        artifact.name.clone(),
                        artifact.version.to_string(),
                        output::bytes(artifact.size),
                        kind_name(artifact.kind),
                        artifact.media_type.clone(),
                        output::time(artifact.created_at.as_ref()),
                    ]);
                }
                table.print();
            }
        }
    }
    Ok(Outcome::Done)
}

/// `<run>/<name>` (a name may hold slashes; an id holds none), or an id.
fn parse_ref(arg: &str, version: Option<u32>) -> Result<proto::ArtifactRef, CliError> {
    match arg.split_once('/') {
        Some((run_id, name)) if !run_id.is_empty() && !name.is_empty() => Ok(proto::ArtifactRef {
            run_id: run_id.to_owned(),
            name: name.to_owned(),
            version: version.unwrap_or(0),
            ..Default::default()
        }),
        Some(_) => Err(CliError::usage(format!("`{arg}`: expected an artifact id or <run id>/<name>"))),
        None if version.is_some() => Err(CliError::usage("--version goes with <run id>/<name>, not an id")),
        None => Ok(proto::ArtifactRef { id: arg.to_owned(), ..Default::default() }),
    }
}

/// Where downloaded content goes: stdout, or a temporary file beside the target, renamed over
/// it once the content is complete and verified.
enum Sink {
    Stdout(std::io::Stdout),
    File(tempfile::NamedTempFile, PathBuf),
}

impl Sink {
    fn file(path: &Path) -> Result<Self, CliError> {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix(".conclave-download-");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        let temp = builder.tempfile_in(dir).map_err(|err| CliError::usage(format!("cannot write in {}: {err}", dir.display())))?;
        Ok(Self::File(temp, path.to_owned()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), CliError> {
        let result = match self {
            Self::Stdout(stdout) => stdout.write_all(bytes),
            Self::File(temp, _) => temp.write_all(bytes),
        };
        result.map_err(|err| CliError::other(format!("writing the download: {err}")))
    }

    fn finish(self) -> Result<(), CliError> {
        match self {
            Self::Stdout(mut stdout) => stdout.flush().map_err(|err| CliError::other(format!("writing the download: {err}"))),
            Self::File(mut temp, path) => {
                temp.flush().map_err(|err| CliError::other(format!("writing {}: {err}", path.display())))?;
                temp.persist(&path).map_err(|err| CliError::other(format!("writing {}: {}", path.display(), err.error)))?;
                Ok(())
            }
        }
    }
}

/// Downloads an artifact into the sink, resuming at the byte reached after a transient failure,
/// and checks its size and digest. Returns the artifact.
async fn download(
    client: &mut proto::artifact_service_client::ArtifactServiceClient<super::client::Transport>,
    mut reference: proto::ArtifactRef,
    sink: &mut Sink,
    json: bool,
) -> Result<proto::Artifact, CliError> {
    let mut artifact: Option<proto::Artifact> = None;
    let mut received = 0u64;
    let mut hasher = Sha256::new();
    let mut failures = 0u32;
    let mut bar = ProgressBar::hidden();
    'download: loop {
        let request = proto::DownloadArtifactRequest { artifact: Some(reference.clone()), offset: received, ..Default::default() };
        let status = match client.download_artifact(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => match message.part {
                            // A resumed stream starts with the artifact again: the first one is kept.
                            Some(download_artifact_response::Part::Artifact(first)) if artifact.is_none() => {
                                // Resume this very version, whatever is written meanwhile.
                                reference = proto::ArtifactRef { id: first.id.clone(), ..Default::default() };
                                bar = progress(first.size, json, "download");
                                artifact = Some(first);
                            }
                            Some(download_artifact_response::Part::Artifact(_)) | None => {}
                            Some(download_artifact_response::Part::Chunk(chunk)) => {
                                sink.write(&chunk)?;
                                hasher.update(&chunk);
                                received += chunk.len() as u64;
                                bar.set_position(received);
                                failures = 0;
                            }
                        },
                        Ok(None) => break 'download,
                        Err(status) => break status,
                    }
                }
            }
            Err(status) => status,
        };
        if !is_transient(&status) {
            bar.finish_and_clear();
            return Err(status.into());
        }
        failures += 1;
        if failures > ATTEMPTS {
            bar.finish_and_clear();
            let mut err = CliError::from(status);
            err.message = format!("gave up reconnecting after {ATTEMPTS} attempts: {}", err.message);
            err.exit = super::exit::UNAVAILABLE;
            return Err(err);
        }
        let pause = Duration::from_millis(200).saturating_mul(1 << (failures - 1).min(5)).min(Duration::from_secs(5));
        bar.suspend(|| {
            eprintln!(
                "conclave: download interrupted ({}: {}); resuming at byte {received} in {}",
                code_name(status.code()),
                status.message(),
                humantime::format_duration(pause)
            );
        });
        tokio::time::sleep(pause).await;
    }
    bar.finish_and_clear();
    let artifact = artifact.ok_or_else(|| CliError::other("the server sent no artifact"))?;
    let digest = format!("{:x}", hasher.finalize());
    if received != artifact.size || digest != artifact.sha256 {
        return Err(CliError::other(format!(
            "the download does not match the artifact: {received} bytes with sha256 {digest}, expected {} bytes with sha256 {}",
            artifact.size, artifact.sha256
        )));
    }
    Ok(artifact)
}

/// A byte progress bar on stderr when it is a terminal and the output is not JSON; else hidden.
fn progress(length: u64, json: bool, what: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    let style = ProgressStyle::with_template("{msg:8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

fn kind_name(kind: i32) -> String {
    output::enum_name(ArtifactKind::try_from(kind).ok().map(|k| k.as_str_name()), "ARTIFACT_KIND_")
}

fn print_artifact(artifact: &proto::Artifact, json: bool) {
    if json {
        return json_line(artifact);
    }
    let mut fields = Fields::new();
    fields
        .add("id", &artifact.id)
        .add("run", &artifact.run_id)
        .add("name", &artifact.name)
        .add("version", artifact.version.to_string())
        .add("kind", kind_name(artifact.kind))
        .add("media type", &artifact.media_type)
        .add("size", format!("{} ({} bytes)", output::bytes(artifact.size), artifact.size))
        .add("sha256", &artifact.sha256)
        .add("labels", output::labels(&artifact.labels))
        .add("created", output::time(artifact.created_at.as_ref()));
    if let Some(producer) = &artifact.producer {
        fields.add("step", &producer.step).add("tool", &producer.tool);
    }
    fields.print();
}

/// A media type from a file's extension; empty (the server's `application/octet-stream`) when
/// unknown.
fn guess_media_type(path: &Path) -> &'static str {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match extension.as_str() {
        "txt" | "log" | "text" => "text/plain",
        "md" | "markdown" => "text/markdown",
        "json" => "application/json",
        "jsonl" | "ndjson" => "application/x-ndjson",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "diff" | "patch" => "text/x-diff",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "",
    }
}
