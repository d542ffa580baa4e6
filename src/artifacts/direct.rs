//! Blob file I/O that bypasses the page cache (`O_DIRECT`) where the filesystem allows it.
//!
//! A blob is written once, as a stream, and read back as a stream, usually much later: the page
//! cache gains little from holding it, and filling it can be the slowest part of a transfer. On
//! the machine of `BENCHMARKS.md` (a virtual machine), copying user-space bytes into fresh
//! page-cache pages ran at 220–290 MiB/s, while the same bytes written with `O_DIRECT` ran at
//! 1,700–2,000 MiB/s, and cold buffered reads of 256 MiB at 400–500 MiB/s against 3,000+ direct.
//!
//! Direct I/O wants the buffer's address, the file offset and the length aligned to the
//! device's logical block; [`ALIGN`] (4 KiB) covers the usual 512-byte and 4 KiB blocks. Buffers
//! come from [`AlignedBuf`]. What cannot be aligned falls back to buffered I/O on the same file:
//! the tail of a blob shorter than a block, and every operation on a filesystem that refuses
//! direct I/O (`EINVAL` on open, read or write). Durability is unchanged: the writer still
//! `fsync`s the file (direct writes may sit in the device's cache until then).

use std::{
    fmt,
    fs::File,
    io::{self, Write as _},
    ops::{Deref, DerefMut},
    os::unix::fs::{FileExt as _, OpenOptionsExt as _},
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use bytes::Bytes;
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// The alignment of direct I/O buffers, offsets and lengths.
pub const ALIGN: usize = 4096;

/// A byte buffer whose contents start at an [`ALIGN`]ed address and whose capacity is a
/// multiple of it, for direct I/O. Safe code: a `Vec` over-allocated by one block, used from its
/// first aligned byte (a `Vec`'s heap block does not move when the `Vec` does). The default
/// holds nothing and has no memory.
#[derive(Default)]
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
    capacity: usize,
}

impl AlignedBuf {
    /// A buffer of `capacity` bytes (rounded up to a multiple of [`ALIGN`]), empty.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.next_multiple_of(ALIGN);
        let storage = vec![0; capacity + ALIGN];
        let start = storage.as_ptr().align_offset(ALIGN);
        Self { storage, start, len: 0, capacity }
    }

    /// The bytes held.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    /// How many bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the buffer holds as many bytes as it can.
    pub fn is_full(&self) -> bool {
        self.len == self.capacity
    }

    /// Appends as much of `data` as fits and returns how many bytes were taken.
    pub fn fill_from(&mut self, data: &[u8]) -> usize {
        let taken = (self.capacity - self.len).min(data.len());
        let at = self.start + self.len;
        self.storage[at..at + taken].copy_from_slice(&data[..taken]);
        self.len += taken;
        taken
    }

    /// The bytes held, without a copy.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from(self.storage).slice(self.start..self.start + self.len)
    }

    /// Forgets the bytes held, keeping the memory.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The whole capacity, for a read to fill; follow with [`set_len`](Self::set_len).
    fn whole_mut(&mut self) -> &mut [u8] {
        let (start, capacity) = (self.start, self.capacity);
        &mut self.storage[start..start + capacity]
    }

    /// Says how many bytes a read put at the start.
    fn set_len(&mut self, len: usize) {
        self.len = len.min(self.capacity);
    }
}

/// Aligned buffers of one size, kept for reuse: a transfer takes its buffers here rather than
/// allocating fresh memory (which the kernel then faults in, page by page, on first touch) for
/// every buffer of every transfer. At most `keep` idle buffers are held; more are freed.
pub struct BufferPool {
    /// The capacity of every buffer, a multiple of [`ALIGN`].
    size: usize,
    keep: usize,
    idle: Mutex<Vec<AlignedBuf>>,
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idle = self.idle_buffers().len();
        f.debug_struct("BufferPool").field("size", &self.size).field("keep", &self.keep).field("idle", &idle).finish()
    }
}

impl BufferPool {
    /// A pool of buffers of `size` bytes (rounded up to a multiple of [`ALIGN`]) that keeps at
    /// most `keep` of them idle.
    pub fn new(size: usize, keep: usize) -> Arc<Self> {
        Arc::new(Self { size: size.next_multiple_of(ALIGN), keep, idle: Mutex::new(Vec::new()) })
    }

    /// The capacity of the pool's buffers.
    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// An empty buffer of the pool's size, which goes back to the pool when dropped.
    pub fn take(self: &Arc<Self>) -> PooledBuf {
        let reused = self.idle_buffers().pop();
        let buf = reused.unwrap_or_else(|| AlignedBuf::with_capacity(self.size));
        PooledBuf { buf, pool: Some(Arc::clone(self)) }
    }

