from vigil_client._proto.vigil.v1 import audit_pb2 as _audit_pb2
from vigil_client._proto.vigil.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupFile(_message.Message):
    __slots__ = ["path", "sha256", "size"]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    size: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class BackupManifest(_message.Message):
    __slots__ = ["checksum", "created_at_nanos", "cut_seq", "files", "flushed_through_seq", "format_version", "retention", "server_version", "source_directory"]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CUT_SEQ_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FLUSHED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    checksum: str
    created_at_nanos: int
    cut_seq: int
    files: _containers.RepeatedCompositeFieldContainer[BackupFile]
    flushed_through_seq: int
    format_version: int
    retention: _containers.RepeatedScalarFieldContainer[str]
    server_version: str
    source_directory: str
    def __init__(self, format_version: _Optional[int] = ..., created_at_nanos: _Optional[int] = ..., server_version: _Optional[str] = ..., source_directory: _Optional[str] = ..., cut_seq: _Optional[int] = ..., flushed_through_seq: _Optional[int] = ..., files: _Optional[_Iterable[_Union[BackupFile, _Mapping]]] = ..., retention: _Optional[_Iterable[str]] = ..., checksum: _Optional[str] = ...) -> None: ...

class IdempotencyEntry(_message.Message):
    __slots__ = ["count", "first_seq", "key", "last_seq", "received_at_nanos"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    count: int
    first_seq: int
    key: str
    last_seq: int
    received_at_nanos: int
    def __init__(self, key: _Optional[str] = ..., first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., count: _Optional[int] = ..., received_at_nanos: _Optional[int] = ...) -> None: ...

class IdempotencyKeys(_message.Message):
    __slots__ = ["entries"]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[IdempotencyEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[IdempotencyEntry, _Mapping]]] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ["flushed_through_seq", "format_version", "idempotency_files", "next_part_number", "parts"]
    FLUSHED_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PART_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    flushed_through_seq: int
    format_version: int
    idempotency_files: _containers.RepeatedScalarFieldContainer[str]
    next_part_number: int
    parts: _containers.RepeatedCompositeFieldContainer[ManifestPart]
    def __init__(self, format_version: _Optional[int] = ..., flushed_through_seq: _Optional[int] = ..., parts: _Optional[_Iterable[_Union[ManifestPart, _Mapping]]] = ..., next_part_number: _Optional[int] = ..., idempotency_files: _Optional[_Iterable[str]] = ...) -> None: ...

