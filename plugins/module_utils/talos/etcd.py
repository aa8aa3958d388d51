# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""talos_etcd: members, status, remove, leave, snapshot and recover, refusing steps that break quorum.

Quorum arithmetic: with N voting members of which H are healthy (their EtcdStatus answers without
errors), removing a member leaves N-1 voters; the step is refused unless the healthy voters left are a
majority of N-1. Recover (EtcdRecover + Bootstrap{recover_etcd}) is refused while etcd runs on the node
or while any peer still reports a leader (that would split the cluster).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile

from ansible_collections.tazlab.resilience.plugins.module_utils.diffs import etcd_diff
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import auth_from_params, client_kwargs
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosError, TalosTimeout, TalosUnreachable)

ACTIONS = ('members', 'status', 'health', 'remove', 'leave', 'snapshot', 'recover')
_DOWN = (TalosUnreachable, TalosDisconnected, TalosTimeout, TalosApiError)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def validate(params):
    action = params.get('action')
    if action not in ACTIONS:
        raise TalosError('action must be one of %s' % ', '.join(ACTIONS))
    if action == 'remove' and not params.get('member'):
        raise TalosError('action=remove needs member (hostname or id)')
    if action == 'snapshot' and not params.get('dest'):
        raise TalosError('action=snapshot needs dest')
    if action == 'recover':
        if not params.get('src'):
            raise TalosError('action=recover needs src')
        if not os.path.isfile(params['src']):
            raise TalosError('snapshot %s does not exist' % params['src'])
        if params.get('checksum') and sha256_file(params['src']) != params['checksum'].lower():
            raise TalosError('snapshot %s does not match checksum %s' % (params['src'], params['checksum']))


def _host_of(member):
    url = (member.get('client_urls') or member.get('peer_urls') or [''])[0]
    host = url.split('://', 1)[-1].rsplit(':', 1)[0].strip('[]')
    return host or member.get('hostname')


def find_member(members, ref):
    ref = str(ref)
    for m in members:
        if ref in (m['hostname'], str(m['id']), '%x' % m['id'], '%016x' % m['id']) or ref == _host_of(m):
            return m
    return None


async def health(client, members):
    """{member id: status dict or None}: a member is healthy when its own EtcdStatus answers without errors."""
    out = {}
    for m in members:
        try:
            st = await client.etcd_status(node=_host_of(m), retries=0)
            out[m['id']] = st if not st['errors'] else None
        except _DOWN:
            out[m['id']] = None
    return out


async def health_view(client, endpoints=None):
    """What etcd itself says about its members, for guards (the remediation plan's etcd guard).

    The member list is asked of each endpoint in turn (``endpoints``, default the talosconfig's) until one
    answers (EtcdMemberList needs quorum there); then each member's own EtcdStatus through the endpoint
    that answered (healthy: it answers without errors). Returns ``{"members": [{id, hostname, host,
    is_learner, healthy, state, error}], "voters", "healthy_voters", "quorum", "has_quorum", "asked"}`` where
    ``state`` is ``healthy``, ``down`` (it answered: etcd not running, or errors such as no leader) or
    ``unreachable`` (no answer from the node: it may still serve etcd to its peers); raises
    TalosError naming every endpoint's answer when none gives the member list.
    """
    endpoints = list(endpoints or [('[%s]:%s' if ':' in host else '%s:%s') % (host, port)
                                   for host, port in client.auth.endpoints])
    members, asked, errors = None, None, []
    for endpoint in endpoints:
        try:
            members = await client.etcd_member_list(endpoint=endpoint)
            asked = endpoint
            break
        except _DOWN as exc:
            errors.append('%s: %s' % (endpoint, exc))
    if members is None:
        raise TalosError('no Talos endpoint gave the etcd member list (etcd without quorum, or the control planes '
                         'unreachable): %s' % '; '.join(errors))
    out = []
    for m in members:
        error, state = None, 'healthy'
        try:
            st = await client.etcd_status(node=_host_of(m), endpoint=asked, retries=0)
            if st['errors']:
                error, state = ', '.join(st['errors']), 'down'
        except TalosApiError as exc:
            # The node answered (through apid) that its etcd does not run: down. Any other API error is a
            # node that did not really answer (the proxy could not reach it): it may still serve etcd.
            error, state = str(exc), 'down' if 'etcd is not running' in str(exc) else 'unreachable'
        except _DOWN as exc:
            error, state = str(exc), 'unreachable'
        out.append(dict(id=m['id'], hostname=m['hostname'], host=_host_of(m), is_learner=m['is_learner'],
                        healthy=state == 'healthy', state=state, error=error))
    voters = [m for m in out if not m['is_learner']]
    healthy = [m for m in voters if m['healthy']]
    quorum = len(voters) // 2 + 1 if voters else 0
    # The member list answered, which needs quorum: etcd has it, possibly with members this controller
    # cannot reach.
    return dict(members=out, voters=len(voters), healthy_voters=len(healthy), quorum=quorum, asked=asked)