    /// How many buffers wait for reuse.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle_buffers().len()
    }

    fn give_back(&self, mut buf: AlignedBuf) {
        if buf.capacity() != self.size {
            return;
        }
        buf.clear();
        let mut idle = self.idle_buffers();
        if idle.len() < self.keep {
            idle.push(buf);
        }
    }

    fn idle_buffers(&self) -> MutexGuard<'_, Vec<AlignedBuf>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An [`AlignedBuf`] that returns to its [`BufferPool`] when dropped, wherever that happens
/// (after a blocking task, with the `Bytes` of a chunk sent, or with a failed upload). The
/// default holds nothing and belongs to no pool.
#[derive(Default)]
pub struct PooledBuf {
    buf: AlignedBuf,
    pool: Option<Arc<BufferPool>>,
}

impl PooledBuf {
    /// The bytes held, as `Bytes` without a copy; the buffer returns to its pool once every
    /// slice of them is dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Deref for PooledBuf {
    type Target = AlignedBuf;

    fn deref(&self) -> &AlignedBuf {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut AlignedBuf {
        &mut self.buf
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_slice()
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

/// A blob file opened for direct I/O, or for buffered I/O where direct I/O is refused.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
    /// Whether the file is still in direct mode. Shared readers may switch it off.
    direct: AtomicBool,
}

impl DirectFile {
    /// Creates a new file for writing (failing if it exists).
    pub fn create_new(path: &Path) -> io::Result<Self> {
        Self::open_with(path, |options| options.write(true).create_new(true))
    }

    /// Opens an existing file for reading.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, |options| options.read(true))
    }

    fn open_with(path: &Path, mode: impl Fn(&mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions) -> io::Result<Self> {
        let mut options = File::options();
        mode(&mut options);
        match options.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(file) => Ok(Self { file, direct: AtomicBool::new(true) }),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                // The filesystem has no direct I/O; `create_new` created nothing.
                Ok(Self { file: options.open(path)?, direct: AtomicBool::new(false) })
            }
            Err(err) => Err(err),
        }
    }

    /// The file, to sync, stat or touch.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether reads and writes still bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Appends `data` at the file's position: its whole blocks directly when the buffer, the
    /// position and the length allow, the rest (a short tail) through the page cache. After a
    /// buffered write the file stays buffered: its position is no longer aligned.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let blocks = if self.is_direct() && rest.as_ptr().addr().is_multiple_of(ALIGN) {
                rest.len() / ALIGN * ALIGN
            } else {
                0
            };
            if blocks == 0 {
                self.buffered()?;
            }
            let piece = if blocks == 0 { rest } else { &rest[..blocks] };
            match self.file.write(piece) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(written) => rest = &rest[written..],
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                // Refused before anything was written: retried through the page cache.
                Err(err) if blocks > 0 && err.raw_os_error() == Some(libc::EINVAL) => self.buffered()?,
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Fills `buffer` (its whole capacity) with the bytes at `position`, a multiple of
    /// [`ALIGN`]: fewer only at the end of the file. How many bytes it now holds.
    pub fn fill(&self, buffer: &mut AlignedBuf, position: u64) -> io::Result<usize> {
        debug_assert!(position.is_multiple_of(ALIGN as u64), "direct reads start on a block");
        let read = match read_fully_at(&self.file, buffer.whole_mut(), position) {
            Err(err) if self.is_direct() && err.raw_os_error() == Some(libc::EINVAL) => {
                self.buffered()?;
                read_fully_at(&self.file, buffer.whole_mut(), position)
            }
            read => read,
        }?;
        buffer.set_len(read);
        Ok(read)
    }

    /// The `len` bytes at `position`, fewer only at the end of the file: read directly
    /// (the blocks around them, into a buffer the result is a slice of, without a copy). The
    /// buffer comes from `pool` when the blocks fill at least half of one of its buffers (a
    /// small chunk would hold a whole pooled buffer for a few bytes), else it is fresh.
    pub fn read_bytes(&self, position: u64, len: usize, pool: Option<&Arc<BufferPool>>) -> io::Result<Bytes> {
        let first = position / ALIGN as u64 * ALIGN as u64;
        let skip = (position - first) as usize;
        let fits = |pool: &&Arc<BufferPool>| (pool.buffer_size() / 2..=pool.buffer_size()).contains(&(skip + len));
        let (read, bytes) = match pool.filter(fits) {
            Some(pool) => {
                let mut buffer = pool.take();
                (self.fill(&mut buffer, first)?, buffer.into_bytes())
            }
            None => {
                let mut buffer = AlignedBuf::with_capacity(skip + len);
                (self.fill(&mut buffer, first)?, buffer.into_bytes())
            }
        };
        let available = read.saturating_sub(skip).min(len);
        Ok(bytes.slice(skip..skip + available))
    }

    /// Switches the file to buffered I/O for good.
    fn buffered(&self) -> io::Result<()> {
        if self.direct.swap(false, Ordering::Relaxed) {
            let flags = fcntl_getfl(&self.file)?;
            fcntl_setfl(&self.file, flags - OFlags::DIRECT)?;
        }
        Ok(())
    }
}

