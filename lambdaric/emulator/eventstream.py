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
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")
MAX_MESSAGE = 24 * 1024 * 1024
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


def _encode_header(name: str, value: Value) -> bytes:
    raw_name = name.encode("utf-8")
    if not 0 < len(raw_name) < 256:
        raise EventStreamError("header name must be 1-255 bytes: %r" % name)
    out = bytes([len(raw_name)]) + raw_name
    if isinstance(value, bool):
        return out + bytes([0 if value else 1])
    if isinstance(value, int):
        return out + b"\x04" + struct.pack(">i", value)
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) > 0xFFFF:
        raise EventStreamError("header %r value over 65535 bytes" % name)
    return out + (b"\x07" if isinstance(value, str) else b"\x06") + struct.pack(">H", len(raw)) + raw


def encode_message(headers: Sequence[Tuple[str, Value]], payload: bytes) -> bytes:
    """One event-stream message with ``headers`` (in order) and ``payload``."""
    head = b"".join(_encode_header(name, value) for name, value in headers)
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


def _decode_headers(raw: bytes) -> List[Tuple[str, Value]]:
    headers: List[Tuple[str, Value]] = []
    pos = 0
    while pos < len(raw):
        size = raw[pos]
        name = raw[pos + 1 : pos + 1 + size].decode("utf-8")
        pos += 1 + size
        if pos >= len(raw):
            raise EventStreamError("header %r has no value type" % name)
        kind = raw[pos]
        pos += 1
        fixed = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
        if kind in (6, 7):
            if pos + 2 > len(raw):
                raise EventStreamError("header %r is truncated" % name)
            (length,) = struct.unpack_from(">H", raw, pos)
            pos += 2
            data = raw[pos : pos + length]
            if len(data) != length:
                raise EventStreamError("header %r is truncated" % name)
            pos += length
            headers.append((name, data.decode("utf-8") if kind == 7 else data))
        elif kind in fixed:
            width = fixed[kind]
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
        if len(buf) - pos < total:
            break
        end = pos + total
        if zlib.crc32(buf[pos : end - 4]) != _U32.unpack_from(buf, end - 4)[0]:
            raise EventStreamError("message CRC mismatch at byte %d" % pos)
        headers = _decode_headers(buf[pos + 12 : pos + 12 + head_len])
        messages.append(Message(headers, buf[pos + 12 + head_len : end - 4]))
        pos = end
    return messages, buf[pos:]
