//! Content-addressed blobs on disk: the bytes of artifacts, each stored once under its SHA-256.
//!
//! Layout under the store's root:
//! - `sha256/<first 2 hex digits>/<64 hex digits>`: finished blobs, never modified in place;
//! - `tmp/<uuid v7>.part`: uploads in progress, on the same filesystem so the final rename is
//!   atomic.
//!
//! An upload streams into a temp file while it is hashed; only once the whole content is on
//! disk, checked against the declared size and digest and fsynced is it renamed into `sha256/`
//! (and the directory fsynced), so a crash never leaves a torn blob there. The temp file is
//! created while the upload's first bytes arrive, and synced while its last are hashed. A writer
//! dropped before it finishes, or failing, removes its temp file; uploads that died with their
//! process are swept by [`BlobStore::sweep_temp`]. Reads of a whole blob are verified as they
//! stream; ranged reads verify the whole file first.
//!
//! Blob files are written and read with direct I/O where the filesystem allows it (see
//! [`super::direct`]).
//!
//! The file I/O and the hashing run on tokio's blocking pool, in short tasks (an upload's full
//! buffers are queued for its hash and its file, each taken in by a task that runs while there
//! are buffers; a download reads ahead one chunk and hashes the last), so a slow client holds
//! no thread and the async workers never hash. The buffers come from a pool the
//! store keeps (`BufferPool`), so a transfer reuses memory that is already mapped.

use std::{
    collections::VecDeque,
    fmt,
    fs::{self, File},
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures::Stream;
use sha2::{Digest as _, Sha256};
use tokio::{sync::Notify, task::JoinHandle};

use super::direct::{AlignedBuf, BufferPool, DirectFile, PooledBuf};
use crate::{
    domain::Digest,
    error::{Error, Result},
};

/// How many bytes an upload gathers before they are hashed and written in one blocking task;
/// also the size of the pooled buffers, which downloads read their chunks into when the chunks
/// fit and whole-file checks hash through.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// How many idle buffers the store keeps for the next transfers (the memory it holds between
/// transfers: 16 MiB).
const IDLE_BUFFERS: usize = 16;
/// The directory of finished blobs, under the root.
const BLOBS_DIR: &str = "sha256";
/// The directory of uploads in progress, under the root.
const TEMP_DIR: &str = "tmp";
/// The suffix of a temp file.
const TEMP_SUFFIX: &str = ".part";

/// Blobs stored as files under a directory, addressed by the SHA-256 of their bytes.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: Arc<Path>,
    temp: Arc<Path>,
    /// The buffers uploads fill and downloads read into.
    buffers: Arc<BufferPool>,
}

/// A blob that [`BlobWriter::finish`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The SHA-256 of its bytes.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
    /// The same bytes were stored already; this upload added nothing to the disk.
    pub deduplicated: bool,
}

