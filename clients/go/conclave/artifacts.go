package conclave

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"conclave.dev/client/conclavev1"

	"google.golang.org/grpc/codes"
)

// DefaultChunkSize is the size of the chunks UploadFile sends: well under the server's default
// 16 MiB message limit.
const DefaultChunkSize = 1 << 20

// ErrDigestMismatch is returned (wrapped) when downloaded content does not hash to the
// artifact's SHA-256 or does not have its size.
var ErrDigestMismatch = errors.New("conclave: the downloaded content does not match the artifact's digest")

// UploadOptions describe the artifact UploadFile writes; the zero value writes a plain file.
type UploadOptions struct {
	Kind      conclavev1.ArtifactKind
	MediaType string // empty means application/octet-stream
	Labels    map[string]string
	Producer  *conclavev1.ArtifactProducer
	// Write only while this etag names the latest version (ABORTED / ETAG_MISMATCH otherwise).
	ExpectedEtag string
	// Write only if the name has no version yet (ABORTED otherwise).
	IfAbsent bool
	// Bytes per chunk message; 0 means DefaultChunkSize.
	ChunkSize int
	// Called after each chunk sent, with the bytes sent so far in this attempt and the total.
	OnProgress func(sent, total uint64)
	// Called before an attempt is retried, with the error that ended the one before.
	OnRetry func(err error)
}

// UploadFile stores the file at path as a new version of the artifact name of run runID, and
// returns the stored version.
//
// The file's size and SHA-256 are computed first and sent in the header, so the server refuses
// content that arrives truncated or altered, and stores nothing from a broken stream. A
// transient failure (see IsTransient) is retried with the client's RetryPolicy, sending the
// file again from its start (the API has no partial uploads). Before each retry the latest
// version of the name is checked: if it has this content and is newer than the version that
// was latest before the first attempt, an attempt whose answer was lost did store it, and that
// version is returned instead of writing a duplicate.
func (c *Client) UploadFile(ctx context.Context, runID, name, path string, opts *UploadOptions) (*conclavev1.Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.Upload(ctx, runID, name, f, opts)
}

// Upload is UploadFile for any content that can be read again from its start.
func (c *Client) Upload(ctx context.Context, runID, name string, content io.ReadSeeker, opts *UploadOptions) (*conclavev1.Artifact, error) {
	if opts == nil {
		opts = &UploadOptions{}
	}
	chunkSize := opts.ChunkSize
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}

	// Size and digest first: the header carries them, and a retry compares them.
	h := sha256.New()
	size, err := io.Copy(h, content)
	if err != nil {
		return nil, fmt.Errorf("conclave: reading the content: %w", err)
	}
	digest := hex.EncodeToString(h.Sum(nil))
	total := uint64(size)

	// The version that is latest before the first attempt (0: none, -1: unknown).
	before := int64(-1)
	if latest, err := c.Artifacts.GetArtifact(ctx, &conclavev1.GetArtifactRequest{
		Artifact: &conclavev1.ArtifactRef{RunId: runID, Name: name},
	}); err == nil {
		before = int64(latest.GetVersion())
	} else if CodeOf(err) == codes.NotFound {
		before = 0
	} else if !IsTransient(err) {
		return nil, convert(err)
	}

	header := &conclavev1.UploadHeader{
		RunId:        runID,
		Name:         name,
		Kind:         opts.Kind,
		MediaType:    opts.MediaType,
		Labels:       opts.Labels,
		Producer:     opts.Producer,
		ExpectedEtag: opts.ExpectedEtag,
		IfAbsent:     opts.IfAbsent,
		Size:         &total,
		Sha256:       digest,
	}
	buf := make([]byte, chunkSize)
	for attempt := 1; ; attempt++ {
		if _, err := content.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("conclave: rewinding the content: %w", err)
		}
		artifact, err := c.uploadOnce(ctx, header, content, buf, total, opts.OnProgress)
		if err == nil {
			return artifact, nil
		}
		if ctx.Err() != nil {
			return nil, convert(ctx.Err())
		}
		if !IsTransient(err) {
			return nil, convert(err)
		}
		if attempt >= c.retry.MaxAttempts {
			return nil, fmt.Errorf("conclave: giving up after %d failed attempts: %w", attempt, convert(err))
		}
		if opts.OnRetry != nil {
			opts.OnRetry(convert(err))
		}
		if err := sleep(ctx, c.retry.backoff(attempt)); err != nil {
			return nil, convert(err)
		}
		if before >= 0 {
			latest, lerr := c.Artifacts.GetArtifact(ctx, &conclavev1.GetArtifactRequest{
				Artifact: &conclavev1.ArtifactRef{RunId: runID, Name: name},
			})
			if lerr == nil && int64(latest.GetVersion()) > before && latest.GetSha256() == digest && latest.GetSize() == total {
				return latest, nil
			}
		}
	}
}

