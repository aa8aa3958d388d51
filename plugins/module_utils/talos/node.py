# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""talos_node: plan and carry out a machine-config change, a reboot or a shutdown of one node.

The plan is built from the node's current (``v1alpha1``) and on-disk (``persistent``) config, patched
client-side; check mode adds the server's dry-run summary and stops there.
"""

from __future__ import annotations

import asyncio
import ipaddress

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until_async
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import auth_from_params, client_kwargs
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosError, TalosTimeout, TalosUnreachable)

APPLY_MODES = ('auto', 'no_reboot', 'reboot', 'staged', 'try', 'staged_if_needing_reboot')
STATES = ('present', 'rebooted', 'shutdown')


def node_address(docs):
    """First static address of the node in a config (v1alpha1 interfaces, then LinkConfig documents)."""
    v1 = next((d for d in docs if tp.is_v1alpha1(d)), {}) or {}
    candidates = []
    for iface in ((v1.get('machine') or {}).get('network') or {}).get('interfaces') or []:
        candidates += iface.get('addresses') or []
    for d in docs:
        if d.get('kind') == 'LinkConfig':
            candidates += [a.get('address') if isinstance(a, dict) else a for a in d.get('addresses') or []]
    for c in candidates:
        try:
            return str(ipaddress.ip_interface(str(c)).ip)
        except ValueError:
            continue
    return None


def validate(params):
    """Reject bad input before any API call."""
    if params.get('apply_mode') not in APPLY_MODES:
        raise TalosError('apply_mode must be one of %s' % ', '.join(APPLY_MODES))
    if params.get('state', 'present') not in STATES:
        raise TalosError('state must be one of %s' % ', '.join(STATES))
    for p in params.get('config_patches') or []:
        tp.parse_patch(p)
    if params.get('config'):
        tp.load_documents(params['config'])
    if params.get('state', 'present') == 'present' and not (params.get('config_patches') or params.get('config')):
        raise TalosError('state=present needs config_patches or config')
    if params.get('insecure') and (params.get('state', 'present') != 'present' or not params.get('config')):
        raise TalosError('insecure (a node in maintenance mode) only applies a complete config: state=present with config')


def plan_maintenance(params):
    """A node in maintenance mode has no config to read: the whole config is applied (always a change)."""
    desired = tp.apply_patches(tp.load_documents(params['config']), params.get('config_patches') or [])
    mode = 'reboot' if params.get('apply_mode') == 'reboot' else 'no_reboot'   # 1.13+ turns reboot into no_reboot
    return dict(node=params.get('node'), mode=mode, changed=True, reboot_required=False, will_reboot=False,
                address_before=params.get('node'), address_after=node_address(desired),
                diff=tp.diff_documents([], desired), data=tp.dump_documents(desired).encode('utf-8'))


async def plan_apply(client, params):
    node = params.get('node')
    current_raw = await client.machine_config(node=node)
    try:
        persistent_raw = await client.machine_config(node=node, rid='persistent')
    except TalosApiError as exc:
        if exc.status != 'NOT_FOUND':
            raise
        persistent_raw = current_raw
    current = tp.load_documents(current_raw)
    persistent = tp.load_documents(persistent_raw)
    base = tp.load_documents(params['config']) if params.get('config') else current
    desired = tp.apply_patches(base, params.get('config_patches') or [])
    data = tp.dump_documents(desired).encode('utf-8')
    mode = params.get('apply_mode') or 'auto'
    reboot, reboot_source = False, 'unchanged'
    if desired != current:
        reboot, reboot_source = await reboot_needed(client, node, current, desired)
    if mode == 'staged_if_needing_reboot':
        mode = 'staged' if reboot else 'no_reboot'
    if mode in ('no_reboot', 'try') and reboot:
        raise TalosError("apply_mode=%s cannot apply this change: it needs a reboot (use auto, reboot, staged or "
                         "staged_if_needing_reboot)" % params.get('apply_mode'))
    if mode == 'staged':
        changed = desired != persistent
    elif mode == 'try':
        changed = desired != current
    else:
        changed = desired != current or desired != persistent
    will_reboot = changed and (mode == 'reboot' or (mode == 'auto' and reboot))
    old_addr, new_addr = node_address(current), node_address(desired)
    return dict(node=node, mode=mode, changed=changed, reboot_required=reboot, reboot_judged_by=reboot_source,
                will_reboot=will_reboot,
                address_before=old_addr, address_after=new_addr if mode != 'staged' else old_addr,
                diff=tp.diff_documents(current if mode != 'staged' else persistent, desired),
                data=data)


async def node_version(client, node):
    """The node's Talos version tag (Version RPC), e.g. 'v1.13.9'."""
    reply = await client.version(node=node)
    return reply.messages[0].version.tag


