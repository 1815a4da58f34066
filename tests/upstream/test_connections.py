"""inferwatch keeps its connections to the upstream: a request through the front does not pay
for a new TCP connection (and vLLM for accepting it) on the way to its first token.

A connection the front closes leaves a socket in TIME_WAIT toward vLLM's port for a minute, so
their count tells how many connections the requests used up; each read is of the kernel's own
table (psutil), and vLLM is real."""

from __future__ import annotations

import psutil

from tests.upstream.processes import Server
from tests.upstream.test_answers import completion

REQUESTS = 6


def closed_toward(port: int) -> int:
    """Client sockets toward `port` that were closed (TIME_WAIT) within the last minute."""
    return sum(
        1
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_TIME_WAIT and c.raddr and c.raddr.port == port
    )


def test_requests_through_the_front_reuse_its_upstream_connection(
    vllm: Server, front: Server
) -> None:
    completion(front, stream=True)  # the front holds an idle connection to vLLM now
    before = closed_toward(vllm.port)
    for n in range(REQUESTS):
        text, _ = completion(front, stream=n % 2 == 0)
        assert text
    # One spare for an idle connection that expired between two requests on a slow machine.
    assert closed_toward(vllm.port) - before <= 1