impl BlobStore {
    /// Opens the store under `root`, creating `root/sha256`, its 256 shard directories and
    /// `root/tmp` if they are missing (once, so that storing a blob never has to create and sync
    /// a directory).
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blobs = root.join(BLOBS_DIR);
        let temp = root.join(TEMP_DIR);
        for dir in [&blobs, &temp] {
            fs::create_dir_all(dir).map_err(|err| storage(format_args!("creating {}", dir.display()), err))?;
        }
        let mut created = false;
        for prefix in 0..=u8::MAX {
            let shard = blobs.join(format!("{prefix:02x}"));
            match fs::create_dir(&shard) {
                Ok(()) => created = true,
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(storage(format_args!("creating {}", shard.display()), err)),
            }
        }
        if created {
            sync_dir(&blobs)?;
        }
        Ok(Self { blobs: blobs.into(), temp: temp.into(), buffers: BufferPool::new(WRITE_BUFFER_BYTES, IDLE_BUFFERS) })
    }

    /// Starts an upload of at most `limit` bytes, and of exactly `declared_size` if the client
    /// declared one. Its temp file is created on the blocking pool while the first bytes arrive
    /// (a failure to create it fails a later write or the finish), so an upload does not wait
    /// for the filesystem before it reads its content. Call it within a Tokio runtime.
    pub fn writer(&self, limit: u64, declared_size: Option<u64>) -> BlobWriter {
        let temp = self.temp.join(format!("{}{TEMP_SUFFIX}", uuid::Uuid::now_v7()));
        BlobWriter {
            blobs: Arc::clone(&self.blobs),
            buffers: Arc::clone(&self.buffers),
            lanes: Lanes::new(Sha256::new(), temp.clone(), DirectFile::create_new),
            temp: Some(temp),
            limit,
            declared_size,
            written: 0,
            sealed: false,
            buffer: PooledBuf::default(),
            failed: None,
        }
    }

    /// Stores `data` (at most `limit` bytes): a writer, one write, and its finish.
    pub async fn put(&self, data: &[u8], limit: u64) -> Result<StoredBlob> {
        let mut writer = self.writer(limit, Some(data.len() as u64));
        writer.write(data).await?;
        writer.finish(None).await
    }

    /// Opens the blob for reading; `None` if it is not stored.
    pub async fn open_blob(&self, digest: &Digest) -> Result<Option<BlobReader>> {
        let path = self.path(digest);
        let opened = blocking(move || match DirectFile::open(&path) {
            Ok(file) => {
                let len = file.file().metadata().map_err(|err| storage(format_args!("reading {}", path.display()), err))?.len();
                Ok(Some((file, len)))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(storage(format_args!("opening {}", path.display()), err)),
        })
        .await?;
        Ok(opened.map(|(file, len)| BlobReader { file: Arc::new(file), len, digest: digest.clone(), buffers: Arc::clone(&self.buffers) }))
    }

    /// Whether the blob is stored.
    pub async fn contains(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        tokio::fs::try_exists(&path).await.map_err(|err| storage(format_args!("checking {}", path.display()), err))
    }

    /// Re-hashes the stored file: `NotFound` if it is missing, `DataLoss` if its bytes no longer
    /// hash to its digest.
    pub async fn verify(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        let (digest, buffers) = (digest.clone(), Arc::clone(&self.buffers));
        blocking(move || {
            let file = open_existing(&path, &digest)?;
            let actual = hash_file(&file, &mut buffers.take()).map_err(|err| storage(format_args!("reading {}", path.display()), err))?;
            check_intact(&digest, &actual)
        })
        .await
    }

    /// The whole blob, verified; refuses blobs larger than `max` bytes.
    pub async fn read_all(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let digest = digest.clone();
        blocking(move || {
            let file = open_existing(&path, &digest)?;
            let reading = |err| storage(format_args!("reading {}", path.display()), err);
            let len = file.file().metadata().map_err(reading)?.len();
            if len > max {
                return Err(Error::precondition(
                    "ARTIFACT_TOO_LARGE",
                    format!(
                        "blob {digest} has {len} bytes, more than the {max} bytes that can be read at once; \
                         stream it instead"
                    ),
                ));
            }
            let len = usize::try_from(len).map_err(|_| Error::Internal(format!("blob {digest} is too large for memory")))?;
            let data = Vec::from(file.read_bytes(0, len, None).map_err(reading)?);
            // A blob that grew after the length was read hashes differently: `data` is then the
            // prefix, which cannot hash to the digest, so the check below refuses it.
            check_intact(&digest, &Digest::from_bytes(Sha256::digest(&data).into()))?;
            Ok(data)
        })
        .await
    }

    /// Every stored blob with its modification time (when it was stored, or last deduplicated),
    /// for garbage collection. Files whose names are not digests are skipped.
    pub async fn list(&self) -> Result<Vec<(Digest, SystemTime)>> {
        let blobs = Arc::clone(&self.blobs);
        blocking(move || {
            let listing = |dir: &Path, err| storage(format_args!("listing {}", dir.display()), err);
            let mut found = Vec::new();
            for shard in fs::read_dir(&blobs).map_err(|err| listing(&blobs, err))? {
                let shard = shard.map_err(|err| listing(&blobs, err))?;
                let shard_name = shard.file_name();
                let Some(prefix) = shard_name.to_str().filter(|name| name.len() == 2) else {
                    continue;
                };
                let shard_path = shard.path();
                let entries = match fs::read_dir(&shard_path) {
                    Ok(entries) => entries,
                    Err(err) if err.kind() == io::ErrorKind::NotADirectory => continue,
                    Err(err) => return Err(listing(&shard_path, err)),
                };
                for entry in entries {
                    let entry = entry.map_err(|err| listing(&shard_path, err))?;
                    let name = entry.file_name();
                    let Some(digest) = name.to_str().and_then(|name| blob_name(prefix, name)) else {
                        continue;
                    };
                    let modified = match entry.metadata().and_then(|meta| meta.modified()) {
                        Ok(modified) => modified,
                        // Removed since the directory was read.
                        Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(storage(format_args!("reading {}", entry.path().display()), err)),
                    };
                    found.push((digest, modified));
                }
            }
            found.sort_unstable();
            Ok(found)
        })
        .await
    }

    /// Removes the blob; `false` if it was not stored.
    ///
    /// A collector should remove only blobs whose modification time is older than its grace
    /// period: an upload of the same bytes refreshes that time instead of storing them again.
    pub async fn remove(&self, digest: &Digest) -> Result<bool> {
        self.remove_unless_touched_since(digest, SystemTime::now()).await
    }

    /// Removes a blob unless it was written (or reused by an upload, which touches it) after
    /// `cutoff`; false if it was not removed.
    pub async fn remove_unless_touched_since(&self, digest: &Digest, cutoff: SystemTime) -> Result<bool> {
        let path = self.path(digest);
        match tokio::fs::metadata(&path).await.and_then(|metadata| metadata.modified()) {
            Ok(modified) if modified > cutoff => return Ok(false),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(storage(format_args!("reading {}", path.display()), err)),
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(storage(format_args!("removing {}", path.display()), err)),
        }
    }

    /// Removes temp files not modified for `older_than` (uploads that died with their process)
    /// and returns how many. `older_than` must exceed the longest an upload may stay idle: a
    /// live upload's file is modified only each time a buffer of its bytes is written.
    pub async fn sweep_temp(&self, older_than: Duration) -> Result<u64> {
        let temp = Arc::clone(&self.temp);
        blocking(move || {
            let now = SystemTime::now();
            let mut removed = 0;
            for entry in fs::read_dir(&temp).map_err(|err| storage(format_args!("listing {}", temp.display()), err))? {
                let entry = entry.map_err(|err| storage(format_args!("listing {}", temp.display()), err))?;
                let path = entry.path();
                let modified = match entry.metadata() {
                    Ok(meta) if meta.is_file() => meta.modified(),
                    Ok(_) => continue,
                    Err(err) => Err(err),
                };
                let modified = match modified {
                    Ok(modified) => modified,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(storage(format_args!("reading {}", path.display()), err)),
                };
                // A time in the future (a clock step) counts as fresh.
                if now.duration_since(modified).unwrap_or_default() < older_than {
                    continue;
                }
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(storage(format_args!("removing {}", path.display()), err)),
                }
            }
            Ok(removed)
        })
        .await
    }

    /// Where the blob's file is.
    fn path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.blobs, digest)
    }
}

/// An upload in progress: bytes are hashed and appended to a temp file until
/// [`finish`](Self::finish) checks them and moves them into the store.
///
/// Dropping it unfinished (the client went away, a write failed, the limit was passed) removes
/// the temp file. If a [`write`](Self::write) future is dropped before it completes, the writer
/// refuses further writes and must be dropped too.
pub struct BlobWriter {
    blobs: Arc<Path>,
    buffers: Arc<BufferPool>,
    /// The temp file; `None` once it was moved into the store or removed.
    temp: Option<PathBuf>,
    limit: u64,
    /// The size the client declared, if it did.
    declared_size: Option<u64>,
    written: u64,
    /// The declared size has arrived: the last bytes and the file's sync are queued already.
    sealed: bool,
    /// Bytes not yet queued (fewer than [`WRITE_BUFFER_BYTES`]); empty with no memory until
    /// the first write.
    buffer: PooledBuf,
    /// The hash and the temp file, taking in the full buffers on the blocking pool.
    lanes: Arc<Lanes>,
    /// Why the writer refuses further writes.
    failed: Option<Error>,
}

impl fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.temp)
            .field("limit", &self.limit)
            .field("written", &self.written)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// How many full buffers may wait in each lane of an upload, the one being taken in included,
/// before the upload stops taking bytes. With 1, one buffer is hashed and written while the
/// next fills, and a lane that finishes a buffer usually finds the next already queued and goes
/// on without a new task. (2 and 4 were no faster on the machine of `BENCHMARKS.md`.)
const QUEUED_BUFFERS: usize = 1;

/// An upload's running hash and its temp file, each a lane that takes in the full buffers
/// queued for it, in order, on the blocking pool: a short task that takes buffer after buffer
/// while there are any and ends when there are none. So a slow client holds no thread, the
/// hash and the write of a buffer run side by side (an upload runs at the speed of the slower of
/// the two), and neither waits for the handler between buffers the client sent ahead.
///
/// The file lane starts busy: its first task creates the temp file, then takes in what was
/// queued meanwhile. Its last job, at the finish, writes the last bytes and syncs the file, while
/// the hash lane hashes them. Then the lane that ends last checks the digest and moves the file
/// into the store, on its own thread, so an upload's disk work runs without a hand-off.
struct Lanes {
    hash: Mutex<Lane<Sha256>>,
    file: Mutex<Lane<DirectFile>>,
    /// The move into the store, once the finish asked for it. The lane that ends last does it
    /// on its own thread, right after the sync: the writer is not woken to hand it to another.
    commit: Mutex<Commit>,
    /// Wakes the writer when a lane has done a job or stopped, and when the store is done.
    progress: Notify,
}

