"""Live tests of the Python client against a real `conclave serve` (see conftest.py)."""

from __future__ import annotations

import hashlib
import os
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import grpc
import pytest

import conclave_client
from conclave_client import ConclaveError, follow_events, follow_logs, paginate, raise_for
from conclave_client.v1 import artifacts_pb2, runs_pb2, runs_pb2_grpc

from conftest import Proxy, Server


def create_run(client: conclave_client.Client, kind: str, **input: Any) -> runs_pb2.Run:
    with conclave_client.translate_errors():
        return client.runs.CreateRun(runs_pb2.CreateRunRequest(kind=kind, input=input))


def get_run(client: conclave_client.Client, run_id: str) -> runs_pb2.Run:
    with conclave_client.translate_errors():
        return client.runs.GetRun(runs_pb2.GetRunRequest(id=run_id))


class Reconnects:
    """Records the resumes of a follow or download helper."""

    def __init__(self) -> None:
        self.calls: List[Tuple[int, ConclaveError]] = []

    def __call__(self, last: int, error: ConclaveError) -> None:
        self.calls.append((last, error))


# ---- runs: follow to the end across a forced disconnect -------------------------------------


def test_follow_events_resumes_after_forced_disconnect(
    client: conclave_client.Client, proxied_client: conclave_client.Client, proxy: Proxy
) -> None:
    run = create_run(proxied_client, "steps", steps=20, lines=2, step_ms=60)
    reconnects = Reconnects()
    sequences: List[int] = []
    events: List[runs_pb2.RunEvent] = []
    for event in follow_events(proxied_client, run.id, on_reconnect=reconnects):
        sequences.append(event.sequence)
        events.append(event)
        if len(sequences) in (3, 12):
            proxy.cut()  # twice: mid-replay or mid-follow, the stream must resume

    assert proxy.cuts == 2
    assert len(reconnects.calls) >= 2, "the forced disconnects did not break the stream"
    for last, error in reconnects.calls:
        assert conclave_client.is_disconnect(error), error
        assert last in sequences
    finished = get_run(client, run.id)
    assert finished.state == runs_pb2.RUN_STATE_SUCCEEDED
    # Every event exactly once, in order: 1..N with N the run's last event.
    assert sequences == list(range(1, finished.last_event_sequence + 1))
    assert sum(1 for e in events if e.WhichOneof("event") == "step_completed") == 20
    assert events[-1].WhichOneof("event") == "state_changed"
    assert events[-1].state_changed.to == runs_pb2.RUN_STATE_SUCCEEDED

    # A second follow of the finished run replays the same events and ends.
    replayed = [e.SerializeToString() for e in follow_events(client, run.id)]
    assert replayed == [e.SerializeToString() for e in events]
    # after_sequence starts after an event.
    tail = [e.sequence for e in follow_events(client, run.id, after_sequence=len(events) - 2)]
    assert tail == [len(events) - 1, len(events)]


def test_follow_events_drops_heartbeats(client: conclave_client.Client) -> None:
    run = create_run(client, "sleep", seconds=1.2)
    # The raw stream carries heartbeats while the run sleeps (the server's is set to 0.3 s).
    raw = list(client.runs.WatchRun(runs_pb2.WatchRunRequest(id=run.id)))
    assert any(r.HasField("heartbeat") and not r.events for r in raw), "no heartbeat was sent"
    raw_sequences = [e.sequence for r in raw for e in r.events]
    followed = [e.sequence for e in follow_events(client, run.id)]
    assert followed == raw_sequences == list(range(1, len(followed) + 1))


