"""Python client for Conclave, the durable control plane for multi-agent LLM work.

The generated messages and service stubs are in :mod:`conclave_client.v1` (``runs_pb2``,
``runs_pb2_grpc``, ...); this package adds the helpers people expect around them::

    from conclave_client import connect, follow_events, paginate
    from conclave_client.v1 import runs_pb2

    client = connect("127.0.0.1:50051", token="...")
    run = client.runs.CreateRun(runs_pb2.CreateRunRequest(kind="echo"))
    for event in follow_events(client, run.id):
        print(event.sequence, event.WhichOneof("event"))
"""

from ._artifacts import DEFAULT_CHUNK_SIZE, download_bytes, download_file, upload_bytes, upload_file
from ._client import DEFAULT_ADDRESS, Client, connect
from ._errors import DOMAIN, ConclaveError, FieldViolation, raise_for, translate_errors
from ._pagination import paginate
from ._streams import follow_events, follow_logs, follow_stream, is_disconnect

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConclaveError",
    "DEFAULT_ADDRESS",
    "DEFAULT_CHUNK_SIZE",
    "DOMAIN",
    "FieldViolation",
    "connect",
    "download_bytes",
    "download_file",
    "follow_events",
    "follow_logs",
    "follow_stream",
    "is_disconnect",
    "paginate",
    "raise_for",
    "translate_errors",
    "upload_bytes",
    "upload_file",
]