class ManifestPart(_message.Message):
    __slots__ = ["bytes", "level", "max_occurred_at", "max_seq", "min_occurred_at", "min_seq", "path", "rows"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_FIELD_NUMBER: _ClassVar[int]
    MIN_OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQ_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    level: int
    max_occurred_at: int
    max_seq: int
    min_occurred_at: int
    min_seq: int
    path: str
    rows: int
    def __init__(self, path: _Optional[str] = ..., rows: _Optional[int] = ..., min_seq: _Optional[int] = ..., max_seq: _Optional[int] = ..., min_occurred_at: _Optional[int] = ..., max_occurred_at: _Optional[int] = ..., level: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class RetentionChainStart(_message.Message):
    __slots__ = ["events_removed", "head", "seq"]
    EVENTS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    events_removed: int
    head: bytes
    seq: int
    def __init__(self, seq: _Optional[int] = ..., head: _Optional[bytes] = ..., events_removed: _Optional[int] = ...) -> None: ...

class RetentionExpiredFile(_message.Message):
    __slots__ = ["events", "first_seq", "last_seq", "path", "sha256"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    events: int
    first_seq: int
    last_seq: int
    path: str
    sha256: bytes
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[bytes] = ..., events: _Optional[int] = ..., first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ...) -> None: ...

class RetentionSettingsRecord(_message.Message):
    __slots__ = ["cause", "file", "file_present", "generation", "in_force"]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    FILE_PRESENT_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    cause: str
    file: bytes
    file_present: bool
    generation: int
    in_force: bytes
    def __init__(self, generation: _Optional[int] = ..., file_present: bool = ..., file: _Optional[bytes] = ..., in_force: _Optional[bytes] = ..., cause: _Optional[str] = ...) -> None: ...

class RetentionStatement(_message.Message):
    __slots__ = ["chain_start", "created_at_nanos", "expired", "format_version", "reason", "retention", "settings"]
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ADOPTED: RetentionStatement.Reason
    BEGIN: RetentionStatement.Reason
    CHAIN_START_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    MERGE: RetentionStatement.Reason
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_UNSPECIFIED: RetentionStatement.Reason
    RETENTION: RetentionStatement.Reason
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    SETTINGS: RetentionStatement.Reason
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    chain_start: RetentionChainStart
    created_at_nanos: int
    expired: RetentionExpiredFile
    format_version: int
    reason: RetentionStatement.Reason
    retention: str
    settings: RetentionSettingsRecord
    def __init__(self, format_version: _Optional[int] = ..., reason: _Optional[_Union[RetentionStatement.Reason, str]] = ..., created_at_nanos: _Optional[int] = ..., retention: _Optional[str] = ..., chain_start: _Optional[_Union[RetentionChainStart, _Mapping]] = ..., expired: _Optional[_Union[RetentionExpiredFile, _Mapping]] = ..., settings: _Optional[_Union[RetentionSettingsRecord, _Mapping]] = ...) -> None: ...

class SignedCheckpoint(_message.Message):
    __slots__ = ["created_at_nanos", "format_version", "head", "public_key", "seq", "signature"]
    CREATED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    created_at_nanos: int
    format_version: int
    head: bytes
    public_key: bytes
    seq: int
    signature: bytes
    def __init__(self, format_version: _Optional[int] = ..., seq: _Optional[int] = ..., head: _Optional[bytes] = ..., created_at_nanos: _Optional[int] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignedRetentionStatement(_message.Message):
    __slots__ = ["public_key", "signature", "statement"]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    STATEMENT_FIELD_NUMBER: _ClassVar[int]
    public_key: bytes
    signature: bytes
    statement: bytes
    def __init__(self, statement: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class StoredToken(_message.Message):
    __slots__ = ["created_at_nanos", "created_by", "id", "ingest_events_per_second", "name", "revoked_at_nanos", "scopes", "secret_sha256", "tenants"]
    CREATED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INGEST_EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SECRET_SHA256_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    created_at_nanos: int
    created_by: str
    id: str
    ingest_events_per_second: int
    name: str
    revoked_at_nanos: int
    scopes: _containers.RepeatedScalarFieldContainer[_audit_pb2.Scope]
    secret_sha256: bytes
    tenants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., scopes: _Optional[_Iterable[_Union[_audit_pb2.Scope, str]]] = ..., tenants: _Optional[_Iterable[str]] = ..., created_at_nanos: _Optional[int] = ..., revoked_at_nanos: _Optional[int] = ..., secret_sha256: _Optional[bytes] = ..., ingest_events_per_second: _Optional[int] = ..., created_by: _Optional[str] = ...) -> None: ...

class TokenFile(_message.Message):
    __slots__ = ["format_version", "tokens"]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    tokens: _containers.RepeatedCompositeFieldContainer[StoredToken]
    def __init__(self, format_version: _Optional[int] = ..., tokens: _Optional[_Iterable[_Union[StoredToken, _Mapping]]] = ...) -> None: ...

class WalBatch(_message.Message):
    __slots__ = ["events", "first_seq", "idempotency_key", "received_at_nanos"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_NANOS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    first_seq: int
    idempotency_key: str
    received_at_nanos: int
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., first_seq: _Optional[int] = ..., received_at_nanos: _Optional[int] = ...) -> None: ...