def test_follow_logs_resumes_after_forced_disconnect(
    client: conclave_client.Client, proxied_client: conclave_client.Client, proxy: Proxy
) -> None:
    expected = [f"line {i:02}" for i in range(30)]
    run = create_run(proxied_client, "echo", lines=expected, interval_ms=40)
    reconnects = Reconnects()
    lines: List[runs_pb2.LogLine] = []
    for line in follow_logs(proxied_client, run.id, on_reconnect=reconnects):
        lines.append(line)
        if len(lines) == 5:
            proxy.cut()

    assert len(reconnects.calls) >= 1, "the forced disconnect did not break the stream"
    finished = get_run(client, run.id)
    assert finished.state == runs_pb2.RUN_STATE_SUCCEEDED
    assert [l.sequence for l in lines] == list(range(1, finished.last_log_sequence + 1))
    assert [l.text for l in lines if l.stream == runs_pb2.LOG_STREAM_STDOUT] == expected

    # Without follow, the lines stored so far, then the end; after_sequence skips lines.
    stored = [l.sequence for l in follow_logs(client, run.id, after_sequence=10, follow=False)]
    assert stored == list(range(11, finished.last_log_sequence + 1))


def test_follow_gives_up_when_the_server_stays_unreachable(server: Server) -> None:
    proxy = Proxy(server.address)
    with conclave_client.connect(proxy.address) as c:
        run = create_run(c, "approval")  # waits for a decision: its stream stays open
        stream = follow_events(c, run.id, max_retries=2, retry_delay=0.05)
        first = next(stream)
        assert first.sequence == 1
        proxy.close()  # no new connection is accepted from now on
        with pytest.raises(ConclaveError) as caught:
            for _ in stream:
                pass
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    with conclave_client.connect(server.address) as c:
        c.runs.CancelRun(runs_pb2.CancelRunRequest(id=run.id, reason="test over"))


# ---- artifacts ------------------------------------------------------------------------------


class RecordingArtifacts:
    """Wraps the artifact stub to record the offsets downloads asked for."""

    def __init__(self, stub: Any) -> None:
        self.stub = stub
        self.offsets: List[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stub, name)

    def DownloadArtifact(self, request: artifacts_pb2.DownloadArtifactRequest, **kwargs: Any) -> Any:
        self.offsets.append(request.offset)
        return self.stub.DownloadArtifact(request, **kwargs)


def test_upload_and_download_files(client: conclave_client.Client, tmp_path: Path) -> None:
    run = create_run(client, "noop")
    content = os.urandom(3 * 1024 * 1024 + 17)
    source = tmp_path / "report.bin"
    source.write_bytes(content)
    progress: List[Tuple[int, int]] = []
    artifact = conclave_client.upload_file(
        client, run.id, "out/report.bin", source, chunk_size=256 * 1024,
        labels={"suite": "python"}, progress=lambda done, total: progress.append((done, total)),
    )
    assert artifact.run_id == run.id and artifact.name == "out/report.bin"
    assert artifact.version == 1
    assert artifact.size == len(content)
    assert artifact.sha256 == hashlib.sha256(content).hexdigest()
    assert artifact.media_type == "application/octet-stream"
    assert progress[-1] == (len(content), len(content)) and len(progress) == 13

    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    notes = conclave_client.upload_file(client, run.id, "notes.txt", text)
    assert notes.media_type == "text/plain"

    listed = list(paginate(client.artifacts.ListArtifacts, artifacts_pb2.ListArtifactsRequest(run_id=run.id)))
    assert sorted(a.name for a in listed) == ["notes.txt", "out/report.bin"]

    # By id, and by run and name (the latest version).
    target = tmp_path / "copy.bin"
    got = conclave_client.download_file(client, artifact.id, target)
    assert got.id == artifact.id and target.read_bytes() == content
    assert not (tmp_path / "copy.bin.part").exists()
    second = conclave_client.upload_bytes(client, run.id, "out/report.bin", b"v2")
    assert second.version == 2
    latest = tmp_path / "latest.bin"
    conclave_client.download_file(client, artifacts_pb2.ArtifactRef(run_id=run.id, name="out/report.bin"), latest)
    assert latest.read_bytes() == b"v2"
    assert conclave_client.download_bytes(client, artifact) == content

    # A conditional write with a stale etag surfaces its reason.
    with pytest.raises(ConclaveError) as caught:
        conclave_client.upload_bytes(client, run.id, "out/report.bin", b"v3", expected_etag=artifact.etag)
    assert caught.value.code == grpc.StatusCode.ABORTED
    assert caught.value.reason == "ETAG_MISMATCH"


