//! Content-addressed blobs on disk: the bytes of artifacts, each stored once under its SHA-256.
//!
//! Layout under the store's root:
//! - `sha256/<first 2 hex digits>/<64 hex digits>`: finished blobs, never modified in place;
//! - `tmp/<uuid v7>.part`: uploads in progress, on the same filesystem so the final rename is
//!   atomic.
//!
//! An upload streams into a temp file while it is hashed; only once the whole content is on
//! disk, checked against the declared size and digest and fsynced is it renamed into `sha256/`
//! (and the directory fsynced), so a crash never leaves a torn blob there. A writer dropped
//! before it finishes, or failing, removes its temp file; uploads that died with their process
//! are swept by [`BlobStore::sweep_temp`]. Reads of a whole blob are verified as they stream;
//! ranged reads verify the whole file first.
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

    /// Starts an upload of at most `limit` bytes into a fresh temp file.
    pub async fn writer(&self, limit: u64) -> Result<BlobWriter> {
        let path = self.temp.join(format!("{}{TEMP_SUFFIX}", uuid::Uuid::now_v7()));
        let file = {
            let path = path.clone();
            blocking(move || {
                DirectFile::create_new(&path).map_err(|err| storage(format_args!("creating {}", path.display()), err))
            })
            .await?
        };
        Ok(BlobWriter {
            blobs: Arc::clone(&self.blobs),
            buffers: Arc::clone(&self.buffers),
            temp: Some(path),
            limit,
            written: 0,
            buffer: PooledBuf::default(),
            lanes: Lanes::new(Sha256::new(), file),
            failed: None,
        })
    }

    /// Stores `data` (at most `limit` bytes): a writer, one write, and its finish.
    pub async fn put(&self, data: &[u8], limit: u64) -> Result<StoredBlob> {
        let mut writer = self.writer(limit).await?;
        writer.write(data).await?;
        writer.finish(None, None).await
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
    written: u64,
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
struct Lanes {
    hash: Mutex<Lane<Sha256>>,
    file: Mutex<Lane<DirectFile>>,
    /// Wakes the writer when a lane has taken in a buffer or stopped.
    progress: Notify,
}

/// One of [`Lanes`].
struct Lane<S> {
    /// The buffers to take in, in order; a running task is taking in the first.
    queue: VecDeque<Arc<PooledBuf>>,
    /// The hash or the file, while no task runs the lane.
    idle: Option<S>,
    /// Why the lane stopped (a write failed); it takes nothing more.
    failed: Option<Error>,
}

impl<S> Lane<S> {
    fn idle(state: S) -> Mutex<Self> {
        Mutex::new(Self { queue: VecDeque::new(), idle: Some(state), failed: None })
    }
}

/// What a lane does with each buffer.
trait TakeIn: Send + 'static {
    fn take_in(&mut self, data: &[u8]) -> Result<()>;
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
}

impl Lanes {
    fn new(hasher: Sha256, file: DirectFile) -> Arc<Self> {
        Arc::new(Self { hash: Lane::idle(hasher), file: Lane::idle(file), progress: Notify::new() })
    }

    /// Queues a full buffer on both lanes, and starts a task on each that is idle.
    fn push(self: &Arc<Self>, data: PooledBuf) {
        let data = Arc::new(data);
        self.push_on(|lanes| &lanes.hash, Arc::clone(&data));
        self.push_on(|lanes| &lanes.file, data);
    }

    fn push_on<S: TakeIn>(self: &Arc<Self>, lane: fn(&Self) -> &Mutex<Lane<S>>, data: Arc<PooledBuf>) {
        let mut guard = lock(lane(self));
        if guard.failed.is_some() {
            return;
        }
        guard.queue.push_back(data);
        if let Some(state) = guard.idle.take() {
            let lanes = Arc::clone(self);
            drop(tokio::task::spawn_blocking(move || lanes.run(lane, state)));
        }
    }

    /// Takes in the queued buffers one after another until there are none (on the blocking
    /// pool), then leaves the state idle; on an error, drops it and stops the lane.
    fn run<S: TakeIn>(&self, lane: fn(&Self) -> &Mutex<Lane<S>>, mut state: S) {
        loop {
            let data = {
                let mut guard = lock(lane(self));
                match guard.queue.front() {
                    Some(data) => Arc::clone(data),
                    None => {
                        guard.idle = Some(state);
                        break;
                    }
                }
            };
            let taken = state.take_in(data.as_slice());
            let mut guard = lock(lane(self));
            // Unless the queue was emptied meanwhile (the upload was abandoned).
            if guard.queue.front().is_some_and(|front| Arc::ptr_eq(front, &data)) {
                guard.queue.pop_front();
            }
            if let Err(err) = taken {
                guard.failed = Some(err);
                guard.queue.clear();
                break;
            }
            drop(guard);
            self.progress.notify_one();
        }
        self.progress.notify_one();
    }

