package conclave_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"conclave.dev/client/conclave"
)

// The live tests share one real `conclave serve`, started by TestMain from $CONCLAVE_BIN on a
// free loopback port with a data directory of its own, and stopped at the end. Without
// $CONCLAVE_BIN they are skipped (the tests that need no server still run).
var live struct {
	addr string
	log  string
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	bin := os.Getenv("CONCLAVE_BIN")
	if bin == "" {
		fmt.Println("CONCLAVE_BIN is not set: the live tests are skipped")
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "conclave-go-client-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	cmd, err := startServer(bin, dir)
	if err != nil {
		fmt.Println("could not start the server:", err)
		printLog()
		return 1
	}
	code := m.Run()
	if err := stopServer(cmd); err != nil {
		fmt.Println("stopping the server:", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		printLog()
	}
	return code
}

func printLog() {
	if live.log == "" {
		return
	}
	data, _ := os.ReadFile(live.log)
	fmt.Printf("---- server log (%s) ----\n%s---- end of server log ----\n", live.log, data)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startServer starts `conclave serve` on a free port and waits until it is healthy; another
// process may take the port between the probe and the bind, so it tries a few.
func startServer(bin, dir string) (*exec.Cmd, error) {
	live.log = filepath.Join(dir, "server.log")
	for try := 0; try < 5; try++ {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		logFile, err := os.Create(live.log)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "serve",
			"--listen", addr,
			"--data-dir", filepath.Join(dir, "data"),
			"--stream-heartbeat-seconds", "0.5",
		)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		dieWithParent(cmd)
		cmd.Stdout = logFile
		cmd.Stderr = logFile
		if err := cmd.Start(); err != nil {
			logFile.Close()
			return nil, err
		}
		logFile.Close()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		c, err := conclave.Dial(addr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		healthy := make(chan error, 1)
		go func() { healthy <- c.WaitHealthy(ctx) }()
		select {
		case err = <-healthy:
			cancel()
			c.Close()
			if err != nil {
				cmd.Process.Kill()
				<-exited
				return nil, err
			}
			live.addr = addr
			serverExited = exited
			return cmd, nil
		case werr := <-exited:
			cancel()
			c.Close()
			data, _ := os.ReadFile(live.log)
			if strings.Contains(string(data), "cannot listen") {
				continue // the port was taken: another one
			}
			return nil, fmt.Errorf("the server exited at start-up: %v", werr)
		}
	}
	return nil, fmt.Errorf("no free port after 5 tries")
}

var serverExited chan error

func stopServer(cmd *exec.Cmd) error {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-serverExited:
		return err
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-serverExited
		return fmt.Errorf("the server did not stop within 20s of SIGTERM")
	}
}

// needServer skips a live test when no server runs.
func needServer(t *testing.T) {
	t.Helper()
	if live.addr == "" {
		t.Skip("CONCLAVE_BIN is not set")
	}
}

// dial connects to the live server (or to addr, when given).
func dial(t *testing.T, addr string, opts ...conclave.Option) *conclave.Client {
	t.Helper()
	if addr == "" {
		addr = live.addr
	}
	opts = append([]conclave.Option{conclave.WithRetryPolicy(conclave.RetryPolicy{
		InitialBackoff: 50 * time.Millisecond,
		MaxBackoff:     time.Second,
	})}, opts...)
	c, err := conclave.Dial(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// proxy forwards TCP connections to a target and can drop every open connection at once: a
// network failure under a live stream, as a client sees it.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	drops int
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.DropAll()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns[client] = struct{}{}
		p.conns[server] = struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(server, client)
		go pipe(client, server)
	}
}

// DropAll closes every open connection (new ones are still accepted).
func (p *proxy) DropAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.drops++
}
