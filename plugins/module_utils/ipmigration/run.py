# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ip_migration_plan's one call: read the facts (Talos, and Kubernetes when ``k8s_auth`` is given), plan,
enrich each step with its Kubernetes address and Talos endpoints, verify on request; with ``follow`` (or
``verify`` and ``wait_timeout``) read again until the cluster has followed a step (is verified), see follow.py.

``migration_result`` is pure (facts + plan -> the module result); ``run_ip_migration_plan`` does the
reads. The Talos and Kubernetes clients are imported only when the call runs.
"""

from __future__ import annotations

import asyncio

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.facts import (
    kubernetes_facts, talos_facts)
from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.follow import (
    NotFollowed, check_follow, follow_step, wait_followed, wait_verified)
from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.plan import (
    parse_moves, plan_migration, talos_endpoint, verify_migration)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import auth_from_params, client_kwargs

__all__ = ['enrich_steps', 'migration_result', 'check_options', 'libraries', 'run_ip_migration_plan']


def enrich_steps(steps, facts, port):
    """Each step gets its Kubernetes address before/after (the node's InternalIP now, and where it goes) and
    its Talos endpoint before/after; returns the Kubernetes addresses after the migration."""
    k8s_ips = dict((n['name'], n.get('internal_ip')) for n in (facts.get('kubernetes') or {}).get('nodes') or [])
    k8s_after = []
    for step in steps:
        step['kubernetes_address_before'] = k8s_ips.get(step['name']) or step['address_before']
        step['kubernetes_address_after'] = step['kubernetes_address_after'] or step['kubernetes_address_before'] \
            if step['moves'] else step['kubernetes_address_before']
        k8s_after.append(step['kubernetes_address_after'])
        step['endpoint_before'] = talos_endpoint(step['address_before'], port)
        step['endpoint_after'] = talos_endpoint(step['address_after'], port)
    return sorted(set(k8s_after))


def migration_result(facts, moves, vip, port, verify=False):
    """The module result for these facts and moves."""
    plan = plan_migration(facts, moves, vip=vip, port=port)
    k8s_after = enrich_steps(plan['steps'], facts, port)
    result = dict(changed=False, refused=plan['refused'], steps=plan['steps'], pending=plan['pending'],
                  positions=plan['positions'], vip=plan['vip'], endpoints_after=plan['endpoints_after'],
                  endpoints_now=[talos_endpoint(cp['address'], port) for cp in facts['control_planes']],
                  kubernetes_addresses_after=k8s_after,
                  etcd=dict(quorum=facts['etcd_quorum'], members=[
                      dict(name=cp['name'], address=cp['address'], peer_urls=cp['peer_urls'],
                           healthy=cp['etcd_healthy'], is_learner=cp['is_learner'])
                      for cp in facts['control_planes']]))
    if facts.get('kubernetes') is not None:
        result['kubernetes'] = facts['kubernetes']
    if verify:
        result['problems'] = verify_migration(facts, plan, k8s_after if facts.get('kubernetes') is not None else None)
        result['verified'] = not result['problems']
    return result


def check_options(params):
    """Bad input before any API call (raises PlanInputError, TalosError or ValueError)."""
    reasons = check_follow(params.get('follow'), params.get('k8s_auth'))
    if params.get('follow') is not None and params.get('verify'):
        reasons.append('follow and verify wait for different things: give one of them')
    if reasons:
        return reasons
    parse_moves(params['nodes'])
    auth_from_params(params)
    client_kwargs(params)
    return []


def libraries(params):
    """The Talos client always, the kubernetes package only when k8s_auth is given."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_libraries
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import talos_libraries

    out = talos_libraries(params)
    if params.get('k8s_auth') is not None:
        out.extend(k8s_libraries(params))
    return out


def run_ip_migration_plan(run):
    """ip_migration_plan: the module runner's one call. With ``follow`` (or ``verify`` and a ``wait_timeout``)
    it reads again every ``poll_interval`` seconds until the cluster has followed (is verified)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient

    params = run.params
    moves = parse_moves(params['nodes'])
    auth = auth_from_params(params)
    kwargs = client_kwargs(params)
    port = auth.endpoints[0][1]

    async def go():
        async with TalosClient(auth, **kwargs) as client:
            return await talos_facts(client, node=params['node'])

    def read():
        run.stage_failed = None          # each read of a wait reports its own failing stage
        with run.stage('reading the control planes through the Talos API failed'):
            facts = asyncio.run(go())
        with run.stage('reading Kubernetes failed'):
            facts['kubernetes'] = kubernetes_facts(params['k8s_auth']) if params['k8s_auth'] is not None else None
        return migration_result(facts, moves, params['vip'], port, verify=params['verify'])

    if params['follow'] is not None:
        try:
            return wait_followed(read, follow_step(params['follow']), params['wait_timeout'], params['poll_interval'])
        except NotFollowed:
            run.stage_failed = None      # the message says what the last reading lacked, or how the last read failed
            raise
    if params['verify'] and params['wait_timeout']:
        return wait_verified(read, params['wait_timeout'], params['poll_interval'])
    return read()
