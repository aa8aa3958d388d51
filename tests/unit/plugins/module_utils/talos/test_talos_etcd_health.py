"""health_view: what the etcd guard asks - the member list from the first endpoint that gives it, each member's state."""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.etcd import health_view
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosError, TalosUnreachable)

MEMBERS = [dict(id=i, hostname='cp-0%d' % i, peer_urls=['https://10.0.0.%d:2380' % i],
                client_urls=['https://10.0.0.%d:2379' % i], is_learner=False) for i in (1, 2, 3)]


class Auth(object):
    endpoints = [('10.0.0.1', 50000), ('10.0.0.2', 50000), ('fd00::3', 50000)]


class FakeClient(object):
    """cp-01 unreachable, cp-02 healthy, cp-03 answers that its etcd does not run."""

    auth = Auth()

    def __init__(self, list_answers=True):
        self.list_answers = list_answers
        self.asked = []

    async def etcd_member_list(self, node=None, endpoint=None, query_local=False):
        self.asked.append(endpoint)
        if endpoint.startswith('10.0.0.1'):
            raise TalosUnreachable('Talos endpoint 10.0.0.1:50000 is unreachable')
        if not self.list_answers:
            raise TalosApiError('etcdserver: no leader (no quorum)', status='UNAVAILABLE')
        return list(MEMBERS)

    async def etcd_status(self, node=None, endpoint=None, retries=None):
        assert endpoint == '10.0.0.2:50000' and retries == 0
        if node == '10.0.0.1':
            raise TalosApiError('proxy: dial 10.0.0.1: i/o timeout', status='UNAVAILABLE')
        if node == '10.0.0.3':
            raise TalosApiError('failed to create etcd client: etcd is not running on this node', status='UNAVAILABLE')
        return dict(member_id=2, errors=[])


def test_first_endpoint_that_answers_and_each_members_state():
    client = FakeClient()
    view = asyncio.run(health_view(client))
    assert client.asked == ['10.0.0.1:50000', '10.0.0.2:50000']
    assert view['asked'] == '10.0.0.2:50000'
    assert [(m['hostname'], m['host'], m['state'], m['healthy']) for m in view['members']] == [
        ('cp-01', '10.0.0.1', 'unreachable', False), ('cp-02', '10.0.0.2', 'healthy', True),
        ('cp-03', '10.0.0.3', 'down', False)]
    assert (view['voters'], view['healthy_voters'], view['quorum']) == (3, 1, 2)


def test_no_endpoint_gives_the_member_list():
    with pytest.raises(TalosError, match=r'no Talos endpoint gave the etcd member list.*10.0.0.1:50000: .*unreachable.*'
                                         r'10.0.0.2:50000: etcdserver: no leader.*\[fd00::3\]:50000'):
        asyncio.run(health_view(FakeClient(list_answers=False)))
