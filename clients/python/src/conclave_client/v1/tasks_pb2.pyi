import datetime

from conclave_client.v1 import runs_pb2 as _runs_pb2
from conclave_client.v1 import stages_pb2 as _stages_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_QUEUED: _ClassVar[TaskStatus]
    TASK_STATUS_RUNNING: _ClassVar[TaskStatus]
    TASK_STATUS_WAITING_MANUAL: _ClassVar[TaskStatus]
    TASK_STATUS_PASSED: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED_GATE: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED_SYSTEM: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELED: _ClassVar[TaskStatus]

class TaskMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_MODE_MANUAL: _ClassVar[TaskMode]
    TASK_MODE_AUTONOMOUS: _ClassVar[TaskMode]

class EvolutionLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVOLUTION_LEVEL_FIX_ONLY: _ClassVar[EvolutionLevel]
    EVOLUTION_LEVEL_GUIDED: _ClassVar[EvolutionLevel]
    EVOLUTION_LEVEL_PROACTIVE: _ClassVar[EvolutionLevel]
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_QUEUED: TaskStatus
TASK_STATUS_RUNNING: TaskStatus
TASK_STATUS_WAITING_MANUAL: TaskStatus
TASK_STATUS_PASSED: TaskStatus
TASK_STATUS_FAILED_GATE: TaskStatus
TASK_STATUS_FAILED_SYSTEM: TaskStatus
TASK_STATUS_CANCELED: TaskStatus
TASK_MODE_MANUAL: TaskMode
TASK_MODE_AUTONOMOUS: TaskMode
EVOLUTION_LEVEL_FIX_ONLY: EvolutionLevel
EVOLUTION_LEVEL_GUIDED: EvolutionLevel
EVOLUTION_LEVEL_PROACTIVE: EvolutionLevel