/// Where the move of an upload into the store is.
enum Commit {
    /// The finish has not asked for it (or the upload was abandoned).
    NotAsked,
    /// The finish asked: the lane that ends last does it.
    Asked(Storing),
    /// Being done.
    Running,
    /// Done: the digest and whether the same bytes were stored already, or why not.
    Done(Result<(Digest, bool)>),
}

/// What the move of an upload into the store needs besides its hash and file.
struct Storing {
    temp: PathBuf,
    blobs: Arc<Path>,
    /// The digest the client declared.
    expected: Option<Digest>,
}

impl Storing {
    /// Checks the digest, then moves the synced temp file into the store (on a blocking
    /// thread): the digest, and whether the same bytes were stored already.
    fn store(self, hasher: Sha256, file: DirectFile) -> Result<(Digest, bool)> {
        let digest = Digest::from_bytes(hasher.finalize().into());
        if let Some(declared) = self.expected
            && declared != digest
        {
            return Err(Error::invalid(
                "sha256",
                format!(
                    "the upload declared {declared}, the bytes received hash to {digest}: the content changed in \
                     transit or the declared digest is wrong"
                ),
            ));
        }
        drop(file); // Closed before it is renamed.
        let deduplicated = store_synced(&self.temp, &self.blobs, &digest)?;
        Ok((digest, deduplicated))
    }
}

/// One of [`Lanes`].
struct Lane<S> {
    /// The jobs to do, in order; a running task is doing the first.
    queue: VecDeque<Job>,
    /// The hash or the file, while no task runs the lane.
    idle: Option<S>,
    /// Why the lane stopped (a write failed); it takes nothing more.
    failed: Option<Error>,
    /// The upload was given up: the queue is dropped, a running task ends after its current
    /// job, and a temp file created after that is removed by the task that created it.
    abandoned: bool,
}

impl<S> Lane<S> {
    fn new(idle: Option<S>) -> Mutex<Self> {
        Mutex::new(Self { queue: VecDeque::new(), idle, failed: None, abandoned: false })
    }

    fn abandon(&mut self) {
        self.queue.clear();
        self.abandoned = true;
    }
}

/// A job of a lane.
#[derive(Clone)]
enum Job {
    /// Take in a buffer's bytes.
    TakeIn(Arc<PooledBuf>),
    /// Make what was taken in durable.
    Finish,
}

/// How the file lane creates the temp file: [`DirectFile::create_new`] but in tests.
type OpenTemp = fn(&Path) -> io::Result<DirectFile>;

/// What a lane does with its jobs.
trait TakeIn: Send + 'static {
    fn take_in(&mut self, data: &[u8]) -> Result<()>;

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

impl TakeIn for Sha256 {
    fn take_in(&mut self, data: &[u8]) -> Result<()> {
        self.update(data);
        Ok(())
    }
}

impl TakeIn for DirectFile {
    fn take_in(&mut self, data: &[u8]) -> Result<()> {
        self.append(data).map_err(|err| storage("writing an upload", err))
    }

    fn finish(&mut self) -> Result<()> {
        self.file().sync_all().map_err(|err| storage("syncing an upload", err))
    }
}

impl Lanes {
    /// An idle hash lane over `hasher`, and the file lane's first task, which creates `temp`
    /// with `open`.
    fn new(hasher: Sha256, temp: PathBuf, open: OpenTemp) -> Arc<Self> {
        let lanes = Arc::new(Self {
            hash: Lane::new(Some(hasher)),
            file: Lane::new(None),
            commit: Mutex::new(Commit::NotAsked),
            progress: Notify::new(),
        });
        let opener = Arc::clone(&lanes);
        drop(tokio::task::spawn_blocking(move || opener.open_file(&temp, open)));
        lanes
    }

    /// Opens the temp file, then takes in what was queued meanwhile (on the blocking pool).
    fn open_file(&self, temp: &Path, open: OpenTemp) {
        let created = open(temp).map_err(|err| storage(format_args!("creating {}", temp.display()), err));
        let mut guard = lock(&self.file);
        match created {
            Ok(file) if !guard.abandoned => {
                drop(guard);
                return self.run(|lanes| &lanes.file, file);
            }
            // The writer's own removal may have come before the file existed.
            Ok(_) => {
                drop(guard);
                let _ = fs::remove_file(temp);
            }
            Err(err) => {
                guard.failed = Some(err);
                guard.queue.clear();
            }
        }
        self.progress.notify_one();
    }

    /// Queues a buffer's bytes (a full buffer's, unless they are the last) on both lanes, and
    /// with `last` the file's sync after them. The file lane comes first: its task spends its
    /// time waiting for the disk, so the hash can start at once even if both tasks share a core.
    fn push(self: &Arc<Self>, data: PooledBuf, last: bool) {
        let data = (!data.as_slice().is_empty()).then(|| Arc::new(data));
        let file_jobs = data.clone().map(Job::TakeIn).into_iter().chain(last.then_some(Job::Finish));
        self.push_on(|lanes| &lanes.file, file_jobs);
        self.push_on(|lanes| &lanes.hash, data.map(Job::TakeIn));
    }

    /// Queues jobs, then starts a task on the lane if it is idle.
    fn push_on<S: TakeIn>(self: &Arc<Self>, lane: fn(&Self) -> &Mutex<Lane<S>>, jobs: impl IntoIterator<Item = Job>) {
        let mut guard = lock(lane(self));
        if guard.failed.is_some() || guard.abandoned {
            return;
        }
        guard.queue.extend(jobs);
        if guard.queue.is_empty() {
            return;
        }
        if let Some(state) = guard.idle.take() {
            let lanes = Arc::clone(self);
            drop(tokio::task::spawn_blocking(move || lanes.run(lane, state)));
        }
    }

    /// Does the queued jobs one after another until there are none (on the blocking pool),
    /// then leaves the state idle; on an error, drops it and stops the lane.
    fn run<S: TakeIn>(&self, lane: fn(&Self) -> &Mutex<Lane<S>>, mut state: S) {
        loop {
            let job = {
                let mut guard = lock(lane(self));
                match guard.queue.front() {
                    Some(job) => job.clone(),
                    None => {
                        guard.idle = Some(state);
                        drop(guard);
                        self.commit_if_done();
                        break;
                    }
                }
            };
            let done = match &job {
                Job::TakeIn(data) => state.take_in(data.as_slice()),
                Job::Finish => state.finish(),
            };
            drop(job);
            let mut guard = lock(lane(self));
            // Unless the queue was dropped meanwhile (the upload was abandoned).
            if !guard.abandoned {
                guard.queue.pop_front();
            }
            if let Err(err) = done {
                guard.failed = Some(err);
                guard.queue.clear();
                break;
            }
            // Before the sync the writer can do nothing (no bytes come after it): a wake-up
            // would only take the core from this task.
            let wakes = !matches!(guard.queue.front(), Some(Job::Finish));
            drop(guard);
            if wakes {
                self.progress.notify_one();
            }
        }
        self.progress.notify_one();
    }

