"""The Talos waits (client.wait_ready, node.wait_down_then_ready, node.wait_unreachable) against a scripted
node: what counts as "not yet", what propagates, and the timeout with the last reading (no network)."""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import node as tn
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosTimeout, TalosTLSError, TalosUnreachable)


class Auth(object):
    endpoints = [('10.0.0.10', 50000)]


class Node(object):
    """machine_status / version answering from a script; the last entry repeats. An exception is raised."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        self.auth = Auth()

    def _next(self, kw):
        self.calls.append(kw)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item

    async def machine_status(self, **kw):
        return self._next(kw)

    async def version(self, **kw):
        return self._next(kw)

    async def wait_ready(self, **kw):
        return await TalosClient.wait_ready(self, **kw)


RUNNING = {'stage': 'running', 'ready': True}
BOOTING = {'stage': 'booting', 'ready': False}


def unavailable():
    return TalosApiError('apid not running', status='UNAVAILABLE')


def run(coro):
    return asyncio.run(coro)


def test_wait_ready_rides_out_unreachable_and_unavailable():
    node = Node([TalosUnreachable('connection refused'), unavailable(), BOOTING, RUNNING])
    assert run(node.wait_ready(node='10.0.0.11', timeout=5, poll=0.01)) == RUNNING
    assert len(node.calls) == 4 and all(c['retries'] == 0 for c in node.calls)   # the wait retries, not the call


def test_wait_ready_times_out_with_the_last_reading_or_error():
    node = Node([BOOTING])
    with pytest.raises(TalosTimeout, match=r'^node 10.0.0.11 not RUNNING and ready after 0.1s '
                                           r'\(last: stage booting, ready False\)$'):
        run(node.wait_ready(node='10.0.0.11', timeout=0.1, poll=0.02))
    node = Node([BOOTING, TalosUnreachable('no route to host')])
    with pytest.raises(TalosTimeout, match=r'^node 10.0.0.10 not RUNNING and ready after 0.1s '
                                           r'\(last: no route to host\)$'):
        run(node.wait_ready(timeout=0.1, poll=0.02))


def test_wait_ready_tls_failures_only_tolerated_when_asked():
    node = Node([TalosTLSError('self-signed certificate'), RUNNING])
    with pytest.raises(TalosTLSError):
        run(node.wait_ready(node='n', timeout=5, poll=0.01))
    node = Node([TalosTLSError('self-signed certificate'), RUNNING])
    assert run(node.wait_ready(node='n', timeout=5, poll=0.01, tolerate_tls=True)) == RUNNING


def test_wait_ready_other_api_errors_propagate():
    node = Node([TalosApiError('denied', status='PERMISSION_DENIED'), RUNNING])
    with pytest.raises(TalosApiError, match='denied'):
        run(node.wait_ready(node='n', timeout=5, poll=0.01))
    assert len(node.calls) == 1


def test_wait_down_then_ready_sees_the_node_leave_then_come_back():
    node = Node([RUNNING, RUNNING, TalosUnreachable('rebooting'), BOOTING, RUNNING])
    assert run(tn.wait_down_then_ready(node, {'node': 'n'}, 5, 0.01)) == RUNNING
    assert len(node.calls) == 5     # running twice, then down (first phase); booting, running (wait_ready)


def test_wait_down_then_ready_a_reboot_never_seen_down_still_ends_in_wait_ready():
    node = Node([RUNNING])

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status = await tn.wait_down_then_ready(node, {'node': 'n'}, 0.1, 0.02)
        return status, loop.time() - t0
    status, took = run(main())
    assert status == RUNNING and 0.1 <= took < 1


def test_wait_unreachable():
    node = Node([True, True, TalosUnreachable('gone')])    # version answers twice, then the node is gone
    run(tn.wait_unreachable(node, 'n', 5, 0.01))
    assert len(node.calls) == 3
    node = Node([True])
    with pytest.raises(TalosTimeout, match=r'^node n still answers 0.1s after the shutdown was accepted$'):
        run(tn.wait_unreachable(node, 'n', 0.1, 0.02))
