from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil_client._proto.vigil.v1 import event_pb2 as _event_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
GROUP_BY_ACTION: GroupBy
GROUP_BY_ACTOR: GroupBy
GROUP_BY_CATEGORY: GroupBy
GROUP_BY_NONE: GroupBy
GROUP_BY_OUTCOME: GroupBy
GROUP_BY_RESOURCE_TYPE: GroupBy
GROUP_BY_SOURCE_IP: GroupBy
GROUP_BY_TENANT: GroupBy
NEWEST_FIRST: Order
OLDEST_FIRST: Order
SCOPE_ADMIN: Scope
SCOPE_INGEST: Scope
SCOPE_READ: Scope
SCOPE_UNSPECIFIED: Scope

class AggregateRequest(_message.Message):
    __slots__ = ["filter", "group_by", "histogram_interval", "top"]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    filter: Filter
    group_by: GroupBy
    histogram_interval: _duration_pb2.Duration
    top: int
    def __init__(self, filter: _Optional[_Union[Filter, _Mapping]] = ..., group_by: _Optional[_Union[GroupBy, str]] = ..., top: _Optional[int] = ..., histogram_interval: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class AggregateResponse(_message.Message):
    __slots__ = ["count", "group_total", "groups", "histogram", "other_count"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_TOTAL_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    OTHER_COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    group_total: int
    groups: _containers.RepeatedCompositeFieldContainer[GroupCount]
    histogram: _containers.RepeatedCompositeFieldContainer[HistogramBucket]
    other_count: int
    def __init__(self, count: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[GroupCount, _Mapping]]] = ..., histogram: _Optional[_Iterable[_Union[HistogramBucket, _Mapping]]] = ..., other_count: _Optional[int] = ..., group_total: _Optional[int] = ...) -> None: ...

