"""Connecting to a Conclave server: one channel, a typed stub per service, a bearer token."""

from __future__ import annotations

import os
from typing import Any, Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import grpc

from .v1 import (
    admin_pb2_grpc,
    artifacts_pb2_grpc,
    debates_pb2_grpc,
    missions_pb2_grpc,
    models_pb2_grpc,
    runs_pb2_grpc,
    stages_pb2_grpc,
    tasks_pb2_grpc,
    workers_pb2_grpc,
)

__all__ = ["Client", "connect", "DEFAULT_ADDRESS"]

#: Where ``conclave serve`` listens by default.
DEFAULT_ADDRESS = "127.0.0.1:50051"

Token = Union[str, Callable[[], str]]
Metadata = Sequence[Tuple[str, Union[str, bytes]]]


class _CallDetails(NamedTuple):
    method: str
    timeout: Optional[float]
    metadata: Optional[Metadata]
    credentials: Optional[grpc.CallCredentials]
    wait_for_ready: Optional[bool]
    compression: Any


class _HeadersInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer token (and any fixed headers) to every call's metadata."""

    def __init__(self, token: Optional[Token], headers: Metadata) -> None:
        self._token = token
        self._headers = list(headers)

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata: List[Tuple[str, Union[str, bytes]]] = list(details.metadata or ())
        metadata.extend(self._headers)
        if self._token is not None:
            token = self._token() if callable(self._token) else self._token
            if token and not any(key == "authorization" for key, _ in metadata):
                metadata.append(("authorization", f"Bearer {token}"))
        return _CallDetails(  # type: ignore[return-value]
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


class Client:
    """A connection to a Conclave server with a typed stub for each service.

    Every stub method is the generated one: it takes the request message and the usual gRPC
    keyword arguments (``timeout``, ``metadata``, ``wait_for_ready``) and raises
    ``grpc.RpcError`` (turn it into a :class:`~conclave_client.ConclaveError` with
    :func:`~conclave_client.raise_for` or :func:`~conclave_client.translate_errors`). The helpers
    of this package raise ConclaveError themselves.

    Close it with :meth:`close`, or use it as a context manager.
    """

    #: ``RunService``: create, inspect, steer and watch runs.
    runs: runs_pb2_grpc.RunServiceStub
    #: ``WorkerService``: external workers and their management.
    workers: workers_pb2_grpc.WorkerServiceStub
    #: ``AdminService``: rescue runs, prune history.
    admin: admin_pb2_grpc.AdminServiceStub
    #: ``ModelService``: providers, model calls, router statistics.
    models: models_pb2_grpc.ModelServiceStub
    #: ``ArtifactService``: upload, download, list and trace artifacts.
    artifacts: artifacts_pb2_grpc.ArtifactServiceStub
    #: ``DebateService``.
    debates: debates_pb2_grpc.DebateServiceStub
    #: ``MissionService``.
    missions: missions_pb2_grpc.MissionServiceStub
    #: ``TaskService``.
    tasks: tasks_pb2_grpc.TaskServiceStub
    #: ``SkillService``.
    skills: stages_pb2_grpc.SkillServiceStub
    #: ``RecipeService``.
    recipes: stages_pb2_grpc.RecipeServiceStub
    #: ``CardService``.
    cards: stages_pb2_grpc.CardServiceStub

    def __init__(self, channel: grpc.Channel, *, address: str = "") -> None:
        """Wraps an existing channel (add your own interceptors first if you need them)."""
        self.channel = channel
        self.address = address
        self.runs = runs_pb2_grpc.RunServiceStub(channel)
        self.workers = workers_pb2_grpc.WorkerServiceStub(channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(channel)
        self.models = models_pb2_grpc.ModelServiceStub(channel)
        self.artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
        self.debates = debates_pb2_grpc.DebateServiceStub(channel)
        self.missions = missions_pb2_grpc.MissionServiceStub(channel)
        self.tasks = tasks_pb2_grpc.TaskServiceStub(channel)
        self.skills = stages_pb2_grpc.SkillServiceStub(channel)
        self.recipes = stages_pb2_grpc.RecipeServiceStub(channel)
        self.cards = stages_pb2_grpc.CardServiceStub(channel)

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Blocks until the channel is connected; raises ConclaveError(UNAVAILABLE) after
        ``timeout`` seconds."""
        from ._errors import ConclaveError

        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ConclaveError(
                grpc.StatusCode.UNAVAILABLE,
                f"could not connect to {self.address or 'the server'} within {timeout}s",
                reason="UNREACHABLE",
            ) from None

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(address={self.address!r})"


def connect(
    address: Optional[str] = None,
    *,
    tls: Optional[bool] = None,
    root_certificates: Optional[bytes] = None,
    token: Optional[Token] = None,
    headers: Metadata = (),
    options: Sequence[Tuple[str, Any]] = (),
) -> Client:
    """Opens a channel to a Conclave server and returns a :class:`Client`.

    ``address`` is ``host:port`` (``http://`` and ``https://`` prefixes are accepted: https means
    TLS); without it, ``$CONCLAVE_SERVER``, then ``127.0.0.1:50051``. ``tls`` turns TLS on (with
    the system's roots, or ``root_certificates`` in PEM). ``token`` (a string, or a function
    returning one before each call) is sent as ``authorization: Bearer <token>`` on every call;
    without it, ``$CONCLAVE_TOKEN`` if set. ``headers`` are added to every call too;
    ``options`` are gRPC channel options.

    The channel connects lazily: the first call (or :meth:`Client.wait_ready`) connects.
    Messages of up to 64 MiB are accepted by default (the server's own limit is 16 MiB).
    """
    if address is None:
        address = os.environ.get("CONCLAVE_SERVER") or DEFAULT_ADDRESS
    target = address
    if target.startswith("https://"):
        target = target[len("https://"):]
        if tls is None:
            tls = True
    elif target.startswith("http://"):
        target = target[len("http://"):]
    target = target.rstrip("/")
    if tls is None:
        tls = root_certificates is not None
    if token is None:
        token = os.environ.get("CONCLAVE_TOKEN") or None

    channel_options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ]
    channel_options = [o for o in channel_options if o[0] not in {k for k, _ in options}]
    channel_options.extend(options)

    if tls:
        credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
        channel = grpc.secure_channel(target, credentials, options=channel_options)
    else:
        channel = grpc.insecure_channel(target, options=channel_options)
    if token is not None or headers:
        channel = grpc.intercept_channel(channel, _HeadersInterceptor(token, headers))
    return Client(channel, address=target)

