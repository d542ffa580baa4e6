// Package conclave is a small Go client for Conclave's gRPC API: a connection with TLS and a
// bearer token, the generated service clients (package conclave.dev/client/conclavev1), and the
// helpers people expect on top of them: following a run's events or logs with automatic resume
// after a disconnect, iterating paginated lists, uploading and downloading artifacts from files
// (resumed and verified by SHA-256), and errors that expose their google.rpc.ErrorInfo reason.
//
//	c, err := conclave.Dial("127.0.0.1:50051")
//	if err != nil { ... }
//	defer c.Close()
//	run, err := c.Runs.CreateRun(ctx, &conclavev1.CreateRunRequest{Kind: "noop"})
package conclave

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"conclave.dev/client/conclavev1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// DefaultAddress is the address `conclave serve` listens on by default.
const DefaultAddress = "127.0.0.1:50051"

// Client is a connection to a Conclave server with a client for each of its services.
//
// Every error a call returns through these clients is an *Error (see AsError) when it is a
// gRPC failure. A Client is safe for concurrent use; Close it when done.
type Client struct {
	// Conn is the underlying connection, for calls this package does not wrap.
	Conn *grpc.ClientConn

	Runs      conclavev1.RunServiceClient
	Artifacts conclavev1.ArtifactServiceClient
	Workers   conclavev1.WorkerServiceClient
	Admin     conclavev1.AdminServiceClient
	Models    conclavev1.ModelServiceClient
	Debates   conclavev1.DebateServiceClient
	Missions  conclavev1.MissionServiceClient
	Tasks     conclavev1.TaskServiceClient
	Skills    conclavev1.SkillServiceClient
	Recipes   conclavev1.RecipeServiceClient
	Cards     conclavev1.CardServiceClient
	// Health is the standard grpc.health.v1 service.
	Health healthpb.HealthClient

	retry RetryPolicy
}

// RetryPolicy says how the helpers that reconnect (FollowEvents, FollowLogs, UploadFile,
// DownloadFile) wait between attempts after a transient failure (see IsTransient).
type RetryPolicy struct {
	// Consecutive failed attempts allowed without progress before giving up; progress (an
	// item received, bytes downloaded) starts the count again. An upload, which starts over
	// at each attempt, makes at most this many attempts in all. 0 means 10.
	MaxAttempts int
	// The wait after the first failure, doubled after each further one. 0 means 100ms.
	InitialBackoff time.Duration
	// The longest wait. 0 means 5s.
	MaxBackoff time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 10
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 100 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	return p
}

// backoff returns the wait before attempt number failures+1 (failures >= 1).
func (p RetryPolicy) backoff(failures int) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	if d > p.MaxBackoff {
		d = p.MaxBackoff
	}
	return d
}

// Option configures Dial.
type Option func(*dialConfig)

type dialConfig struct {
	tls         bool
	tlsConfig   *tls.Config
	rootCAFile  string
	token       string
	grpcOptions []grpc.DialOption
	retry       RetryPolicy
}

// WithTLS connects with TLS. A nil config verifies the server against the system's roots.
func WithTLS(config *tls.Config) Option {
	return func(c *dialConfig) {
		c.tls = true
		c.tlsConfig = config
	}
}

// WithRootCAFile connects with TLS, verifying the server against the PEM certificates in path
// (for a server with a private CA or a self-signed certificate).
func WithRootCAFile(path string) Option {
	return func(c *dialConfig) {
		c.tls = true
		c.rootCAFile = path
	}
}

// WithToken sends `authorization: Bearer <token>` with every call. An empty token sends nothing.
func WithToken(token string) Option {
	return func(c *dialConfig) { c.token = token }
}

// WithGRPCOptions adds options of grpc.Dial (interceptors, window sizes, keepalive, ...).
func WithGRPCOptions(opts ...grpc.DialOption) Option {
	return func(c *dialConfig) { c.grpcOptions = append(c.grpcOptions, opts...) }
}

// WithRetryPolicy sets how the reconnecting helpers retry; see RetryPolicy.
func WithRetryPolicy(p RetryPolicy) Option {
	return func(c *dialConfig) { c.retry = p }
}