    /// Waits until neither lane has more than `queued` jobs left (with 0: until both are
    /// idle), or fails with a lane's error.
    async fn settle(&self, queued: usize) -> Result<()> {
        loop {
            {
                let (hash, file) = (lock(&self.hash), lock(&self.file));
                if let Some(err) = file.failed.as_ref().or(hash.failed.as_ref()) {
                    return Err(err.clone());
                }
                let settled = |len: usize, idle: bool| if queued == 0 { idle } else { len <= queued };
                if settled(hash.queue.len(), hash.idle.is_some()) && settled(file.queue.len(), file.idle.is_some()) {
                    return Ok(());
                }
            }
            self.progress.notified().await;
        }
    }

    /// The hash and the file, once both lanes are idle (else neither is taken).
    fn take(&self) -> Option<(Sha256, DirectFile)> {
        let (mut hash, mut file) = (lock(&self.hash), lock(&self.file));
        if hash.idle.is_none() || file.idle.is_none() {
            return None;
        }
        Some((hash.idle.take()?, file.idle.take()?))
    }

    /// Asks for the upload to be moved into the store once both lanes are done: by the lane
    /// that ends last, or by a blocking task now if both are idle already.
    fn commit_when_done(self: &Arc<Self>, storing: Storing) {
        *lock(&self.commit) = Commit::Asked(storing);
        let idle = lock(&self.hash).idle.is_some() && lock(&self.file).idle.is_some();
        if idle {
            let lanes = Arc::clone(self);
            drop(tokio::task::spawn_blocking(move || lanes.commit_if_done()));
        }
    }

    /// Moves the upload into the store if that was asked and both lanes are idle (on a
    /// blocking thread). Whoever comes first does it; the others find it taken.
    fn commit_if_done(&self) {
        let (storing, hasher, file) = {
            let mut commit = lock(&self.commit);
            let storing = match std::mem::replace(&mut *commit, Commit::Running) {
                Commit::Asked(storing) => storing,
                other => {
                    *commit = other;
                    return;
                }
            };
            let Some((hasher, file)) = self.take() else {
                *commit = Commit::Asked(storing);
                return;
            };
            (storing, hasher, file)
        };
        let stored = storing.store(hasher, file);
        *lock(&self.commit) = Commit::Done(stored);
        self.progress.notify_one();
    }

    /// Waits until the upload is in the store: its digest and whether the same bytes were
    /// stored already; or fails with a lane's error or the store's.
    async fn committed(&self) -> Result<(Digest, bool)> {
        loop {
            {
                let mut commit = lock(&self.commit);
                match std::mem::replace(&mut *commit, Commit::NotAsked) {
                    Commit::Done(stored) => return stored,
                    other => *commit = other,
                }
                let (hash, file) = (lock(&self.hash), lock(&self.file));
                if let Some(err) = file.failed.as_ref().or(hash.failed.as_ref()) {
                    return Err(err.clone());
                }
            }
            self.progress.notified().await;
        }
    }

    /// Drops the jobs not yet done (a running task ends after its current one) and the move
    /// into the store if it has not started.
    fn abandon(&self) {
        {
            let mut commit = lock(&self.commit);
            if matches!(*commit, Commit::Asked(_)) {
                *commit = Commit::NotAsked;
            }
        }
        lock(&self.hash).abandon();
        lock(&self.file).abandon();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobWriter {
    /// Appends `chunk`. Past the limit, fails with `ARTIFACT_TOO_LARGE`, and past the declared
    /// size with `INVALID_ARGUMENT`, and removes the temp file; once a write has failed, every
    /// later one fails the same way. The write that completes the declared size queues the last
    /// bytes and the file's sync at once, so they are under way before the stream ends.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let total = self.written.saturating_add(chunk.len() as u64);
        if total > self.limit {
            let err = Error::precondition(
                "ARTIFACT_TOO_LARGE",
                format!("the upload grew to {total} bytes; the limit is {} bytes", self.limit),
            );
            self.fail(err.clone());
            return Err(err);
        }
        if let Some(declared) = self.declared_size
            && total > declared
        {
            let err = size_mismatch(declared, total);
            self.fail(err.clone());
            return Err(err);
        }
        // Stays in place if this future is dropped halfway, when the bytes taken are unknown.
        self.failed = Some(Error::Internal("an earlier write to this upload was interrupted".into()));
        let completes = self.declared_size == Some(total) && !self.sealed;
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer = self.buffers.take();
            }
            rest = &rest[self.buffer.fill_from(rest)..];
            if self.buffer.is_full() && !(completes && rest.is_empty()) {
                self.lanes.push(std::mem::take(&mut self.buffer), false);
                if let Err(err) = self.lanes.settle(QUEUED_BUFFERS).await {
                    self.fail(err.clone());
                    return Err(err);
                }
            }
        }
        if completes {
            self.sealed = true;
            self.lanes.push(std::mem::take(&mut self.buffer), true);
        }
        self.written = total;
        self.failed = None;
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Ends the upload: checks the bytes against the declared size and `expected_digest`, if
    /// given, and stores them. The same bytes already stored are kept, their modification time
    /// refreshed, and the upload's copy dropped. On any error the temp file is removed and nothing is
    /// stored.
    pub async fn finish(mut self, expected_digest: Option<&Digest>) -> Result<StoredBlob> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        if let Some(declared) = self.declared_size
            && declared != self.written
        {
            return Err(size_mismatch(declared, self.written));
        }
        if !self.sealed {
            self.lanes.push(std::mem::take(&mut self.buffer), true);
        }
        let Some(temp) = self.temp.clone() else {
            return Err(Error::Internal("the upload's temp file is gone".into()));
        };
        self.lanes.commit_when_done(Storing { temp, blobs: Arc::clone(&self.blobs), expected: expected_digest.cloned() });
        let (digest, deduplicated) = self.lanes.committed().await?;
        // Renamed into the store, or removed as a duplicate: nothing is left for `drop`.
        self.temp = None;
        Ok(StoredBlob { digest, size: self.written, deduplicated })
    }

    /// Refuses further writes with `err` and removes the temp file now, to free the disk.
    fn fail(&mut self, err: Error) {
        self.failed = Some(err);
        self.lanes.abandon();
        self.buffer = PooledBuf::default();
        self.remove_temp();
    }

    fn remove_temp(&mut self) {
        if let Some(temp) = self.temp.take() {
            // Best effort: `sweep_temp` removes what is left. A task still in flight writes on
            // into the unlinked file, harmlessly.
            let _ = fs::remove_file(temp);
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        self.lanes.abandon();
        self.remove_temp();
    }
}

