import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from conclave_client.v1 import runs_pb2 as _runs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_ACTIVE: _ClassVar[WorkerState]
    WORKER_STATE_DRAINING: _ClassVar[WorkerState]
    WORKER_STATE_STALE: _ClassVar[WorkerState]
    WORKER_STATE_STOPPED: _ClassVar[WorkerState]
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_ACTIVE: WorkerState
WORKER_STATE_DRAINING: WorkerState
WORKER_STATE_STALE: WorkerState
WORKER_STATE_STOPPED: WorkerState

class Worker(_message.Message):
    __slots__ = ("id", "name", "kinds", "providers", "labels", "capacity", "embedded", "state", "running", "register_time", "last_heartbeat_time", "stale_time", "stop_time")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    STALE_TIME_FIELD_NUMBER: _ClassVar[int]
    STOP_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    providers: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    capacity: int
    embedded: bool
    state: WorkerState
    running: int
    register_time: _timestamp_pb2.Timestamp
    last_heartbeat_time: _timestamp_pb2.Timestamp
    stale_time: _timestamp_pb2.Timestamp
    stop_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capacity: _Optional[int] = ..., embedded: _Optional[bool] = ..., state: _Optional[_Union[WorkerState, str]] = ..., running: _Optional[int] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stale_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stop_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "name", "kinds", "providers", "labels", "capacity")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    name: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    providers: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    capacity: int
    def __init__(self, worker_id: _Optional[str] = ..., name: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capacity: _Optional[int] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker", "heartbeat_interval", "lease_ttl")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_FIELD_NUMBER: _ClassVar[int]
    worker: Worker
    heartbeat_interval: _duration_pb2.Duration
    lease_ttl: _duration_pb2.Duration
    def __init__(self, worker: _Optional[_Union[Worker, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ReceiveAssignmentsRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("run", "revoked", "cancel", "drain", "heartbeat")
    RUN_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    run: RunAssignment
    revoked: LeaseRevoked
    cancel: RunCancelRequested
    drain: DrainRequested
    heartbeat: _runs_pb2.Heartbeat
    def __init__(self, run: _Optional[_Union[RunAssignment, _Mapping]] = ..., revoked: _Optional[_Union[LeaseRevoked, _Mapping]] = ..., cancel: _Optional[_Union[RunCancelRequested, _Mapping]] = ..., drain: _Optional[_Union[DrainRequested, _Mapping]] = ..., heartbeat: _Optional[_Union[_runs_pb2.Heartbeat, _Mapping]] = ...) -> None: ...

class RunAssignment(_message.Message):
    __slots__ = ("run", "epoch", "journal")
    RUN_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    run: _runs_pb2.Run
    epoch: int
    journal: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    def __init__(self, run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., epoch: _Optional[int] = ..., journal: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("key", "output", "attempt", "finish_time", "duration")
    KEY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    key: str
    output: _struct_pb2.Value
    attempt: int
    finish_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    def __init__(self, key: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., attempt: _Optional[int] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class LeaseRevoked(_message.Message):
    __slots__ = ("run_id", "epoch", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RunCancelRequested(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class DrainRequested(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "runs")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    runs: _containers.RepeatedCompositeFieldContainer[HeldRun]
    def __init__(self, worker_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[HeldRun, _Mapping]]] = ...) -> None: ...

class HeldRun(_message.Message):
    __slots__ = ("run_id", "epoch")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("runs", "drain")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[HeldRunStatus]
    drain: bool
    def __init__(self, runs: _Optional[_Iterable[_Union[HeldRunStatus, _Mapping]]] = ..., drain: _Optional[bool] = ...) -> None: ...

class HeldRunStatus(_message.Message):
    __slots__ = ("run_id", "held", "cancel_requested")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    held: bool
    cancel_requested: bool
    def __init__(self, run_id: _Optional[str] = ..., held: _Optional[bool] = ..., cancel_requested: _Optional[bool] = ...) -> None: ...

class RecordStepRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "key", "output", "duration")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    key: str
    output: _struct_pb2.Value
    duration: _duration_pb2.Duration
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., key: _Optional[str] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RecordStepResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EmitEventRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "event_type", "data")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    event_type: str
    data: _struct_pb2.Value
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., event_type: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class EmitEventResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AppendLogsRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "first_position", "lines")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FIRST_POSITION_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    first_position: int
    lines: _containers.RepeatedCompositeFieldContainer[_runs_pb2.LogLine]
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., first_position: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[_runs_pb2.LogLine, _Mapping]]] = ...) -> None: ...

