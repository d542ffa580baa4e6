package conclave_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"conclave.dev/client/conclave"
	"conclave.dev/client/conclavev1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

func input(t *testing.T, m map[string]interface{}) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func createRun(t *testing.T, c *conclave.Client, kind string, in map[string]interface{}, labels map[string]string) *conclavev1.Run {
	t.Helper()
	req := &conclavev1.CreateRunRequest{Kind: kind, Labels: labels}
	if in != nil {
		req.Input = input(t, in)
	}
	run, err := c.Runs.CreateRun(testContext(t), req)
	if err != nil {
		t.Fatalf("CreateRun %s: %v", kind, err)
	}
	return run
}

func waitState(t *testing.T, c *conclave.Client, id string, want conclavev1.RunState) *conclavev1.Run {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		run, err := c.Runs.GetRun(testContext(t), &conclavev1.GetRunRequest{Id: id})
		if err != nil {
			t.Fatal(err)
		}
		if run.GetState() == want {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s after 30s, expected %s", id, run.GetState(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSequences fails unless seqs is exactly 1..n.
func checkSequences(t *testing.T, what string, seqs []uint64) {
	t.Helper()
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("%s: sequence %d at position %d (want 1..%d exactly once): %v", what, seq, i, len(seqs), seqs)
		}
	}
}

