"""Fixtures for the live tests: a real `conclave serve` on a free loopback port, clients, and a
TCP proxy that can cut every connection to force a disconnect."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import grpc
import pytest

import conclave_client

REPO = Path(__file__).resolve().parents[3]
# Streams send a heartbeat after this much silence; short, so the tests see heartbeats.
HEARTBEAT_SECONDS = "0.3"


def _conclave_bin() -> str:
    configured = os.environ.get("CONCLAVE_BIN")
    if configured:
        if not os.access(configured, os.X_OK):
            pytest.fail(f"CONCLAVE_BIN={configured} is not an executable")
        return configured
    default = REPO / "target" / "debug" / "conclave"
    if default.is_file() and os.access(default, os.X_OK):
        return str(default)
    pytest.skip("no conclave binary: set CONCLAVE_BIN or run `cargo build` in the repository")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serving(address: str, timeout: float) -> bool:
    """grpc.health.v1.Health/Check answers SERVING (called raw: no extra package needed)."""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda request: request,
            response_deserializer=lambda response: response,
        )
        try:
            # HealthCheckResponse{status: SERVING} is field 1 = 1.
            return bool(check(b"", timeout=timeout) == b"\x08\x01")
        except grpc.RpcError:
            return False


class Server:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="conclave-pytest.")
        self.log_path = os.path.join(self.dir, "server.log")
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.address = ""

    def start(self) -> None:
        for _ in range(5):
            address = f"127.0.0.1:{_free_port()}"
            log = open(self.log_path, "wb")
            self.process = subprocess.Popen(
                [
                    self.binary, "serve",
                    "--listen", address,
                    "--data-dir", os.path.join(self.dir, "data"),
                    "--stream-heartbeat-seconds", HEARTBEAT_SECONDS,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "NO_COLOR": "1"},
            )
            log.close()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.process.poll() is None:
                if _serving(address, timeout=1):
                    self.address = address
                    return
                time.sleep(0.1)
            self.stop()  # the port was taken (or the server is slow): try another one
        raise RuntimeError(f"conclave serve did not start; its log:\n{self.log()}")

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    srv = Server(_conclave_bin())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture()
def client(server: Server) -> Iterator[conclave_client.Client]:
    with conclave_client.connect(server.address) as c:
        yield c


class Proxy:
    """A TCP proxy in front of the server whose `cut()` drops every open connection at once,
    as a network failure would; new connections are accepted as before."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: List[socket.socket] = []
        self.cuts = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            if self.closed:
                downstream.close()
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                downstream.close()
                continue
            with self.lock:
                self.sockets += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Drops every connection open now."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
            self.cuts += 1
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.listener.close()
        self.cut()


@pytest.fixture()
def proxy(server: Server) -> Iterator[Proxy]:
    p = Proxy(server.address)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture()
def proxied_client(proxy: Proxy) -> Iterator[conclave_client.Client]:
    with conclave_client.connect(proxy.address) as c:
        yield c