func (c *Client) uploadOnce(ctx context.Context, header *conclavev1.UploadHeader, content io.Reader, buf []byte, total uint64, progress func(sent, total uint64)) (*conclavev1.Artifact, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Artifacts.UploadArtifact(ctx)
	if err != nil {
		return nil, err
	}
	// A failed Send only says the stream is over (io.EOF); the status comes from CloseAndRecv.
	send := func(req *conclavev1.UploadArtifactRequest) (bool, error) {
		err := stream.Send(req)
		if err == io.EOF {
			return false, nil
		}
		return err == nil, err
	}
	ok, err := send(&conclavev1.UploadArtifactRequest{Part: &conclavev1.UploadArtifactRequest_Header{Header: header}})
	if err != nil {
		return nil, err
	}
	var sent uint64
	for ok {
		n, rerr := io.ReadFull(content, buf)
		if n > 0 {
			// Send encodes the message before it returns, so buf can be read into again.
			if ok, err = send(&conclavev1.UploadArtifactRequest{Part: &conclavev1.UploadArtifactRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			sent += uint64(n)
			if progress != nil {
				progress(sent, total)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("conclave: reading the content: %w", rerr)
		}
	}
	return stream.CloseAndRecv()
}

// DownloadOptions tune DownloadFile and Download; the zero value resumes and verifies.
type DownloadOptions struct {
	// Start again from the beginning even if a partial file of an earlier DownloadFile of the
	// same content is there.
	NoResume bool
	// Called after each chunk written, with the bytes of the artifact written so far (a resumed
	// download starts from what was there) and its size.
	OnProgress func(done, total uint64)
	// Called before the download is resumed after a transient failure, with the error and the
	// offset it resumes from.
	OnResume func(err error, offset uint64)
}

// PartialPath is where DownloadFile keeps the content of artifact version a (identified by its
// digest) while downloading it to path: beside path, so the final rename is atomic.
func PartialPath(path string, a *conclavev1.Artifact) string {
	return fmt.Sprintf("%s.%.16s.part", path, a.GetSha256())
}

// DownloadFile saves one version of an artifact (ref names it by id, or by run and name, the
// latest version unless ref.Version is set) to path, and returns that version's metadata.
//
// The content goes to a partial file beside path (see PartialPath) that is renamed to path
// once its size and SHA-256 match the artifact's. A transient failure mid-stream is resumed
// from the bytes already written (the request's offset), with the client's RetryPolicy; a
// partial file left by an earlier call that failed or was interrupted is resumed the same way
// unless opts.NoResume. Every resumed part is of the same version: the download is pinned to
// the version's id. Content that does not match its digest is removed and ErrDigestMismatch
// returned.
func (c *Client) DownloadFile(ctx context.Context, ref *conclavev1.ArtifactRef, path string, opts *DownloadOptions) (*conclavev1.Artifact, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	artifact, err := c.Artifacts.GetArtifact(ctx, &conclavev1.GetArtifactRequest{Artifact: ref})
	if err != nil {
		return nil, err
	}
	part := PartialPath(path, artifact)
	flags := os.O_CREATE | os.O_WRONLY
	if opts.NoResume {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(part, flags, 0o644)
	if err != nil {
		return nil, err
	}
	closed := false
	defer func() {
		if !closed {
			f.Close()
		}
	}()

	// Hash what an earlier call left, and continue after it.
	h := sha256.New()
	offset, err := hashPrefix(part, h, artifact.GetSize())
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(int64(offset)); err != nil {
		return nil, err
	}
	if _, err := f.Seek(int64(offset), io.SeekStart); err != nil {
		return nil, err
	}

	if err := c.download(ctx, artifact, offset, h, f, opts); err != nil {
		if errors.Is(err, ErrDigestMismatch) {
			f.Close()
			closed = true
			os.Remove(part)
		}
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	closed = true
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(part, path); err != nil {
		return nil, err
	}
	return artifact, nil
}

// Download writes one version of an artifact to w, resuming after transient failures within
// the call, and returns its metadata once the content written matches its size and SHA-256 (or
// an error wrapping ErrDigestMismatch after writing content that does not).
func (c *Client) Download(ctx context.Context, ref *conclavev1.ArtifactRef, w io.Writer, opts *DownloadOptions) (*conclavev1.Artifact, error) {
	if opts == nil {
		opts = &DownloadOptions{}
	}
	artifact, err := c.Artifacts.GetArtifact(ctx, &conclavev1.GetArtifactRequest{Artifact: ref})
	if err != nil {
		return nil, err
	}
	if err := c.download(ctx, artifact, 0, sha256.New(), w, opts); err != nil {
		return nil, err
	}
	return artifact, nil
}

// hashPrefix feeds the first bytes of the file at path (at most limit) to h and returns how many
// there were. A file longer than limit is not this content: it counts as empty.
func hashPrefix(path string, h hash.Hash, limit uint64) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if uint64(info.Size()) > limit {
		return 0, nil
	}
	n, err := io.Copy(h, f)
	return uint64(n), err
}

// download streams artifact's content from offset into w (h has hashed the bytes before
// offset), resuming after transient failures, then checks size and digest.
func (c *Client) download(ctx context.Context, artifact *conclavev1.Artifact, offset uint64, h hash.Hash, w io.Writer, opts *DownloadOptions) error {
	total := artifact.GetSize()
	pinned := &conclavev1.ArtifactRef{Id: artifact.GetId()}
	failures := 0
	for offset < total || total == 0 {
		got, err := c.downloadOnce(ctx, pinned, offset, h, w, total, opts.OnProgress)
		offset += got
		if got > 0 {
			failures = 0
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return convert(ctx.Err())
		}
		if !IsTransient(err) {
			return convert(err)
		}
		failures++
		if failures >= c.retry.MaxAttempts {
			return fmt.Errorf("conclave: giving up after %d failed attempts: %w", failures, convert(err))
		}
		if opts.OnResume != nil {
			opts.OnResume(convert(err), offset)
		}
		if err := sleep(ctx, c.retry.backoff(failures)); err != nil {
			return convert(err)
		}
	}
	if offset != total {
		return fmt.Errorf("%w: %d bytes received, the artifact has %d", ErrDigestMismatch, offset, total)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != artifact.GetSha256() {
		return fmt.Errorf("%w: sha256 %s, the artifact's is %s", ErrDigestMismatch, got, artifact.GetSha256())
	}
	return nil
}

// downloadOnce streams from offset until the end of the stream, returning the bytes written.
func (c *Client) downloadOnce(ctx context.Context, ref *conclavev1.ArtifactRef, offset uint64, h hash.Hash, w io.Writer, total uint64, progress func(done, total uint64)) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Artifacts.DownloadArtifact(ctx, &conclavev1.DownloadArtifactRequest{Artifact: ref, Offset: offset})
	if err != nil {
		return 0, err
	}
	var written uint64
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return written, nil
		}
		if err != nil {
			return written, err
		}
		chunk := msg.GetChunk()
		if len(chunk) == 0 {
			continue // the artifact's metadata comes first
		}
		if offset+written+uint64(len(chunk)) > total {
			return written, fmt.Errorf("%w: the server sent more than the artifact's %d bytes", ErrDigestMismatch, total)
		}
		if _, err := w.Write(chunk); err != nil {
			return written, err
		}
		h.Write(chunk)
		written += uint64(len(chunk))
		if progress != nil {
			progress(offset+written, total)
		}
	}
}