// Dial connects to a Conclave server. The address is host:port (plaintext unless WithTLS or
// WithRootCAFile is given), http://host:port (plaintext) or https://host:port (TLS with the
// system's roots unless WithTLS or WithRootCAFile says otherwise). Like grpc.Dial, it does not
// wait for the connection: the first call does.
func Dial(address string, opts ...Option) (*Client, error) {
	cfg := dialConfig{}
	switch {
	case strings.HasPrefix(address, "https://"):
		cfg.tls = true
		address = strings.TrimPrefix(address, "https://")
	case strings.HasPrefix(address, "http://"):
		address = strings.TrimPrefix(address, "http://")
	}
	address = strings.TrimSuffix(address, "/")
	if address == "" {
		return nil, errors.New("conclave: empty server address")
	}
	for _, opt := range opts {
		opt(&cfg)
	}

	var dialOpts []grpc.DialOption
	if cfg.tls {
		tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.tlsConfig != nil {
			tlsConfig = cfg.tlsConfig.Clone()
		}
		if cfg.rootCAFile != "" {
			pem, err := os.ReadFile(cfg.rootCAFile)
			if err != nil {
				return nil, fmt.Errorf("conclave: reading the root certificates: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("conclave: no PEM certificate in %s", cfg.rootCAFile)
			}
			tlsConfig.RootCAs = pool
		}
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
	} else {
		dialOpts = append(dialOpts, grpc.WithInsecure())
	}
	if cfg.token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearerToken{token: cfg.token, secure: cfg.tls}))
	}
	dialOpts = append(dialOpts,
		grpc.WithChainUnaryInterceptor(unaryErrors),
		grpc.WithChainStreamInterceptor(streamErrors),
	)
	dialOpts = append(dialOpts, cfg.grpcOptions...)

	conn, err := grpc.Dial(address, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("conclave: dialing %s: %w", address, err)
	}
	return NewClient(conn, cfg.retry), nil
}

// DialFromEnv connects to $CONCLAVE_SERVER (default http://127.0.0.1:50051) with the token in
// $CONCLAVE_TOKEN, if set: the same variables as the conclave command line. Further options
// apply after those.
func DialFromEnv(opts ...Option) (*Client, error) {
	address := os.Getenv("CONCLAVE_SERVER")
	if address == "" {
		address = DefaultAddress
	}
	all := []Option{WithToken(os.Getenv("CONCLAVE_TOKEN"))}
	return Dial(address, append(all, opts...)...)
}

// NewClient wraps a connection made elsewhere. Its errors are converted to *Error only if the
// connection was made with this package's interceptors (Dial installs them).
func NewClient(conn *grpc.ClientConn, retry RetryPolicy) *Client {
	return &Client{
		Conn:      conn,
		Runs:      conclavev1.NewRunServiceClient(conn),
		Artifacts: conclavev1.NewArtifactServiceClient(conn),
		Workers:   conclavev1.NewWorkerServiceClient(conn),
		Admin:     conclavev1.NewAdminServiceClient(conn),
		Models:    conclavev1.NewModelServiceClient(conn),
		Debates:   conclavev1.NewDebateServiceClient(conn),
		Missions:  conclavev1.NewMissionServiceClient(conn),
		Tasks:     conclavev1.NewTaskServiceClient(conn),
		Skills:    conclavev1.NewSkillServiceClient(conn),
		Recipes:   conclavev1.NewRecipeServiceClient(conn),
		Cards:     conclavev1.NewCardServiceClient(conn),
		Health:    healthpb.NewHealthClient(conn),
		retry:     retry.withDefaults(),
	}
}

// Close closes the connection; open streams end with CANCELLED.
func (c *Client) Close() error {
	return c.Conn.Close()
}

// WaitHealthy polls grpc.health.v1 until the server answers SERVING or ctx ends.
func (c *Client) WaitHealthy(ctx context.Context) error {
	for {
		callCtx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := c.Health.Check(callCtx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("the server reports %s", resp.GetStatus())
			}
			return fmt.Errorf("conclave: the server is not healthy: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// bearerToken sends `authorization: Bearer <token>` with every call.
type bearerToken struct {
	token  string
	secure bool
}

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is true over TLS, so a TLS connection never falls back to sending the
// token in the clear; over a plaintext connection (a local server, or one behind a proxy on the
// same host) the token is sent as asked.
func (b bearerToken) RequireTransportSecurity() bool { return b.secure }

// unaryErrors converts the errors of unary calls to *Error.
func unaryErrors(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return convert(invoker(ctx, method, req, reply, cc, opts...))
}

// streamErrors converts the errors of streaming calls to *Error (io.EOF, the normal end of a
// stream, is left as it is).
func streamErrors(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, convert(err)
	}
	return errorStream{s}, nil
}

type errorStream struct {
	grpc.ClientStream
}

func (s errorStream) SendMsg(m interface{}) error {
	err := s.ClientStream.SendMsg(m)
	if err == io.EOF {
		return err
	}
	return convert(err)
}

func (s errorStream) RecvMsg(m interface{}) error {
	err := s.ClientStream.RecvMsg(m)
	if err == io.EOF {
		return err
	}
	return convert(err)
}

func (s errorStream) CloseSend() error {
	return convert(s.ClientStream.CloseSend())
}
