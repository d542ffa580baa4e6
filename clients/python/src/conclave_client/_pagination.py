"""Iterating a paginated list across ``next_page_token``."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union, overload

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ._errors import ConclaveError

__all__ = ["paginate"]

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Item = TypeVar("Item")


@overload
def paginate(
    method: Callable[..., Resp],
    request: Req,
    field: Callable[[Resp], Iterable[Item]],
    *,
    page_size: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Iterator[Item]: ...


@overload
def paginate(
    method: Callable[..., Resp],
    request: Req,
    field: Optional[str] = None,
    *,
    page_size: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Iterator[Any]: ...


def paginate(
    method: Callable[..., Any],
    request: Message,
    field: Union[str, Callable[[Any], Iterable[Any]], None] = None,
    *,
    page_size: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Iterator[Any]:
    """Yields every item of a ``List*`` call, one page after another, until a page comes back
    with an empty ``next_page_token``.

    ``field`` names the response's repeated field (``"runs"``, ``"artifacts"``, ...), or is a
    function returning the items of a response (which keeps the items' type for type checkers);
    without it, the response's only repeated message field is used. ``page_size`` overrides the
    request's. ``request`` is not modified. Raises :class:`ConclaveError`.

    ::

        for run in paginate(client.runs.ListRuns, runs_pb2.ListRunsRequest(kind="echo")):
            print(run.id)
        runs = list(paginate(client.runs.ListRuns, runs_pb2.ListRunsRequest(), lambda r: r.runs))
    """
    page = type(request)()
    page.CopyFrom(request)
    if page_size is not None:
        setattr(page, "page_size", page_size)
    items_of: Optional[Callable[[Any], Iterable[Any]]] = None
    if callable(field):
        items_of = field
    seen_tokens = set()
    while True:
        try:
            response = method(page, timeout=timeout) if timeout is not None else method(page)
        except grpc.RpcError as err:
            raise ConclaveError.from_rpc_error(err) from err
        if items_of is None:
            name = field if isinstance(field, str) else _repeated_field(response)
            items_of = lambda r, name=name: getattr(r, name)  # noqa: E731
        yield from items_of(response)
        token = getattr(response, "next_page_token", "")
        if not token:
            return
        if token in seen_tokens:  # a server bug would otherwise loop forever
            raise ConclaveError(
                grpc.StatusCode.INTERNAL,
                f"the server returned page token {token!r} twice",
                reason="PAGE_TOKEN_REPEATED",
            )
        seen_tokens.add(token)
        setattr(page, "page_token", token)


def _repeated_field(response: Message) -> str:
    candidates = [
        f.name
        for f in response.DESCRIPTOR.fields
        if f.is_repeated and f.type == FieldDescriptor.TYPE_MESSAGE
        and not (f.message_type is not None and f.message_type.GetOptions().map_entry)
    ]
    if len(candidates) != 1:
        raise TypeError(
            f"{response.DESCRIPTOR.full_name} has {len(candidates)} repeated message fields "
            f"({', '.join(candidates) or 'none'}); pass the one to iterate as `field`"
        )
    return candidates[0]