/// The refusal of an upload whose size is not the one it declared.
fn size_mismatch(declared: u64, arrived: u64) -> Error {
    let why = if arrived < declared {
        "the upload was truncated: send every byte"
    } else {
        "more bytes arrived than declared: declare the content's real size"
    };
    Error::invalid("size", format!("the upload declared {declared} bytes but {arrived} arrived: {why}"))
}

/// Moves an upload's synced temp file into the store durably, or drops it if the blob is
/// stored already (then `true`), on a blocking thread.
fn store_synced(temp: &Path, blobs: &Path, digest: &Digest) -> Result<bool> {
    let path = blob_path(blobs, digest);
    let Some(shard) = path.parent() else {
        return Err(Error::Internal(format!("blob path {} has no directory", path.display())));
    };
    // Stored already: refresh its time so a collector's grace period spares it, and make sure
    // the rename that stored it (perhaps a concurrent upload's, not yet synced) is durable.
    match File::open(&path).and_then(|existing| existing.set_modified(SystemTime::now())) {
        Ok(()) => {
            sync_dir(shard)?;
            sync_dir(blobs)?;
            let _ = fs::remove_file(temp);
            return Ok(true);
        }
        // Not stored (or collected just now): store this copy.
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(storage(format_args!("refreshing {}", path.display()), err)),
    }
    let created = match fs::create_dir(shard) {
        Ok(()) => true,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => false,
        Err(err) => return Err(storage(format_args!("creating {}", shard.display()), err)),
    };
    fs::rename(temp, &path).map_err(|err| storage(format_args!("storing {}", path.display()), err))?;
    sync_dir(shard)?;
    if created {
        sync_dir(blobs)?;
    }
    Ok(false)
}

/// A stored blob opened for reading.
#[derive(Debug)]
pub struct BlobReader {
    file: Arc<DirectFile>,
    len: u64,
    digest: Digest,
    buffers: Arc<BufferPool>,
}

impl BlobReader {
    /// The blob's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The blob's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Streams `length` bytes (or all, if `None` or past the end) from `offset`, in chunks of
    /// `chunk_size` bytes (the last may be shorter).
    ///
    /// A read of the whole blob is verified as it goes: if the bytes do not hash to the digest,
    /// the stream ends with an error after the last chunk instead of ending normally. A read of
    /// part of it re-hashes the whole file before the first chunk. An `offset` past the end is
    /// an invalid argument; `offset` equal to the length gives an empty stream.
    pub async fn chunks(
        self,
        offset: u64,
        length: Option<u64>,
        chunk_size: usize,
    ) -> Result<impl Stream<Item = Result<Bytes>> + Send + 'static> {
        let Self { file, len, digest, buffers } = self;
        if offset > len {
            return Err(Error::invalid(
                "offset",
                format!("offset {offset} is past the end: the artifact has {len} bytes"),
            ));
        }
        let end = length.map_or(len, |length| offset.saturating_add(length).min(len));
        let whole = offset == 0 && end == len;
        if !whole && end > offset {
            let (file, digest, buffers) = (Arc::clone(&file), digest.clone(), Arc::clone(&buffers));
            blocking(move || {
                let actual = hash_file(&file, &mut buffers.take()).map_err(|err| storage(format_args!("reading blob {digest}"), err))?;
                check_intact(&digest, &actual)
            })
            .await?;
        }
        let state = ReadState {
            file,
            digest,
            buffers,
            position: offset,
            end,
            chunk_size: chunk_size.max(1) as u64,
            ahead: None,
            verify: whole.then(|| Verify::Idle(Sha256::new())),
        };
        Ok(futures::stream::try_unfold(state, ReadState::next))
    }
}

/// Where a [`BlobReader::chunks`] stream is.
struct ReadState {
    file: Arc<DirectFile>,
    digest: Digest,
    /// The buffers chunks are read into.
    buffers: Arc<BufferPool>,
    /// Where the next read starts.
    position: u64,
    end: u64,
    chunk_size: u64,
    /// The next chunk, read on the blocking pool while the last one is sent.
    ahead: Option<JoinHandle<Result<Bytes>>>,
    /// The hash of a whole read; `None` for a range.
    verify: Option<Verify>,
}

/// The hash of a whole read, kept up with the chunks sent.
enum Verify {
    Idle(Sha256),
    /// Hashing the last chunk sent, on the blocking pool, while the next is read and this one
    /// is sent.
    Hashing(JoinHandle<Sha256>),
}

impl Verify {
    /// The hash, once it has taken in every chunk sent.
    async fn settle(self) -> Result<Sha256> {
        match self {
            Self::Idle(hasher) => Ok(hasher),
            Self::Hashing(task) => task.await.map_err(|err| Error::Internal(format!("artifact storage: a hash task failed: {err}"))),
        }
    }
}

impl ReadState {
    /// The next chunk, or the end (after the verification of a whole read).
    async fn next(mut self) -> Result<Option<(Bytes, Self)>> {
        let Some(reading) = self.ahead.take().or_else(|| self.read_ahead()) else {
            if let Some(verify) = self.verify.take() {
                check_intact(&self.digest, &Digest::from_bytes(verify.settle().await?.finalize().into()))?;
            }
            return Ok(None);
        };
        let chunk = reading.await.map_err(|err| Error::Internal(format!("artifact storage: a read task failed: {err}")))??;
        self.ahead = self.read_ahead();
        if let Some(verify) = self.verify.take() {
            let (mut hasher, data) = (verify.settle().await?, chunk.clone());
            self.verify = Some(Verify::Hashing(tokio::task::spawn_blocking(move || {
                hasher.update(&data);
                hasher
            })));
        }
        Ok(Some((chunk, self)))
    }

    /// Starts reading the chunk at `position` on the blocking pool; `None` past the range.
    fn read_ahead(&mut self) -> Option<JoinHandle<Result<Bytes>>> {
        if self.position >= self.end {
            return None;
        }
        let size = self.chunk_size.min(self.end - self.position);
        let position = self.position;
        self.position += size;
        let (file, digest, buffers) = (Arc::clone(&self.file), self.digest.clone(), Arc::clone(&self.buffers));
        Some(tokio::task::spawn_blocking(move || {
            let size = usize::try_from(size).map_err(|_| Error::Internal(format!("chunk of {size} bytes")))?;
            let chunk = file
                .read_bytes(position, size, Some(&buffers))
                .map_err(|err| storage(format_args!("reading blob {digest} at {position}"), err))?;
            if chunk.len() < size {
                return Err(Error::DataLoss(format!(
                    "blob {digest} is corrupt: it ends at byte {}, before its recorded length",
                    position + chunk.len() as u64
                )));
            }
            Ok(chunk)
        }))
    }
}