async def reboot_needed(client, node, current, desired):
    """Does the change need a reboot? The node's dry run (mode AUTO) decides; the client-side rule is the fallback.

    Returns (bool, 'node' | 'rule')."""
    data = tp.dump_documents(desired).encode('utf-8')
    try:
        dry = await client.apply_configuration(data, mode='auto', dry_run=True, node=node)
    except TalosApiError as exc:
        if exc.status not in ('UNIMPLEMENTED', 'INVALID_ARGUMENT', 'UNKNOWN'):
            raise
    else:
        if dry.get('mode') in ('reboot', 'no_reboot'):
            return dry['mode'] == 'reboot', 'node'
    try:
        version = await node_version(client, node)
    except TalosApiError:
        version = None
    return tp.needs_reboot(current, desired, version=version), 'rule'


FORCE_REBOOT_FROM = (1, 12)


async def check_reboot_mode(client, node, reboot_mode):
    """RebootRequest FORCE exists only from Talos v1.12: an older node would reboot gracefully without a word."""
    if reboot_mode != 'force':
        return None
    tag = await node_version(client, node)
    parsed = tp.parse_version(tag)
    if parsed is None or parsed[:2] < FORCE_REBOOT_FROM:
        raise TalosError("reboot_mode=force needs Talos v1.12 or later, but node %s runs %s: RebootRequest mode FORCE "
                         "does not exist there and the node would do an ordinary graceful reboot instead; use "
                         "reboot_mode=default or powercycle" % (node or 'endpoint', tag or 'an unknown version'))
    return tag


def _wait_target(client, params, address):
    """Where to reach the node after a change: at its (new) address directly when it is an endpoint."""
    node = params.get('node')
    endpoint_hosts = [ep[0] for ep in client.auth.endpoints]
    if node is None or node in endpoint_hosts:
        return dict(endpoint=address)
    return dict(node=address)


