import datetime

from conclave_client.v1 import debates_pb2 as _debates_pb2
from conclave_client.v1 import runs_pb2 as _runs_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MissionOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MISSION_OUTCOME_UNSPECIFIED: _ClassVar[MissionOutcome]
    MISSION_OUTCOME_COMPLETED: _ClassVar[MissionOutcome]
    MISSION_OUTCOME_REJECTED: _ClassVar[MissionOutcome]
    MISSION_OUTCOME_FAILED: _ClassVar[MissionOutcome]
MISSION_OUTCOME_UNSPECIFIED: MissionOutcome
MISSION_OUTCOME_COMPLETED: MissionOutcome
MISSION_OUTCOME_REJECTED: MissionOutcome
MISSION_OUTCOME_FAILED: MissionOutcome

class AgentRole(_message.Message):
    __slots__ = ("name", "description", "chain")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    chain: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., chain: _Optional[_Iterable[str]] = ...) -> None: ...

class MissionLimits(_message.Message):
    __slots__ = ("parallelism", "max_model_calls", "max_steps", "max_revisions")
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    MAX_MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_REVISIONS_FIELD_NUMBER: _ClassVar[int]
    parallelism: int
    max_model_calls: int
    max_steps: int
    max_revisions: int
    def __init__(self, parallelism: _Optional[int] = ..., max_model_calls: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_revisions: _Optional[int] = ...) -> None: ...

class MissionGate(_message.Message):
    __slots__ = ("skip", "participants", "protocol")
    SKIP_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    skip: bool
    participants: _containers.RepeatedCompositeFieldContainer[_debates_pb2.DebateParticipant]
    protocol: _debates_pb2.DebateProtocol
    def __init__(self, skip: _Optional[bool] = ..., participants: _Optional[_Iterable[_Union[_debates_pb2.DebateParticipant, _Mapping]]] = ..., protocol: _Optional[_Union[_debates_pb2.DebateProtocol, _Mapping]] = ...) -> None: ...

class CreateMissionRequest(_message.Message):
    __slots__ = ("workspace", "request", "roles", "limits", "gate", "no_memory", "request_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    NO_MEMORY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    request: str
    roles: _containers.RepeatedCompositeFieldContainer[AgentRole]
    limits: MissionLimits
    gate: MissionGate
    no_memory: bool
    request_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, workspace: _Optional[str] = ..., request: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[AgentRole, _Mapping]]] = ..., limits: _Optional[_Union[MissionLimits, _Mapping]] = ..., gate: _Optional[_Union[MissionGate, _Mapping]] = ..., no_memory: _Optional[bool] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetMissionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListMissionsRequest(_message.Message):
    __slots__ = ("workspace", "outcome", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    outcome: MissionOutcome
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., outcome: _Optional[_Union[MissionOutcome, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMissionsResponse(_message.Message):
    __slots__ = ("missions", "next_page_token")
    MISSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    missions: _containers.RepeatedCompositeFieldContainer[Mission]
    next_page_token: str
    def __init__(self, missions: _Optional[_Iterable[_Union[Mission, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelMissionRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchMissionRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class PlannedStep(_message.Message):
    __slots__ = ("id", "role", "instructions", "depends_on", "needs_approval")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    NEEDS_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    instructions: str
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    needs_approval: bool
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., instructions: _Optional[str] = ..., depends_on: _Optional[_Iterable[str]] = ..., needs_approval: _Optional[bool] = ...) -> None: ...

class MissionStep(_message.Message):
    __slots__ = ("id", "role", "state", "attempts", "artifact_id", "start_time", "finish_time", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    state: str
    attempts: int
    artifact_id: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    error: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., artifact_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class MissionGateResult(_message.Message):
    __slots__ = ("outcome", "score", "vetoed_by", "veto_reason", "conditions", "report_artifact_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VETOED_BY_FIELD_NUMBER: _ClassVar[int]
    VETO_REASON_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    REPORT_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: _debates_pb2.DebateOutcome
    score: float
    vetoed_by: str
    veto_reason: str
    conditions: _containers.RepeatedScalarFieldContainer[str]
    report_artifact_id: str
    def __init__(self, outcome: _Optional[_Union[_debates_pb2.DebateOutcome, str]] = ..., score: _Optional[float] = ..., vetoed_by: _Optional[str] = ..., veto_reason: _Optional[str] = ..., conditions: _Optional[_Iterable[str]] = ..., report_artifact_id: _Optional[str] = ...) -> None: ...

class MissionResult(_message.Message):
    __slots__ = ("outcome", "summary", "plan_summary", "plan", "gate", "steps", "memories", "validations", "model_calls")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PLAN_SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    VALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    outcome: MissionOutcome
    summary: str
    plan_summary: str
    plan: _containers.RepeatedCompositeFieldContainer[PlannedStep]
    gate: MissionGateResult
    steps: _containers.RepeatedCompositeFieldContainer[MissionStep]
    memories: _containers.RepeatedScalarFieldContainer[str]
    validations: int
    model_calls: int
    def __init__(self, outcome: _Optional[_Union[MissionOutcome, str]] = ..., summary: _Optional[str] = ..., plan_summary: _Optional[str] = ..., plan: _Optional[_Iterable[_Union[PlannedStep, _Mapping]]] = ..., gate: _Optional[_Union[MissionGateResult, _Mapping]] = ..., steps: _Optional[_Iterable[_Union[MissionStep, _Mapping]]] = ..., memories: _Optional[_Iterable[str]] = ..., validations: _Optional[int] = ..., model_calls: _Optional[int] = ...) -> None: ...

class Mission(_message.Message):
    __slots__ = ("id", "run", "request", "roles", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    run: _runs_pb2.Run
    request: str
    roles: _containers.RepeatedCompositeFieldContainer[AgentRole]
    result: MissionResult
    def __init__(self, id: _Optional[str] = ..., run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., request: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[AgentRole, _Mapping]]] = ..., result: _Optional[_Union[MissionResult, _Mapping]] = ...) -> None: ...

class MissionEvent(_message.Message):
    __slots__ = ("sequence", "time", "phase", "step", "state", "outcome", "debate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DEBATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    phase: str
    step: MissionStep
    state: _runs_pb2.RunState
    outcome: MissionOutcome
    debate: _debates_pb2.DebateMessage
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., phase: _Optional[str] = ..., step: _Optional[_Union[MissionStep, _Mapping]] = ..., state: _Optional[_Union[_runs_pb2.RunState, str]] = ..., outcome: _Optional[_Union[MissionOutcome, str]] = ..., debate: _Optional[_Union[_debates_pb2.DebateMessage, _Mapping]] = ...) -> None: ...