class TaskParticipant(_message.Message):
    __slots__ = ("id", "model", "temperature", "max_tokens")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    temperature: float
    max_tokens: int
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., temperature: _Optional[float] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class TaskTimeouts(_message.Message):
    __slots__ = ("agent_seconds", "command_seconds", "task_seconds")
    AGENT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    agent_seconds: int
    command_seconds: int
    task_seconds: int
    def __init__(self, agent_seconds: _Optional[int] = ..., command_seconds: _Optional[int] = ..., task_seconds: _Optional[int] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("workspace", "title", "description", "project_dir", "author", "reviewers", "fallbacks", "mode", "sandbox", "sandbox_path", "auto_merge", "evolution_level", "max_rounds", "evolve_until", "test_command", "lint_command", "timeouts", "labels", "auto_start", "request_id", "gates")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_DIR_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_PATH_FIELD_NUMBER: _ClassVar[int]
    AUTO_MERGE_FIELD_NUMBER: _ClassVar[int]
    EVOLUTION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    EVOLVE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    TEST_COMMAND_FIELD_NUMBER: _ClassVar[int]
    LINT_COMMAND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    AUTO_START_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    title: str
    description: str
    project_dir: str
    author: TaskParticipant
    reviewers: _containers.RepeatedCompositeFieldContainer[TaskParticipant]
    fallbacks: _containers.RepeatedCompositeFieldContainer[TaskParticipant]
    mode: TaskMode
    sandbox: bool
    sandbox_path: str
    auto_merge: bool
    evolution_level: EvolutionLevel
    max_rounds: int
    evolve_until: _timestamp_pb2.Timestamp
    test_command: str
    lint_command: str
    timeouts: TaskTimeouts
    labels: _containers.ScalarMap[str, str]
    auto_start: bool
    request_id: str
    gates: _containers.RepeatedCompositeFieldContainer[_stages_pb2.Gate]
    def __init__(self, workspace: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., project_dir: _Optional[str] = ..., author: _Optional[_Union[TaskParticipant, _Mapping]] = ..., reviewers: _Optional[_Iterable[_Union[TaskParticipant, _Mapping]]] = ..., fallbacks: _Optional[_Iterable[_Union[TaskParticipant, _Mapping]]] = ..., mode: _Optional[_Union[TaskMode, str]] = ..., sandbox: _Optional[bool] = ..., sandbox_path: _Optional[str] = ..., auto_merge: _Optional[bool] = ..., evolution_level: _Optional[_Union[EvolutionLevel, str]] = ..., max_rounds: _Optional[int] = ..., evolve_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., test_command: _Optional[str] = ..., lint_command: _Optional[str] = ..., timeouts: _Optional[_Union[TaskTimeouts, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., auto_start: _Optional[bool] = ..., request_id: _Optional[str] = ..., gates: _Optional[_Iterable[_Union[_stages_pb2.Gate, _Mapping]]] = ...) -> None: ...

class StartTaskRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("workspace", "status", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    status: TaskStatus
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForceFailTaskRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SubmitAuthorDecisionRequest(_message.Message):
    __slots__ = ("id", "approve", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    note: str
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ..., note: _Optional[str] = ...) -> None: ...

class WatchTaskRequest(_message.Message):
    __slots__ = ("id", "after_sequence")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class TaskReview(_message.Message):
    __slots__ = ("reviewer", "verdict", "findings")
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    reviewer: str
    verdict: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reviewer: _Optional[str] = ..., verdict: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskCheck(_message.Message):
    __slots__ = ("command", "outcome", "exit_code", "log_artifact_id")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    LOG_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    command: str
    outcome: str
    exit_code: int
    log_artifact_id: str
    def __init__(self, command: _Optional[str] = ..., outcome: _Optional[str] = ..., exit_code: _Optional[int] = ..., log_artifact_id: _Optional[str] = ...) -> None: ...

class TaskRound(_message.Message):
    __slots__ = ("number", "discussion", "reviews", "tests", "lint", "gate", "findings", "checks")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DISCUSSION_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    TESTS_FIELD_NUMBER: _ClassVar[int]
    LINT_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    number: int
    discussion: str
    reviews: _containers.RepeatedCompositeFieldContainer[TaskReview]
    tests: TaskCheck
    lint: TaskCheck
    gate: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    checks: _containers.RepeatedCompositeFieldContainer[_stages_pb2.GateResult]
    def __init__(self, number: _Optional[int] = ..., discussion: _Optional[str] = ..., reviews: _Optional[_Iterable[_Union[TaskReview, _Mapping]]] = ..., tests: _Optional[_Union[TaskCheck, _Mapping]] = ..., lint: _Optional[_Union[TaskCheck, _Mapping]] = ..., gate: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ..., checks: _Optional[_Iterable[_Union[_stages_pb2.GateResult, _Mapping]]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "run", "title", "description", "project_dir", "status", "reason", "rounds", "workdir", "merged", "diff_artifact_id", "message", "round", "phase")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PROJECT_DIR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    WORKDIR_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    DIFF_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    id: str
    run: _runs_pb2.Run
    title: str
    description: str
    project_dir: str
    status: TaskStatus
    reason: str
    rounds: _containers.RepeatedCompositeFieldContainer[TaskRound]
    workdir: str
    merged: bool
    diff_artifact_id: str
    message: str
    round: int
    phase: str
    def __init__(self, id: _Optional[str] = ..., run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., project_dir: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., reason: _Optional[str] = ..., rounds: _Optional[_Iterable[_Union[TaskRound, _Mapping]]] = ..., workdir: _Optional[str] = ..., merged: _Optional[bool] = ..., diff_artifact_id: _Optional[str] = ..., message: _Optional[str] = ..., round: _Optional[int] = ..., phase: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("sequence", "time", "message", "gate", "status", "output")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    GATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    message: TaskMessage
    gate: TaskGate
    status: TaskStatus
    output: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[_Union[TaskMessage, _Mapping]] = ..., gate: _Optional[_Union[TaskGate, _Mapping]] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., output: _Optional[str] = ...) -> None: ...

class TaskMessage(_message.Message):
    __slots__ = ("round", "phase", "speaker", "text")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    round: int
    phase: str
    speaker: str
    text: str
    def __init__(self, round: _Optional[int] = ..., phase: _Optional[str] = ..., speaker: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TaskGate(_message.Message):
    __slots__ = ("round", "result", "findings")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    round: int
    result: str
    findings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, round: _Optional[int] = ..., result: _Optional[str] = ..., findings: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTaskStatsRequest(_message.Message):
    __slots__ = ("workspace", "recent")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    recent: int
    def __init__(self, workspace: _Optional[str] = ..., recent: _Optional[int] = ...) -> None: ...

class TaskStats(_message.Message):
    __slots__ = ("status_counts", "reason_counts", "provider_error_counts", "recent", "pass_rate", "failed_gate_rate", "failed_system_rate", "mean_duration_seconds")
    class StatusCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ReasonCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ProviderErrorCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STATUS_COUNTS_FIELD_NUMBER: _ClassVar[int]
    REASON_COUNTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ERROR_COUNTS_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    FAILED_GATE_RATE_FIELD_NUMBER: _ClassVar[int]
    FAILED_SYSTEM_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    status_counts: _containers.ScalarMap[str, int]
    reason_counts: _containers.ScalarMap[str, int]
    provider_error_counts: _containers.ScalarMap[str, int]
    recent: int
    pass_rate: float
    failed_gate_rate: float
    failed_system_rate: float
    mean_duration_seconds: float
    def __init__(self, status_counts: _Optional[_Mapping[str, int]] = ..., reason_counts: _Optional[_Mapping[str, int]] = ..., provider_error_counts: _Optional[_Mapping[str, int]] = ..., recent: _Optional[int] = ..., pass_rate: _Optional[float] = ..., failed_gate_rate: _Optional[float] = ..., failed_system_rate: _Optional[float] = ..., mean_duration_seconds: _Optional[float] = ...) -> None: ...

class GetWorkspaceTreeRequest(_message.Message):
    __slots__ = ("project_dir", "depth")
    PROJECT_DIR_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    project_dir: str
    depth: int
    def __init__(self, project_dir: _Optional[str] = ..., depth: _Optional[int] = ...) -> None: ...

class WorkspaceEntry(_message.Message):
    __slots__ = ("path", "is_dir", "size", "depth")
    PATH_FIELD_NUMBER: _ClassVar[int]
    IS_DIR_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    is_dir: bool
    size: int
    depth: int
    def __init__(self, path: _Optional[str] = ..., is_dir: _Optional[bool] = ..., size: _Optional[int] = ..., depth: _Optional[int] = ...) -> None: ...

class WorkspaceTree(_message.Message):
    __slots__ = ("entries", "truncated")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[WorkspaceEntry]
    truncated: bool
    def __init__(self, entries: _Optional[_Iterable[_Union[WorkspaceEntry, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class CreateTaskLoopRequest(_message.Message):
    __slots__ = ("task", "until", "max_tasks", "request_id", "labels")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TASK_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    task: CreateTaskRequest
    until: _timestamp_pb2.Timestamp
    max_tasks: int
    request_id: str
    labels: _containers.ScalarMap[str, str]
    def __init__(self, task: _Optional[_Union[CreateTaskRequest, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_tasks: _Optional[int] = ..., request_id: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...

class GetTaskLoopRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelTaskLoopRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class TaskLoop(_message.Message):
    __slots__ = ("id", "run", "until", "max_tasks", "tasks", "stopped")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    id: str
    run: _runs_pb2.Run
    until: _timestamp_pb2.Timestamp
    max_tasks: int
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    stopped: str
    def __init__(self, id: _Optional[str] = ..., run: _Optional[_Union[_runs_pb2.Run, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_tasks: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., stopped: _Optional[str] = ...) -> None: ...