class BackupProgress(_message.Message):
    __slots__ = ["bytes_done", "bytes_total", "files_done", "files_total", "summary"]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FILES_DONE_FIELD_NUMBER: _ClassVar[int]
    FILES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    summary: BackupSummary
    def __init__(self, files_done: _Optional[int] = ..., files_total: _Optional[int] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., summary: _Optional[_Union[BackupSummary, _Mapping]] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ["destination"]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    destination: str
    def __init__(self, destination: _Optional[str] = ...) -> None: ...

class BackupSummary(_message.Message):
    __slots__ = ["bytes", "copied_files", "created_at", "cut_seq", "destination", "files", "linked_files"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    COPIED_FILES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CUT_SEQ_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    LINKED_FILES_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    copied_files: int
    created_at: _timestamp_pb2.Timestamp
    cut_seq: int
    destination: str
    files: int
    linked_files: int
    def __init__(self, destination: _Optional[str] = ..., cut_seq: _Optional[int] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ..., linked_files: _Optional[int] = ..., copied_files: _Optional[int] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckpointInfo(_message.Message):
    __slots__ = ["created_at", "seq"]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    seq: int
    def __init__(self, seq: _Optional[int] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ["ingest_events_per_second", "name", "scopes", "tenants"]
    INGEST_EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    ingest_events_per_second: int
    name: str
    scopes: _containers.RepeatedScalarFieldContainer[Scope]
    tenants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., scopes: _Optional[_Iterable[_Union[Scope, str]]] = ..., tenants: _Optional[_Iterable[str]] = ..., ingest_events_per_second: _Optional[int] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ["info", "token"]
    INFO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    token: str
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ["actions", "actor_emails", "actor_ids", "actor_names", "actor_types", "categories", "exclude_outcomes", "last", "metadata", "outcomes", "request_ids", "resource_ids", "resource_names", "resource_types", "search", "since", "source_ips", "tenants", "trace_ids", "until"]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_EMAILS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_IDS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_NAMES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_TYPES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAMES_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPES_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IPS_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_IDS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedScalarFieldContainer[str]
    actor_emails: _containers.RepeatedScalarFieldContainer[str]
    actor_ids: _containers.RepeatedScalarFieldContainer[str]
    actor_names: _containers.RepeatedScalarFieldContainer[str]
    actor_types: _containers.RepeatedScalarFieldContainer[_event_pb2.ActorType]
    categories: _containers.RepeatedScalarFieldContainer[_event_pb2.Category]
    exclude_outcomes: _containers.RepeatedScalarFieldContainer[_event_pb2.Outcome]
    last: _duration_pb2.Duration
    metadata: _containers.RepeatedScalarFieldContainer[str]
    outcomes: _containers.RepeatedScalarFieldContainer[_event_pb2.Outcome]
    request_ids: _containers.RepeatedScalarFieldContainer[str]
    resource_ids: _containers.RepeatedScalarFieldContainer[str]
    resource_names: _containers.RepeatedScalarFieldContainer[str]
    resource_types: _containers.RepeatedScalarFieldContainer[str]
    search: str
    since: _timestamp_pb2.Timestamp
    source_ips: _containers.RepeatedScalarFieldContainer[str]
    tenants: _containers.RepeatedScalarFieldContainer[str]
    trace_ids: _containers.RepeatedScalarFieldContainer[str]
    until: _timestamp_pb2.Timestamp
    def __init__(self, since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., tenants: _Optional[_Iterable[str]] = ..., actor_ids: _Optional[_Iterable[str]] = ..., actions: _Optional[_Iterable[str]] = ..., resource_types: _Optional[_Iterable[str]] = ..., resource_ids: _Optional[_Iterable[str]] = ..., outcomes: _Optional[_Iterable[_Union[_event_pb2.Outcome, str]]] = ..., last: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., actor_emails: _Optional[_Iterable[str]] = ..., actor_names: _Optional[_Iterable[str]] = ..., actor_types: _Optional[_Iterable[_Union[_event_pb2.ActorType, str]]] = ..., categories: _Optional[_Iterable[_Union[_event_pb2.Category, str]]] = ..., resource_names: _Optional[_Iterable[str]] = ..., exclude_outcomes: _Optional[_Iterable[_Union[_event_pb2.Outcome, str]]] = ..., source_ips: _Optional[_Iterable[str]] = ..., trace_ids: _Optional[_Iterable[str]] = ..., request_ids: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Iterable[str]] = ..., search: _Optional[str] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ["event"]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _event_pb2.AuditEvent
    def __init__(self, event: _Optional[_Union[_event_pb2.AuditEvent, _Mapping]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ["bytes_on_disk", "calls_in_flight", "connections", "events_stored", "health", "ingest_events_per_second", "last_checkpoint", "last_seq", "memory_bytes", "memory_events", "merge_backlog_parts", "now", "parts", "server_version", "started_at", "subscribers"]
    BYTES_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    CALLS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_STORED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    INGEST_EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MERGE_BACKLOG_PARTS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    bytes_on_disk: int
    calls_in_flight: int
    connections: int
    events_stored: int
    health: HealthResponse
    ingest_events_per_second: float
    last_checkpoint: CheckpointInfo
    last_seq: int
    memory_bytes: int
    memory_events: int
    merge_backlog_parts: int
    now: _timestamp_pb2.Timestamp
    parts: _containers.RepeatedCompositeFieldContainer[PartLevelCount]
    server_version: str
    started_at: _timestamp_pb2.Timestamp
    subscribers: int
    def __init__(self, events_stored: _Optional[int] = ..., last_seq: _Optional[int] = ..., bytes_on_disk: _Optional[int] = ..., started_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., server_version: _Optional[str] = ..., now: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ingest_events_per_second: _Optional[float] = ..., memory_events: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., parts: _Optional[_Iterable[_Union[PartLevelCount, _Mapping]]] = ..., merge_backlog_parts: _Optional[int] = ..., connections: _Optional[int] = ..., calls_in_flight: _Optional[int] = ..., subscribers: _Optional[int] = ..., last_checkpoint: _Optional[_Union[CheckpointInfo, _Mapping]] = ..., health: _Optional[_Union[HealthResponse, _Mapping]] = ...) -> None: ...

class GroupCount(_message.Message):
    __slots__ = ["count", "key"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    count: int
    key: str
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ["reasons", "status"]
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    NOT_SERVING: HealthResponse.Status
    REASONS_FIELD_NUMBER: _ClassVar[int]
    SERVING: HealthResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_UNSPECIFIED: HealthResponse.Status
    reasons: _containers.RepeatedScalarFieldContainer[str]
    status: HealthResponse.Status
    def __init__(self, status: _Optional[_Union[HealthResponse.Status, str]] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ["at"]
    AT_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    def __init__(self, at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HistogramBucket(_message.Message):
    __slots__ = ["count", "start"]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    count: int
    start: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ["events", "idempotency_key", "want_receipts"]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    WANT_RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    idempotency_key: str
    want_receipts: bool
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ..., idempotency_key: _Optional[str] = ..., want_receipts: bool = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ["chain_head", "count", "first_seq", "last_seq", "leaf_hashes", "received_at", "replayed"]
    CHAIN_HEAD_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASHES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    chain_head: bytes
    count: int
    first_seq: int
    last_seq: int
    leaf_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    received_at: _timestamp_pb2.Timestamp
    replayed: bool
    def __init__(self, first_seq: _Optional[int] = ..., last_seq: _Optional[int] = ..., count: _Optional[int] = ..., received_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., replayed: bool = ..., leaf_hashes: _Optional[_Iterable[bytes]] = ..., chain_head: _Optional[bytes] = ...) -> None: ...

class IntegrityProblem(_message.Message):
    __slots__ = ["detail", "event_id", "kind", "location", "seq"]
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ALTERED: IntegrityProblem.Kind
    CHECKPOINT: IntegrityProblem.Kind
    CHECKSUM: IntegrityProblem.Kind
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INSERTED: IntegrityProblem.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    KIND_UNSPECIFIED: IntegrityProblem.Kind
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    MISSING: IntegrityProblem.Kind
    REORDERED: IntegrityProblem.Kind
    SEQ_FIELD_NUMBER: _ClassVar[int]
    detail: str
    event_id: str
    kind: IntegrityProblem.Kind
    location: str
    seq: int
    def __init__(self, kind: _Optional[_Union[IntegrityProblem.Kind, str]] = ..., seq: _Optional[int] = ..., event_id: _Optional[str] = ..., location: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = []
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ["tokens"]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class PartLevelCount(_message.Message):
    __slots__ = ["bytes", "events", "level", "parts"]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    bytes: int
    events: int
    level: int
    parts: int
    def __init__(self, level: _Optional[int] = ..., parts: _Optional[int] = ..., events: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ["cursor", "filter", "limit", "order", "page_size"]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    filter: Filter
    limit: int
    order: Order
    page_size: int
    def __init__(self, filter: _Optional[_Union[Filter, _Mapping]] = ..., order: _Optional[_Union[Order, str]] = ..., limit: _Optional[int] = ..., page_size: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ["cursor", "events"]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    events: _containers.RepeatedCompositeFieldContainer[_event_pb2.AuditEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[_event_pb2.AuditEvent, _Mapping]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ["id"]
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeTokenResponse(_message.Message):
    __slots__ = ["info"]
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class SetRetentionRequest(_message.Message):
    __slots__ = ["forever", "retention", "tenant"]
    FOREVER_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    forever: bool
    retention: _duration_pb2.Duration
    tenant: str
    def __init__(self, tenant: _Optional[str] = ..., retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ..., forever: bool = ...) -> None: ...

class SetRetentionResponse(_message.Message):
    __slots__ = ["retention"]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    retention: _duration_pb2.Duration
    def __init__(self, retention: _Optional[_Union[_duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ["cursor", "filter", "from_now", "since"]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FROM_NOW_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    filter: Filter
    from_now: bool
    since: _timestamp_pb2.Timestamp
    def __init__(self, filter: _Optional[_Union[Filter, _Mapping]] = ..., from_now: bool = ..., since: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ["cursor", "event", "heartbeat"]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    event: _event_pb2.AuditEvent
    heartbeat: Heartbeat
    def __init__(self, event: _Optional[_Union[_event_pb2.AuditEvent, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ["created_at", "created_by", "id", "ingest_events_per_second", "name", "revoked_at", "scopes", "tenants"]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    INGEST_EVENTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    created_at: _timestamp_pb2.Timestamp
    created_by: str
    id: str
    ingest_events_per_second: int
    name: str
    revoked_at: _timestamp_pb2.Timestamp
    scopes: _containers.RepeatedScalarFieldContainer[Scope]
    tenants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., scopes: _Optional[_Iterable[_Union[Scope, str]]] = ..., tenants: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., revoked_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., ingest_events_per_second: _Optional[int] = ..., created_by: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ["from_seq", "to_seq"]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    to_seq: int
    def __init__(self, from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ["checkpoints_checked", "details", "events_checked", "events_expired", "head_hash", "head_seq", "intact", "notes", "parts_checked", "problems", "problems_total", "wal_records_checked"]
    CHECKPOINTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    HEAD_SEQ_FIELD_NUMBER: _ClassVar[int]
    INTACT_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    PARTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WAL_RECORDS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    checkpoints_checked: int
    details: _containers.RepeatedCompositeFieldContainer[IntegrityProblem]
    events_checked: int
    events_expired: int
    head_hash: str
    head_seq: int
    intact: bool
    notes: _containers.RepeatedScalarFieldContainer[str]
    parts_checked: int
    problems: _containers.RepeatedScalarFieldContainer[str]
    problems_total: int
    wal_records_checked: int
    def __init__(self, intact: bool = ..., events_checked: _Optional[int] = ..., head_hash: _Optional[str] = ..., problems: _Optional[_Iterable[str]] = ..., head_seq: _Optional[int] = ..., details: _Optional[_Iterable[_Union[IntegrityProblem, _Mapping]]] = ..., problems_total: _Optional[int] = ..., parts_checked: _Optional[int] = ..., wal_records_checked: _Optional[int] = ..., checkpoints_checked: _Optional[int] = ..., events_expired: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...

class Order(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class GroupBy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