/// `root/sha256/<2 hex>/<64 hex>`.
fn blob_path(blobs: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.as_str();
    blobs.join(&hex[..2]).join(hex)
}

/// The digest a file in shard `prefix` is named for, if its name is one (lowercase, as stored).
fn blob_name(prefix: &str, name: &str) -> Option<Digest> {
    let digest = Digest::parse("name", name).ok()?;
    (digest.as_str() == name && name.starts_with(prefix)).then_some(digest)
}

/// Opens a stored blob, `NotFound` if it is missing.
fn open_existing(path: &Path, digest: &Digest) -> Result<DirectFile> {
    DirectFile::open(path).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => Error::not_found("blob", digest),
        _ => storage(format_args!("opening {}", path.display()), err),
    })
}

/// The SHA-256 of everything in `file`, read with positioned reads through `buffer` (its capacity
/// a multiple of the block size).
fn hash_file(file: &DirectFile, buffer: &mut AlignedBuf) -> io::Result<Digest> {
    let mut hasher = Sha256::new();
    let mut position = 0;
    loop {
        let read = file.fill(buffer, position)?;
        hasher.update(buffer.as_slice());
        if read < buffer.capacity() {
            break;
        }
        position += read as u64;
    }
    Ok(Digest::from_bytes(hasher.finalize().into()))
}

/// `DataLoss` unless the bytes' hash `actual` is the blob's digest.
fn check_intact(digest: &Digest, actual: &Digest) -> Result<()> {
    if actual == digest {
        return Ok(());
    }
    Err(Error::DataLoss(format!("blob {digest} is corrupt: its bytes hash to {actual}")))
}

/// Makes the entries of `dir` (a rename or creation in it) durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| storage(format_args!("syncing {}", dir.display()), err))
}

/// Storage trouble, which a retry may get past.
fn storage(what: impl fmt::Display, err: io::Error) -> Error {
    Error::Unavailable(format!("artifact storage: {what}: {err}"))
}

