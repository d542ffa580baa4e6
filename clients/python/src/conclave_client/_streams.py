"""Following a run's events or logs (and other watch streams) across disconnects."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Iterator, Optional

import grpc

from ._client import Client
from ._errors import ConclaveError
from .v1 import runs_pb2

__all__ = ["follow_stream", "follow_events", "follow_logs", "is_disconnect"]

#: Called before each resume with the last sequence received and the error that broke the stream.
OnReconnect = Callable[[int, ConclaveError], None]

# Transport failures that grpc reports with another code than UNAVAILABLE.
_RESET_HINTS = ("rst_stream", "stream removed", "stream reset", "socket closed", "connection reset")


def is_disconnect(error: ConclaveError) -> bool:
    """Whether ``error`` is a broken connection or stream (or a server shutting down) after
    which the same stream may be resumed, rather than an answer from the server."""
    if error.code == grpc.StatusCode.UNAVAILABLE:
        return True
    if error.code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) and not error.reason:
        text = error.message.lower()
        return any(hint in text for hint in _RESET_HINTS)
    return False


def follow_stream(
    method: Callable[..., Iterable[Any]],
    request: Any,
    *,
    items: Optional[str] = None,
    max_retries: Optional[int] = 10,
    retry_delay: float = 0.1,
    max_retry_delay: float = 5.0,
    on_reconnect: Optional[OnReconnect] = None,
    timeout: Optional[float] = None,
) -> Iterator[Any]:
    """Yields the items of a replay-then-follow stream (``WatchRun``, ``TailLogs``,
    ``WatchDebate``, ``WatchMission``, ``WatchTask``), resuming after a disconnect.

    ``request`` must have an ``after_sequence`` field; items are read from the repeated field
    ``items`` of each response (``events``, ``lines``), or are the responses themselves when
    ``items`` is None. Every item has a ``sequence``: after a disconnect (UNAVAILABLE, a reset
    stream, a server shutting down) the stream is opened again with ``after_sequence`` set to
    the last sequence yielded, so no item is lost or repeated. Heartbeats and lag notices (and
    responses with no item) are dropped. Ends when the stream ends with OK.

    ``max_retries`` consecutive failed attempts (without a new item in between; None: no limit)
    raise the last error; the delay between attempts starts at ``retry_delay`` seconds and
    doubles up to ``max_retry_delay``. Any other error is raised at once as a
    :class:`ConclaveError`. ``timeout`` applies to each attempt.
    """
    last = int(getattr(request, "after_sequence"))
    failures = 0
    while True:
        attempt = type(request)()
        attempt.CopyFrom(request)
        attempt.after_sequence = last
        call: Any = None
        try:
            call = method(attempt, timeout=timeout) if timeout is not None else method(attempt)
            for response in call:
                batch = getattr(response, items) if items is not None else (response,)
                for item in batch:
                    sequence = int(item.sequence)
                    if sequence <= last:
                        # A heartbeat-like placeholder, or an item already yielded.
                        continue
                    last = sequence
                    failures = 0
                    yield item
            return
        except grpc.RpcError as err:
            error = ConclaveError.from_rpc_error(err)
            if not is_disconnect(error) or (max_retries is not None and failures >= max_retries):
                raise error from err
            failures += 1
            if on_reconnect is not None:
                on_reconnect(last, error)
            time.sleep(min(max_retry_delay, retry_delay * (2 ** (failures - 1))))
        finally:
            if call is not None and hasattr(call, "cancel"):
                call.cancel()


def follow_events(
    client: Client,
    run_id: str,
    after_sequence: int = 0,
    *,
    max_retries: Optional[int] = 10,
    retry_delay: float = 0.1,
    max_retry_delay: float = 5.0,
    on_reconnect: Optional[OnReconnect] = None,
) -> Iterator[runs_pb2.RunEvent]:
    """Yields a run's events after ``after_sequence`` (0: all of them), then its live ones, until
    the run is finished and its last event was yielded (``WatchRun``); resumes from the last
    sequence seen after a disconnect, so every event comes exactly once, in order. Heartbeats
    are dropped. Raises :class:`ConclaveError` (e.g. ``RUN_NOT_FOUND``). See :func:`follow_stream`
    for the retry settings.

    ::

        for event in follow_events(client, run.id):
            print(event.sequence, event.WhichOneof("event"))
    """
    request = runs_pb2.WatchRunRequest(id=run_id, after_sequence=after_sequence)
    return follow_stream(
        client.runs.WatchRun,
        request,
        items="events",
        max_retries=max_retries,
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
        on_reconnect=on_reconnect,
    )


def follow_logs(
    client: Client,
    run_id: str,
    after_sequence: int = 0,
    *,
    follow: bool = True,
    max_retries: Optional[int] = 10,
    retry_delay: float = 0.1,
    max_retry_delay: float = 5.0,
    on_reconnect: Optional[OnReconnect] = None,
) -> Iterator[runs_pb2.LogLine]:
    """Yields a run's log lines after ``after_sequence`` (``TailLogs``): with ``follow``
    (the default) until the run is finished, else the lines stored so far. Resumes from the
    last sequence seen after a disconnect; heartbeats are dropped. Raises
    :class:`ConclaveError`. See :func:`follow_stream` for the retry settings.

    ::

        for line in follow_logs(client, run.id):
            print(line.text)
    """
    request = runs_pb2.TailLogsRequest(id=run_id, after_sequence=after_sequence, follow=follow)
    return follow_stream(
        client.runs.TailLogs,
        request,
        items="lines",
        max_retries=max_retries,
        retry_delay=retry_delay,
        max_retry_delay=max_retry_delay,
        on_reconnect=on_reconnect,
    )

