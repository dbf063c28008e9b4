"""The py-spy summary used by ``--profile`` and docs/performance.md."""

from __future__ import annotations

from loadtest.flame import by_package, short, summarise

PROFILE = [
    "<module> (blendtune:6);run (uvicorn/main.py:632);_write (/work/main/rooms/hub.py:400);"
    "commit (/work/main/rooms/store.py:300) 3\n",
    "<module> (blendtune:6);run (uvicorn/main.py:632);send (/x/site-packages/uvicorn/ws.py:1) 5\n",
    "<module> (blendtune:6);run (uvicorn/main.py:632) 2\n",
    "not a sample line\n",
    "\n",
]


def test_self_and_inclusive_time() -> None:
    total, self_time, inclusive = summarise(PROFILE)
    assert total == 10
    assert self_time["commit (rooms/store.py)"] == 3
    assert self_time["send (uvicorn/ws.py)"] == 5
    assert self_time["run (uvicorn/main.py)"] == 2
    assert inclusive["run (uvicorn/main.py)"] == 10
    assert inclusive["_write (rooms/hub.py)"] == 3
    _, only_rooms = summarise(PROFILE, "rooms/")[1:]
    assert set(only_rooms) == {"_write (rooms/hub.py)", "commit (rooms/store.py)"}


def test_packages_and_frame_names() -> None:
    total, packages = by_package(PROFILE)
    assert total == 10
    assert packages == {"uvicorn": 7, "rooms": 3}
    assert short("f (/usr/lib/python3.11/asyncio/events.py:80)") == "f (asyncio/events.py)"
    assert short("0x7fed (libc.so.6)") == "0x7fed (libc.so.6)"
    assert short("weird frame") == "weird frame"
