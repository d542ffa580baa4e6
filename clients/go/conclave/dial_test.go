package conclave_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"conclave.dev/client/conclave"
	"conclave.dev/client/conclavev1"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// fakeRuns is a RunService that records the authorization header of each call.
type fakeRuns struct {
	conclavev1.UnimplementedRunServiceServer
	mu    sync.Mutex
	auths []string
}

func (f *fakeRuns) GetRun(ctx context.Context, req *conclavev1.GetRunRequest) (*conclavev1.Run, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.auths = append(f.auths, md.Get("authorization")...)
	f.mu.Unlock()
	if req.GetId() == "missing" {
		st, err := status.New(codes.NotFound, "no run with id missing").WithDetails(&errdetails.ErrorInfo{
			Reason:   "RUN_NOT_FOUND",
			Domain:   "conclave.dev",
			Metadata: map[string]string{"resource": "run", "id": "missing"},
		})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	return &conclavev1.Run{Id: req.GetId(), Kind: "noop"}, nil
}

// selfSigned makes a certificate for 127.0.0.1 and writes it, PEM-encoded, to dir/ca.pem.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "conclave test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

// Dial with TLS and a bearer token, against an in-process server: the token arrives on every
// call, the server is verified against the given root, and error details are decoded.
func TestDialTLSWithToken(t *testing.T) {
	dir := t.TempDir()
	cert, caFile := selfSigned(t, dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	runs := &fakeRuns{}
	conclavev1.RegisterRunServiceServer(srv, runs)
	go srv.Serve(ln)
	defer srv.Stop()
	ctx := testContext(t)

	for _, address := range []string{ln.Addr().String(), "https://" + ln.Addr().String()} {
		c, err := conclave.Dial(address, conclave.WithRootCAFile(caFile), conclave.WithToken("t0k"))
		if err != nil {
			t.Fatal(err)
		}
		run, err := c.Runs.GetRun(ctx, &conclavev1.GetRunRequest{Id: "r1"})
		if err != nil {
			t.Fatalf("%s: GetRun over TLS: %v", address, err)
		}
		if run.GetId() != "r1" {
			t.Fatalf("got %v", run)
		}
		_, err = c.Runs.GetRun(ctx, &conclavev1.GetRunRequest{Id: "missing"})
		cerr := conclave.AsError(err)
		if cerr == nil || cerr.Code != codes.NotFound || cerr.Reason != "RUN_NOT_FOUND" || cerr.Metadata["id"] != "missing" {
			t.Fatalf("error details: %#v", cerr)
		}
		if got := cerr.Error(); got != "NotFound (RUN_NOT_FOUND): no run with id missing" {
			t.Fatalf("Error() = %q", got)
		}
		c.Close()
	}
	runs.mu.Lock()
	auths := append([]string(nil), runs.auths...)
	runs.mu.Unlock()
	if len(auths) != 4 {
		t.Fatalf("%d authorization headers for 4 calls: %q", len(auths), auths)
	}
	for _, a := range auths {
		if a != "Bearer t0k" {
			t.Fatalf("authorization %q", a)
		}
	}

	// Without the right root the server is not trusted.
	c, err := conclave.Dial(ln.Addr().String(), conclave.WithTLS(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := c.Runs.GetRun(short, &conclavev1.GetRunRequest{Id: "r1"}); conclave.CodeOf(err) != codes.Unavailable && conclave.CodeOf(err) != codes.DeadlineExceeded {
		t.Fatalf("an untrusted certificate: %v", err)
	}
}

// A plaintext connection sends the token too (a local server, or a proxy on the same host).
func TestDialPlaintextWithToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runs := &fakeRuns{}
	conclavev1.RegisterRunServiceServer(srv, runs)
	go srv.Serve(ln)
	defer srv.Stop()

	t.Setenv("CONCLAVE_SERVER", "http://"+ln.Addr().String())
	t.Setenv("CONCLAVE_TOKEN", "from-env")
	c, err := conclave.DialFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Runs.GetRun(testContext(t), &conclavev1.GetRunRequest{Id: "r1"}); err != nil {
		t.Fatal(err)
	}
	if len(runs.auths) != 1 || runs.auths[0] != "Bearer from-env" {
		t.Fatalf("authorization %q", runs.auths)
	}
	// An unimplemented method is an *Error without a reason.
	_, err = c.Runs.CreateRun(testContext(t), &conclavev1.CreateRunRequest{Kind: "noop"})
	if cerr := conclave.AsError(err); cerr == nil || cerr.Code != codes.Unimplemented || cerr.Reason != "" {
		t.Fatalf("unimplemented: %#v", cerr)
	}
}