def quorum_after_removal(members, healthy, member_id):
    """(ok, reason) for removing member_id."""
    voters = [m for m in members if not m['is_learner']]
    target = next(m for m in members if m['id'] == member_id)
    if target['is_learner']:
        return True, 'learners do not vote'
    left = [m for m in voters if m['id'] != member_id]
    healthy_left = [m for m in left if healthy.get(m['id']) is not None]
    need = len(left) // 2 + 1
    if len(left) and len(healthy_left) < need:
        return False, ('removing %s leaves %d voting member(s) of which %d healthy; quorum needs %d'
                       % (target['hostname'], len(left), len(healthy_left), need))
    return True, '%d of %d remaining voters healthy' % (len(healthy_left), len(left))


async def run_etcd(client, params, check_mode=False):
    action = params['action']
    node = params.get('node')
    result = dict(changed=False, action=action, node=node)
    if action == 'health':
        result.update(await health_view(client, [node] if node else None))
        return result
    if action in ('members', 'status'):
        result['members'] = await client.etcd_member_list(node=node)
        if action == 'status':
            hl = await health(client, result['members'])
            result['status'] = await client.etcd_status(node=node)
            result['healthy'] = dict((m['hostname'], hl.get(m['id']) is not None) for m in result['members'])
        return result

    if action in ('remove', 'leave'):
        members = await client.etcd_member_list(node=node)
        if action == 'remove':
            target = find_member(members, params['member'])
        else:
            own = await client.etcd_status(node=node)
            target = next((m for m in members if m['id'] == own['member_id']), None)
        result['members_before'] = members
        if target is None:
            result['msg'] = 'not a member (nothing to do)'
            return result
        hl = await health(client, members)
        ok, reason = quorum_after_removal(members, hl, target['id'])
        result.update(member=target, quorum_check=reason)
        if not ok and not params.get('force'):
            raise TalosError('refusing to %s etcd member: %s' % (action, reason))
        result['changed'] = True
        if check_mode:
            return result
        if action == 'remove':
            await client.etcd_remove_member(target['id'], node=node)
        else:
            await client.etcd_leave_cluster(node=node)
        result['members'] = await client.etcd_member_list(node=node if action == 'remove' else None)
        return result

    if action == 'snapshot':
        dest = params['dest']
        result['changed'] = True
        if check_mode:
            return result
        directory = os.path.dirname(os.path.abspath(dest))
        fd, tmp = tempfile.mkstemp(prefix='.etcd-snapshot-', dir=directory)
        try:
            with os.fdopen(fd, 'wb') as f:
                size, sha = await client.etcd_snapshot(f.write, node=node, timeout=params.get('snapshot_timeout'))
            os.chmod(tmp, 0o600)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        result.update(dest=dest, size=size, checksum=sha)
        return result

    # recover
    services = dict((s['id'], s) for s in await client.service_list(node=node))
    etcd_state = (services.get('etcd') or {}).get('state')
    if etcd_state != 'Preparing':
        raise TalosError('refusing to recover etcd on %s: etcd is %s there (recover needs a wiped control plane '
                         'whose etcd waits in Preparing)' % (node, etcd_state or 'absent'))
    for peer in params.get('peers') or []:
        if peer == node:
            continue
        try:
            st = await client.etcd_status(node=peer, retries=0)
        except _DOWN:
            continue
        if st['leader'] and not st['errors']:
            raise TalosError('refusing to recover etcd on %s: %s still belongs to a cluster with a leader; '
                             'bootstrapping from a snapshot now would split etcd' % (node, peer))
    src = params['src']
    result.update(changed=True, src=src, checksum=sha256_file(src), size=os.path.getsize(src))
    if check_mode:
        return result
    with open(src, 'rb') as f:
        data = f.read()
    await client.etcd_recover(data, node=node)
    await client.bootstrap(node=node, recover_etcd=True,
                           recover_skip_hash_check=bool(params.get('recover_skip_hash_check')))
    return result


def check_options(params):
    """talos_etcd's input checks, before any API call (raises TalosError / ValueError)."""
    validate(params)
    auth_from_params(params)
    client_kwargs(params)
    return []


def run_etcd_module(run):
    """talos_etcd: the module runner's one call (grpclib is imported only here)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient

    params = run.params
    auth = auth_from_params(params)
    kwargs = client_kwargs(params)
    run.context['node'] = params['node']

    async def go():
        async with TalosClient(auth, **kwargs) as client:
            return await run_etcd(client, params, check_mode=run.check_mode)
    result = asyncio.run(go())
    if run.diff and result.get('changed'):
        result['diff'] = etcd_diff(result)
    return result
