"""Events in, results out: the JSON rules of the official client, byte for byte.

simplejson is the reference encoder (the official client uses it, and users' code
depends on its output: ``", "`` separators, ``Decimal`` written exactly, NaN allowed).
lambdaric differs on purpose in two documented ways: non-ASCII is written as UTF-8
rather than ``\\uXXXX`` escapes, and ``application/json; charset=utf-8`` is parsed as JSON.
"""
from __future__ import annotations

import decimal
import math
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Optional, Tuple

import simplejson
from simplejson.raw_json import RawJSON

from .errors import FaultException
from .protocol import CT_BYTES, CT_JSON, is_json_content_type

MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"


def _default(obj: Any) -> Any:
    """Encode ``Decimal`` as its exact text (a NaN Decimal as ``NaN``); refuse the rest."""
    if isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return math.nan
        return RawJSON(str(obj))
    raise TypeError("Object of type %s is not JSON serializable" % obj.__class__.__name__)


_encoder = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, ensure_ascii=False, default=_default)
_ascii_encoder = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, default=_default)
_encode = _encoder.encode


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` as the runtime writes it (UTF-8 friendly, official separators)."""
    return _encode(obj)


def dumps_ascii(obj: Any) -> str:
    """Like :func:`dumps` but with ``\\uXXXX`` escapes, for values that go into headers."""
    return _ascii_encoder.encode(obj)


def to_response(result: Any) -> Tuple[bytes, str]:
    """Turn a handler's return value into ``(body, content_type)`` for ``/response``.

    ``bytes``-like results go out untouched as ``application/unknown``; everything else
    is JSON. A value JSON cannot hold raises :class:`FaultException` (``Runtime.MarshalError``).
    """
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), CT_BYTES
    try:
        return _encode(result).encode("utf-8", "surrogatepass"), CT_JSON
    except Exception as exc:  # TypeError, ValueError (circular), RecursionError...
        raise FaultException(MARSHAL_ERROR, "Unable to marshal response: %s" % exc, None)


def parse_event(body: bytes, content_type: Optional[str]) -> Any:
    """The event handed to the handler: parsed JSON for JSON media types, else raw bytes.

    simplejson (already loaded for results) parses it, so no second JSON module is
    imported on the cold-start path; a body read into a ``bytearray`` is decoded here.
    """
    if not is_json_content_type(content_type):
        return body
    try:
        return _loads(body.decode("utf-8") if type(body) is bytearray else body)
    except Exception as exc:
        if isinstance(exc, UnicodeDecodeError):
            try:
                _loads(bytes(body))  # the reference message for undecodable input
            except Exception as ref:
                exc = ref
        raise FaultException(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % exc, None)


def loads(text: Any) -> Any:
    """Parse JSON text (headers, events) with the same parser as events."""
    return _loads(text)


_loads = simplejson.loads
