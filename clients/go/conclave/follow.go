package conclave

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"conclave.dev/client/conclavev1"
)

// FollowOptions tune FollowEvents and FollowLogs. The zero value follows from the start.
type FollowOptions struct {
	// Deliver only items with a greater sequence number; 0 delivers them all. To continue
	// where an earlier follow stopped, pass the last sequence it delivered.
	AfterSequence uint64
	// Called before each reconnect with the error that broke the stream and the last sequence
	// delivered (the new stream resumes after it).
	OnReconnect func(err error, lastSequence uint64)
	// Called for each heartbeat of an idle stream.
	OnHeartbeat func(*conclavev1.Heartbeat)
}

// ErrStop, returned by a FollowEvents or FollowLogs callback, ends the follow early with a nil
// error.
var ErrStop = errors.New("conclave: stop following")

// FollowEvents delivers the run's events to fn in sequence order, each exactly once, until the
// run is finished and its last event delivered (then it returns nil), ctx ends, fn returns an
// error (ErrStop ends with nil), or the server keeps failing.
//
// When the stream breaks with a transient failure (see IsTransient: the connection dropped, the
// server restarted or is shutting down), FollowEvents reconnects with the client's RetryPolicy
// and resumes with after_sequence set to the last event delivered: no event is lost or
// repeated. Heartbeats and lag notices are not events; they are not passed to fn.
func (c *Client) FollowEvents(ctx context.Context, runID string, opts FollowOptions, fn func(*conclavev1.RunEvent) error) error {
	return c.follow(ctx, opts, func(ctx context.Context, after uint64, deliver func(uint64, *conclavev1.Heartbeat, func() error) error) error {
		stream, err := c.Runs.WatchRun(ctx, &conclavev1.WatchRunRequest{Id: runID, AfterSequence: after})
		if err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				return err
			}
			if hb := msg.GetHeartbeat(); hb != nil {
				if err := deliver(0, hb, nil); err != nil {
					return err
				}
			}
			for _, event := range msg.GetEvents() {
				event := event
				if err := deliver(event.GetSequence(), nil, func() error { return fn(event) }); err != nil {
					return err
				}
			}
		}
	})
}

// FollowLogs delivers the run's log lines to fn in sequence order, each exactly once, following
// live lines until the run is finished (then it returns nil), ctx ends, fn returns an error
// (ErrStop ends with nil), or the server keeps failing. It resumes after a disconnect exactly
// as FollowEvents does.
func (c *Client) FollowLogs(ctx context.Context, runID string, opts FollowOptions, fn func(*conclavev1.LogLine) error) error {
	return c.follow(ctx, opts, func(ctx context.Context, after uint64, deliver func(uint64, *conclavev1.Heartbeat, func() error) error) error {
		stream, err := c.Runs.TailLogs(ctx, &conclavev1.TailLogsRequest{Id: runID, AfterSequence: after, Follow: true})
		if err != nil {
			return err
		}
		for {
			msg, err := stream.Recv()
			if err != nil {
				return err
			}
			if hb := msg.GetHeartbeat(); hb != nil {
				if err := deliver(0, hb, nil); err != nil {
					return err
				}
			}
			for _, line := range msg.GetLines() {
				line := line
				if err := deliver(line.GetSequence(), nil, func() error { return fn(line) }); err != nil {
					return err
				}
			}
		}
	})
}

// callbackError marks an error returned by the caller's callback, so that it is never retried.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }
func (e callbackError) Unwrap() error { return e.err }

// follow runs open (one stream from `after`) until it ends with io.EOF, resuming after
// transient failures from the last sequence delivered.
func (c *Client) follow(
	ctx context.Context,
	opts FollowOptions,
	open func(ctx context.Context, after uint64, deliver func(seq uint64, hb *conclavev1.Heartbeat, call func() error) error) error,
) error {
	last := opts.AfterSequence
	failures := 0
	deliver := func(seq uint64, hb *conclavev1.Heartbeat, call func() error) error {
		failures = 0 // the stream is alive: a later failure starts the count again
		if hb != nil {
			if opts.OnHeartbeat != nil {
				opts.OnHeartbeat(hb)
			}
			return nil
		}
		if seq <= last {
			return nil // already delivered before a reconnect
		}
		if err := call(); err != nil {
			return callbackError{err}
		}
		last = seq
		return nil
	}
	for {
		streamCtx, cancel := context.WithCancel(ctx)
		err := open(streamCtx, last, deliver)
		cancel()
		if err == io.EOF {
			return nil
		}
		var cb callbackError
		if errors.As(err, &cb) {
			if errors.Is(cb.err, ErrStop) {
				return nil
			}
			return cb.err
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
		if opts.OnReconnect != nil {
			opts.OnReconnect(convert(err), last)
		}
		if err := sleep(ctx, c.retry.backoff(failures)); err != nil {
			return convert(err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