/// Runs `work` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| Error::Internal(format!("artifact storage: a blocking task failed: {err}")))?
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt as _;

    use futures::TryStreamExt as _;

    use super::*;

    /// Deterministic pseudo-random bytes (xorshift64*).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = (seed << 1) | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_in(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    /// Waits (up to 10 s) until neither `sha256/` nor `tmp/` under `root` holds a file: the
    /// removal of a temp file created while its upload was refused may come just after.
    async fn eventually_nothing_left(root: &Path) {
        for _ in 0..1000 {
            if files_in(&root.join(BLOBS_DIR)).is_empty() && files_in(&root.join(TEMP_DIR)).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("files left behind: {:?}", (files_in(&root.join(BLOBS_DIR)), files_in(&root.join(TEMP_DIR))));
    }

    async fn write_in_chunks(store: &BlobStore, data: &[u8], chunk: usize) -> Result<StoredBlob> {
        let mut writer = store.writer(u64::MAX, Some(data.len() as u64));
        for piece in data.chunks(chunk) {
            writer.write(piece).await?;
        }
        assert_eq!(writer.bytes_written(), data.len() as u64);
        writer.finish(Some(&Digest::of(data))).await
    }

    async fn read(store: &BlobStore, digest: &Digest, offset: u64, length: Option<u64>, chunk: usize) -> Result<Vec<u8>> {
        let reader = store.open_blob(digest).await?.expect("stored");
        let chunks: Vec<Bytes> = reader.chunks(offset, length, chunk).await?.try_collect().await?;
        assert!(chunks.iter().all(|piece| piece.len() <= chunk), "chunks are at most {chunk} bytes");
        Ok(chunks.concat())
    }

    #[tokio::test]
    async fn what_is_written_reads_back_whole_in_any_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = noise(5 * WRITE_BUFFER_BYTES + 12_345, 7);
        let digest = Digest::of(&data);
        for write_chunk in [1000, 65_537, WRITE_BUFFER_BYTES, 3 * WRITE_BUFFER_BYTES + 1, data.len()] {
            let stored = write_in_chunks(&store, &data, write_chunk).await.unwrap();
            assert_eq!((stored.digest.clone(), stored.size), (digest.clone(), data.len() as u64));
        }
        for read_chunk in [4096, WRITE_BUFFER_BYTES + 3, 64 << 20] {
            assert_eq!(read(&store, &digest, 0, None, read_chunk).await.unwrap(), data);
        }
        // One-byte chunks, on a smaller blob.
        let prefix = &data[..100_000];
        let stored = store.put(prefix, u64::MAX).await.unwrap();
        assert_eq!(read(&store, &stored.digest, 0, None, 1).await.unwrap(), prefix);
        assert_eq!(store.read_all(&digest, u64::MAX).await.unwrap(), data);
        store.verify(&digest).await.unwrap();
        let reader = store.open_blob(&digest).await.unwrap().unwrap();
        assert_eq!((reader.len(), reader.digest()), (data.len() as u64, &digest));

        // Tiny writes through a writer, and the empty blob.
        let small = noise(3000, 9);
        let mut writer = store.writer(3000, None);
        for byte in &small {
            writer.write(std::slice::from_ref(byte)).await.unwrap();
        }
        assert_eq!(writer.finish(None).await.unwrap().digest, Digest::of(&small));
        let empty = store.put(b"", 0).await.unwrap();
        assert_eq!(empty.digest, Digest::of(b""));
        assert_eq!(read(&store, &empty.digest, 0, None, 10).await.unwrap(), b"");
        assert!(files_in(&dir.path().join(TEMP_DIR)).is_empty());
    }

    #[tokio::test]
    async fn identical_content_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = noise(2 * WRITE_BUFFER_BYTES + 5, 1);
        let first = store.put(&data, u64::MAX).await.unwrap();
        assert!(!first.deduplicated);
        let path = store.path(&first.digest);
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();

        let second = write_in_chunks(&store, &data, 4096).await.unwrap();
        assert!(second.deduplicated);
        assert_eq!((second.digest, second.size), (first.digest, first.size));
        assert_eq!(files_in(&dir.path().join(BLOBS_DIR)), vec![path.clone()]);
        assert!(files_in(&dir.path().join(TEMP_DIR)).is_empty());
        let refreshed = fs::metadata(&path).unwrap().modified().unwrap();
        assert!(refreshed > old + Duration::from_secs(3000), "a deduplicated upload refreshes the blob's time");
    }

    #[tokio::test]
    async fn rejected_uploads_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = noise(WRITE_BUFFER_BYTES * 2 + 77, 3);

        // The declared size is wrong: truncated (refused at the finish), or passed (refused by
        // the write that passes it, and by every later call).
        let truncated = data.len() as u64 + 1;
        let mut writer = store.writer(u64::MAX, Some(truncated));
        writer.write(&data).await.unwrap();
        let err = writer.finish(None).await.unwrap_err();
        let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[0].field, "size");
        assert!(violations[0].description.contains(&format!("declared {truncated} bytes but {} arrived: the upload was truncated", data.len())));
        eventually_nothing_left(dir.path()).await;
        let passed = data.len() as u64 - 1;
        let mut writer = store.writer(u64::MAX, Some(passed));
        writer.write(&data[..WRITE_BUFFER_BYTES]).await.unwrap();
        let err = writer.write(&data[WRITE_BUFFER_BYTES..]).await.unwrap_err();
        let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[0].field, "size");
        assert!(violations[0].description.contains(&format!("declared {passed} bytes but {} arrived: more bytes", data.len())));
        eventually_nothing_left(dir.path()).await;
        assert!(matches!(writer.finish(None).await, Err(Error::InvalidArgument(_))));
        // Once the declared size is complete, a byte more is refused too.
        let mut writer = store.writer(u64::MAX, Some(data.len() as u64));
        writer.write(&data).await.unwrap();
        assert!(matches!(writer.write(b"!").await, Err(Error::InvalidArgument(_))));
        eventually_nothing_left(dir.path()).await;

        // The declared digest is wrong.
        let mut writer = store.writer(u64::MAX, Some(data.len() as u64));
        writer.write(&data).await.unwrap();
        let wrong = Digest::of(b"something else");
        let err = writer.finish(Some(&wrong)).await.unwrap_err();
        let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[0].field, "sha256");
        assert!(violations[0].description.contains(&format!("declared {wrong}, the bytes received hash to {}", Digest::of(&data))));
        eventually_nothing_left(dir.path()).await;

        // Past the limit: this write and every later one fail, and finish does too.
        let limit = WRITE_BUFFER_BYTES as u64 + 10;
        let mut writer = store.writer(limit, None);
        writer.write(&data[..WRITE_BUFFER_BYTES]).await.unwrap();
        writer.write(&data[..10]).await.unwrap();
        let err = writer.write(&data[..1]).await.unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition { reason: "ARTIFACT_TOO_LARGE", message } if message.contains(&format!("the limit is {limit} bytes"))),
            "{err}"
        );
        eventually_nothing_left(dir.path()).await;
        assert!(matches!(writer.write(b"").await, Err(Error::FailedPrecondition { .. })));
        assert!(matches!(writer.finish(None).await, Err(Error::FailedPrecondition { .. })));
        eventually_nothing_left(dir.path()).await;
        assert!(matches!(store.put(&data, 100).await, Err(Error::FailedPrecondition { .. })));
        eventually_nothing_left(dir.path()).await;
    }

    #[tokio::test]
    async fn a_failed_write_stops_its_lane_and_the_upload_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        fs::write(&path, b"").unwrap();
        // Opened for reading: every append fails.
        let lanes = Lanes::new(Sha256::new(), path, DirectFile::open);
        let pool = BufferPool::new(WRITE_BUFFER_BYTES, 2);
        for _ in 0..3 {
            let mut data = pool.take();
            data.fill_from(&noise(WRITE_BUFFER_BYTES, 1));
            lanes.push(data, false);
        }
        let err = lanes.settle(0).await.expect_err("the write failed");
        assert!(matches!(err, Error::Unavailable(ref message) if message.contains("writing an upload")), "{err:?}");
        assert!(lock(&lanes.file).queue.is_empty(), "a stopped lane drops what was queued");
        assert!(lanes.take().is_none(), "the file is gone with its lane");
    }

    #[tokio::test]
    async fn an_upload_is_stored_whether_its_lanes_or_its_finish_end_last() {
        fn slow_create(path: &Path) -> io::Result<DirectFile> {
            std::thread::sleep(Duration::from_millis(300));
            DirectFile::create_new(path)
        }
        let data = noise(WRITE_BUFFER_BYTES + 5, 21);
        let digest = Digest::of(&data);
        let wrong = Digest::of(b"other bytes");
        let openers: [(OpenTemp, bool); 2] = [(slow_create, true), (DirectFile::create_new, false)];
        for (open, lanes_end_last) in openers {
            for expected in [None, Some(digest.clone()), Some(wrong.clone())] {
                let dir = tempfile::tempdir().unwrap();
                let store = BlobStore::open(dir.path()).unwrap();
                let temp = store.temp.join(format!("test{TEMP_SUFFIX}"));
                let lanes = Lanes::new(Sha256::new(), temp.clone(), open);
                let pieces: Vec<&[u8]> = data.chunks(WRITE_BUFFER_BYTES).collect();
                for (index, piece) in pieces.iter().enumerate() {
                    let mut buffer = store.buffers.take();
                    buffer.fill_from(piece);
                    lanes.push(buffer, index + 1 == pieces.len());
                }
                if lanes_end_last {
                    assert!(lock(&lanes.file).idle.is_none(), "the file lane is still creating the file");
                } else {
                    lanes.settle(0).await.unwrap();
                }
                lanes.commit_when_done(Storing { temp: temp.clone(), blobs: Arc::clone(&store.blobs), expected: expected.clone() });
                let stored = tokio::time::timeout(Duration::from_secs(10), lanes.committed()).await.expect("stored within 10 s");
                let blobs = files_in(&dir.path().join(BLOBS_DIR));
                if expected.as_ref() == Some(&wrong) {
                    let err = stored.unwrap_err();
                    assert!(matches!(&err, Error::InvalidArgument(violations) if violations[0].field == "sha256"), "{err:?}");
                    assert!(blobs.is_empty(), "a refused upload stores nothing: {blobs:?}");
                    assert!(temp.exists(), "the temp file is left for the writer to remove");
                } else {
                    assert_eq!(stored.unwrap(), (digest.clone(), false));
                    assert_eq!(blobs, vec![store.path(&digest)]);
                    assert!(!temp.exists());
                    assert_eq!(store.read_all(&digest, u64::MAX).await.unwrap(), data);
                }
            }
        }
    }

    #[tokio::test]
    async fn a_dropped_writer_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer(u64::MAX, None);
        writer.write(&noise(3 * WRITE_BUFFER_BYTES + 1, 5)).await.unwrap();
        let temps = files_in(&dir.path().join(TEMP_DIR));
        assert_eq!(temps.len(), 1);
        assert!(temps[0].to_string_lossy().ends_with(TEMP_SUFFIX));
        drop(writer);
        assert!(files_in(&dir.path().join(TEMP_DIR)).is_empty());
        assert!(files_in(&dir.path().join(BLOBS_DIR)).is_empty());

        // Dropped at once, perhaps before its file exists: the task creating the file removes it.
        for _ in 0..20 {
            drop(store.writer(u64::MAX, None));
        }
        eventually_nothing_left(dir.path()).await;
    }

    #[tokio::test]
    async fn a_temp_file_that_cannot_be_created_fails_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        fs::remove_dir(dir.path().join(TEMP_DIR)).unwrap();
        let data = noise(2 * WRITE_BUFFER_BYTES + 5, 13);
        let mut writer = store.writer(u64::MAX, None);
        // The first write may come before the failure is known; the finish cannot.
        let failed = match writer.write(&data).await {
            Ok(()) => writer.finish(None).await.unwrap_err(),
            Err(err) => err,
        };
        assert!(matches!(&failed, Error::Unavailable(message) if message.contains("creating")), "{failed:?}");
        assert!(files_in(&dir.path().join(BLOBS_DIR)).is_empty());
    }

    #[tokio::test]
    async fn a_corrupt_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = noise(3 * WRITE_BUFFER_BYTES + 100, 11);
        let stored = store.put(&data, u64::MAX).await.unwrap();
        let file = File::options().write(true).open(store.path(&stored.digest)).unwrap();
        file.write_all_at(&[data[WRITE_BUFFER_BYTES] ^ 0x40], WRITE_BUFFER_BYTES as u64).unwrap();
        drop(file);

        // A whole read delivers every chunk, then ends with the error instead of normally.
        let reader = store.open_blob(&stored.digest).await.unwrap().unwrap();
        let mut stream = std::pin::pin!(reader.chunks(0, None, WRITE_BUFFER_BYTES).await.unwrap());
        let mut received = 0;
        let err = loop {
            match stream.try_next().await {
                Ok(Some(chunk)) => received += chunk.len(),
                Ok(None) => panic!("a corrupt blob streamed to its end without an error"),
                Err(err) => break err,
            }
        };
        assert_eq!(received, data.len());
        assert!(matches!(&err, Error::DataLoss(message) if message.contains("is corrupt")), "{err}");

        // A ranged read, verify and read_all refuse it before giving any byte.
        let reader = store.open_blob(&stored.digest).await.unwrap().unwrap();
        assert!(matches!(reader.chunks(10, Some(10), 4).await, Err(Error::DataLoss(_))));
        assert!(matches!(store.verify(&stored.digest).await, Err(Error::DataLoss(_))));
        assert!(matches!(store.read_all(&stored.digest, u64::MAX).await, Err(Error::DataLoss(_))));
    }

    #[tokio::test]
    async fn ranges_read_part_of_a_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = noise(2 * WRITE_BUFFER_BYTES + 999, 13);
        let len = data.len() as u64;
        let digest = store.put(&data, u64::MAX).await.unwrap().digest;
        let middle = WRITE_BUFFER_BYTES as u64 - 17;

        assert_eq!(read(&store, &digest, middle, None, 65_536).await.unwrap(), &data[middle as usize..]);
        assert_eq!(read(&store, &digest, middle, Some(100_000), 4096).await.unwrap(), &data[middle as usize..][..100_000]);
        assert_eq!(read(&store, &digest, 0, Some(10), 3).await.unwrap(), &data[..10]);
        assert_eq!(read(&store, &digest, len - 5, Some(1000), 2).await.unwrap(), &data[len as usize - 5..]);
        assert_eq!(read(&store, &digest, 0, Some(len + 1), 1 << 20).await.unwrap(), data);
        assert!(read(&store, &digest, len, None, 10).await.unwrap().is_empty());
        assert!(read(&store, &digest, 5, Some(0), 10).await.unwrap().is_empty());

        let reader = store.open_blob(&digest).await.unwrap().unwrap();
        let err = reader.chunks(len + 1, None, 10).await.err().unwrap();
        let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[0].field, "offset");
        assert!(violations[0].description.contains(&format!("the artifact has {len} bytes")));
    }

    #[tokio::test]
    async fn missing_blobs_and_size_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let missing = Digest::of(b"never stored");
        assert!(store.open_blob(&missing).await.unwrap().is_none());
        assert!(!store.contains(&missing).await.unwrap());
        assert!(matches!(store.read_all(&missing, 10).await, Err(Error::NotFound { resource: "blob", .. })));
        assert!(matches!(store.verify(&missing).await, Err(Error::NotFound { resource: "blob", .. })));

        let stored = store.put(b"0123456789", 10).await.unwrap();
        assert!(store.contains(&stored.digest).await.unwrap());
        assert_eq!(store.read_all(&stored.digest, 10).await.unwrap(), b"0123456789");
        assert!(matches!(
            store.read_all(&stored.digest, 9).await,
            Err(Error::FailedPrecondition { reason: "ARTIFACT_TOO_LARGE", .. })
        ));
    }

    #[tokio::test]
    async fn sweep_removes_only_stale_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let temp = dir.path().join(TEMP_DIR);
        let stale = temp.join("stale.part");
        let fresh = temp.join("fresh.part");
        File::create(&stale).unwrap().set_modified(SystemTime::now() - Duration::from_secs(7200)).unwrap();
        File::create(&fresh).unwrap().set_modified(SystemTime::now() - Duration::from_secs(60)).unwrap();
        let mut live = store.writer(u64::MAX, None);
        live.write(b"in progress").await.unwrap();
        live.lanes.settle(0).await.unwrap(); // Its temp file exists.

        assert_eq!(store.sweep_temp(Duration::from_secs(3600)).await.unwrap(), 1);
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(files_in(&temp).len(), 2, "the fresh file and the live upload's remain");
        live.finish(None).await.unwrap();
        assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 1);
        assert!(files_in(&temp).is_empty());
    }

    #[tokio::test]
    async fn list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        assert!(store.list().await.unwrap().is_empty());
        let before = SystemTime::now() - Duration::from_secs(1);
        let mut digests = Vec::new();
        for seed in 0..5 {
            digests.push(store.put(&noise(1000, seed), u64::MAX).await.unwrap().digest);
        }
        digests.sort();
        // Strays the listing skips: a file not named as a digest, one in the wrong shard, one
        // in upper case, and a file among the shards.
        let shard = store.path(&digests[0]).parent().unwrap().to_path_buf();
        fs::write(shard.join("notes.txt"), b"x").unwrap();
        let prefix = &digests[0].as_str()[..2];
        let elsewhere = (0u32..).map(|n| Digest::of(&n.to_le_bytes())).find(|d| !d.as_str().starts_with(prefix)).unwrap();
        fs::write(shard.join(elsewhere.as_str()), b"x").unwrap();
        fs::write(shard.join(digests[0].as_str().to_uppercase()), b"x").unwrap();
        fs::write(dir.path().join(BLOBS_DIR).join("README"), b"x").unwrap();

        let listed = store.list().await.unwrap();
        let names: Vec<Digest> = listed.iter().map(|(digest, _)| digest.clone()).collect();
        assert_eq!(names, digests);
        assert!(listed.iter().all(|(_, modified)| *modified >= before));

        assert!(store.remove(&digests[2]).await.unwrap());
        assert!(!store.remove(&digests[2]).await.unwrap());
        assert!(!store.contains(&digests[2]).await.unwrap());
        assert_eq!(store.list().await.unwrap().len(), digests.len() - 1);
    }
}