/// Reads until `dst` is full or the file ends; how many bytes were read.
fn read_fully_at(file: &File, dst: &mut [u8], position: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < dst.len() {
        match file.read_at(&mut dst[filled..], position + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(len: usize) -> Vec<u8> {
        (0..len).map(|index| (index * 31 % 251) as u8).collect()
    }

    #[test]
    fn aligned_buffers_start_on_a_block_and_fill_to_capacity() {
        let mut buffer = AlignedBuf::with_capacity(ALIGN + 1);
        assert_eq!(buffer.as_slice().as_ptr().addr() % ALIGN, 0);
        let data = content(3 * ALIGN);
        assert_eq!(buffer.fill_from(&data), 2 * ALIGN, "the capacity is rounded up to whole blocks");
        assert!(buffer.is_full());
        assert_eq!(buffer.as_slice(), &data[..2 * ALIGN]);
        buffer.clear();
        assert!(buffer.as_slice().is_empty());
    }

    #[test]
    fn a_file_written_in_blocks_and_a_tail_reads_back_at_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = content(5 * ALIGN + 123);
        let mut file = DirectFile::create_new(&path).unwrap();
        let mut buffer = AlignedBuf::with_capacity(4 * ALIGN);
        let mut rest = &data[..];
        while !rest.is_empty() {
            rest = &rest[buffer.fill_from(rest)..];
            file.append(buffer.as_slice()).unwrap();
            buffer.clear();
        }
        file.file().sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);

        let reader = DirectFile::open(&path).unwrap();
        for (position, len) in [(0, data.len()), (1, ALIGN), (ALIGN - 1, 2), (4 * ALIGN + 7, 10_000), (data.len() - 5, 5)] {
            let read = reader.read_bytes(position as u64, len, None).unwrap();
            let end = (position + len).min(data.len());
            assert_eq!(&read[..], &data[position..end], "bytes at {position}");
        }
        assert!(reader.read_bytes(data.len() as u64, 10, None).unwrap().is_empty());
    }

    #[test]
    fn pooled_buffers_are_reused_and_the_pool_keeps_only_its_share() {
        let pool = BufferPool::new(2 * ALIGN, 1);
        let mut first = pool.take();
        assert_eq!(first.capacity(), 2 * ALIGN);
        let address = first.as_slice().as_ptr().addr();
        first.fill_from(&content(100));
        drop(first);
        let again = pool.take();
        assert_eq!(again.as_slice().as_ptr().addr(), address, "the returned buffer is taken again");
        assert!(again.as_slice().is_empty(), "a reused buffer comes back empty");
        let other = pool.take();
        drop(again);
        drop(other);
        assert_eq!(pool.idle(), 1, "only `keep` buffers wait; the others are freed");
    }

    #[test]
    fn reads_into_pooled_buffers_give_them_back_with_their_last_slice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = content(8 * ALIGN);
        let mut file = DirectFile::create_new(&path).unwrap();
        let mut buffer = AlignedBuf::with_capacity(data.len());
        buffer.fill_from(&data);
        file.append(buffer.as_slice()).unwrap();
        let reader = DirectFile::open(&path).unwrap();
        let pool = BufferPool::new(4 * ALIGN, 4);

        let chunk = reader.read_bytes(ALIGN as u64 + 10, 3 * ALIGN - 10, Some(&pool)).unwrap();
        assert_eq!(&chunk[..], &data[ALIGN + 10..4 * ALIGN]);
        let part = chunk.slice(..5);
        drop(chunk);
        assert_eq!(pool.idle(), 0, "a slice still holds the buffer");
        drop(part);
        assert_eq!(pool.idle(), 1, "the buffer is back once the last slice is gone");

        let small = reader.read_bytes(0, 10, Some(&pool)).unwrap();
        let large = reader.read_bytes(0, 5 * ALIGN, Some(&pool)).unwrap();
        assert_eq!((&small[..], &large[..]), (&data[..10], &data[..5 * ALIGN]));
        assert_eq!(pool.idle(), 1, "reads under half a buffer or over a whole one allocate their own");
    }

    #[test]
    fn an_unaligned_buffer_is_written_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        let data = content(3 * ALIGN);
        let mut file = DirectFile::create_new(&path).unwrap();
        file.append(&data[1..]).unwrap();
        assert!(!file.is_direct());
        file.append(&data[..1]).unwrap();
        let mut expected = data[1..].to_vec();
        expected.push(data[0]);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