    /// Waits until neither lane has more than `queued` buffers left (with 0: until both are
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

    /// Drops the buffers not yet taken in: a running task ends after its current one.
    fn abandon(&self) {
        lock(&self.hash).queue.clear();
        lock(&self.file).queue.clear();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BlobWriter {
    /// Appends `chunk`. Past the limit, fails with `ARTIFACT_TOO_LARGE` and removes the temp
    /// file; once a write has failed, every later one fails the same way.
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
        // Stays in place if this future is dropped halfway, when the bytes taken are unknown.
        self.failed = Some(Error::Internal("an earlier write to this upload was interrupted".into()));
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer = self.buffers.take();
            }
            rest = &rest[self.buffer.fill_from(rest)..];
            if self.buffer.is_full() {
                self.lanes.push(std::mem::take(&mut self.buffer));
                if let Err(err) = self.lanes.settle(QUEUED_BUFFERS).await {
                    self.fail(err.clone());
                    return Err(err);
                }
            }
        }
        self.written = total;
        self.failed = None;
        Ok(())
    }

    /// How many bytes were written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Ends the upload: checks the bytes against the declared size and digest, if given, and
    /// stores them. The same bytes already stored are kept, their modification time refreshed,
    /// and the upload's copy dropped. On any error the temp file is removed and nothing is
    /// stored.
    pub async fn finish(mut self, expected_size: Option<u64>, expected_digest: Option<&Digest>) -> Result<StoredBlob> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        self.lanes.settle(0).await?;
        let Some(taken) = self.lanes.take() else {
            return Err(Error::Internal("the upload's file is gone after an earlier failure".into()));
        };
        let Some(temp) = self.temp.clone() else {
            return Err(Error::Internal("the upload's temp file is gone".into()));
        };
        let last = std::mem::take(&mut self.buffer);
        let blobs = Arc::clone(&self.blobs);
        let written = self.written;
        let expected_digest = expected_digest.cloned();
        let stored = blocking(move || {
            commit(taken, last.as_slice(), &temp, &blobs, written, expected_size, expected_digest.as_ref())
        })
        .await?;
        // Renamed into the store, or removed as a duplicate: nothing is left for `drop`.
        self.temp = None;
        Ok(stored)
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

