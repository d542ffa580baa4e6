import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArtifactKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_KIND_UNSPECIFIED: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_FILE: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_DOCUMENT: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_PATCH: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_REPORT: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_TOOL_OUTPUT: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_MODEL_OUTPUT: _ClassVar[ArtifactKind]
    ARTIFACT_KIND_URL: _ClassVar[ArtifactKind]
ARTIFACT_KIND_UNSPECIFIED: ArtifactKind
ARTIFACT_KIND_FILE: ArtifactKind
ARTIFACT_KIND_DOCUMENT: ArtifactKind
ARTIFACT_KIND_PATCH: ArtifactKind
ARTIFACT_KIND_REPORT: ArtifactKind
ARTIFACT_KIND_TOOL_OUTPUT: ArtifactKind
ARTIFACT_KIND_MODEL_OUTPUT: ArtifactKind
ARTIFACT_KIND_URL: ArtifactKind

class ArtifactProducer(_message.Message):
    __slots__ = ("step", "tool", "tool_version", "schema")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    TOOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    step: str
    tool: str
    tool_version: str
    schema: str
    def __init__(self, step: _Optional[str] = ..., tool: _Optional[str] = ..., tool_version: _Optional[str] = ..., schema: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("id", "workspace", "run_id", "name", "version", "etag", "kind", "media_type", "size", "sha256", "labels", "producer", "created_at")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    workspace: str
    run_id: str
    name: str
    version: int
    etag: str
    kind: ArtifactKind
    media_type: str
    size: int
    sha256: str
    labels: _containers.ScalarMap[str, str]
    producer: ArtifactProducer
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., workspace: _Optional[str] = ..., run_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., etag: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., media_type: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., producer: _Optional[_Union[ArtifactProducer, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadArtifactRequest(_message.Message):
    __slots__ = ("header", "chunk", "finish")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    finish: UploadFinish
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., finish: _Optional[_Union[UploadFinish, _Mapping]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("run_id", "name", "kind", "media_type", "labels", "producer", "expected_etag", "if_absent", "size", "sha256", "lease_epoch")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_ETAG_FIELD_NUMBER: _ClassVar[int]
    IF_ABSENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    LEASE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    name: str
    kind: ArtifactKind
    media_type: str
    labels: _containers.ScalarMap[str, str]
    producer: ArtifactProducer
    expected_etag: str
    if_absent: bool
    size: int
    sha256: str
    lease_epoch: int
    def __init__(self, run_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., media_type: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., producer: _Optional[_Union[ArtifactProducer, _Mapping]] = ..., expected_etag: _Optional[str] = ..., if_absent: _Optional[bool] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., lease_epoch: _Optional[int] = ...) -> None: ...

class UploadFinish(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class ArtifactRef(_message.Message):
    __slots__ = ("id", "run_id", "name", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    name: str
    version: int
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DownloadArtifactRequest(_message.Message):
    __slots__ = ("artifact", "offset", "length", "consumer")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    artifact: ArtifactRef
    offset: int
    length: int
    consumer: ArtifactConsumer
    def __init__(self, artifact: _Optional[_Union[ArtifactRef, _Mapping]] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ..., consumer: _Optional[_Union[ArtifactConsumer, _Mapping]] = ...) -> None: ...

class ArtifactConsumer(_message.Message):
    __slots__ = ("run_id", "step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: str
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class DownloadArtifactResponse(_message.Message):
    __slots__ = ("artifact", "chunk")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    chunk: bytes
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class GetArtifactRequest(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: ArtifactRef
    def __init__(self, artifact: _Optional[_Union[ArtifactRef, _Mapping]] = ...) -> None: ...

class ListArtifactsRequest(_message.Message):
    __slots__ = ("workspace", "run_id", "name_prefix", "kind", "labels", "all_versions", "page_size", "page_token")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    run_id: str
    name_prefix: str
    kind: ArtifactKind
    labels: _containers.ScalarMap[str, str]
    all_versions: bool
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., run_id: _Optional[str] = ..., name_prefix: _Optional[str] = ..., kind: _Optional[_Union[ArtifactKind, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., all_versions: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListArtifactsResponse(_message.Message):
    __slots__ = ("artifacts", "next_page_token")
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    next_page_token: str
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteArtifactRequest(_message.Message):
    __slots__ = ("artifact",)
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    artifact: ArtifactRef
    def __init__(self, artifact: _Optional[_Union[ArtifactRef, _Mapping]] = ...) -> None: ...

class DeleteArtifactResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetArtifactLineageRequest(_message.Message):
    __slots__ = ("artifact", "depth")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    artifact: ArtifactRef
    depth: int
    def __init__(self, artifact: _Optional[_Union[ArtifactRef, _Mapping]] = ..., depth: _Optional[int] = ...) -> None: ...

class ArtifactUse(_message.Message):
    __slots__ = ("artifact_id", "run_id", "step", "used_at")
    ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    USED_AT_FIELD_NUMBER: _ClassVar[int]
    artifact_id: str
    run_id: str
    step: str
    used_at: _timestamp_pb2.Timestamp
    def __init__(self, artifact_id: _Optional[str] = ..., run_id: _Optional[str] = ..., step: _Optional[str] = ..., used_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ArtifactLineage(_message.Message):
    __slots__ = ("artifact", "upstream", "downstream", "uses", "truncated")
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    DOWNSTREAM_FIELD_NUMBER: _ClassVar[int]
    USES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    artifact: Artifact
    upstream: _containers.RepeatedCompositeFieldContainer[Artifact]
    downstream: _containers.RepeatedCompositeFieldContainer[Artifact]
    uses: _containers.RepeatedCompositeFieldContainer[ArtifactUse]
    truncated: bool
    def __init__(self, artifact: _Optional[_Union[Artifact, _Mapping]] = ..., upstream: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., downstream: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., uses: _Optional[_Iterable[_Union[ArtifactUse, _Mapping]]] = ..., truncated: _Optional[bool] = ...) -> None: ...
