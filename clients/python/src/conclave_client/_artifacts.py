"""Uploading files as artifacts and downloading artifacts to files, with resume and sha256."""

from __future__ import annotations

import hashlib
import mimetypes
import os
import time
from typing import IO, Any, Callable, Iterator, Mapping, Optional, Union

import grpc

from ._client import Client
from ._errors import ConclaveError
from ._streams import is_disconnect
from .v1 import artifacts_pb2

__all__ = ["upload_file", "upload_bytes", "download_file", "download_bytes", "DEFAULT_CHUNK_SIZE"]

#: Upload chunk size: well under the server's default 16 MiB message limit.
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: Called with the bytes transferred so far and the total.
Progress = Callable[[int, int], None]

ArtifactLike = Union[artifacts_pb2.ArtifactRef, artifacts_pb2.Artifact, str]
PathLike = Union[str, "os.PathLike[str]"]


def upload_file(
    client: Client,
    run_id: str,
    name: str,
    path: PathLike,
    *,
    media_type: Optional[str] = None,
    kind: "artifacts_pb2.ArtifactKind | str" = artifacts_pb2.ARTIFACT_KIND_FILE,
    labels: Optional[Mapping[str, str]] = None,
    producer: Optional[artifacts_pb2.ArtifactProducer] = None,
    expected_etag: str = "",
    if_absent: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Optional[Progress] = None,
    timeout: Optional[float] = None,
) -> artifacts_pb2.Artifact:
    """Uploads the file at ``path`` as a new version of the artifact ``name`` of run ``run_id``
    and returns the stored version.

    The file is streamed in chunks of ``chunk_size`` bytes (never held in memory whole); its
    size goes in the header and its SHA-256, computed on the way, in the final ``finish``
    message, so the server refuses content that arrived otherwise. ``media_type`` defaults to a
    guess from the file name (else ``application/octet-stream``). ``expected_etag`` and
    ``if_absent`` make the write conditional (ABORTED otherwise). ``progress(sent, total)`` is
    called after each chunk. An upload that breaks stores nothing and is not retried (a retry
    could store a second version if the first one had in fact been stored): call again.
    Raises :class:`ConclaveError`.
    """
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    if media_type is None:
        media_type = mimetypes.guess_type(os.fspath(path))[0] or "application/octet-stream"
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        header = artifacts_pb2.UploadHeader(
            run_id=run_id,
            name=name,
            kind=kind,
            media_type=media_type,
            labels=dict(labels or {}),
            producer=producer,
            expected_etag=expected_etag,
            if_absent=if_absent,
            size=size,
        )
        return _upload(client, header, file, size, chunk_size, progress, timeout)


