"""Finding and sampling local server processes by their listening port."""

from __future__ import annotations

import os
import socket

from loadtest.resources import Sampler, listeners, local_port


def test_local_ports_only_for_this_machine() -> None:
    assert local_port("http://127.0.0.1:8001") == 8001
    assert local_port("http://localhost") == 80
    assert local_port("https://localhost") == 443
    assert local_port("http://example.com:8001") is None


def test_the_process_listening_on_a_port_is_found_and_sampled() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert os.getpid() in {p.pid for p in listeners(port)}
        sampler = Sampler([f"http://127.0.0.1:{port}"])
        assert sampler.found >= 1
        sampler.start()
        # Samples outside the window are ignored: an empty window reports zeros.
        usage = sampler.stop(window=(0.0, 1.0))
    # Children count too (uvicorn workers); this process may have some (client processes).
    mine = [u for u in usage if u.pid == os.getpid()]
    assert len(mine) == 1
    assert mine[0].port == port
    assert mine[0].cpu_mean_pct == 0.0
    assert mine[0].rss_start_mib > 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        unused = probe.getsockname()[1]
    assert listeners(unused) == []