async def wait_down_then_ready(client, where, timeout, poll):
    """After a reboot was accepted: first see the node leave RUNNING/ready (or vanish), then come back."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def gone():
        try:
            st = await client.machine_status(retries=0, **where)
        except (TalosUnreachable, TalosDisconnected, TalosTimeout):
            return True
        except TalosApiError as exc:
            if exc.status not in ('UNAVAILABLE', 'DEADLINE_EXCEEDED'):
                raise
            return True
        return not (st['stage'] == 'running' and st['ready'])

    try:
        await wait_until_async(gone, bool, timeout, interval=poll, clock=loop.time, what='the node going down')
    except WaitTimeout:
        pass    # never seen down (a quick reboot): wait_ready decides, with what is left of the timeout
    return await client.wait_ready(timeout=max(1.0, deadline - loop.time()), poll=poll, **where)


async def run_maintenance(client, params, check_mode=False, secure_client=None):
    """Apply a config to a node in maintenance mode (insecure TLS), then wait over mTLS if we can."""
    timeout, poll = float(params.get('wait_timeout') or 600), float(params.get('poll_interval') or 2)
    plan = plan_maintenance(params)
    data = plan.pop('data')
    result = dict(plan, state='present', diff=dict(prepared=plan['diff']))
    if check_mode:
        dry = await client.apply_configuration(data, mode=plan['mode'], dry_run=True)
        result['dry_run_summary'] = dry['mode_details']
        return result
    res = await client.apply_configuration(data, mode=plan['mode'])
    result.update(applied_mode=res['mode'], mode_details=res['mode_details'], warnings_from_node=res['warnings'],
                  rebooting=res['mode'] == 'reboot')
    if params.get('wait', True) and secure_client is not None and plan['address_after']:
        result['status'] = await secure_client.wait_ready(
            endpoint=plan['address_after'], timeout=timeout, poll=poll, tolerate_tls=True)
    return result


async def run_node(client, params, check_mode=False, secure_client=None):
    state = params.get('state') or 'present'
    wait, timeout, poll = params.get('wait', True), float(params.get('wait_timeout') or 600), \
        float(params.get('poll_interval') or 2)
    node = params.get('node')
    if params.get('insecure'):
        return await run_maintenance(client, params, check_mode, secure_client)
    result = dict(changed=False, node=node, state=state)
    if state == 'rebooted':
        version = await check_reboot_mode(client, node, params.get('reboot_mode') or 'default')
        if version:
            result['talos_version'] = version
        result.update(changed=True)
        if check_mode:
            return result
        where = _wait_target(client, params, node or client.auth.endpoints[0][0])
        result['actor_id'] = await client.reboot(node=node, mode=params.get('reboot_mode') or 'default')
        if wait:
            result['status'] = await wait_down_then_ready(client, where, timeout, poll)
        return result
    if state == 'shutdown':
        if not await answers(client, node):
            result.update(reachable=False, msg='node %s is not answering (already shut down?)' % (node or 'endpoint'))
            return result
        result.update(changed=True, reachable=True)
        if check_mode:
            return result
        result['actor_id'] = await client.shutdown(node=node, force=bool(params.get('force')))
        if wait:
            await wait_unreachable(client, node, timeout, poll)
            result['reachable'] = False
        return result

    plan = await plan_apply(client, params)
    data = plan.pop('data')
    result.update(plan)
    result['diff'] = dict(prepared=plan['diff']) if plan['changed'] else {}
    if not plan['changed']:
        return result
    if check_mode:
        server_mode = 'auto' if plan['mode'] == 'auto' else plan['mode']
        dry = await client.apply_configuration(data, mode=server_mode, dry_run=True, node=node)
        result['dry_run_summary'] = dry['mode_details']
        return result
    res = await client.apply_configuration(data, mode=plan['mode'], node=node,
                                           try_timeout=params.get('try_timeout'))
    result.update(applied_mode=res['mode'], mode_details=res['mode_details'], warnings_from_node=res['warnings'])
    rebooting = res['mode'] == 'reboot'
    result['rebooting'] = rebooting
    moved = plan['address_after'] and plan['address_after'] != plan['address_before']
    if wait and (rebooting or moved):
        where = _wait_target(client, params, plan['address_after'] or node)
        if rebooting:
            result['status'] = await wait_down_then_ready(client, where, timeout, poll)
        else:
            result['status'] = await client.wait_ready(timeout=timeout, poll=poll, **where)
    return result


async def answers(client, node):
    """One Version call without retries: does the node answer right now?"""
    try:
        await client.version(node=node, retries=0)
    except (TalosUnreachable, TalosDisconnected, TalosTimeout):
        return False
    except TalosApiError as exc:
        if exc.status in ('UNAVAILABLE', 'DEADLINE_EXCEEDED'):
            return False
        raise
    return True


async def wait_unreachable(client, node, timeout, poll):
    try:
        await wait_until_async(lambda: answers(client, node), lambda up: not up, timeout, interval=poll,
                               what='node %s unreachable' % node)
    except WaitTimeout:
        raise TalosTimeout('node %s still answers %ss after the shutdown was accepted' % (node, timeout)) from None


# -- the module's one call -------------------------------------------------------------------------------

def check_node_options(params):
    """talos_node's input checks, before any API call (raises TalosError / ValueError)."""
    validate(params)
    client_kwargs(params)
    return []


def run_node_module(run):
    """talos_node: the module runner's one call (grpclib is imported only here)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient

    params = run.params
    auth = auth_from_params(params, insecure=params['insecure'])
    kwargs = client_kwargs(params)
    secure = None
    if params['insecure'] and params['wait']:
        try:
            secure = auth_from_params(params)
        except TalosError:
            secure = None   # no credentials: return after the apply
    run.context['node'] = params['node']

    async def go():
        async with TalosClient(auth, **kwargs) as client:
            if secure is None:
                return await run_node(client, params, check_mode=run.check_mode)
            async with TalosClient(secure, **kwargs) as secure_client:
                return await run_node(client, params, check_mode=run.check_mode, secure_client=secure_client)
    result = asyncio.run(go())
    diff = result.pop('diff', None)
    if run.diff and diff:
        result['diff'] = diff
    return result