def upload_bytes(
    client: Client,
    run_id: str,
    name: str,
    data: bytes,
    *,
    media_type: str = "application/octet-stream",
    kind: "artifacts_pb2.ArtifactKind | str" = artifacts_pb2.ARTIFACT_KIND_FILE,
    labels: Optional[Mapping[str, str]] = None,
    producer: Optional[artifacts_pb2.ArtifactProducer] = None,
    expected_etag: str = "",
    if_absent: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: Optional[float] = None,
) -> artifacts_pb2.Artifact:
    """Uploads ``data`` like :func:`upload_file` (with its size and SHA-256 in the header)."""
    import io

    header = artifacts_pb2.UploadHeader(
        run_id=run_id,
        name=name,
        kind=kind,
        media_type=media_type,
        labels=dict(labels or {}),
        producer=producer,
        expected_etag=expected_etag,
        if_absent=if_absent,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    return _upload(client, header, io.BytesIO(data), len(data), chunk_size, None, timeout)


def _upload(
    client: Client,
    header: artifacts_pb2.UploadHeader,
    file: IO[bytes],
    size: int,
    chunk_size: int,
    progress: Optional[Progress],
    timeout: Optional[float],
) -> artifacts_pb2.Artifact:
    digest = hashlib.sha256()
    state = {"sent": 0}

    def messages() -> Iterator[artifacts_pb2.UploadArtifactRequest]:
        yield artifacts_pb2.UploadArtifactRequest(header=header)
        while True:
            chunk = file.read(chunk_size)
            if not chunk:
                break
            digest.update(chunk)
            state["sent"] += len(chunk)
            yield artifacts_pb2.UploadArtifactRequest(chunk=chunk)
            if progress is not None:
                progress(state["sent"], size)
        if not header.sha256:
            yield artifacts_pb2.UploadArtifactRequest(
                finish=artifacts_pb2.UploadFinish(sha256=digest.hexdigest())
            )

    try:
        if timeout is not None:
            return client.artifacts.UploadArtifact(messages(), timeout=timeout)
        return client.artifacts.UploadArtifact(messages())
    except grpc.RpcError as err:
        raise ConclaveError.from_rpc_error(err) from err


def _ref(artifact: ArtifactLike) -> artifacts_pb2.ArtifactRef:
    if isinstance(artifact, str):
        return artifacts_pb2.ArtifactRef(id=artifact)
    if isinstance(artifact, artifacts_pb2.Artifact):
        return artifacts_pb2.ArtifactRef(id=artifact.id)
    ref = artifacts_pb2.ArtifactRef()
    ref.CopyFrom(artifact)
    return ref


def download_file(
    client: Client,
    artifact: ArtifactLike,
    path: PathLike,
    *,
    resume: bool = True,
    max_retries: Optional[int] = 10,
    retry_delay: float = 0.1,
    max_retry_delay: float = 5.0,
    progress: Optional[Progress] = None,
    on_reconnect: Optional[Callable[[int, ConclaveError], None]] = None,
) -> artifacts_pb2.Artifact:
    """Downloads an artifact to ``path`` and returns its metadata.

    ``artifact`` is an ``ArtifactRef`` (by id, or by run and name: the latest version unless
    ``version``), an ``Artifact``, or an artifact id. The version is fixed when the download
    starts, so a newer version written meanwhile does not mix in. Content goes to
    ``<path>.part`` and is renamed to ``path`` only once its size and SHA-256 match the
    artifact's. A broken stream (UNAVAILABLE, a reset) is resumed from the bytes received so far
    with ``offset``, up to ``max_retries`` consecutive times. With ``resume`` (the default), a
    ``<path>.part`` left by an earlier, interrupted call is continued rather than started over
    (and started over if it turns out not to match). ``progress(received, total)`` is called
    after each chunk; ``on_reconnect(offset, error)`` before each resume. Raises
    :class:`ConclaveError` (DATA_LOSS, reason ``DIGEST_MISMATCH``, if the content received does
    not match the artifact's digest).
    """
    ref = _ref(artifact)
    try:
        meta = client.artifacts.GetArtifact(artifacts_pb2.GetArtifactRequest(artifact=ref))
    except grpc.RpcError as err:
        raise ConclaveError.from_rpc_error(err) from err
    pinned = artifacts_pb2.ArtifactRef(id=meta.id)
    target = os.fspath(path)
    part = target + ".part"

    use_leftover = resume and os.path.exists(part)
    for attempt in range(2):
        with open(part, "r+b" if use_leftover else "wb") as file:
            digest = hashlib.sha256()
            start = 0
            if use_leftover:
                start = os.fstat(file.fileno()).st_size
                if start > meta.size:
                    file.truncate(0)
                    start = 0
                else:
                    while True:
                        block = file.read(DEFAULT_CHUNK_SIZE)
                        if not block:
                            break
                        digest.update(block)
                file.seek(start)
            received = _download_into(
                client, pinned, meta, file, digest, start,
                max_retries, retry_delay, max_retry_delay, progress, on_reconnect,
            )
            file.flush()
            os.fsync(file.fileno())
        if received == meta.size and digest.hexdigest() == meta.sha256:
            os.replace(part, target)
            return meta
        if start > 0 and attempt == 0:
            # The leftover was from another version or corrupt: start over, once.
            use_leftover = False
            continue
        break
    os.unlink(part)
    raise ConclaveError(
        grpc.StatusCode.DATA_LOSS,
        f"downloaded {received} bytes with SHA-256 {digest.hexdigest()}, but artifact {meta.id} "
        f"has {meta.size} bytes with SHA-256 {meta.sha256}",
        reason="DIGEST_MISMATCH",
        metadata={"artifact_id": meta.id},
    )


def _download_into(
    client: Client,
    ref: artifacts_pb2.ArtifactRef,
    meta: artifacts_pb2.Artifact,
    file: IO[bytes],
    digest: Any,
    offset: int,
    max_retries: Optional[int],
    retry_delay: float,
    max_retry_delay: float,
    progress: Optional[Progress],
    on_reconnect: Optional[Callable[[int, ConclaveError], None]],
) -> int:
    """Streams the artifact from ``offset`` to its end into ``file``; returns the bytes now in
    the file. Resumes after a disconnect."""
    received = offset
    failures = 0
    if received == meta.size:
        return received
    while True:
        call = None
        try:
            call = client.artifacts.DownloadArtifact(
                artifacts_pb2.DownloadArtifactRequest(artifact=ref, offset=received)
            )
            for message in call:
                part = message.WhichOneof("part")
                if part == "artifact":
                    if message.artifact.sha256 != meta.sha256:
                        raise ConclaveError(
                            grpc.StatusCode.FAILED_PRECONDITION,
                            f"artifact {meta.id} changed during the download",
                            reason="ARTIFACT_CHANGED",
                        )
                elif part == "chunk":
                    file.write(message.chunk)
                    digest.update(message.chunk)
                    received += len(message.chunk)
                    failures = 0
                    if progress is not None:
                        progress(received, meta.size)
            return received
        except grpc.RpcError as err:
            error = ConclaveError.from_rpc_error(err)
            if not is_disconnect(error) or (max_retries is not None and failures >= max_retries):
                raise error from err
            failures += 1
            file.flush()
            if on_reconnect is not None:
                on_reconnect(received, error)
            time.sleep(min(max_retry_delay, retry_delay * (2 ** (failures - 1))))
        finally:
            if call is not None:
                call.cancel()


def download_bytes(client: Client, artifact: ArtifactLike) -> bytes:
    """Downloads a (small) artifact into memory, checking its size and SHA-256."""
    try:
        chunks = []
        meta: Optional[artifacts_pb2.Artifact] = None
        for message in client.artifacts.DownloadArtifact(
            artifacts_pb2.DownloadArtifactRequest(artifact=_ref(artifact))
        ):
            if message.WhichOneof("part") == "artifact":
                meta = message.artifact
            else:
                chunks.append(message.chunk)
    except grpc.RpcError as err:
        raise ConclaveError.from_rpc_error(err) from err
    data = b"".join(chunks)
    if meta is not None and (len(data) != meta.size or hashlib.sha256(data).hexdigest() != meta.sha256):
        raise ConclaveError(
            grpc.StatusCode.DATA_LOSS,
            f"downloaded content does not match artifact {meta.id}",
            reason="DIGEST_MISMATCH",
            metadata={"artifact_id": meta.id},
        )
    return data
