import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RescueRunsRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class RescueRunsResponse(_message.Message):
    __slots__ = ("run_ids",)
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneHistoryRequest(_message.Message):
    __slots__ = ("history_older_than", "runs_older_than")
    HISTORY_OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    RUNS_OLDER_THAN_FIELD_NUMBER: _ClassVar[int]
    history_older_than: _duration_pb2.Duration
    runs_older_than: _duration_pb2.Duration
    def __init__(self, history_older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., runs_older_than: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class PruneHistoryResponse(_message.Message):
    __slots__ = ("histories_pruned", "runs_deleted", "blobs_removed", "abandoned_uploads_removed")
    HISTORIES_PRUNED_FIELD_NUMBER: _ClassVar[int]
    RUNS_DELETED_FIELD_NUMBER: _ClassVar[int]
    BLOBS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ABANDONED_UPLOADS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    histories_pruned: int
    runs_deleted: int
    blobs_removed: int
    abandoned_uploads_removed: int
    def __init__(self, histories_pruned: _Optional[int] = ..., runs_deleted: _Optional[int] = ..., blobs_removed: _Optional[int] = ..., abandoned_uploads_removed: _Optional[int] = ...) -> None: ...
