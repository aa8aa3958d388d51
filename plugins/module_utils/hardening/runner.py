# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the two hardening modules run (talos_secretbox, talos_disk_encryption): clients built from params,
the secretbox rollout over the control planes, the disk encryption of one node. Modules stay thin."""

from __future__ import annotations

import asyncio
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import secretbox as sb
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.drain import DrainError
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening.disk import (
    HardeningFailed, HardeningRefused, NodeRoll)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until_async
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import auth_from_params, client_kwargs
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.client import TalosClient
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosError, TalosTimeout, TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.talosconfig import resolve_auth

_DOWN = (TalosUnreachable, TalosDisconnected, TalosTimeout, TalosTLSError, TalosApiError)
SECRETS_VERSION = 'talos.dev/secrets-version'


def k8s_client(params):
    """The Kubernetes client of the nested ``k8s_auth`` options (validated by the module's spec, K8S_AUTH_*
    fallbacks applied), or None when the option is not given."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
    if params.get('k8s_auth') is None:
        return None
    return client_from_params(params['k8s_auth'])


# -- secretbox ----------------------------------------------------------------------------------------
def _readyz(k8s):
    try:
        status, dummy = k8s.get_raw('/readyz')
        return status == 200
    except Exception:  # noqa: BLE001 - not ready (or restarting)
        return False


def _apiserver_pod(k8s, node_name):
    try:
        return k8s.call('get pod kube-system/kube-apiserver-%s' % node_name, k8s.core.read_namespaced_pod,
                        namespace='kube-system', name='kube-apiserver-%s' % node_name)
    except K8sError as exc:
        if exc.kind == 'not_found':
            return None
        raise


