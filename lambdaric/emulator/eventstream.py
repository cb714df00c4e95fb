"""The AWS event-stream binary format, as ``InvokeWithResponseStream`` answers with it.

A message is: total length (4 bytes, big-endian), headers length (4), CRC32 of those 8
bytes (4), the headers, the payload, and the CRC32 of everything before it (4). A header
is its name's length (1), the name, a value type (1) and the value; strings (type 7) and
bytes (type 6) carry a 2-byte length. Pure functions, no IO: the emulator writes these
messages, ``lambdaric invoke --stream`` and the tests read them.
"""
from __future__ import annotations

import json
import struct
import zlib
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")
MAX_MESSAGE = 24 * 1024 * 1024
#: The format's limit on the headers section of one message (botocore refuses more, as
#: every AWS SDK does): checked on encode so we never write what a peer must reject, and on
#: decode from the prelude, before the rest of such a message is waited for.
MAX_HEADERS = 128 * 1024
#: The payload of one ``PayloadChunk`` we write: a large piece of a streamed response is cut
#: into events of at most this size, so a client sees progress and never has to hold (or be
#: refused) a message near ``MAX_MESSAGE``.
MAX_CHUNK = 1024 * 1024
_INT32 = (-(2**31), 2**31 - 1)
Value = Union[str, bytes, bool, int]


class EventStreamError(ValueError):
    """Bytes that are not a valid event-stream message (the message says why)."""


class Message(NamedTuple):
    headers: List[Tuple[str, Value]]
    payload: bytes

    def header(self, name: str) -> Optional[Value]:
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: not representable on the wire
        raise EventStreamError("%s is not valid Unicode: %s" % (what, exc)) from None


def _encode_header(name: str, value: Value) -> bytes:
    if not isinstance(name, str):
        raise EventStreamError("header name must be a str, not %s" % type(name).__name__)
    raw_name = _utf8(name, "header name %r" % name)
    if not 0 < len(raw_name) < 256:
        raise EventStreamError("header name must be 1-255 bytes: %r" % name)
    out = bytes([len(raw_name)]) + raw_name
    # bool before int: bool is an int subclass but has its own wire types (0 and 1)
    if isinstance(value, bool):
        return out + bytes([0 if value else 1])
    if isinstance(value, int):
        if not _INT32[0] <= value <= _INT32[1]:
            raise EventStreamError("header %r: int %d is outside the int32 range the format's type 4 holds" % (name, value))
        return out + b"\x04" + struct.pack(">i", value)
    if isinstance(value, str):
        raw, kind = _utf8(value, "header %r value" % name), b"\x07"
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw, kind = bytes(value), b"\x06"
    else:  # None included: the format has no null, and dropping the header silently would lie
        raise EventStreamError("header %r: a value must be str, bytes, bool or int, not %s" % (name, type(value).__name__))
    if len(raw) > 0xFFFF:
        raise EventStreamError("header %r value over 65535 bytes" % name)
    return out + kind + struct.pack(">H", len(raw)) + raw


def encode_message(headers: Sequence[Tuple[str, Value]], payload: bytes) -> bytes:
    """One event-stream message with ``headers`` (in order) and ``payload``.

    Refuses (``EventStreamError``) what a peer would: a repeated header name (botocore
    raises ``DuplicateHeader`` for the whole stream), a headers section over ``MAX_HEADERS``,
    a message over ``MAX_MESSAGE``, and values the format cannot carry."""
    parts: List[bytes] = []
    seen = set()
    for name, value in headers:
        parts.append(_encode_header(name, value))  # checks the name's type first
        if name in seen:
            raise EventStreamError("header %r is repeated: a message carries each name once" % name)
        seen.add(name)
    head = b"".join(parts)
    if len(head) > MAX_HEADERS:
        raise EventStreamError("headers of %d bytes are over the %d-byte limit" % (len(head), MAX_HEADERS))
    total = 12 + len(head) + len(payload) + 4
    if total > MAX_MESSAGE:
        raise EventStreamError("message of %d bytes is over the %d-byte limit" % (total, MAX_MESSAGE))
    prelude = _PRELUDE.pack(total, len(head))
    message = prelude + _U32.pack(zlib.crc32(prelude)) + head + payload
    return message + _U32.pack(zlib.crc32(message))