def test_download_resumes_after_forced_disconnect(
    client: conclave_client.Client, proxied_client: conclave_client.Client, proxy: Proxy, tmp_path: Path
) -> None:
    run = create_run(client, "noop")
    content = os.urandom(24 * 1024 * 1024)
    artifact = conclave_client.upload_bytes(client, run.id, "big.bin", content, chunk_size=4 * 1024 * 1024)
    recording = RecordingArtifacts(proxied_client.artifacts)
    proxied_client.artifacts = recording
    reconnects = Reconnects()

    def progress(received: int, total: int) -> None:
        if proxy.cuts == 0:
            proxy.cut()  # after the first chunk

    target = tmp_path / "big.bin"
    got = conclave_client.download_file(
        proxied_client, artifact, target, progress=progress, on_reconnect=reconnects
    )
    assert got.sha256 == hashlib.sha256(content).hexdigest()
    assert target.read_bytes() == content
    assert len(reconnects.calls) >= 1, "the forced disconnect did not break the download"
    assert recording.offsets[0] == 0
    assert all(offset > 0 for offset in recording.offsets[1:])
    assert [offset for offset, _ in reconnects.calls] == recording.offsets[1:]


def test_download_continues_or_restarts_a_leftover_part(
    client: conclave_client.Client, tmp_path: Path
) -> None:
    run = create_run(client, "noop")
    content = os.urandom(200_000)
    artifact = conclave_client.upload_bytes(client, run.id, "data.bin", content)
    recording = RecordingArtifacts(client.artifacts)
    client.artifacts = recording

    target = tmp_path / "data.bin"
    Path(str(target) + ".part").write_bytes(content[:1000])  # an earlier, interrupted download
    conclave_client.download_file(client, artifact, target)
    assert target.read_bytes() == content
    assert recording.offsets == [1000]

    # A leftover that does not match is detected by the digest, and the download starts over.
    recording.offsets.clear()
    Path(str(target) + ".part").write_bytes(b"x" * 1000)
    conclave_client.download_file(client, artifact, target)
    assert target.read_bytes() == content
    assert recording.offsets == [1000, 0]

    # Without resume, the leftover is ignored.
    recording.offsets.clear()
    Path(str(target) + ".part").write_bytes(content[:1000])
    conclave_client.download_file(client, artifact, target, resume=False)
    assert recording.offsets == [0]


# ---- pagination -----------------------------------------------------------------------------


def test_paginate_lists_every_item_once(client: conclave_client.Client) -> None:
    label = uuid.uuid4().hex[:12]
    created: List[str] = []
    for _ in range(7):
        with conclave_client.translate_errors():
            run = client.runs.CreateRun(
                runs_pb2.CreateRunRequest(kind="noop", labels={"suite": label})
            )
        created.append(run.id)

    pages: List[int] = []

    def list_runs(request: runs_pb2.ListRunsRequest, **kwargs: Any) -> runs_pb2.ListRunsResponse:
        response = client.runs.ListRuns(request, **kwargs)
        pages.append(len(response.runs))
        return response

    request = runs_pb2.ListRunsRequest(labels={"suite": label})
    ids = [run.id for run in paginate(list_runs, request, page_size=3)]
    assert sorted(ids) == sorted(created) and len(ids) == 7
    assert pages == [3, 3, 1]
    assert ids == sorted(created, reverse=True)  # newest first (UUIDv7 ids sort by time)
    assert request.page_size == 0 and request.page_token == ""  # the request is left alone

    typed = [r.id for r in paginate(client.runs.ListRuns, request, lambda r: r.runs, page_size=2)]
    assert typed == ids
    named = [r.id for r in paginate(client.runs.ListRuns, request, "runs", page_size=50)]
    assert named == ids