async def _wait_apiserver(k8s, talos, cp, want, before_version, timeout, poll):
    """The control plane runs the config with the secret and its apiserver is healthy again."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import pod_ready

    async def probe():
        docs = tp.load_documents((await talos.machine_config(node=cp['address'])).decode('utf-8'))
        applied = sb.current_secret(docs) == want
        pod = _apiserver_pod(k8s, cp['name']) if k8s is not None else None
        if pod is not None:
            version = ((pod.get('metadata') or {}).get('annotations') or {}).get(SECRETS_VERSION)
            healthy = pod_ready(pod) and (before_version is None or version != before_version)
        else:
            healthy = _readyz(k8s) if k8s is not None else True
        return applied, healthy

    try:
        await wait_until_async(probe, lambda read: read[0] and read[1], timeout, interval=poll,
                               is_transient=lambda exc: isinstance(exc, _DOWN + (K8sError,)),
                               what='secretbox on %s' % cp['name'])
    except WaitTimeout as exc:
        last = str(exc.last_error) if exc.last_error is not None else \
            'config applied %s, apiserver healthy %s' % exc.last
        raise HardeningFailed('%s: the apiserver is not healthy with the secretbox secret after %ss (last: %s)'
                              % (cp['name'], timeout, last), 'secretbox-%s' % cp['name']) from None


async def run_secretbox(talos, k8s, params, check_mode=False):
    cps = params['control_planes']
    timeout, poll = float(params.get('wait_timeout') or 300), float(params.get('poll_interval') or 2)
    configs = {}
    for cp in cps:
        configs[cp['address']] = tp.load_documents((await talos.machine_config(node=cp['address'])).decode('utf-8'))
    secret, generated = params.get('secret'), False
    if not secret and params.get('secrets_bundle'):
        secret, generated = sb.ensure_bundle_secret(params['secrets_bundle'], check_mode=check_mode)
    want, steps = sb.plan(configs, secret)
    names = dict((cp['address'], cp['name']) for cp in cps)
    for step in steps:
        step['name'] = names[step['node']]
    to_set = [s for s in steps if s['action'] == 'set' and params.get('node') in (None, s['node'])]
    all_set_after = all(s['action'] == 'keep' or s in to_set for s in steps)
    result = dict(changed=bool(to_set) or generated, plan=steps, secret_generated=generated, rewritten=[],
                  applied=[])
    if check_mode:
        for s in to_set:
            data = tp.dump_documents(sb.with_secret(configs[s['node']], want)).encode('utf-8')
            dry = await talos.apply_configuration(data, mode='no_reboot', dry_run=True, node=s['node'])
            s['dry_run_summary'] = _mask_secret(dry['mode_details'], want)
        if params.get('rewrite', True) and k8s is not None and all_set_after:
            result['secrets_to_rewrite'] = len(k8s.items(k8s.call('list secrets', k8s.core.list_secret_for_all_namespaces)))
        return result
    t0 = time.monotonic()
    for s in to_set:
        cp = dict(address=s['node'], name=s['name'])
        pod = _apiserver_pod(k8s, cp['name']) if k8s is not None else None
        before = ((pod or {}).get('metadata') or {}).get('annotations', {}).get(SECRETS_VERSION) if pod else None
        data = tp.dump_documents(sb.with_secret(configs[s['node']], want)).encode('utf-8')
        reply = await talos.apply_configuration(data, mode='no_reboot', node=s['node'])
        await _wait_apiserver(k8s, talos, cp, want, before, timeout, poll)
        result['applied'].append(dict(node=cp['name'], mode=reply['mode'], seconds=round(time.monotonic() - t0, 3)))
    if params.get('rewrite', True) and k8s is not None and all_set_after:
        result['rewritten'] = sb.rewrite_all(k8s)      # only Secrets the apiserver found stale get a new version
        result['changed'] = result['changed'] or bool(result['rewritten'])
    # verification: every control plane runs with the secret; the metrics where the apiserver serves them
    verified = {}
    for cp in (cps if all_set_after else [c for c in cps if c['address'] == params.get('node')]):
        docs = tp.load_documents((await talos.machine_config(node=cp['address'])).decode('utf-8'))
        verified[cp['name']] = sb.current_secret(docs) == want
    result['verified_config'] = verified
    if not all(verified.values()):
        raise HardeningFailed('control planes without the secretbox secret after the rollout: %s'
                              % ', '.join(n for n, ok in sorted(verified.items()) if not ok), 'verify')
    if params.get('verify_metrics') and k8s is not None:
        status, text = k8s.get_raw('/metrics')
        if status != 200:
            raise HardeningFailed('GET /metrics answered %s: verify_metrics needs the apiserver metrics' % status,
                                  'verify')
        writes = sb.secretbox_writes(text)
        result['secretbox_writes'] = writes
        if writes < len(result['rewritten']):
            raise HardeningFailed('the apiserver counted %d secretbox writes, fewer than the %d Secrets rewritten'
                                  % (writes, len(result['rewritten'])), 'verify')
    result['seconds'] = round(time.monotonic() - t0, 3)
    return result


def _mask_secret(text, secret):
    return (text or '').replace(secret, tp.MASK) if secret else text


def secretbox(params, check_mode=False):
    auth = auth_from_params(params)
    kwargs = client_kwargs(params)
    k8s = k8s_client(params)

    async def go():
        async with TalosClient(auth, **kwargs) as talos:
            return await run_secretbox(talos, k8s, params, check_mode)
    return asyncio.run(go())


# -- disk encryption ----------------------------------------------------------------------------------
def disk_encryption(params, check_mode=False):
    auth = auth_from_params(params)
    kwargs = client_kwargs(params)
    k8s = k8s_client(params)
    endpoint = params.get('maintenance_endpoint') or params['node']

    def maintenance():
        return TalosClient(resolve_auth(endpoints=[endpoint], insecure=True), timeout=kwargs['timeout'],
                           connect_timeout=kwargs['connect_timeout'], retries=0)

    async def go():
        async with TalosClient(auth, **kwargs) as talos:
            roll = NodeRoll(talos, k8s, params, maintenance=maintenance)
            if params.get('state') == 'status':
                return dict(changed=False, node=roll.name, status=await roll.state())
            try:
                return await roll.run(check_mode)
            except (TalosError, K8sError, DrainError) as exc:
                if not roll.steps:
                    raise
                raise HardeningFailed('%s failed at %s: %s' % (roll.name, roll.where, exc), roll.where, roll.steps)
    return asyncio.run(go())


__all__ = ['HardeningFailed', 'HardeningRefused', 'disk_encryption', 'secretbox', 'k8s_client']