// Create a run, follow its events to the end through a connection that is cut mid-stream: the
// follow reconnects and resumes, and every event arrives exactly once.
func TestFollowEventsResumesAfterDisconnect(t *testing.T) {
	needServer(t)
	p := startProxy(t, live.addr)
	c := dial(t, p.Addr())
	ctx := testContext(t)

	run := createRun(t, c, "steps", map[string]interface{}{"steps": 20, "lines": 1, "step_ms": 100}, nil)

	var seqs []uint64
	var last *conclavev1.RunEvent
	var reconnects []uint64
	err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{
		OnReconnect: func(err error, lastSequence uint64) {
			t.Logf("reconnecting after %v, resuming after %d", err, lastSequence)
			reconnects = append(reconnects, lastSequence)
		},
	}, func(e *conclavev1.RunEvent) error {
		seqs = append(seqs, e.GetSequence())
		last = e
		if len(seqs) == 5 {
			p.DropAll() // the network fails under the open stream
		}
		return nil
	})
	if err != nil {
		t.Fatalf("FollowEvents: %v", err)
	}
	if len(reconnects) == 0 {
		t.Fatal("the stream was cut but FollowEvents never reconnected")
	}
	checkSequences(t, "events", seqs)
	if got := last.GetStateChanged().GetTo(); got != conclavev1.RunState_RUN_STATE_SUCCEEDED {
		t.Fatalf("the last event is %v, expected a change to SUCCEEDED", last)
	}
	final, err := c.Runs.GetRun(ctx, &conclavev1.GetRunRequest{Id: run.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(seqs)) != final.GetLastEventSequence() {
		t.Fatalf("followed %d events, the run has %d", len(seqs), final.GetLastEventSequence())
	}
	t.Logf("%d events, exactly once, across %d reconnect(s)", len(seqs), len(reconnects))

	// Resuming from a known sequence sends only what comes after it.
	var tail []uint64
	if err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{AfterSequence: 10}, func(e *conclavev1.RunEvent) error {
		tail = append(tail, e.GetSequence())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(tail) != len(seqs)-10 || tail[0] != 11 {
		t.Fatalf("after_sequence 10 gave %v", tail)
	}
}

// Follow a run's log while it is written, through a connection cut mid-stream.
func TestFollowLogsResumesAfterDisconnect(t *testing.T) {
	needServer(t)
	p := startProxy(t, live.addr)
	c := dial(t, p.Addr())
	ctx := testContext(t)

	const n = 30
	lines := make([]interface{}, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("line %d", i+1)
	}
	run := createRun(t, c, "echo", map[string]interface{}{"lines": lines, "interval_ms": 50}, nil)

	var seqs []uint64
	var texts []string
	reconnects := 0
	err := c.FollowLogs(ctx, run.GetId(), conclave.FollowOptions{
		OnReconnect: func(error, uint64) { reconnects++ },
	}, func(l *conclavev1.LogLine) error {
		seqs = append(seqs, l.GetSequence())
		texts = append(texts, l.GetText())
		if len(seqs) == 5 {
			p.DropAll()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("FollowLogs: %v", err)
	}
	if reconnects == 0 {
		t.Fatal("the stream was cut but FollowLogs never reconnected")
	}
	checkSequences(t, "log lines", seqs)
	if len(texts) != n {
		t.Fatalf("%d lines, expected %d: %q", len(texts), n, texts)
	}
	for i, text := range texts {
		if text != fmt.Sprintf("line %d", i+1) {
			t.Fatalf("line %d is %q", i+1, text)
		}
	}

	// A plain tail of the finished run's log (no follow) ends once the stored lines are sent.
	stream, err := c.Runs.TailLogs(ctx, &conclavev1.TailLogsRequest{Id: run.GetId(), AfterSequence: n - 3})
	if err != nil {
		t.Fatal(err)
	}
	var tail []string
	for {
		msg, err := stream.Recv()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		for _, l := range msg.GetLines() {
			tail = append(tail, l.GetText())
		}
	}
	if fmt.Sprint(tail) != "[line 28 line 29 line 30]" {
		t.Fatalf("tail after %d: %q", n-3, tail)
	}
}

// An approval run: heartbeats while it waits are not events, a decision resumes it, and a
// callback can stop a follow early.
func TestApprovalDecisionAndHeartbeats(t *testing.T) {
	needServer(t)
	c := dial(t, "")
	ctx := testContext(t)

	run := createRun(t, c, "approval", map[string]interface{}{"prompt": "Ship it?"}, nil)
	waitState(t, c, run.GetId(), conclavev1.RunState_RUN_STATE_WAITING)

	var once sync.Once
	heartbeats := 0
	var decided error
	var events []*conclavev1.RunEvent
	err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{
		OnHeartbeat: func(*conclavev1.Heartbeat) {
			heartbeats++
			once.Do(func() {
				_, decided = c.Runs.SubmitDecision(ctx, &conclavev1.SubmitDecisionRequest{
					Id:       run.GetId(),
					Decision: &conclavev1.Decision{Outcome: &conclavev1.Decision_Approve{Approve: true}, Note: "looks good"},
				})
			})
		},
	}, func(e *conclavev1.RunEvent) error {
		events = append(events, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if decided != nil {
		t.Fatalf("SubmitDecision: %v", decided)
	}
	if heartbeats == 0 {
		t.Fatal("no heartbeat while the run waited (the server runs with --stream-heartbeat-seconds 0.5)")
	}
	seqs := make([]uint64, len(events))
	recorded := false
	for i, e := range events {
		seqs[i] = e.GetSequence()
		if e.GetDecisionRecorded().GetDecision().GetApprove() {
			recorded = true
		}
	}
	checkSequences(t, "events", seqs)
	if !recorded {
		t.Fatal("no decision_recorded event")
	}
	final := waitState(t, c, run.GetId(), conclavev1.RunState_RUN_STATE_SUCCEEDED)
	if got := final.GetOutput().GetStructValue().GetFields()["decision"].GetStringValue(); got != "approve" {
		t.Fatalf("output decision %q", got)
	}

	// ErrStop ends a follow early without an error.
	count := 0
	if err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{}, func(*conclavev1.RunEvent) error {
		count++
		if count == 2 {
			return conclave.ErrStop
		}
		return nil
	}); err != nil || count != 2 {
		t.Fatalf("ErrStop: err %v after %d events", err, count)
	}
	// Any other callback error ends it with that error.
	boom := errors.New("boom")
	if err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{}, func(*conclavev1.RunEvent) error { return boom }); err != boom {
		t.Fatalf("callback error: got %v", err)
	}

	// Cancelling a waiting run.
	other := createRun(t, c, "approval", nil, nil)
	waitState(t, c, other.GetId(), conclavev1.RunState_RUN_STATE_WAITING)
	cancelled, err := c.Runs.CancelRun(ctx, &conclavev1.CancelRunRequest{Id: other.GetId(), Reason: "not needed"})
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.GetState() != conclavev1.RunState_RUN_STATE_CANCELLED {
		t.Fatalf("cancelled run is %s", cancelled.GetState())
	}
	// Cancelling it again is FAILED_PRECONDITION / RUN_ALREADY_FINISHED.
	_, err = c.Runs.CancelRun(ctx, &conclavev1.CancelRunRequest{Id: other.GetId()})
	if conclave.CodeOf(err) != codes.FailedPrecondition || conclave.ReasonOf(err) != "RUN_ALREADY_FINISHED" {
		t.Fatalf("cancelling a finished run: %v", err)
	}
}

// Upload a file through a connection cut mid-upload, then download it through one cut
// mid-download: both are retried or resumed, the content is verified by SHA-256, and the broken
// upload stored nothing.
func TestArtifactUploadDownloadWithDisconnects(t *testing.T) {
	needServer(t)
	p := startProxy(t, live.addr)
	// Small flow-control windows, so the client has not already buffered the whole download
	// when the connection is cut.
	c := dial(t, p.Addr(), conclave.WithGRPCOptions(
		grpc.WithInitialWindowSize(64<<10),
		grpc.WithInitialConnWindowSize(64<<10),
	))
	ctx := testContext(t)
	dir := t.TempDir()

	run := createRun(t, c, "noop", nil, nil)
	content := make([]byte, 4<<20+12345)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	digest := hex.EncodeToString(sum[:])
	src := filepath.Join(dir, "report.bin")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}

	// Upload, cut once after 1 MiB.
	dropped := false
	retries := 0
	artifact, err := c.UploadFile(ctx, run.GetId(), "out/report.bin", src, &conclave.UploadOptions{
		Kind:      conclavev1.ArtifactKind_ARTIFACT_KIND_REPORT,
		MediaType: "application/octet-stream",
		Labels:    map[string]string{"suite": "go"},
		ChunkSize: 64 << 10,
		OnProgress: func(sent, total uint64) {
			if !dropped && sent >= 1<<20 {
				dropped = true
				p.DropAll()
			}
		},
		OnRetry: func(err error) {
			t.Logf("upload retried after %v", err)
			retries++
		},
	})
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if retries == 0 {
		t.Fatal("the upload was cut but never retried")
	}
	if artifact.GetSha256() != digest || artifact.GetSize() != uint64(len(content)) || artifact.GetVersion() != 1 {
		t.Fatalf("uploaded %v, expected sha256 %s, size %d, version 1", artifact, digest, len(content))
	}
	versions, err := conclave.Collect(ctx, c.ArtifactPages(&conclavev1.ListArtifactsRequest{RunId: run.GetId(), AllVersions: true}))
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 1 {
		t.Fatalf("%d versions stored, expected 1 (the broken upload must store nothing)", len(versions))
	}

	// Download, cut once after 1 MiB.
	dst := filepath.Join(dir, "download.bin")
	dropped = false
	var resumedAt []uint64
	got, err := c.DownloadFile(ctx, &conclavev1.ArtifactRef{RunId: run.GetId(), Name: "out/report.bin"}, dst, &conclave.DownloadOptions{
		OnProgress: func(done, total uint64) {
			if !dropped && done >= 1<<20 {
				dropped = true
				p.DropAll()
			}
		},
		OnResume: func(err error, offset uint64) {
			t.Logf("download resumed at %d after %v", offset, err)
			resumedAt = append(resumedAt, offset)
		},
	})
	if err != nil {
		t.Fatalf("DownloadFile: %v", err)
	}
	if len(resumedAt) == 0 || resumedAt[0] == 0 {
		t.Fatalf("the download was cut but not resumed from an offset: %v", resumedAt)
	}
	if got.GetId() != artifact.GetId() {
		t.Fatalf("downloaded version %s, uploaded %s", got.GetId(), artifact.GetId())
	}
	assertFile(t, dst, content)
	if _, err := os.Stat(conclave.PartialPath(dst, got)); !os.IsNotExist(err) {
		t.Fatalf("the partial file is still there: %v", err)
	}

	// A partial file left by an interrupted download is resumed, not fetched again.
	dst2 := filepath.Join(dir, "resumed.bin")
	if err := os.WriteFile(conclave.PartialPath(dst2, got), content[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	first := uint64(0)
	if _, err := c.DownloadFile(ctx, &conclavev1.ArtifactRef{Id: artifact.GetId()}, dst2, &conclave.DownloadOptions{
		OnProgress: func(done, total uint64) {
			if first == 0 {
				first = done
			}
		},
	}); err != nil {
		t.Fatal(err)
	}
	if first <= 1<<20 {
		t.Fatalf("the first progress report was at %d: the download did not start after the partial file's 1 MiB", first)
	}
	assertFile(t, dst2, content)

	// A partial file that is not this content fails the digest check and is removed.
	dst3 := filepath.Join(dir, "corrupt.bin")
	part := conclave.PartialPath(dst3, got)
	if err := os.WriteFile(part, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DownloadFile(ctx, &conclavev1.ArtifactRef{Id: artifact.GetId()}, dst3, nil); !errors.Is(err, conclave.ErrDigestMismatch) {
		t.Fatalf("a corrupt partial file: got %v, expected ErrDigestMismatch", err)
	}
	if _, err := os.Stat(part); !os.IsNotExist(err) {
		t.Fatal("the corrupt partial file was not removed")
	}
	if _, err := os.Stat(dst3); !os.IsNotExist(err) {
		t.Fatal("a corrupt download was renamed into place")
	}

	// Download into memory.
	var buf bytes.Buffer
	if _, err := c.Download(ctx, &conclavev1.ArtifactRef{RunId: run.GetId(), Name: "out/report.bin", Version: 1}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), content) {
		t.Fatal("Download wrote other content")
	}

	// A missing artifact is NOT_FOUND.
	_, err = c.DownloadFile(ctx, &conclavev1.ArtifactRef{RunId: run.GetId(), Name: "nope"}, filepath.Join(dir, "nope"), nil)
	if conclave.CodeOf(err) != codes.NotFound {
		t.Fatalf("downloading a missing artifact: %v", err)
	}
	t.Logf("missing artifact: %v", err)
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("%s: %d bytes that differ from the %d uploaded", path, len(data), len(want))
	}
}

// List runs page by page: every run once, newest first, in the pages asked for.
func TestPagination(t *testing.T) {
	needServer(t)
	c := dial(t, "")
	ctx := testContext(t)

	label := map[string]string{"suite": fmt.Sprintf("go-pages-%d", time.Now().UnixNano())}
	var created []string
	for i := 0; i < 7; i++ {
		created = append(created, createRun(t, c, "noop", nil, label).GetId())
	}

	pages := 0
	list := c.RunPages(&conclavev1.ListRunsRequest{Labels: label, PageSize: 3})
	counting := func(ctx context.Context, token string) ([]*conclavev1.Run, string, error) {
		pages++
		return list(ctx, token)
	}
	var ids []string
	if err := conclave.Paginate(ctx, counting, func(r *conclavev1.Run) error {
		ids = append(ids, r.GetId())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if pages != 3 {
		t.Fatalf("%d pages of 3 for 7 runs, expected 3", pages)
	}
	if len(ids) != 7 {
		t.Fatalf("listed %d runs, expected 7: %v", len(ids), ids)
	}
	for i, id := range ids {
		if want := created[len(created)-1-i]; id != want {
			t.Fatalf("position %d: %s, expected %s (newest first)", i, id, want)
		}
	}

	all, err := c.ListAllRuns(ctx, &conclavev1.ListRunsRequest{Labels: label, PageSize: 2})
	if err != nil || len(all) != 7 {
		t.Fatalf("ListAllRuns: %d runs, %v", len(all), err)
	}

	// A bad page token is INVALID_ARGUMENT naming the field.
	_, err = c.Runs.ListRuns(ctx, &conclavev1.ListRunsRequest{PageToken: "not-a-token"})
	var cerr *conclave.Error
	if !errors.As(err, &cerr) || cerr.Code != codes.InvalidArgument {
		t.Fatalf("bad page token: %v", err)
	}
	if _, ok := cerr.Violation("page_token"); !ok {
		t.Fatalf("no field violation for page_token: %+v", cerr.FieldViolations)
	}
}

// A bad request surfaces its ErrorInfo reason and BadRequest field violations, from unary
// calls and from the streaming helpers alike.
func TestBadRequestReason(t *testing.T) {
	needServer(t)
	c := dial(t, "")
	ctx := testContext(t)

	_, err := c.Runs.CreateRun(ctx, &conclavev1.CreateRunRequest{Kind: "echo", Input: input(t, map[string]interface{}{"txt": "typo"})})
	var cerr *conclave.Error
	if !errors.As(err, &cerr) {
		t.Fatalf("CreateRun with a typo: %v (%T), expected a *conclave.Error", err, err)
	}
	t.Logf("bad request: %v", cerr)
	if cerr.Code != codes.InvalidArgument || cerr.Reason != "INVALID_ARGUMENT" || cerr.Domain != "conclave.dev" {
		t.Fatalf("code %s, reason %q, domain %q", cerr.Code, cerr.Reason, cerr.Domain)
	}
	desc, ok := cerr.Violation("input.txt")
	if !ok || desc == "" {
		t.Fatalf("no field violation for input.txt: %+v", cerr.FieldViolations)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status.Code(err) = %s", status.Code(err))
	}
	if !errors.Is(err, &conclave.Error{Code: codes.InvalidArgument, Reason: "INVALID_ARGUMENT"}) {
		t.Fatal("errors.Is does not match the code and reason")
	}

	// NOT_FOUND with its metadata.
	missing := "01234567-89ab-7def-8123-456789abcdef"
	_, err = c.Runs.GetRun(ctx, &conclavev1.GetRunRequest{Id: missing})
	if conclave.CodeOf(err) != codes.NotFound || conclave.ReasonOf(err) != "RUN_NOT_FOUND" {
		t.Fatalf("GetRun of a missing run: %v", err)
	}
	if id := conclave.AsError(err).Metadata["id"]; id != missing {
		t.Fatalf("metadata id %q", id)
	}

	// The streaming helpers give up at once on an error that is not transient.
	start := time.Now()
	err = c.FollowEvents(ctx, missing, conclave.FollowOptions{}, func(*conclavev1.RunEvent) error { return nil })
	if conclave.ReasonOf(err) != "RUN_NOT_FOUND" {
		t.Fatalf("FollowEvents of a missing run: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("FollowEvents retried an error that is not transient")
	}
	run := createRun(t, c, "noop", nil, nil)
	waitState(t, c, run.GetId(), conclavev1.RunState_RUN_STATE_SUCCEEDED)
	err = c.FollowLogs(ctx, run.GetId(), conclave.FollowOptions{AfterSequence: 1000}, func(*conclavev1.LogLine) error { return nil })
	if cerr := conclave.AsError(err); cerr == nil || cerr.Code != codes.InvalidArgument {
		t.Fatalf("FollowLogs past the end: %v", err)
	} else if _, ok := cerr.Violation("after_sequence"); !ok {
		t.Fatalf("no field violation for after_sequence: %+v", cerr.FieldViolations)
	}
}

// The helpers stop when their context ends.
func TestFollowStopsWithContext(t *testing.T) {
	needServer(t)
	c := dial(t, "")
	run := createRun(t, c, "approval", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err := c.FollowEvents(ctx, run.GetId(), conclave.FollowOptions{}, func(*conclavev1.RunEvent) error { return nil })
	if conclave.CodeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, expected DEADLINE_EXCEEDED", err)
	}
	if _, err := c.Runs.CancelRun(testContext(t), &conclavev1.CancelRunRequest{Id: run.GetId()}); err != nil {
		t.Fatal(err)
	}
}
