"""The load tester's own frame parsing (loadtest/client.py), fed frames as a server sends them.

The real-server runs (test_end_to_end.py, test_capacity.py) go through it too; here each
frame kind, length encoding and split is checked on its own.
"""

from __future__ import annotations

from websockets.frames import Close, Frame, Opcode

from loadtest.client import WsClient


def server_frame(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin=fin).serialize(mask=False, extensions=[])


def plain_client() -> tuple[WsClient, list[bytes], list[tuple[int | None, str]]]:
    texts: list[bytes] = []
    closes: list[tuple[int | None, str]] = []
    client = WsClient("ws://127.0.0.1:1/simple", texts.append, lambda c, r: closes.append((c, r)))
    client.plain = bytearray()  # as after a handshake without extensions
    return client, texts, closes


async def test_text_frames_of_every_length_encoding_split_anywhere() -> None:
    client, texts, _ = plain_client()
    payloads = [b"a" * 5, b"b" * 125, b"c" * 126, b"d" * 300, b"e" * 70_000, "été".encode()]
    stream = b"".join(server_frame(Opcode.TEXT, p) for p in payloads)
    for i in range(0, len(stream), 7):
        client.data_received(stream[i : i + 7])
    assert texts == payloads
    client.data_received(stream)  # and all at once
    assert texts == payloads * 2
    assert client.plain == bytearray()


async def test_a_fragmented_message_is_delivered_whole_and_binary_is_ignored() -> None:
    client, texts, _ = plain_client()
    client.data_received(
        server_frame(Opcode.TEXT, b"one ", fin=False)
        + server_frame(Opcode.CONT, b"two ", fin=False)
        + server_frame(Opcode.BINARY, b"\x00\x01")
        + server_frame(Opcode.CONT, b"three")
    )
    assert texts == [b"one two three"]


async def test_a_close_frame_is_reported_with_its_code_and_reason() -> None:
    client, texts, closes = plain_client()
    close = Close(4409, "too slow").serialize()
    client.data_received(server_frame(Opcode.TEXT, b"last") + server_frame(Opcode.CLOSE, close))
    assert texts == [b"last"]
    assert client.close_received == (4409, "too slow")
    client.connection_lost(None)
    assert closes == [(4409, "too slow")]
