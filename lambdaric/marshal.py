"""Events in, results out: the JSON rules of the official client, byte for byte.

simplejson is the reference encoder (the official client uses it, and users' code
depends on its output: ``", "`` separators, ``Decimal`` written exactly, NaN allowed).
lambdaric differs on purpose in two documented ways: non-ASCII is written as UTF-8
rather than ``\\uXXXX`` escapes, and ``application/json; charset=utf-8`` is parsed as JSON.

The native codec (``lambdaric._codec``, native/lr_json.c) does the work for the exact common
types (dict with str keys, list, tuple, str, int, float, bool, None) and answers ``NOT_MINE``
for anything else (a subclass, a namedtuple, a Decimal, a non-str key, a lone surrogate, invalid
or unusual JSON...): then the WHOLE value, or the whole input, goes to simplejson, as before the
codec existed, for the same bytes, objects or error message. simplejson and decimal are imported
only then (or when the codec could not be built): neither is on the cold-start path.
"""
from __future__ import annotations

import sys
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Optional, Tuple, Union

from .faults import MARSHAL_ERROR, UNMARSHAL_ERROR, FaultException
from .protocol import CT_BYTES, CT_JSON, is_json_content_type

__all__ = ["MARSHAL_ERROR", "UNMARSHAL_ERROR", "describe", "dumps", "dumps_ascii", "loads", "parse_event", "to_response"]

try:
    from ._codec import NOT_MINE as _NOT_MINE  # (ModuleNotFoundError: No module named 'lambdaric._codec')
    from . import _codec as _loaded
except Exception as exc:  # not built (no compiler), or does not load
    _codec: "Any" = None  # the extension module (it has no stubs), or None
    CODEC_ERROR = "%s: %s" % (type(exc).__name__, exc)  # type: Optional[str]
else:
    CODEC_ERROR = None
    _codec = _loaded
    _c_encode = _codec.encode
    _c_encode_str = _codec.encode_str
    _c_encode_ascii = _codec.encode_ascii
    _c_decode = _codec.decode


def describe() -> str:
    """The codec in use, for ``--version`` and the DEBUG startup line."""
    if _codec is not None:
        return "native"
    return "simplejson (native codec unavailable: %s)" % CODEC_ERROR


def _default(obj: Any) -> Any:
    """Encode ``Decimal`` as its exact text (a NaN Decimal as ``NaN``); refuse the rest.

    A Decimal can only exist if someone imported decimal: it is looked up, never imported."""
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(obj, decimal.Decimal):
        if obj.is_nan():
            return float("nan")
        from simplejson.raw_json import RawJSON

        return RawJSON(str(obj))
    raise TypeError("Object of type %s is not JSON serializable" % obj.__class__.__name__)


_encode = None  # type: Optional[Callable[[Any], str]]
_encode_ascii = None  # type: Optional[Callable[[Any], str]]
_loads = None  # type: Optional[Callable[[Any], Any]]


def _reference() -> None:
    """Import simplejson and make the reference encoders and parser (once, on first need).

    Callers then call them from their own frame, as before the codec: at the recursion
    limit's edge, simplejson has the same stack to work with as it always had."""
    global _encode, _encode_ascii, _loads
    import simplejson

    _encode_ascii = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, default=_default).encode
    _loads = simplejson.loads
    _encode = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, ensure_ascii=False, default=_default).encode


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` as the runtime writes it (UTF-8 friendly, official separators)."""
    if _codec is not None:
        text = _c_encode_str(obj)
        if text is not _NOT_MINE:
            return text
    if _encode is None:
        _reference()
    return _encode(obj)  # type: ignore[misc]


def dumps_ascii(obj: Any) -> str:
    """Like :func:`dumps` but with ``\\uXXXX`` escapes, for values that go into headers."""
    if _codec is not None:
        text = _c_encode_ascii(obj)
        if text is not _NOT_MINE:
            return text
    if _encode_ascii is None:
        _reference()
    return _encode_ascii(obj)  # type: ignore[misc]


def to_response(result: Any) -> Tuple[bytes, str]:
    """Turn a handler's return value into ``(body, content_type)`` for ``/response``.

    ``bytes``-like results go out untouched as ``application/unknown``; everything else
    is JSON. A value JSON cannot hold raises :class:`FaultException` (``Runtime.MarshalError``).
    """
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result), CT_BYTES
    if _codec is not None:
        body = _c_encode(result)
        if body is not _NOT_MINE:
            return body, CT_JSON
    if _encode is None:
        _reference()
    try:
        return _encode(result).encode("utf-8", "surrogatepass"), CT_JSON  # type: ignore[misc]
    except Exception as exc:  # TypeError, ValueError (circular), RecursionError...
        raise FaultException(MARSHAL_ERROR, "Unable to marshal response: %s" % exc, None)


def parse_event(body: Union[bytes, bytearray], content_type: Optional[str]) -> Any:
    """The event handed to the handler: parsed JSON for JSON media types, else raw bytes.

    The codec parses ``bytes`` and the transport's ``bytearray`` in place; what it leaves
    (invalid or unusual JSON) goes to simplejson, which gives the value or the error message.
    """
    if content_type != CT_JSON and not is_json_content_type(content_type):
        return body
    if _codec is not None:
        value = _c_decode(body)
        if value is not _NOT_MINE:
            return value
    if _loads is None:
        _reference()
    try:
        return _loads(body.decode("utf-8") if type(body) is bytearray else body)  # type: ignore[misc]
    except Exception as exc:
        if isinstance(exc, UnicodeDecodeError):
            try:
                _loads(bytes(body))  # type: ignore[misc]  # the reference message for undecodable input
            except Exception as ref:
                exc = ref
        raise FaultException(UNMARSHAL_ERROR, "Unable to unmarshal input: %s" % exc, None)


def loads(text: Any) -> Any:
    """Parse JSON text (headers, events) with the same parser as events."""
    if _codec is not None:
        value = _c_decode(text)
        if value is not _NOT_MINE:
            return value
    if _loads is None:
        _reference()
    return _loads(text)  # type: ignore[misc]
