import datetime

from conclave_client.v1 import artifacts_pb2 as _artifacts_pb2
from conclave_client.v1 import runs_pb2 as _runs_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RiskSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_SEVERITY_UNSPECIFIED: _ClassVar[RiskSeverity]
    RISK_SEVERITY_LOW: _ClassVar[RiskSeverity]
    RISK_SEVERITY_MEDIUM: _ClassVar[RiskSeverity]
    RISK_SEVERITY_HIGH: _ClassVar[RiskSeverity]
    RISK_SEVERITY_CRITICAL: _ClassVar[RiskSeverity]

class DebateOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEBATE_OUTCOME_UNSPECIFIED: _ClassVar[DebateOutcome]
    DEBATE_OUTCOME_APPROVED: _ClassVar[DebateOutcome]
    DEBATE_OUTCOME_CONDITIONALLY_APPROVED: _ClassVar[DebateOutcome]
    DEBATE_OUTCOME_REJECTED: _ClassVar[DebateOutcome]
    DEBATE_OUTCOME_VETOED: _ClassVar[DebateOutcome]
    DEBATE_OUTCOME_QUORUM_NOT_REACHED: _ClassVar[DebateOutcome]
RISK_SEVERITY_UNSPECIFIED: RiskSeverity
RISK_SEVERITY_LOW: RiskSeverity
RISK_SEVERITY_MEDIUM: RiskSeverity
RISK_SEVERITY_HIGH: RiskSeverity
RISK_SEVERITY_CRITICAL: RiskSeverity
DEBATE_OUTCOME_UNSPECIFIED: DebateOutcome
DEBATE_OUTCOME_APPROVED: DebateOutcome
DEBATE_OUTCOME_CONDITIONALLY_APPROVED: DebateOutcome
DEBATE_OUTCOME_REJECTED: DebateOutcome
DEBATE_OUTCOME_VETOED: DebateOutcome
DEBATE_OUTCOME_QUORUM_NOT_REACHED: DebateOutcome

class DebateParticipant(_message.Message):
    __slots__ = ("name", "role", "weight", "veto", "chain")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VETO_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    weight: float
    veto: bool
    chain: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., weight: _Optional[float] = ..., veto: _Optional[bool] = ..., chain: _Optional[_Iterable[str]] = ...) -> None: ...

class DebateProtocol(_message.Message):
    __slots__ = ("max_cycles", "approval_threshold", "conditional_threshold", "quorum", "mitigation_severities", "reliability_weights")
    MAX_CYCLES_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    QUORUM_FIELD_NUMBER: _ClassVar[int]
    MITIGATION_SEVERITIES_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    max_cycles: int
    approval_threshold: float
    conditional_threshold: float
    quorum: float
    mitigation_severities: _containers.RepeatedScalarFieldContainer[RiskSeverity]
    reliability_weights: bool
    def __init__(self, max_cycles: _Optional[int] = ..., approval_threshold: _Optional[float] = ..., conditional_threshold: _Optional[float] = ..., quorum: _Optional[float] = ..., mitigation_severities: _Optional[_Iterable[_Union[RiskSeverity, str]]] = ..., reliability_weights: _Optional[bool] = ...) -> None: ...

