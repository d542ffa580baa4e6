import datetime

from conclave_client.v1 import artifacts_pb2 as _artifacts_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrustLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUST_LEVEL_UNSPECIFIED: _ClassVar[TrustLevel]
    TRUST_LEVEL_VETTED: _ClassVar[TrustLevel]
    TRUST_LEVEL_COMMUNITY: _ClassVar[TrustLevel]
    TRUST_LEVEL_EXPERIMENTAL: _ClassVar[TrustLevel]

class SkillKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SKILL_KIND_PROMPT: _ClassVar[SkillKind]
    SKILL_KIND_JURY: _ClassVar[SkillKind]

class AutomationLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUTOMATION_LEVEL_UNSPECIFIED: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_FULLY_AUTO: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_AUTO_NOTIFY: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_HUMAN_APPROVAL: _ClassVar[AutomationLevel]
    AUTOMATION_LEVEL_MANUAL: _ClassVar[AutomationLevel]

class OnFail(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ON_FAIL_UNSPECIFIED: _ClassVar[OnFail]
    ON_FAIL_STAY: _ClassVar[OnFail]
    ON_FAIL_REVERT: _ClassVar[OnFail]
    ON_FAIL_CREATE_QUESTIONS: _ClassVar[OnFail]
    ON_FAIL_REVIEW_REQUIRED: _ClassVar[OnFail]

class Comparison(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPARISON_UNSPECIFIED: _ClassVar[Comparison]
    COMPARISON_AT_LEAST: _ClassVar[Comparison]
    COMPARISON_ABOVE: _ClassVar[Comparison]
    COMPARISON_AT_MOST: _ClassVar[Comparison]
    COMPARISON_BELOW: _ClassVar[Comparison]
    COMPARISON_EQUAL: _ClassVar[Comparison]

class Scale(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCALE_UNSPECIFIED: _ClassVar[Scale]
    SCALE_UNIT: _ClassVar[Scale]
    SCALE_PERCENT: _ClassVar[Scale]

class RecipeOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECIPE_OUTCOME_UNSPECIFIED: _ClassVar[RecipeOutcome]
    RECIPE_OUTCOME_PASSED: _ClassVar[RecipeOutcome]
    RECIPE_OUTCOME_FAILED_GATES: _ClassVar[RecipeOutcome]
    RECIPE_OUTCOME_FAILED: _ClassVar[RecipeOutcome]
    RECIPE_OUTCOME_CANCELLED: _ClassVar[RecipeOutcome]
    RECIPE_OUTCOME_REJECTED: _ClassVar[RecipeOutcome]

class CardEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARD_EVENT_KIND_UNSPECIFIED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_CREATED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_MOVED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_RUN_CREATED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_AWAITING_APPROVAL: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_APPROVED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_REJECTED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_RUN_ENDED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_NOTIFIED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_ADVANCED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_REVERTED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_STAYED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_QUESTIONS_CREATED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_REVIEW_REQUIRED: _ClassVar[CardEventKind]
    CARD_EVENT_KIND_REFUSED: _ClassVar[CardEventKind]
TRUST_LEVEL_UNSPECIFIED: TrustLevel
TRUST_LEVEL_VETTED: TrustLevel
TRUST_LEVEL_COMMUNITY: TrustLevel
TRUST_LEVEL_EXPERIMENTAL: TrustLevel
SKILL_KIND_PROMPT: SkillKind
SKILL_KIND_JURY: SkillKind
AUTOMATION_LEVEL_UNSPECIFIED: AutomationLevel
AUTOMATION_LEVEL_FULLY_AUTO: AutomationLevel
AUTOMATION_LEVEL_AUTO_NOTIFY: AutomationLevel
AUTOMATION_LEVEL_HUMAN_APPROVAL: AutomationLevel
AUTOMATION_LEVEL_MANUAL: AutomationLevel
ON_FAIL_UNSPECIFIED: OnFail
ON_FAIL_STAY: OnFail
ON_FAIL_REVERT: OnFail
ON_FAIL_CREATE_QUESTIONS: OnFail
ON_FAIL_REVIEW_REQUIRED: OnFail
COMPARISON_UNSPECIFIED: Comparison
COMPARISON_AT_LEAST: Comparison
COMPARISON_ABOVE: Comparison
COMPARISON_AT_MOST: Comparison
COMPARISON_BELOW: Comparison
COMPARISON_EQUAL: Comparison
SCALE_UNSPECIFIED: Scale
SCALE_UNIT: Scale
SCALE_PERCENT: Scale
RECIPE_OUTCOME_UNSPECIFIED: RecipeOutcome
RECIPE_OUTCOME_PASSED: RecipeOutcome
RECIPE_OUTCOME_FAILED_GATES: RecipeOutcome
RECIPE_OUTCOME_FAILED: RecipeOutcome
RECIPE_OUTCOME_CANCELLED: RecipeOutcome
RECIPE_OUTCOME_REJECTED: RecipeOutcome
CARD_EVENT_KIND_UNSPECIFIED: CardEventKind
CARD_EVENT_KIND_CREATED: CardEventKind
CARD_EVENT_KIND_MOVED: CardEventKind
CARD_EVENT_KIND_RUN_CREATED: CardEventKind
CARD_EVENT_KIND_AWAITING_APPROVAL: CardEventKind
CARD_EVENT_KIND_APPROVED: CardEventKind
CARD_EVENT_KIND_REJECTED: CardEventKind
CARD_EVENT_KIND_RUN_ENDED: CardEventKind
CARD_EVENT_KIND_NOTIFIED: CardEventKind
CARD_EVENT_KIND_ADVANCED: CardEventKind
CARD_EVENT_KIND_REVERTED: CardEventKind
CARD_EVENT_KIND_STAYED: CardEventKind
CARD_EVENT_KIND_QUESTIONS_CREATED: CardEventKind
CARD_EVENT_KIND_REVIEW_REQUIRED: CardEventKind
CARD_EVENT_KIND_REFUSED: CardEventKind

class SkillField(_message.Message):
    __slots__ = ("name", "type", "required", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    required: bool
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class SkillVersionInfo(_message.Message):
    __slots__ = ("version", "digest", "added_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    digest: str
    added_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., digest: _Optional[str] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Skill(_message.Message):
    __slots__ = ("workspace", "id", "name", "description", "kind", "inputs", "outputs", "tags", "trust_level", "source", "source_location", "remote_id", "version", "latest_version", "pinned_version", "versions", "prompt_template", "templates", "remote_metadata", "created_at", "updated_at")
    class TemplatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TRUST_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LOCATION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    PINNED_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    REMOTE_METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    id: str
    name: str
    description: str
    kind: SkillKind
    inputs: _containers.RepeatedCompositeFieldContainer[SkillField]
    outputs: _containers.RepeatedCompositeFieldContainer[SkillField]
    tags: _containers.RepeatedScalarFieldContainer[str]
    trust_level: TrustLevel
    source: str
    source_location: str
    remote_id: str
    version: str
    latest_version: str
    pinned_version: str
    versions: _containers.RepeatedCompositeFieldContainer[SkillVersionInfo]
    prompt_template: str
    templates: _containers.ScalarMap[str, str]
    remote_metadata: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., kind: _Optional[_Union[SkillKind, str]] = ..., inputs: _Optional[_Iterable[_Union[SkillField, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[SkillField, _Mapping]]] = ..., tags: _Optional[_Iterable[str]] = ..., trust_level: _Optional[_Union[TrustLevel, str]] = ..., source: _Optional[str] = ..., source_location: _Optional[str] = ..., remote_id: _Optional[str] = ..., version: _Optional[str] = ..., latest_version: _Optional[str] = ..., pinned_version: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[SkillVersionInfo, _Mapping]]] = ..., prompt_template: _Optional[str] = ..., templates: _Optional[_Mapping[str, str]] = ..., remote_metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SyncSkillsRequest(_message.Message):
    __slots__ = ("workspace", "path")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    path: str
    def __init__(self, workspace: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class SyncedSkill(_message.Message):
    __slots__ = ("id", "version", "changed")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: str
    changed: bool
    def __init__(self, id: _Optional[str] = ..., version: _Optional[str] = ..., changed: _Optional[bool] = ...) -> None: ...

class SkillFileError(_message.Message):
    __slots__ = ("path", "reason")
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    path: str
    reason: str
    def __init__(self, path: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SyncSkillsResponse(_message.Message):
    __slots__ = ("skills", "errors")
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    skills: _containers.RepeatedCompositeFieldContainer[SyncedSkill]
    errors: _containers.RepeatedCompositeFieldContainer[SkillFileError]
    def __init__(self, skills: _Optional[_Iterable[_Union[SyncedSkill, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[SkillFileError, _Mapping]]] = ...) -> None: ...

class SearchRegistryRequest(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: str
    def __init__(self, query: _Optional[str] = ...) -> None: ...

class RegistryListing(_message.Message):
    __slots__ = ("id", "name", "description", "version", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    version: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRegistryResponse(_message.Message):
    __slots__ = ("skills",)
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    skills: _containers.RepeatedCompositeFieldContainer[RegistryListing]
    def __init__(self, skills: _Optional[_Iterable[_Union[RegistryListing, _Mapping]]] = ...) -> None: ...

class ImportSkillRequest(_message.Message):
    __slots__ = ("workspace", "remote_id", "pin_version")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ID_FIELD_NUMBER: _ClassVar[int]
    PIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    remote_id: str
    pin_version: bool
    def __init__(self, workspace: _Optional[str] = ..., remote_id: _Optional[str] = ..., pin_version: _Optional[bool] = ...) -> None: ...

class GetSkillRequest(_message.Message):
    __slots__ = ("workspace", "id")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    id: str
    def __init__(self, workspace: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class ListSkillsRequest(_message.Message):
    __slots__ = ("workspace", "query", "tags", "trust_level", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    TRUST_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    query: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    trust_level: TrustLevel
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., query: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., trust_level: _Optional[_Union[TrustLevel, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSkillsResponse(_message.Message):
    __slots__ = ("skills", "next_page_token")
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    skills: _containers.RepeatedCompositeFieldContainer[Skill]
    next_page_token: str
    def __init__(self, skills: _Optional[_Iterable[_Union[Skill, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PinSkillVersionRequest(_message.Message):
    __slots__ = ("workspace", "id", "version")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    id: str
    version: str
    def __init__(self, workspace: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class SetSkillTrustRequest(_message.Message):
    __slots__ = ("workspace", "id", "trust_level")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TRUST_LEVEL_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    id: str
    trust_level: TrustLevel
    def __init__(self, workspace: _Optional[str] = ..., id: _Optional[str] = ..., trust_level: _Optional[_Union[TrustLevel, str]] = ...) -> None: ...

class RecipeStep(_message.Message):
    __slots__ = ("skill_id", "params", "inputs", "outputs", "timeout_seconds", "retries")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class OutputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SKILL_ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    skill_id: str
    params: _struct_pb2.Struct
    inputs: _containers.ScalarMap[str, str]
    outputs: _containers.ScalarMap[str, str]
    timeout_seconds: int
    retries: int
    def __init__(self, skill_id: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., inputs: _Optional[_Mapping[str, str]] = ..., outputs: _Optional[_Mapping[str, str]] = ..., timeout_seconds: _Optional[int] = ..., retries: _Optional[int] = ...) -> None: ...

class FileExistsGate(_message.Message):
    __slots__ = ("pattern",)
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    def __init__(self, pattern: _Optional[str] = ...) -> None: ...

class ContentCheckGate(_message.Message):
    __slots__ = ("file", "required_sections")
    FILE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SECTIONS_FIELD_NUMBER: _ClassVar[int]
    file: str
    required_sections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, file: _Optional[str] = ..., required_sections: _Optional[_Iterable[str]] = ...) -> None: ...

class ArtifactExistsGate(_message.Message):
    __slots__ = ("kind", "label")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    kind: _artifacts_pb2.ArtifactKind
    label: str
    def __init__(self, kind: _Optional[_Union[_artifacts_pb2.ArtifactKind, str]] = ..., label: _Optional[str] = ...) -> None: ...

class MetricThresholdGate(_message.Message):
    __slots__ = ("metric", "operator", "threshold", "scale")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    operator: Comparison
    threshold: float
    scale: Scale
    def __init__(self, metric: _Optional[str] = ..., operator: _Optional[_Union[Comparison, str]] = ..., threshold: _Optional[float] = ..., scale: _Optional[_Union[Scale, str]] = ...) -> None: ...

class CommandGate(_message.Message):
    __slots__ = ("command", "timeout_seconds")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    command: str
    timeout_seconds: int
    def __init__(self, command: _Optional[str] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class Gate(_message.Message):
    __slots__ = ("id", "name", "required", "failure_message", "file_exists", "content_check", "artifact_exists", "metric_threshold", "command")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FILE_EXISTS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CHECK_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_EXISTS_FIELD_NUMBER: _ClassVar[int]
    METRIC_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    required: bool
    failure_message: str
    file_exists: FileExistsGate
    content_check: ContentCheckGate
    artifact_exists: ArtifactExistsGate
    metric_threshold: MetricThresholdGate
    command: CommandGate
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., required: _Optional[bool] = ..., failure_message: _Optional[str] = ..., file_exists: _Optional[_Union[FileExistsGate, _Mapping]] = ..., content_check: _Optional[_Union[ContentCheckGate, _Mapping]] = ..., artifact_exists: _Optional[_Union[ArtifactExistsGate, _Mapping]] = ..., metric_threshold: _Optional[_Union[MetricThresholdGate, _Mapping]] = ..., command: _Optional[_Union[CommandGate, _Mapping]] = ...) -> None: ...

class GateResult(_message.Message):
    __slots__ = ("id", "name", "type", "required", "passed", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: str
    required: bool
    passed: bool
    message: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., passed: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class Recipe(_message.Message):
    __slots__ = ("workspace", "stage", "position", "automation_level", "steps", "gates", "on_fail", "provider", "enabled", "etag", "updated_at")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    AUTOMATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    ON_FAIL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    stage: str
    position: int
    automation_level: AutomationLevel
    steps: _containers.RepeatedCompositeFieldContainer[RecipeStep]
    gates: _containers.RepeatedCompositeFieldContainer[Gate]
    on_fail: OnFail
    provider: str
    enabled: bool
    etag: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace: _Optional[str] = ..., stage: _Optional[str] = ..., position: _Optional[int] = ..., automation_level: _Optional[_Union[AutomationLevel, str]] = ..., steps: _Optional[_Iterable[_Union[RecipeStep, _Mapping]]] = ..., gates: _Optional[_Iterable[_Union[Gate, _Mapping]]] = ..., on_fail: _Optional[_Union[OnFail, str]] = ..., provider: _Optional[str] = ..., enabled: _Optional[bool] = ..., etag: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InitializeRecipesRequest(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    def __init__(self, workspace: _Optional[str] = ...) -> None: ...

class InitializeRecipesResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: _containers.RepeatedCompositeFieldContainer[Recipe]
    def __init__(self, created: _Optional[_Iterable[_Union[Recipe, _Mapping]]] = ...) -> None: ...

class GetRecipeRequest(_message.Message):
    __slots__ = ("workspace", "stage")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    stage: str
    def __init__(self, workspace: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class ListRecipesRequest(_message.Message):
    __slots__ = ("workspace",)
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    def __init__(self, workspace: _Optional[str] = ...) -> None: ...

class ListRecipesResponse(_message.Message):
    __slots__ = ("recipes",)
    RECIPES_FIELD_NUMBER: _ClassVar[int]
    recipes: _containers.RepeatedCompositeFieldContainer[Recipe]
    def __init__(self, recipes: _Optional[_Iterable[_Union[Recipe, _Mapping]]] = ...) -> None: ...

class UpdateRecipeRequest(_message.Message):
    __slots__ = ("recipe", "update_mask", "etag", "allow_missing")
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    ALLOW_MISSING_FIELD_NUMBER: _ClassVar[int]
    recipe: Recipe
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    allow_missing: bool
    def __init__(self, recipe: _Optional[_Union[Recipe, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ..., allow_missing: _Optional[bool] = ...) -> None: ...

class ValidateRecipeRequest(_message.Message):
    __slots__ = ("workspace", "stage", "recipe")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    stage: str
    recipe: Recipe
    def __init__(self, workspace: _Optional[str] = ..., stage: _Optional[str] = ..., recipe: _Optional[_Union[Recipe, _Mapping]] = ...) -> None: ...

class SkillStatus(_message.Message):
    __slots__ = ("skill_id", "name", "found", "trust_level", "trusted", "source", "version")
    SKILL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    TRUST_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    skill_id: str
    name: str
    found: bool
    trust_level: TrustLevel
    trusted: bool
    source: str
    version: str
    def __init__(self, skill_id: _Optional[str] = ..., name: _Optional[str] = ..., found: _Optional[bool] = ..., trust_level: _Optional[_Union[TrustLevel, str]] = ..., trusted: _Optional[bool] = ..., source: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class RecipeValidation(_message.Message):
    __slots__ = ("valid", "errors", "warnings", "skills")
    VALID_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    skills: _containers.RepeatedCompositeFieldContainer[SkillStatus]
    def __init__(self, valid: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., skills: _Optional[_Iterable[_Union[SkillStatus, _Mapping]]] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("value", "scale")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    value: float
    scale: Scale
    def __init__(self, value: _Optional[float] = ..., scale: _Optional[_Union[Scale, str]] = ...) -> None: ...

class CardRun(_message.Message):
    __slots__ = ("run_id", "stage", "outcome", "gates", "metrics", "message")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: MetricValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[MetricValue, _Mapping]] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GATES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    stage: str
    outcome: RecipeOutcome
    gates: _containers.RepeatedCompositeFieldContainer[GateResult]
    metrics: _containers.MessageMap[str, MetricValue]
    message: str
    def __init__(self, run_id: _Optional[str] = ..., stage: _Optional[str] = ..., outcome: _Optional[_Union[RecipeOutcome, str]] = ..., gates: _Optional[_Iterable[_Union[GateResult, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, MetricValue]] = ..., message: _Optional[str] = ...) -> None: ...

class Card(_message.Message):
    __slots__ = ("id", "workspace", "title", "description", "inputs", "stage", "previous_stage", "locked", "active_run_id", "documents", "questions", "review_required", "labels", "last_run", "etag", "created_at", "updated_at")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class DocumentsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STAGE_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    REVIEW_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace: str
    title: str
    description: str
    inputs: _containers.ScalarMap[str, str]
    stage: str
    previous_stage: str
    locked: bool
    active_run_id: str
    documents: _containers.ScalarMap[str, str]
    questions: _containers.RepeatedScalarFieldContainer[str]
    review_required: bool
    labels: _containers.ScalarMap[str, str]
    last_run: CardRun
    etag: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., workspace: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., inputs: _Optional[_Mapping[str, str]] = ..., stage: _Optional[str] = ..., previous_stage: _Optional[str] = ..., locked: _Optional[bool] = ..., active_run_id: _Optional[str] = ..., documents: _Optional[_Mapping[str, str]] = ..., questions: _Optional[_Iterable[str]] = ..., review_required: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., last_run: _Optional[_Union[CardRun, _Mapping]] = ..., etag: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateCardRequest(_message.Message):
    __slots__ = ("workspace", "title", "description", "inputs", "stage", "labels", "actor")
    class InputsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
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
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    title: str
    description: str
    inputs: _containers.ScalarMap[str, str]
    stage: str
    labels: _containers.ScalarMap[str, str]
    actor: str
    def __init__(self, workspace: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., inputs: _Optional[_Mapping[str, str]] = ..., stage: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., actor: _Optional[str] = ...) -> None: ...

class GetCardRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListCardsRequest(_message.Message):
    __slots__ = ("workspace", "stage", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    stage: str
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., stage: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCardsResponse(_message.Message):
    __slots__ = ("cards", "next_page_token")
    CARDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cards: _containers.RepeatedCompositeFieldContainer[Card]
    next_page_token: str
    def __init__(self, cards: _Optional[_Iterable[_Union[Card, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MoveCardRequest(_message.Message):
    __slots__ = ("id", "stage", "actor")
    ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    stage: str
    actor: str
    def __init__(self, id: _Optional[str] = ..., stage: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class DecideCardRunRequest(_message.Message):
    __slots__ = ("id", "approve", "actor", "comment")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    approve: bool
    actor: str
    comment: str
    def __init__(self, id: _Optional[str] = ..., approve: _Optional[bool] = ..., actor: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class CardEvent(_message.Message):
    __slots__ = ("sequence", "kind", "from_stage", "to_stage", "run_id", "actor", "message", "at")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FROM_STAGE_FIELD_NUMBER: _ClassVar[int]
    TO_STAGE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    kind: CardEventKind
    from_stage: str
    to_stage: str
    run_id: str
    actor: str
    message: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., kind: _Optional[_Union[CardEventKind, str]] = ..., from_stage: _Optional[str] = ..., to_stage: _Optional[str] = ..., run_id: _Optional[str] = ..., actor: _Optional[str] = ..., message: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListCardEventsRequest(_message.Message):
    __slots__ = ("id", "after_sequence", "page_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_sequence: int
    page_size: int
    def __init__(self, id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListCardEventsResponse(_message.Message):
    __slots__ = ("events", "next_after_sequence")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[CardEvent]
    next_after_sequence: int
    def __init__(self, events: _Optional[_Iterable[_Union[CardEvent, _Mapping]]] = ..., next_after_sequence: _Optional[int] = ...) -> None: ...
