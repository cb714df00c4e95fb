"""Pure logic of the emulator's HTTP body reader (lambdaric/emulator/http.py): what it holds
in memory for a hostile chunked body."""
import asyncio

import pytest

from lambdaric.emulator.http import BadRequest, BodyReader


def read_pieces(data: bytes, limit: int):
    """Feed ``data`` then EOF to a BodyReader of a chunked body; collect piece sizes until it
    ends or refuses, and return (sizes, too_large, error or None)."""

    async def run():
        reader = asyncio.StreamReader(limit=1 << 16)
        reader.feed_data(data)
        reader.feed_eof()
        body = BodyReader(reader, 0, True, limit)
        sizes = []
        try:
            while True:
                piece = await body.next_chunk()
                if piece is None:
                    return sizes, body.too_large, None
                sizes.append(len(piece))
        except BadRequest as exc:
            return sizes, body.too_large, exc

    return asyncio.run(run())


def test_a_huge_announced_chunk_is_read_in_bounded_pieces():
    # 15 hex digits announce ~1 EB; 3 MiB follow, then the peer goes away
    sizes, too_large, error = read_pieces(b"fffffffffffffff\r\n" + b"x" * (3 << 20), limit=1 << 20)
    assert sizes == [1 << 20, 1 << 20, 1 << 20]  # never more than 1 MiB held at once
    assert too_large  # the limit was seen while the chunk was still arriving
    assert error is not None and "closed inside a chunked body" in str(error)


def test_chunks_split_into_pieces_reassemble_with_trailers():
    body = b"x" * ((1 << 20) + 5)
    data = b"%x\r\n" % len(body) + body + b"\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"

    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        r = BodyReader(reader, 0, True, 10 << 20)
        return await r.read(), r.trailers

    out, trailers = asyncio.run(run())
    assert out == body + b"abc" and trailers == {"x-t": "1"}


@pytest.mark.parametrize("tail", [b"XY", b""])
def test_missing_crlf_after_chunk_data(tail):
    sizes, _, error = read_pieces(b"3\r\nabc" + tail, limit=100)
    assert error is not None
