"""The byte layout of the Vigil wire protocol: preface, frame header, frame types, flags.

Everything is big-endian. A frame is a 10-byte header (``u32 length`` of the
payload, ``u8 type``, ``u8 flags``, ``u32 stream id``) and ``length`` payload bytes.
"""

from __future__ import annotations

import enum
import struct
import zlib
from typing import Final

from .errors import InvalidArgument, ResourceExhausted

__all__ = [
    "PREFACE",
    "MAJOR_VERSION",
    "MINOR_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "FrameType",
    "END_STREAM",
    "COMPRESSED",
    "CONNECTION_FRAME_TYPES",
    "Method",
    "encode_header",
    "inflate",
    "deflate",
]

MAJOR_VERSION: Final = 1
MINOR_VERSION: Final = 0
#: ASCII ``VGIL``, major 1, minor 0, two reserved zero bytes.
PREFACE: Final = b"VGIL" + bytes([MAJOR_VERSION, MINOR_VERSION, 0, 0])

HEADER: Final = struct.Struct(">IBBI")
HEADER_SIZE: Final = HEADER.size  # 10


class FrameType(enum.IntEnum):
    HELLO = 0x01
    HEADERS = 0x02
    MESSAGE = 0x03
    TRAILERS = 0x04
    CANCEL = 0x05
    WINDOW = 0x06
    PING = 0x07
    PONG = 0x08
    GOAWAY = 0x09


#: MESSAGE flag: the sender sends nothing more on this call.
END_STREAM: Final = 0x01
#: MESSAGE flag: the payload is zlib-compressed (RFC 1950).
COMPRESSED: Final = 0x02

#: Frame types that travel on stream 0; the others travel on a call's stream.
CONNECTION_FRAME_TYPES: Final = frozenset({FrameType.HELLO, FrameType.PING, FrameType.PONG, FrameType.GOAWAY})

#: A stream id is a u32; the client uses odd ones, increasing.
MAX_STREAM_ID: Final = 0xFFFF_FFFF


class Method:
    """Method names for `CallHeaders.method`."""

    INGEST: Final = "vigil.v1.Audit/Ingest"
    QUERY: Final = "vigil.v1.Audit/Query"
    AGGREGATE: Final = "vigil.v1.Audit/Aggregate"
    SUBSCRIBE: Final = "vigil.v1.Audit/Subscribe"
    GET: Final = "vigil.v1.Audit/Get"
    VERIFY: Final = "vigil.v1.Audit/Verify"
    CREATE_TOKEN: Final = "vigil.v1.Audit/CreateToken"
    LIST_TOKENS: Final = "vigil.v1.Audit/ListTokens"
    REVOKE_TOKEN: Final = "vigil.v1.Audit/RevokeToken"
    SET_RETENTION: Final = "vigil.v1.Audit/SetRetention"
    GET_STATS: Final = "vigil.v1.Audit/GetStats"
    HEALTH: Final = "vigil.v1.Audit/Health"


def encode_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return HEADER.pack(length, frame_type, flags, stream_id)


def deflate(payload: bytes) -> bytes:
    """zlib (RFC 1950) at the default level: what zlib's ``compress()`` produces."""
    return zlib.compress(payload)


def inflate(payload: bytes, limit: int) -> bytes:
    """Inflates a COMPRESSED payload, refusing output over ``limit`` bytes before producing it."""
    inflater = zlib.decompressobj()
    try:
        output = inflater.decompress(payload, limit + 1)
    except zlib.error as error:
        raise InvalidArgument(message=f"COMPRESSED payload is not valid zlib data: {error}") from None
    if len(output) > limit or inflater.unconsumed_tail:
        raise ResourceExhausted(message=f"compressed message inflates to more than the limit of {limit} bytes")
    if not inflater.eof:
        raise InvalidArgument(message="compressed message ends before its zlib stream does")
    if inflater.unused_data:
        raise InvalidArgument(message="compressed message has bytes after the end of its zlib stream")
    return output