# ---- errors ---------------------------------------------------------------------------------


def test_bad_request_surfaces_its_reason_and_fields(client: conclave_client.Client) -> None:
    with pytest.raises(grpc.RpcError) as raw:
        client.runs.CreateRun(runs_pb2.CreateRunRequest(kind="echo", input={"txt": "typo"}))
    with pytest.raises(ConclaveError) as caught:
        raise_for(raw.value)
    err = caught.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_ARGUMENT"
    assert err.domain == conclave_client.DOMAIN
    assert [v.field for v in err.field_violations] == ["input.txt"]
    assert "known fields" in err.field_violations[0].description
    assert "input.txt" in str(err)
    assert err.__cause__ is raw.value

    # The helpers raise ConclaveError themselves.
    missing = "0190f5d2-3c4b-7def-8123-456789abcdef"
    with pytest.raises(ConclaveError) as caught:
        list(follow_events(client, missing))
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert caught.value.reason == "RUN_NOT_FOUND"
    assert caught.value.metadata.get("id") == missing

    with pytest.raises(ConclaveError) as caught:
        list(paginate(client.runs.ListRuns, runs_pb2.ListRunsRequest(page_token="not-a-token")))
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in caught.value.field_violations] == ["page_token"]

    with pytest.raises(ConclaveError) as caught:
        conclave_client.upload_bytes(client, missing, "x.txt", b"x")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND

    run = create_run(client, "noop")
    list(follow_events(client, run.id))  # to the end
    with pytest.raises(ConclaveError) as caught:
        with conclave_client.translate_errors():
            client.runs.CancelRun(runs_pb2.CancelRunRequest(id=run.id))
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.reason == "RUN_ALREADY_FINISHED"


# ---- connect: the bearer token on every call ------------------------------------------------


class EchoAuth(runs_pb2_grpc.RunServiceServicer):
    """Answers with the authorization header it received."""

    def GetRun(self, request: runs_pb2.GetRunRequest, context: grpc.ServicerContext) -> runs_pb2.Run:
        return runs_pb2.Run(id=dict(context.invocation_metadata()).get("authorization", ""))

    def WatchRun(self, request: runs_pb2.WatchRunRequest, context: grpc.ServicerContext) -> Iterator[runs_pb2.WatchRunResponse]:
        auth = dict(context.invocation_metadata()).get("authorization", "")
        yield runs_pb2.WatchRunResponse(heartbeat=runs_pb2.Heartbeat(last_sequence=0))
        yield runs_pb2.WatchRunResponse(events=[runs_pb2.RunEvent(run_id=auth, sequence=1)])


def test_connect_sends_the_bearer_token_on_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    runs_pb2_grpc.add_RunServiceServicer_to_server(EchoAuth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with conclave_client.connect(f"127.0.0.1:{port}", token="s3cret") as c:
            assert c.runs.GetRun(runs_pb2.GetRunRequest()).id == "Bearer s3cret"
            assert [e.run_id for e in follow_events(c, "x")] == ["Bearer s3cret"]
        tokens = iter(["one", "two"])
        with conclave_client.connect(f"http://127.0.0.1:{port}", token=lambda: next(tokens)) as c:
            assert c.runs.GetRun(runs_pb2.GetRunRequest()).id == "Bearer one"
            assert c.runs.GetRun(runs_pb2.GetRunRequest()).id == "Bearer two"
        monkeypatch.setenv("CONCLAVE_SERVER", f"127.0.0.1:{port}")
        monkeypatch.setenv("CONCLAVE_TOKEN", "from-env")
        with conclave_client.connect() as c:
            assert c.runs.GetRun(runs_pb2.GetRunRequest()).id == "Bearer from-env"
        monkeypatch.delenv("CONCLAVE_TOKEN")
        with conclave_client.connect() as c:
            assert c.runs.GetRun(runs_pb2.GetRunRequest()).id == ""
    finally:
        server.stop(None)