class AppendLogsResponse(_message.Message):
    __slots__ = ("lines_stored", "last_sequence")
    LINES_STORED_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    lines_stored: int
    last_sequence: int
    def __init__(self, lines_stored: _Optional[int] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class SuspendRunRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "key", "prompt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    key: str
    prompt: str
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., key: _Optional[str] = ..., prompt: _Optional[str] = ...) -> None: ...

class SuspendRunResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FinishRunRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "output", "error", "cancelled", "released")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    output: _struct_pb2.Value
    error: _runs_pb2.RunError
    cancelled: Cancelled
    released: Released
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., output: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ..., error: _Optional[_Union[_runs_pb2.RunError, _Mapping]] = ..., cancelled: _Optional[_Union[Cancelled, _Mapping]] = ..., released: _Optional[_Union[Released, _Mapping]] = ...) -> None: ...

class Cancelled(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Released(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FinishRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _runs_pb2.Run
    def __init__(self, run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers", "next_page_token")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[Worker]
    next_page_token: str
    def __init__(self, workers: _Optional[_Iterable[_Union[Worker, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "undrain")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    UNDRAIN_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    undrain: bool
    def __init__(self, worker_id: _Optional[str] = ..., undrain: _Optional[bool] = ...) -> None: ...

class StopWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class ReadReliabilityRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "participants")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    participants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., participants: _Optional[_Iterable[str]] = ...) -> None: ...

class ParticipantRecord(_message.Message):
    __slots__ = ("participant", "debates", "agreed")
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    DEBATES_FIELD_NUMBER: _ClassVar[int]
    AGREED_FIELD_NUMBER: _ClassVar[int]
    participant: str
    debates: int
    agreed: int
    def __init__(self, participant: _Optional[str] = ..., debates: _Optional[int] = ..., agreed: _Optional[int] = ...) -> None: ...

class ReadReliabilityResponse(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[ParticipantRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[ParticipantRecord, _Mapping]]] = ...) -> None: ...

class ParticipantVote(_message.Message):
    __slots__ = ("participant", "agreed")
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    AGREED_FIELD_NUMBER: _ClassVar[int]
    participant: str
    agreed: bool
    def __init__(self, participant: _Optional[str] = ..., agreed: _Optional[bool] = ...) -> None: ...

class RecordDebateVotesRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "votes")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    votes: _containers.RepeatedCompositeFieldContainer[ParticipantVote]
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., votes: _Optional[_Iterable[_Union[ParticipantVote, _Mapping]]] = ...) -> None: ...

class RecordDebateVotesResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RecallMemoriesRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "text", "limit")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    text: str
    limit: int
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., text: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class MissionMemory(_message.Message):
    __slots__ = ("run_id", "request", "summary", "outcome", "created_at")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    request: str
    summary: str
    outcome: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., request: _Optional[str] = ..., summary: _Optional[str] = ..., outcome: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecallMemoriesResponse(_message.Message):
    __slots__ = ("memories",)
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[MissionMemory]
    def __init__(self, memories: _Optional[_Iterable[_Union[MissionMemory, _Mapping]]] = ...) -> None: ...

class RememberMissionRequest(_message.Message):
    __slots__ = ("run_id", "epoch", "request", "summary", "outcome")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    epoch: int
    request: str
    summary: str
    outcome: str
    def __init__(self, run_id: _Optional[str] = ..., epoch: _Optional[int] = ..., request: _Optional[str] = ..., summary: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class RememberMissionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
