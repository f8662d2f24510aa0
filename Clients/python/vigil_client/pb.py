"""The protocol's protobuf messages and enums (generated from ``Protos/vigil/v1``).

``from vigil_client import pb`` then ``pb.AuditEvent``, ``pb.Filter``,
``pb.QueryRequest``, ``pb.Outcome.FAILURE`` ... The generated modules themselves
are ``vigil_client._proto.vigil.v1.{event,audit,wire}_pb2``.
"""

from ._proto.vigil.v1 import audit_pb2 as audit_pb2
from ._proto.vigil.v1 import event_pb2 as event_pb2
from ._proto.vigil.v1 import wire_pb2 as wire_pb2
from ._proto.vigil.v1.audit_pb2 import (
    AggregateRequest,
    AggregateResponse,
    CreateTokenRequest,
    CreateTokenResponse,
    Filter,
    GetRequest,
    GetResponse,
    GetStatsRequest,
    GetStatsResponse,
    GroupBy,
    GroupCount,
    Heartbeat,
    HealthRequest,
    HealthResponse,
    HistogramBucket,
    IngestRequest,
    IngestResponse,
    IntegrityProblem,
    ListTokensRequest,
    ListTokensResponse,
    Order,
    QueryRequest,
    QueryResponse,
    RevokeTokenRequest,
    RevokeTokenResponse,
    Scope,
    SetRetentionRequest,
    SetRetentionResponse,
    SubscribeRequest,
    SubscribeResponse,
    TokenInfo,
    VerifyRequest,
    VerifyResponse,
)
from ._proto.vigil.v1.event_pb2 import Actor, ActorType, AuditEvent, Category, Change, Outcome, Resource
from ._proto.vigil.v1.wire_pb2 import CallHeaders, Cancel, EventError, GoAway, Hello, Ping, Status, Welcome, Window

__all__ = [
    "audit_pb2", "event_pb2", "wire_pb2",
    "AggregateRequest", "AggregateResponse", "CreateTokenRequest", "CreateTokenResponse", "Filter",
    "GetRequest", "GetResponse", "GetStatsRequest", "GetStatsResponse", "GroupBy", "GroupCount",
    "HealthRequest", "HealthResponse", "Heartbeat", "HistogramBucket", "IngestRequest", "IngestResponse", "IntegrityProblem",
    "ListTokensRequest", "ListTokensResponse", "Order", "QueryRequest", "QueryResponse",
    "RevokeTokenRequest", "RevokeTokenResponse", "Scope", "SetRetentionRequest", "SetRetentionResponse",
    "SubscribeRequest", "SubscribeResponse", "TokenInfo", "VerifyRequest", "VerifyResponse",
    "Actor", "ActorType", "AuditEvent", "Category", "Change", "Outcome", "Resource",
    "CallHeaders", "Cancel", "EventError", "GoAway", "Hello", "Ping", "Status", "Welcome", "Window",
]