class CreateDebateRequest(_message.Message):
    __slots__ = ("workspace", "proposal", "context", "context_artifacts", "participants", "protocol", "request_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    proposal: str
    context: str
    context_artifacts: _containers.RepeatedCompositeFieldContainer[_artifacts_pb2.ArtifactRef]
    participants: _containers.RepeatedCompositeFieldContainer[DebateParticipant]
    protocol: DebateProtocol
    request_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, workspace: _Optional[str] = ..., proposal: _Optional[str] = ..., context: _Optional[str] = ..., context_artifacts: _Optional[_Iterable[_Union[_artifacts_pb2.ArtifactRef, _Mapping]]] = ..., participants: _Optional[_Iterable[_Union[DebateParticipant, _Mapping]]] = ..., protocol: _Optional[_Union[DebateProtocol, _Mapping]] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetDebateRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDebatesRequest(_message.Message):
    __slots__ = ("workspace", "outcome", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    outcome: DebateOutcome
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., outcome: _Optional[_Union[DebateOutcome, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDebatesResponse(_message.Message):
    __slots__ = ("debates", "next_page_token")
    DEBATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    debates: _containers.RepeatedCompositeFieldContainer[Debate]
    next_page_token: str
    def __init__(self, debates: _Optional[_Iterable[_Union[Debate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelDebateRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WatchDebateRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class DebateRisk(_message.Message):
    __slots__ = ("id", "raised_by", "description", "severity", "blocking", "cycle", "resolution", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    RAISED_BY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    BLOCKING_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    raised_by: str
    description: str
    severity: RiskSeverity
    blocking: bool
    cycle: int
    resolution: str
    status: str
    def __init__(self, id: _Optional[str] = ..., raised_by: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[RiskSeverity, str]] = ..., blocking: _Optional[bool] = ..., cycle: _Optional[int] = ..., resolution: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class DebateVote(_message.Message):
    __slots__ = ("participant", "weight", "veto", "counted", "approve", "confidence", "rationale", "conditions", "blocking_risk", "abstained", "reliability")
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    VETO_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    BLOCKING_RISK_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    RELIABILITY_FIELD_NUMBER: _ClassVar[int]
    participant: str
    weight: float
    veto: bool
    counted: bool
    approve: bool
    confidence: float
    rationale: str
    conditions: _containers.RepeatedScalarFieldContainer[str]
    blocking_risk: str
    abstained: str
    reliability: float
    def __init__(self, participant: _Optional[str] = ..., weight: _Optional[float] = ..., veto: _Optional[bool] = ..., counted: _Optional[bool] = ..., approve: _Optional[bool] = ..., confidence: _Optional[float] = ..., rationale: _Optional[str] = ..., conditions: _Optional[_Iterable[str]] = ..., blocking_risk: _Optional[str] = ..., abstained: _Optional[str] = ..., reliability: _Optional[float] = ...) -> None: ...

class DebateRound(_message.Message):
    __slots__ = ("phase", "cycle", "agreement")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    cycle: int
    agreement: float
    def __init__(self, phase: _Optional[str] = ..., cycle: _Optional[int] = ..., agreement: _Optional[float] = ...) -> None: ...

class DebateResult(_message.Message):
    __slots__ = ("outcome", "score", "participation", "majority", "vetoed_by", "veto_reason", "conditions", "proposal", "original_proposal", "risks", "votes", "rounds", "mitigation_cycles", "cycle_bound_reached", "report_artifact_id")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPATION_FIELD_NUMBER: _ClassVar[int]
    MAJORITY_FIELD_NUMBER: _ClassVar[int]
    VETOED_BY_FIELD_NUMBER: _ClassVar[int]
    VETO_REASON_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    RISKS_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    MITIGATION_CYCLES_FIELD_NUMBER: _ClassVar[int]
    CYCLE_BOUND_REACHED_FIELD_NUMBER: _ClassVar[int]
    REPORT_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    outcome: DebateOutcome
    score: float
    participation: float
    majority: str
    vetoed_by: str
    veto_reason: str
    conditions: _containers.RepeatedScalarFieldContainer[str]
    proposal: str
    original_proposal: str
    risks: _containers.RepeatedCompositeFieldContainer[DebateRisk]
    votes: _containers.RepeatedCompositeFieldContainer[DebateVote]
    rounds: _containers.RepeatedCompositeFieldContainer[DebateRound]
    mitigation_cycles: int
    cycle_bound_reached: bool
    report_artifact_id: str
    def __init__(self, outcome: _Optional[_Union[DebateOutcome, str]] = ..., score: _Optional[float] = ..., participation: _Optional[float] = ..., majority: _Optional[str] = ..., vetoed_by: _Optional[str] = ..., veto_reason: _Optional[str] = ..., conditions: _Optional[_Iterable[str]] = ..., proposal: _Optional[str] = ..., original_proposal: _Optional[str] = ..., risks: _Optional[_Iterable[_Union[DebateRisk, _Mapping]]] = ..., votes: _Optional[_Iterable[_Union[DebateVote, _Mapping]]] = ..., rounds: _Optional[_Iterable[_Union[DebateRound, _Mapping]]] = ..., mitigation_cycles: _Optional[int] = ..., cycle_bound_reached: _Optional[bool] = ..., report_artifact_id: _Optional[str] = ...) -> None: ...

class Debate(_message.Message):
    __slots__ = ("id", "run", "proposal", "context", "participants", "protocol", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    run: _runs_pb2.Run
    proposal: str
    context: str
    participants: _containers.RepeatedCompositeFieldContainer[DebateParticipant]
    protocol: DebateProtocol
    result: DebateResult
    def __init__(self, id: _Optional[str] = ..., run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., proposal: _Optional[str] = ..., context: _Optional[str] = ..., participants: _Optional[_Iterable[_Union[DebateParticipant, _Mapping]]] = ..., protocol: _Optional[_Union[DebateProtocol, _Mapping]] = ..., result: _Optional[_Union[DebateResult, _Mapping]] = ...) -> None: ...

class DebateEvent(_message.Message):
    __slots__ = ("sequence", "time", "phase", "message", "state", "outcome")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    phase: DebatePhase
    message: DebateMessage
    state: _runs_pb2.RunState
    outcome: DebateOutcome
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., phase: _Optional[_Union[DebatePhase, _Mapping]] = ..., message: _Optional[_Union[DebateMessage, _Mapping]] = ..., state: _Optional[_Union[_runs_pb2.RunState, str]] = ..., outcome: _Optional[_Union[DebateOutcome, str]] = ...) -> None: ...

class DebatePhase(_message.Message):
    __slots__ = ("phase", "cycle")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    cycle: int
    def __init__(self, phase: _Optional[str] = ..., cycle: _Optional[int] = ...) -> None: ...

class DebateMessage(_message.Message):
    __slots__ = ("phase", "cycle", "participant", "role", "answer", "abstained")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    CYCLE_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    ABSTAINED_FIELD_NUMBER: _ClassVar[int]
    phase: str
    cycle: int
    participant: str
    role: str
    answer: _struct_pb2.Struct
    abstained: str
    def __init__(self, phase: _Optional[str] = ..., cycle: _Optional[int] = ..., participant: _Optional[str] = ..., role: _Optional[str] = ..., answer: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., abstained: _Optional[str] = ...) -> None: ...
