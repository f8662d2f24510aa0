from vigil_client._proto.vigil.v1 import audit_pb2 as _audit_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CallHeaders(_message.Message):
    __slots__ = ["initial_window", "metadata", "method", "timeout_ms"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INITIAL_WINDOW_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    initial_window: int
    metadata: _containers.ScalarMap[str, str]
    method: str
    timeout_ms: int
    def __init__(self, method: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., initial_window: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ["reason"]
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class EventError(_message.Message):
    __slots__ = ["field", "index", "reason"]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    field: str
    index: int
    reason: str
    def __init__(self, index: _Optional[int] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class GoAway(_message.Message):
    __slots__ = ["code", "last_stream_id", "message"]
    CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    last_stream_id: int
    message: str
    def __init__(self, last_stream_id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ["auth_token", "client_name", "major_version", "max_frame_size", "minor_version"]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAJOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_SIZE_FIELD_NUMBER: _ClassVar[int]
    MINOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    auth_token: str
    client_name: str
    major_version: int
    max_frame_size: int
    minor_version: int
    def __init__(self, major_version: _Optional[int] = ..., minor_version: _Optional[int] = ..., client_name: _Optional[str] = ..., auth_token: _Optional[str] = ..., max_frame_size: _Optional[int] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ["opaque"]
    OPAQUE_FIELD_NUMBER: _ClassVar[int]
    opaque: int
    def __init__(self, opaque: _Optional[int] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ["code", "event_errors", "message", "metadata"]
    class MetadataEntry(_message.Message):
        __slots__ = ["key", "value"]
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    EVENT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    code: int
    event_errors: _containers.RepeatedCompositeFieldContainer[EventError]
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., event_errors: _Optional[_Iterable[_Union[EventError, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ["major_version", "max_batch_events", "max_concurrent_calls", "max_event_bytes", "max_frame_size", "max_message_size", "minor_version", "principal", "scopes", "server_name", "server_version", "tenants"]
    MAJOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_EVENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_EVENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAME_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MINOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    SERVER_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    major_version: int
    max_batch_events: int
    max_concurrent_calls: int
    max_event_bytes: int
    max_frame_size: int
    max_message_size: int
    minor_version: int
    principal: str
    scopes: _containers.RepeatedScalarFieldContainer[_audit_pb2.Scope]
    server_name: str
    server_version: str
    tenants: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server_name: _Optional[str] = ..., server_version: _Optional[str] = ..., major_version: _Optional[int] = ..., minor_version: _Optional[int] = ..., max_frame_size: _Optional[int] = ..., max_message_size: _Optional[int] = ..., max_concurrent_calls: _Optional[int] = ..., max_batch_events: _Optional[int] = ..., max_event_bytes: _Optional[int] = ..., principal: _Optional[str] = ..., scopes: _Optional[_Iterable[_Union[_audit_pb2.Scope, str]]] = ..., tenants: _Optional[_Iterable[str]] = ...) -> None: ...

class Window(_message.Message):
    __slots__ = ["messages"]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: int
    def __init__(self, messages: _Optional[int] = ...) -> None: ...
