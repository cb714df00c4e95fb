"""The bytes of a streamed response: its head, its chunks and the trailers that end it.

Split from :mod:`lambdaric.protocol` so that a runtime that never streams never loads it (both
transports import it when a stream begins; the pure-Python one at its import). Sans-IO, as
protocol is: both transports send exactly these bytes.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional, Tuple

from .protocol import (ERROR_BODY_HEADER, ERROR_TYPE_HEADER, INVOCATION_ID_HEADER, MAX_STREAM_TRAILERS, MAX_STREAMED,
                       RESPONSE_MODE_HEADER, RESPONSE_MODE_STREAMING, build_request, check_header_value,
                       check_request_id, response_path)

# A streamed response is one POST .../{id}/response with a chunked body:
#
#   POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n
#   Host: ...\r\nUser-Agent: ...\r\n
#   Content-Type: {content type}\r\n
#   Lambda-Runtime-Invocation-Id: {id}\r\n              (only when /next carried one)
#   Lambda-Runtime-Function-Response-Mode: streaming\r\n
#   Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n
#   Transfer-Encoding: chunked\r\n
#   \r\n
#   {size in lower-case hex}\r\n{data}\r\n              (one chunk per stream_write; never empty)
#   ...
#   0\r\n
#   Lambda-Runtime-Function-Error-Type: {type}\r\n      (only when the stream ends with an error)
#   Lambda-Runtime-Function-Error-Body: {base64}\r\n    (only when that error has a body)
#   \r\n
#
# and then the Runtime API's answer, read like any other. Both transports send exactly these
# bytes (the header order is the native module's: Content-Type first, Transfer-Encoding last).
# Values a caller passes are checked here, before anything is sent: a bad value raises
# TypeError/ValueError and leaves the connection and an open stream as they were.


#: The value of the Trailer header: the trailers a streamed response may end with.
TRAILER_VALUE = ERROR_TYPE_HEADER + ", " + ERROR_BODY_HEADER
#: The chunk that ends a chunked body (trailers, then an empty line, follow it).
LAST_CHUNK = b"0\r\n"
CRLF = b"\r\n"

class StreamTooLarge(ValueError):
    """A write would take a streamed response past :data:`MAX_STREAMED`; nothing of it was
    sent and the stream is still open (end it with an error)."""


def stream_headers(invocation_id: Optional[str]) -> List[Tuple[str, str]]:
    """The headers of a streamed response between Content-Type and Transfer-Encoding, in order."""
    headers = [(RESPONSE_MODE_HEADER, RESPONSE_MODE_STREAMING), ("Trailer", TRAILER_VALUE)]
    if invocation_id:
        headers.insert(0, (INVOCATION_ID_HEADER, invocation_id))
    return headers


def check_stream_begin(request_id: object, content_type: object, invocation_id: object) -> None:
    """Refuse (TypeError/ValueError) what cannot go into the head of a streamed response."""
    check_request_id(request_id)
    check_header_value("content_type", content_type)
    if invocation_id is not None and invocation_id != "":
        check_header_value("invocation_id", invocation_id)


def build_stream_head(
    request_id: str, host: str, user_agent: str, content_type: str, invocation_id: Optional[str]
) -> bytes:
    """The checked head of a streamed response (see the layout above)."""
    check_stream_begin(request_id, content_type, invocation_id)
    headers = stream_headers(invocation_id) + [("Transfer-Encoding", "chunked")]
    return build_request("POST", response_path(request_id), host, user_agent, headers, None, content_type)


def chunk_size_line(size: int) -> bytes:
    """``{size:x}\\r\\n``: the line before a chunk's data (lower-case hex, no extensions)."""
    return b"%x\r\n" % size


def stream_trailers(error_type: Optional[str] = None, error_body: Optional[bytes] = None) -> bytes:
    """The trailer lines that end a streamed response (between ``0\\r\\n`` and the final ``\\r\\n``).

    No error: no trailers. An error: ``Lambda-Runtime-Function-Error-Type``, and
    ``Lambda-Runtime-Function-Error-Body`` with the body (the error JSON) base64-encoded when
    there is one. A body without a type, a bad type or trailers over
    :data:`MAX_STREAM_TRAILERS` bytes raise TypeError/ValueError.
    """
    if error_type is None:
        if error_body is not None:
            raise ValueError("error_body needs an error_type (the trailers report an error by its type)")
        return b""
    check_header_value("error_type", error_type)
    lines = "%s: %s\r\n" % (ERROR_TYPE_HEADER, error_type)
    if error_body is not None:
        if isinstance(error_body, str):
            raise TypeError("error_body must be bytes (the error JSON, UTF-8), not str")
        import binascii

        try:
            encoded = binascii.b2a_base64(error_body, newline=False)
        except TypeError:
            raise TypeError("error_body must be bytes, not %s" % type(error_body).__name__) from None
        if encoded:
            lines += "%s: %s\r\n" % (ERROR_BODY_HEADER, encoded.decode("ascii"))
    if len(lines) > MAX_STREAM_TRAILERS:
        raise ValueError(
            "the error trailers would be %d bytes, over the %d-byte limit: shorten the error body"
            % (len(lines), MAX_STREAM_TRAILERS)
        )
    return lines.encode("ascii")


class ResponseStream:
    """Bookkeeping of one open streamed response: checks each write, counts the bytes.

    ``size`` counts the data bytes written so far (framing excluded).
    """

    __slots__ = ("request_id", "size")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.size = 0

    def take(self, data: object) -> "Tuple[object, int]":
        """``(buffer, byte count)`` to send as one chunk; the count is 0 for empty data
        (send nothing: an empty chunk would end the body). Counts the bytes as sent.

        bytes, bytearray and any C-contiguous buffer are accepted (a memoryview of wider
        items is sent as its bytes); str and non-buffers raise TypeError; a write past
        :data:`MAX_STREAMED` raises :class:`StreamTooLarge`.
        """
        if type(data) is bytes:
            buf: object = data
            n = len(data)
        else:
            if isinstance(data, str):
                raise TypeError("stream_write takes bytes, not str (encode it first)")
            try:
                view = memoryview(data)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError("stream_write takes bytes or another buffer, not %s" % type(data).__name__) from None
            if not view.c_contiguous:
                raise ValueError("stream_write needs a C-contiguous buffer")
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            buf, n = view, view.nbytes
        if n and self.size + n > MAX_STREAMED:
            raise StreamTooLarge(
                "a write of %d bytes would take the streamed response past %d bytes (%d sent): "
                "end the stream with an error" % (n, MAX_STREAMED, self.size)
            )
        self.size += n
        return buf, n