def payload_chunk(data: bytes) -> bytes:
    """A ``PayloadChunk`` event carrying part of a streamed response."""
    return encode_message(
        [(":event-type", "PayloadChunk"), (":content-type", "application/octet-stream"), (":message-type", "event")],
        data,
    )


def payload_chunks(data: bytes, limit: int = MAX_CHUNK) -> Iterator[bytes]:
    """``PayloadChunk`` events carrying ``data`` in order, each payload at most ``limit``
    bytes (none for empty data: there is nothing to deliver). A runtime may send a streamed
    response in pieces of any size; this keeps every event small (see ``MAX_CHUNK``)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    view = memoryview(data)
    for start in range(0, len(view), limit):
        yield payload_chunk(bytes(view[start : start + limit]))


def invoke_complete(error_code: Optional[str] = None, error_details: Optional[str] = None, log_result: Optional[str] = None) -> bytes:
    """The final ``InvokeComplete`` event: error code/details when the function failed,
    the base64 log tail when asked for."""
    body = {}
    if error_code:
        body["ErrorCode"] = error_code
    if error_details is not None and error_code:
        body["ErrorDetails"] = error_details
    if log_result is not None:
        body["LogResult"] = log_result
    return encode_message(
        [(":event-type", "InvokeComplete"), (":content-type", "application/json"), (":message-type", "event")],
        json.dumps(body).encode("utf-8"),
    )


def _decode_text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:  # a malformed message, like any other: one error type for callers
        raise EventStreamError("%s is not valid UTF-8: %s" % (what, exc)) from None


_FIXED_WIDTH = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def _decode_headers(raw: bytes) -> List[Tuple[str, Value]]:
    headers: List[Tuple[str, Value]] = []
    pos = 0
    while pos < len(raw):
        size = raw[pos]
        raw_name = raw[pos + 1 : pos + 1 + size]
        if len(raw_name) != size:
            raise EventStreamError("header name at byte %d is truncated" % pos)
        name = _decode_text(raw_name, "header name at byte %d" % pos)
        pos += 1 + size
        if pos >= len(raw):
            raise EventStreamError("header %r has no value type" % name)
        kind = raw[pos]
        pos += 1
        if kind in (6, 7):
            if pos + 2 > len(raw):
                raise EventStreamError("header %r is truncated" % name)
            (length,) = struct.unpack_from(">H", raw, pos)
            pos += 2
            data = raw[pos : pos + length]
            if len(data) != length:
                raise EventStreamError("header %r is truncated" % name)
            pos += length
            headers.append((name, _decode_text(data, "header %r value" % name) if kind == 7 else data))
        elif kind in _FIXED_WIDTH:
            width = _FIXED_WIDTH[kind]
            data = raw[pos : pos + width]
            if len(data) != width:
                raise EventStreamError("header %r is truncated" % name)
            pos += width
            if kind in (0, 1):
                headers.append((name, kind == 0))
            elif kind == 9:
                headers.append((name, data))
            else:
                headers.append((name, int.from_bytes(data, "big", signed=True)))
        else:
            raise EventStreamError("header %r has unknown value type %d" % (name, kind))
    return headers


def decode_messages(buf: bytes) -> Tuple[List[Message], bytes]:
    """Complete messages at the start of ``buf`` and the bytes left over (a partial message)."""
    messages: List[Message] = []
    pos = 0
    while len(buf) - pos >= 12:
        total, head_len = _PRELUDE.unpack_from(buf, pos)
        if zlib.crc32(buf[pos : pos + 8]) != _U32.unpack_from(buf, pos + 8)[0]:
            raise EventStreamError("prelude CRC mismatch at byte %d" % pos)
        if total < 16 or total > MAX_MESSAGE or head_len > total - 16:
            raise EventStreamError("invalid message lengths (%d, %d) at byte %d" % (total, head_len, pos))
        if head_len > MAX_HEADERS:
            raise EventStreamError("headers length %d at byte %d is over the %d-byte limit" % (head_len, pos, MAX_HEADERS))
        if len(buf) - pos < total:
            break
        end = pos + total
        if zlib.crc32(buf[pos : end - 4]) != _U32.unpack_from(buf, end - 4)[0]:
            raise EventStreamError("message CRC mismatch at byte %d" % pos)
        headers = _decode_headers(buf[pos + 12 : pos + 12 + head_len])
        messages.append(Message(headers, buf[pos + 12 + head_len : end - 4]))
        pos = end
    return messages, buf[pos:]