/// Finishes an upload on a blocking thread: writes the last bytes, checks them, and moves the
/// temp file into the store durably (or drops it if the blob is stored already).
fn commit(
    (mut hasher, mut file): (Sha256, DirectFile),
    last: &[u8],
    temp: &Path,
    blobs: &Path,
    written: u64,
    expected_size: Option<u64>,
    expected_digest: Option<&Digest>,
) -> Result<StoredBlob> {
    hasher.take_in(last)?;
    file.take_in(last)?;
    let digest = Digest::from_bytes(hasher.finalize().into());
    if let Some(declared) = expected_size
        && declared != written
    {
        let why = if written < declared {
            "the upload was truncated: send every byte"
        } else {
            "more bytes arrived than declared: declare the content's real size"
        };
        return Err(Error::invalid("size", format!("the upload declared {declared} bytes but {written} arrived: {why}")));
    }
    if let Some(declared) = expected_digest
        && *declared != digest
    {
        return Err(Error::invalid(
            "sha256",
            format!(
                "the upload declared {declared}, the bytes received hash to {digest}: the content changed in \
                 transit or the declared digest is wrong"
            ),
        ));
    }
    let path = blob_path(blobs, &digest);
    let Some(shard) = path.parent() else {
        return Err(Error::Internal(format!("blob path {} has no directory", path.display())));
    };
    // Stored already: refresh its time so a collector's grace period spares it, and make sure
    // the rename that stored it (perhaps a concurrent upload's, not yet synced) is durable.
    match File::open(&path).and_then(|existing| existing.set_modified(SystemTime::now())) {
        Ok(()) => {
            drop(file);
            sync_dir(shard)?;
            sync_dir(blobs)?;
            let _ = fs::remove_file(temp);
            return Ok(StoredBlob { digest, size: written, deduplicated: true });
        }
        // Not stored (or collected just now): store this copy.
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(storage(format_args!("refreshing {}", path.display()), err)),
    }
    file.file().sync_all().map_err(|err| storage(format_args!("syncing {}", temp.display()), err))?;
    drop(file);
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
    Ok(StoredBlob { digest, size: written, deduplicated: false })
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

    async fn write_in_chunks(store: &BlobStore, data: &[u8], chunk: usize) -> Result<StoredBlob> {
        let mut writer = store.writer(u64::MAX).await?;
        for piece in data.chunks(chunk) {
            writer.write(piece).await?;
        }
        assert_eq!(writer.bytes_written(), data.len() as u64);
        writer.finish(Some(data.len() as u64), Some(&Digest::of(data))).await
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
        let mut writer = store.writer(3000).await.unwrap();
        for byte in &small {
            writer.write(std::slice::from_ref(byte)).await.unwrap();
        }
        assert_eq!(writer.finish(None, None).await.unwrap().digest, Digest::of(&small));
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
        let nothing_left = || {
            assert!(files_in(&dir.path().join(BLOBS_DIR)).is_empty(), "nothing in sha256/");
            assert!(files_in(&dir.path().join(TEMP_DIR)).is_empty(), "nothing in tmp/");
        };

        // The declared size is wrong, in either direction.
        for declared in [data.len() as u64 + 1, data.len() as u64 - 1] {
            let mut writer = store.writer(u64::MAX).await.unwrap();
            writer.write(&data).await.unwrap();
            let err = writer.finish(Some(declared), None).await.unwrap_err();
            let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
            assert_eq!(violations[0].field, "size");
            assert!(violations[0].description.contains(&format!("declared {declared} bytes but {} arrived", data.len())));
            nothing_left();
        }

        // The declared digest is wrong.
        let mut writer = store.writer(u64::MAX).await.unwrap();
        writer.write(&data).await.unwrap();
        let wrong = Digest::of(b"something else");
        let err = writer.finish(Some(data.len() as u64), Some(&wrong)).await.unwrap_err();
        let Error::InvalidArgument(violations) = &err else { panic!("{err}") };
        assert_eq!(violations[0].field, "sha256");
        assert!(violations[0].description.contains(&format!("declared {wrong}, the bytes received hash to {}", Digest::of(&data))));
        nothing_left();

        // Past the limit: this write and every later one fail, and finish does too.
        let limit = WRITE_BUFFER_BYTES as u64 + 10;
        let mut writer = store.writer(limit).await.unwrap();
        writer.write(&data[..WRITE_BUFFER_BYTES]).await.unwrap();
        writer.write(&data[..10]).await.unwrap();
        let err = writer.write(&data[..1]).await.unwrap_err();
        assert!(
            matches!(&err, Error::FailedPrecondition { reason: "ARTIFACT_TOO_LARGE", message } if message.contains(&format!("the limit is {limit} bytes"))),
            "{err}"
        );
        nothing_left();
        assert!(matches!(writer.write(b"").await, Err(Error::FailedPrecondition { .. })));
        assert!(matches!(writer.finish(None, None).await, Err(Error::FailedPrecondition { .. })));
        nothing_left();
        assert!(matches!(store.put(&data, 100).await, Err(Error::FailedPrecondition { .. })));
        nothing_left();
    }

    #[tokio::test]
    async fn a_failed_write_stops_its_lane_and_the_upload_reports_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("read-only");
        fs::write(&path, b"").unwrap();
        // Opened for reading: every append fails.
        let lanes = Lanes::new(Sha256::new(), DirectFile::open(&path).unwrap());
        let pool = BufferPool::new(WRITE_BUFFER_BYTES, 2);
        for _ in 0..3 {
            let mut data = pool.take();
            data.fill_from(&noise(WRITE_BUFFER_BYTES, 1));
            lanes.push(data);
        }
        let err = lanes.settle(0).await.expect_err("the write failed");
        assert!(matches!(err, Error::Unavailable(ref message) if message.contains("writing an upload")), "{err:?}");
        assert!(lock(&lanes.file).queue.is_empty(), "a stopped lane drops what was queued");
        assert!(lanes.take().is_none(), "the file is gone with its lane");
    }

    #[tokio::test]
    async fn a_dropped_writer_removes_its_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer(u64::MAX).await.unwrap();
        writer.write(&noise(3 * WRITE_BUFFER_BYTES + 1, 5)).await.unwrap();
        let temps = files_in(&dir.path().join(TEMP_DIR));
        assert_eq!(temps.len(), 1);
        assert!(temps[0].to_string_lossy().ends_with(TEMP_SUFFIX));
        drop(writer);
        assert!(files_in(&dir.path().join(TEMP_DIR)).is_empty());
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
        let mut live = store.writer(u64::MAX).await.unwrap();
        live.write(b"in progress").await.unwrap();

        assert_eq!(store.sweep_temp(Duration::from_secs(3600)).await.unwrap(), 1);
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(files_in(&temp).len(), 2, "the fresh file and the live upload's remain");
        live.finish(None, None).await.unwrap();
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
