# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""csi_force_detach's one call for the module runner (``longhorn_force_detach`` is a redirect to it).

The Kubernetes client and proxmoxer are imported only when the call needs them: proxmoxer only for a
``state=present`` run with ``proxmox_auth.api_host`` (the re-read of the power state before freeing).
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import K8S_BOUNDS, k8s_libraries
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError, RefusedError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.execute import ForceDetach
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import (
    PREDICTED_NOT_A_PROOF, is_predicted,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.verify import VerificationFailed
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import non_negative, positive

__all__ = ['BOUNDS', 'OPTIONS', 'check_params', 'fence_refusals', 'libraries', 'connect', 'power_check_from_params',
           'run_force_detach']

#: Options of the module the executor reads (the connection options go to the client).
OPTIONS = ('node', 'state', 'strategy', 'fence', 'assume_fenced', 'pvcs', 'volumes', 'actor', 'wait', 'wait_timeout',
           'poll_interval', 'stall_timeout', 'stale_ready_after', 'stale_wait', 'finalizer_timeout',
           'strip_finalizers', 'longhorn_namespace')

#: Option bounds, checked by the runner before any API call.
BOUNDS = dict(K8S_BOUNDS, wait_timeout=positive(), poll_interval=positive(), stall_timeout=positive(),
              finalizer_timeout=positive(), stale_ready_after=positive(), stale_wait=non_negative())


def check_params(params):
    """Reasons the module's own options are unusable (the runner fails with ``error.kind: invalid``)."""
    errors = []
    if not (params.get('node') or '').strip():
        errors.append('node must not be empty')
    for pvc in params.get('pvcs') or []:
        if not pvc or pvc.count('/') > 1 or pvc.startswith('/') or pvc.endswith('/'):
            errors.append('pvcs entries are namespace/name or name, got {0!r}'.format(pvc))
    return errors


def fence_refusals(params, check_mode=False):
    """THE ONE RULE, before any API call: state=present needs a fence proof or assume_fenced, and outside check
    mode a proof that is not predicted (the result of proxmox_fence in check mode)."""
    if params.get('state') != 'present':
        return []
    if params.get('fence') is None and not params.get('assume_fenced'):
        return ['refusing: no fence proof for node {0}. Pass the registered result of '
                'tazlab.resilience.proxmox_fence as fence, or assume_fenced=true if you have confirmed '
                'yourself that the node is powered off'.format(params.get('node'))]
    if is_predicted(params.get('fence')) and not check_mode:
        return ['refusing to force-detach node {0}: {1}'.format(params.get('node'), PREDICTED_NOT_A_PROOF)]
    return []


def _wants_proxmox(params):
    return params.get('state') == 'present' and bool((params.get('proxmox_auth') or {}).get('api_host'))


def libraries(params):
    """kubernetes always; proxmoxer when the power state is to be read from Proxmox."""
    out = k8s_libraries(params)
    if _wants_proxmox(params):
        from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
            HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR)
        out.append(('proxmoxer', HAS_PROXMOXER, PROXMOXER_IMPORT_ERROR))
    return out


def power_check_from_params(params):
    """A power_check for ForceDetach, or None without Proxmox access."""
    if not _wants_proxmox(params):
        return None
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import INVALID, ProxmoxError
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import confirm_powered_off
    try:
        client = ProxmoxClient(ConnectionSettings.from_params(dict(params['proxmox_auth'])))
    except ValueError as exc:
        raise ProxmoxError(INVALID, 'proxmox_auth: {0}'.format(exc))
    return lambda uuid, name: confirm_powered_off(client, uuid, name)


def connect(params):
    """The K8sClient for the module's connection options (the kubernetes package is imported only here)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.client import client_from_params
    return client_from_params(params)


def run_force_detach(run):
    """csi_force_detach: the module runner's one call."""
    params = run.params
    assumed = bool(params.get('assume_fenced') and params.get('fence') is None)
    run.context['assumed_fenced'] = False
    refusals = fence_refusals(params, check_mode=run.check_mode)
    if refusals:
        raise RefusedError('; '.join(refusals), refusals)
    power_check = power_check_from_params(params)
    options = dict((k, params[k]) for k in OPTIONS)
    service = ForceDetach(connect(params), options, power_check=power_check)
    run.changed = lambda: bool(service.written)
    try:
        result = service.run(check_mode=run.check_mode)
    except RefusedError as exc:
        exc.changed = bool(service.written)   # a guard that stops a run midway reports what it had written
        run.context.update(power_check=service.power, assumed_fenced=assumed, actions_done=service.written,
                           events=service.events)
        raise
    except VerificationFailed:
        run.context.update(actions_done=service.written, finalizers_stripped=service.finalizers_stripped,
                           events=service.events)
        raise
    except K8sError:
        run.context.update(actions_done=service.written, events=service.events)
        raise
    if run.diff and result.get('plan'):
        from ansible_collections.tazlab.resilience.plugins.module_utils.diffs import force_detach_diff
        result['diff'] = force_detach_diff(result['plan'])
    return result
