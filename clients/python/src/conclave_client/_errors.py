"""Conclave's errors as one exception type, decoded from the gRPC status details."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, List, Mapping, NoReturn, Optional, Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message as ProtoMessage
from google.rpc import error_details_pb2, status_pb2

__all__ = ["ConclaveError", "FieldViolation", "raise_for", "translate_errors", "DOMAIN"]

#: The ``ErrorInfo.domain`` of every error Conclave returns.
DOMAIN = "conclave.dev"

_DETAILS_KEY = "grpc-status-details-bin"

# The google.rpc detail types a status may carry, by type URL.
_DETAIL_TYPES = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.DebugInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.RequestInfo,
        error_details_pb2.ResourceInfo,
        error_details_pb2.Help,
        error_details_pb2.LocalizedMessage,
    )
}


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of an invalid request (a ``google.rpc.BadRequest`` field violation)."""

    #: The field's path, e.g. ``kind``, ``input.lines``, ``after_sequence``.
    field: str
    #: What is wrong with it and what to do instead.
    description: str
    #: A machine-readable reason, when the server gives one.
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class ConclaveError(Exception):
    """An error returned by Conclave (or met by a helper on the client side).

    Branch on :attr:`code` and :attr:`reason`, never on :attr:`message`::

        try:
            client.runs.GetRun(runs_pb2.GetRunRequest(id=run_id))
        except grpc.RpcError as err:
            raise_for(err)          # raises ConclaveError
        ...
        except ConclaveError as err:
            if err.reason == "RUN_NOT_FOUND": ...
    """

    #: The gRPC status code, e.g. ``grpc.StatusCode.NOT_FOUND``.
    code: grpc.StatusCode
    #: The status message, for people.
    message: str
    #: ``ErrorInfo.reason``: stable and machine-readable (``RUN_NOT_FOUND``, ``INVALID_ARGUMENT``,
    #: ``SHUTTING_DOWN``, ...); empty when the status carried no ErrorInfo.
    reason: str
    #: ``ErrorInfo.domain``: ``conclave.dev`` for Conclave's own errors.
    domain: str
    #: ``ErrorInfo.metadata``, e.g. ``{"resource": "run", "id": "..."}`` for RUN_NOT_FOUND.
    metadata: Mapping[str, str]
    #: The ``BadRequest`` field violations of an INVALID_ARGUMENT error.
    field_violations: List[FieldViolation]
    #: Every detail of the status, decoded where the type is a known ``google.rpc`` one (else
    #: left as ``google.protobuf.Any``).
    details: List[ProtoMessage]

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Optional[Mapping[str, str]] = None,
        field_violations: Optional[Sequence[FieldViolation]] = None,
        details: Optional[Sequence[ProtoMessage]] = None,
    ) -> None:
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        self.details = list(details or [])
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.code.name}"
        if self.reason and self.reason != self.code.name:
            text += f" ({self.reason})"
        if self.message:
            text += f": {self.message}"
        return text

    def __repr__(self) -> str:
        return (
            f"ConclaveError(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r})"
        )

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later (the server or the network was unavailable)."""
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "ConclaveError":
        """Decodes a ``grpc.RpcError`` (a failed call), its ErrorInfo and BadRequest details."""
        code = _call_code(error)
        msg = _call_details(error)
        status = _rich_status(error)
        details: List[ProtoMessage] = []
        reason = domain = ""
        metadata: Mapping[str, str] = {}
        violations: List[FieldViolation] = []
        if status is not None:
            for packed in status.details:
                detail = _unpack(packed)
                details.append(detail)
                if isinstance(detail, error_details_pb2.ErrorInfo) and not reason:
                    reason, domain, metadata = detail.reason, detail.domain, dict(detail.metadata)
                elif isinstance(detail, error_details_pb2.BadRequest):
                    violations.extend(
                        FieldViolation(v.field, v.description, getattr(v, "reason", ""))
                        for v in detail.field_violations
                    )
        err = cls(
            code,
            msg,
            reason=reason,
            domain=domain,
            metadata=metadata,
            field_violations=violations,
            details=details,
        )
        err.__cause__ = error
        return err


def raise_for(error: BaseException) -> NoReturn:
    """Raises ``error`` as a :class:`ConclaveError` when it is a ``grpc.RpcError``; re-raises
    anything else (a ConclaveError included) unchanged."""
    if isinstance(error, ConclaveError):
        raise error
    if isinstance(error, grpc.RpcError):
        raise ConclaveError.from_rpc_error(error) from error
    raise error


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turns a ``grpc.RpcError`` raised inside the block into a :class:`ConclaveError`::

    with translate_errors():
        run = client.runs.GetRun(runs_pb2.GetRunRequest(id=run_id))
    """
    try:
        yield
    except grpc.RpcError as err:
        raise_for(err)


def _call_code(error: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(error, "code", None)
    if callable(code):
        try:
            value = code()
            if isinstance(value, grpc.StatusCode):
                return value
        except Exception:  # pragma: no cover - a broken call object
            pass
    return grpc.StatusCode.UNKNOWN


def _call_details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    if callable(details):
        try:
            value = details()
            return value if isinstance(value, str) else ""
        except Exception:  # pragma: no cover
            return ""
    return str(error)


def _rich_status(error: grpc.RpcError) -> Optional[status_pb2.Status]:
    """The ``google.rpc.Status`` in the trailers (``grpc-status-details-bin``), if any."""
    trailing = getattr(error, "trailing_metadata", None)
    if not callable(trailing):
        return None
    try:
        pairs = trailing() or ()
    except Exception:  # pragma: no cover
        return None
    try:
        from grpc_status import rpc_status

        status = rpc_status.from_call(error)
        if status is not None:
            return status
    except (ImportError, ValueError):
        # grpcio-status is missing, or it refused a status whose message differs from the
        # call's (e.g. trimmed by a proxy): decode the trailer ourselves.
        pass
    for key, value in pairs:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:
                return None
    return None


def _unpack(packed: any_pb2.Any) -> ProtoMessage:
    name = packed.TypeName()
    cls = _DETAIL_TYPES.get(name)
    if cls is None:
        return packed
    detail: ProtoMessage = cls()
    if packed.Unpack(detail):
        return detail
    return packed
