from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

ACTOR_TYPE_UNSPECIFIED: ActorType
ANONYMOUS: ActorType
API_TOKEN: ActorType
APPROVE: Category
CATEGORY_UNSPECIFIED: Category
CREATE: Category
DELETE: Category
DENIED: Outcome
DESCRIPTOR: _descriptor.FileDescriptor
EXECUTE: Category
FAILURE: Outcome
LOGIN: Category
LOGOUT: Category
OTHER: Category
OUTCOME_UNSPECIFIED: Outcome
READ: Category
REJECT: Category
SERVICE: ActorType
SUCCESS: Outcome
SYSTEM: ActorType
UPDATE: Category
USER: ActorType

class Actor(_message.Message):
    __slots__ = ["email", "id", "name", "type"]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    email: str
    id: str
    name: str
    type: ActorType
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[ActorType, str]] = ..., name: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ["action", "actor", "category", "changes", "description", "id", "metadata", "occurred_at", "outcome", "reason", "received_at", "request_id", "resource", "seq", "source_ip", "targets", "tenant", "trace_id", "user_agent"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    action: str
    actor: Actor
    category: Category
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    description: str
    id: str
    metadata: _containers.ScalarMap[str, str]
    occurred_at: _timestamp_pb2.Timestamp
    outcome: Outcome
    reason: str
    received_at: _timestamp_pb2.Timestamp
    request_id: str
    resource: Resource
    seq: int
    source_ip: str
    targets: _containers.RepeatedCompositeFieldContainer[Resource]
    tenant: str
    trace_id: str
    user_agent: str
    def __init__(self, id: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ..., actor: _Optional[_Union[Actor, _Mapping]] = ..., action: _Optional[str] = ..., category: _Optional[_Union[Category, str]] = ..., resource: _Optional[_Union[Resource, _Mapping]] = ..., targets: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reason: _Optional[str] = ..., source_ip: _Optional[str] = ..., user_agent: _Optional[str] = ..., trace_id: _Optional[str] = ..., request_id: _Optional[str] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., description: _Optional[str] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ["field", "new", "old"]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    OLD_FIELD_NUMBER: _ClassVar[int]
    field: str
    new: str
    old: str
    def __init__(self, field: _Optional[str] = ..., old: _Optional[str] = ..., new: _Optional[str] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ["id", "name", "type"]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    type: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ActorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Category(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = []
