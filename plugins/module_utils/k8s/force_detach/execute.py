# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Carrying out a force-detach plan, guarded by THE ONE RULE before every destructive write.

``ForceDetach`` observes, plans, and (unless check mode) carries the plan out: ``out_of_service`` taints
the node and lets Kubernetes clean up, falling back to the direct steps when progress stalls; ``direct``
deletes the VolumeAttachments, removes stale csi-attacher tickets, clears the node's volumesInUse and only
then force-deletes the pods; finalizers are stripped only from attachments the driver cannot release.
``wait`` verifies recovery per volume and per workload with times. Right before the first write Proxmox is
read again (``power_check``), and each write re-checks on a fresh node object that the node is not Ready and
its kubelet does not renew its lease (``_guard``).
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import (
    K8sError, NOT_FOUND, RefusedError,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import (
    APPLIED_AT, APPLIED_BY, LEGACY_APPLIED_AT, OOS_TAINT_EFFECT, OOS_TAINT_KEY, OOS_TAINT_VALUE,
    PREDICTED_NOT_A_PROOF, check_fence, cleanup_remaining, is_predicted, oos_taint, plan_like, proof_predates_lease,
    public_plan, stale_ready_threshold,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.verify import Verifier
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    kubelet_back, lease_silent_for, meta, node_ready, rfc3339,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import Pace

__all__ = ['ForceDetach']


class ForceDetach(Verifier):
    """Observe, plan and carry out a force-detach through a K8sClient.

    options: node, state, strategy, fence, assume_fenced, pvcs, volumes, actor, wait, wait_timeout,
    poll_interval, stall_timeout, finalizer_timeout, strip_finalizers.
    """

    def __init__(self, client, options, clock=time.monotonic, sleep=time.sleep, now=None, power_check=None,
                 wall=time.time):
        super(ForceDetach, self).__init__(client, options, clock=clock, sleep=sleep, now=now)
        # power_check(system_uuid, node_name) -> (ok, info, reasons): Proxmox read NOW (see
        # proxmox/identity.confirm_powered_off); None when the module has no Proxmox access.
        self.power_check = power_check
        self.wall = wall
        self.power = None
        self.finalizers_stripped = []
        self.written = []
        self._deleting_since = {}
        self._stale_renew = None  # the kubelet lease renewTime that proved a stale Ready, if one did

    def run(self, check_mode=False):
        """Returns the result dict (without Ansible specifics). Raises RefusedError on a refusal."""
        observed = self.observe()
        if not check_mode:
            observed = self._await_stale_ready(observed)
        plan = self.plan(observed, check_mode=check_mode)
        if plan.get('ready_stale'):
            self._stale_renew = ((observed.get('lease') or {}).get('spec') or {}).get('renewTime')
        result = {'changed': False, 'plan': public_plan(plan), 'warnings': list(plan['warnings']),
                  'strategy': plan['strategy'], 'volumes': list(plan['volumes']), 'workloads': list(plan['workloads']),
                  'fence': plan['fence'], 'assumed_fenced': bool(plan['fence'] and plan['fence']['assumed']),
                  'fallback': {'used': False}, 'finalizers_stripped': [], 'verification': None, 'events': []}
        if plan['refused']:
            raise RefusedError('refusing to force-detach node {0}: {1}'.format(plan['node'],
                                                                               '; '.join(plan['refused'])),
                               plan['refused'])
        if plan['state'] == 'present' and plan['actions']:
            self._verify_power_now(observed, plan, result, check_mode)
        if check_mode:
            result['changed'] = plan['changed']
            return result

        if plan['state'] == 'absent':
            if plan['taint_action'] == 'remove':
                self._remove_taint()
                result['changed'] = True
            result['events'] = self.events
            return result

        if plan['strategy'] == 'out_of_service':
            if plan['taint_action'] == 'add':
                self._add_taint(plan['annotations'])
            if self.options.get('wait', True):
                self._await_cleanup(plan, result)
        else:
            if plan['taint_action'] == 'add':  # a node that still reads Ready (stale): keep new pods away first
                self._add_taint(plan['annotations'])
            self._direct(plan)
            if self.options.get('wait', True):
                self._await_attachments_released(plan)

        if self.options.get('wait', True):
            result['verification'] = self.verify(plan)
            result['volumes'] = result['verification']['volumes']
            result['workloads'] = result['verification']['workloads']
        result['changed'] = bool(self.written)
        result['actions_done'] = self.written
        result['finalizers_stripped'] = self.finalizers_stripped
        result['events'] = self.events
        return result

    def _verify_power_now(self, observed, plan, result, check_mode):
        """Right before the first write: the proof must postdate the kubelet's last lease renewal, and Proxmox,
        read now, must show exactly one VM carrying the node's SMBIOS UUID, stopped. Without Proxmox access
        only assume_fenced lets the run go on (loudly). A predicted proof (proxmox_fence in check mode) never
        lets a real run go on. Raises RefusedError; in check mode, warns instead when the proof is predicted
        (the runbook's fence only planned) or assume_fenced."""
        node = observed.get('node') or {}
        uuid = ((node.get('status') or {}).get('nodeInfo') or {}).get('systemUUID')
        reasons = []
        fence = self.options.get('fence')
        predicted = is_predicted(fence)
        if predicted and not check_mode:
            reasons.append(PREDICTED_NOT_A_PROOF)
        if fence and plan['fence'] and plan['fence'].get('verified'):
            stale = proof_predates_lease(fence, observed.get('lease'), observed.get('now'), self.wall())
            if stale:
                reasons.append(stale)
        if self.power_check is None:
            if check_mode and not self.options.get('assume_fenced'):
                result['warnings'].append('check mode: no proxmox_auth, so the power state is not read; a real run '
                                          'without it refuses unless assume_fenced=true')
            elif not self.options.get('assume_fenced'):
                reasons.append('no Proxmox access to confirm, right before freeing, that the VM carrying SMBIOS UUID '
                               '{0} is powered off now: give proxmox_auth (a fence proof alone is a claim, not a '
                               'power reading), or assume_fenced=true if you have powered it off '
                               'yourself'.format(uuid))
            else:
                result['warnings'].append('ASSUMED FENCED: the power state of node {0} was not read from Proxmox '
                                          'before freeing (no proxmox_auth, assume_fenced=true)'.format(plan['node']))
            self.power = {'checked': False}
        else:
            try:
                ok, info, why = self.power_check(uuid, plan['node'])
            except Exception as exc:  # a Proxmox error: power cannot be confirmed
                ok, info, why = False, {}, ['cannot read Proxmox to confirm node {0} is powered off: {1}'.format(
                    plan['node'], getattr(exc, 'message', None) or exc)]
            self.power = dict(info, checked=True, confirmed_off=ok)
            reasons.extend(why)
        result['power_check'] = self.power
        self.event('power checked', **self.power)
        if reasons and check_mode and (predicted or self.options.get('assume_fenced')):
            result['warnings'].extend('check mode: {0} (a real run refuses)'.format(r) for r in reasons)
            return
        if reasons:
            raise RefusedError('refusing to force-detach node {0}: {1}'.format(plan['node'], '; '.join(reasons)),
                               reasons)

    def _await_stale_ready(self, observed):
        """A node just powered off still reads Ready. With a verified fence proof, wait (bounded by
        stale_wait) until its kubelet lease has been silent long enough to prove the Ready condition stale,
        or the node goes NotReady; stop at once if the lease is renewed (the node is alive)."""
        node = observed.get('node')
        if node is None or node_ready(node) != 'True' or self.options.get('state', 'present') != 'present':
            return observed
        fence_ok, info, _reasons = check_fence(node, self.options.get('fence'), self.options.get('assume_fenced'))
        if not (fence_ok and info['verified']):
            return observed
        threshold = stale_ready_threshold(observed.get('lease'), self.options.get('stale_ready_after'))
        first_renew = ((observed.get('lease') or {}).get('spec') or {}).get('renewTime')
        interval = float(self.options.get('poll_interval') or 2)
        pace = Pace(interval, timeout=float(self.options.get('stale_wait') or 0), sleep=self.sleep, clock=self.clock)
        while not pace.expired():
            node = self.client.get_node(self.options['node'])
            lease = self.client.get_node_lease(self.options['node'])
            renew = ((lease or {}).get('spec') or {}).get('renewTime')
            silent = lease_silent_for(lease, getattr(self.client, 'server_time', None))
            if node_ready(node) != 'True' or renew != first_renew or (silent is not None and silent >= threshold):
                break
            # Sleep until the silence is due (the API server's Date has whole seconds, so it can read up to 1s
            # short: the next round then comes 0.2s later), never longer than a poll interval: a renewal
            # (the node is alive) is still seen within one; never past stale_wait.
            due = interval if silent is None else threshold - silent
            pace.sleep(at_most=due, at_least=0.2)
        self.event('waited for the stale Ready condition', at=rfc3339())
        return self.observe()

    # -- guarded writes ---------------------------------------------------------------------------
    def _guard(self, node, lease='read'):
        """Re-check the ONE RULE on a fresh node object (and its kubelet's Lease) right before a destructive
        write: not Ready, and no lease renewal since it went NotReady. lease: the Lease if just observed."""
        if node is None:
            raise RefusedError('node {0} disappeared'.format(self.options['node']))
        if lease == 'read':
            lease = self.client.get_node_lease(self.options['node'])
        if node_ready(node) == 'True':
            renew = ((lease or {}).get('spec') or {}).get('renewTime')
            if self._stale_renew is None or renew != self._stale_renew:
                raise RefusedError('node {0} became Ready and its kubelet renews its lease: it is running, stopping '
                                   'before any further detach'.format(self.options['node']))
            return
        if kubelet_back(node, lease)[0]:
            raise RefusedError('the kubelet of node {0} renews its lease again: it is running, stopping '
                               'before any further detach'.format(self.options['node']))

    def _add_taint(self, annotations):
        name = self.options['node']

        def modify(node):
            self._guard(node)
            taints = list((node.get('spec') or {}).get('taints') or [])
            if oos_taint(taints) is not None:
                return None
            taints.append({'key': OOS_TAINT_KEY, 'value': OOS_TAINT_VALUE, 'effect': OOS_TAINT_EFFECT,
                           'timeAdded': self.now()})
            return {'metadata': {'resourceVersion': meta(node).get('resourceVersion'),
                                 'annotations': dict(annotations)},
                    'spec': {'taints': taints}}

        written = self.client.read_modify_write('taint node {0}'.format(name), lambda: self.client.get_node(name),
                                                modify, lambda body: self.client.patch_node(name, body))[0]
        if written:
            self.written.append({'action': 'taint_node', 'node': name, 't': self.elapsed()})
            self.event('tainted', node=name)

    def _remove_taint(self):
        name = self.options['node']

        def modify(node):
            taints = list((node.get('spec') or {}).get('taints') or [])
            keep = [t for t in taints if t.get('key') != OOS_TAINT_KEY]
            if len(keep) == len(taints):
                return None
            annotations = meta(node).get('annotations') or {}
            patch = {'metadata': {'resourceVersion': meta(node).get('resourceVersion')}, 'spec': {'taints': keep}}
            drop = dict((k, None) for k in (APPLIED_BY, APPLIED_AT, LEGACY_APPLIED_AT) if k in annotations)
            if drop:
                patch['metadata']['annotations'] = drop
            return patch

        written = self.client.read_modify_write('untaint node {0}'.format(name), lambda: self.client.get_node(name),
                                                modify, lambda body: self.client.patch_node(name, body))[0]
        if written:
            self.written.append({'action': 'remove_taint', 'node': name, 't': self.elapsed()})
            self.event('untainted', node=name)

    def _direct(self, plan):
        # Fresh guard: the node must still be not Ready right now.
        self._guard(self._get_node_or_none())
        vas_first = [a['name'] for a in plan['actions'] if a['action'] == 'delete_volume_attachment']
        vas_first += [v['name'] for v in plan.get('volume_attachments') or [] if v.get('deleting')]
        waited = False
        for action in plan['actions']:
            kind = action['action']
            if kind == 'force_delete_pod' and vas_first and not waited:
                waited = True
                self._await_vas_gone(plan, vas_first)   # Longhorn's order: the VAs are gone before any pod
                self._guard(self._get_node_or_none())
            try:
                if kind == 'force_delete_pod':
                    self.client.delete_pod(action['namespace'], action['name'], grace_period_seconds=0)
                elif kind == 'clear_volumes_in_use':
                    self._clear_volumes_in_use(action['remove'])
                elif kind == 'delete_volume_attachment':
                    self.client.delete_volume_attachment(action['name'])
                elif kind == 'remove_longhorn_ticket':
                    self.client.patch_custom('volumeattachments', action['attachment'],
                                             {'spec': {'attachmentTickets': {action['ticket']: None}}},
                                             namespace=self._longhorn_namespace())
                else:
                    continue
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    self.event('already_gone', action=kind, target=_target(action))
                    continue
                raise
            done = dict(action)
            done['t'] = self.elapsed()
            self.written.append(done)
            self.event(kind, target=_target(action))

    def _await_vas_gone(self, plan, names):
        """Wait until the VolumeAttachments just deleted have disappeared (the driver detached them)."""
        names = set(names)
        since = self.clock()
        pace = self._pace()
        limit = float(self.options.get('finalizer_timeout') or 60)
        while True:
            # One list per round (VolumeAttachments have no field selector for the node).
            left = sorted(v['metadata']['name'] for v in self.client.list_volume_attachments()
                          if v['metadata']['name'] in names)
            if not left:
                self.event('volume_attachments_gone', waited_s=round(self.clock() - since, 3))
                return
            if pace.expired():
                raise K8sError('timeout', 'VolumeAttachments {0} of node {1} not gone within wait_timeout; the pods '
                               'were not force-deleted'.format(', '.join(left), plan['node']))
            for name in left:
                self._deleting_since.setdefault(name, since)
            if self.options.get('strip_finalizers', True) and \
                    any(self.clock() - self._deleting_since[name] >= limit for name in left):
                self._maybe_strip_finalizers(self.observe(), plan)
            pace.sleep()

    def _clear_volumes_in_use(self, remove):
        name = self.options['node']

        def modify(node):
            self._guard(node)
            in_use = list((node.get('status') or {}).get('volumesInUse') or [])
            keep = [v for v in in_use if v not in remove]
            if len(keep) == len(in_use):
                return None
            # JSON merge patch: the list is replaced; the resourceVersion makes a concurrent write a 409.
            return {'metadata': {'resourceVersion': meta(node).get('resourceVersion')},
                    'status': {'volumesInUse': keep}}

        self.client.read_modify_write('clear volumesInUse of node {0}'.format(name),
                                      lambda: self.client.get_node(name), modify,
                                      lambda body: self.client.patch_node_status(name, body))

    def _await_cleanup(self, plan, result):
        """out_of_service: wait for Kubernetes to clean up; fall back to the direct steps on a stall."""
        stall = float(self.options.get('stall_timeout') or 60)
        last_progress = self.clock()
        last_count = None
        pace = self._pace()
        while True:
            observed = self.observe()
            self._guard(observed['node'], observed.get('lease'))
            remaining = cleanup_remaining(observed, plan)
            count = len(remaining['pods']) + len(remaining['volume_attachments']) + len(remaining['longhorn_tickets'])
            if count == 0:
                self.event('cleanup_complete', by='kubernetes' if not result['fallback']['used'] else 'fallback')
                return
            if last_count is None or count < last_count:
                last_progress = self.clock()
                last_count = count
            now = self.clock()
            if pace.expired():
                raise K8sError('timeout', 'cleanup of node {0} not complete within wait_timeout: {1}'.format(
                    plan['node'], remaining))
            if not result['fallback']['used'] and now - last_progress >= stall:
                fresh = self.plan(observed, strategy='direct')
                if fresh['refused']:
                    raise RefusedError('fallback refused: {0}'.format('; '.join(fresh['refused'])), fresh['refused'])
                result['fallback'] = {'used': True, 'after_s': round(now - last_progress, 3), 'at': self.elapsed(),
                                      'remaining': remaining, 'actions': list(fresh['actions'])}
                self.event('fallback_direct', remaining=remaining)
                self._direct(fresh)
                last_progress = self.clock()
                continue
            self._maybe_strip_finalizers(observed, plan)
            pace.sleep()

    def _await_attachments_released(self, plan):
        """direct: wait until no VA or ticket names the node (stripping finalizers as a last resort)."""
        pace = self._pace()
        while True:
            observed = self.observe()
            remaining = cleanup_remaining(observed, plan)
            if not remaining['volume_attachments'] and not remaining['longhorn_tickets'] and not remaining['pods']:
                return
            if pace.expired():
                raise K8sError('timeout', 'attachments of node {0} not released within wait_timeout: {1}'.format(
                    plan['node'], remaining))
            self._guard(observed['node'], observed.get('lease'))
            fresh = self.plan(observed, strategy='direct')
            # Objects that appeared or were left behind (e.g. a pod deleted by grace before) get the steps again.
            leftovers = [a for a in fresh['actions'] if a['action'] != 'delete_volume_attachment' or
                         not any(w.get('name') == a.get('name') for w in self.written)]
            if leftovers and not fresh['refused']:
                fresh = dict(fresh)
                fresh['actions'] = leftovers
                self._direct(fresh)
            self._maybe_strip_finalizers(observed, plan)
            pace.sleep()

    def _maybe_strip_finalizers(self, observed, plan):
        """Strip finalizers from VAs naming the node that stayed deleting past finalizer_timeout."""
        if not self.options.get('strip_finalizers', True):
            return
        limit = float(self.options.get('finalizer_timeout') or 60)
        since = self._deleting_since
        fresh = plan_like(observed, plan)
        for va in fresh['volume_attachments']:
            if not va['deleting'] or not va['finalizers']:
                continue
            first = since.setdefault(va['name'], self.clock())
            if self.clock() - first < limit:
                continue
            self._guard(self._get_node_or_none())
            try:
                self.client.patch_volume_attachment(va['name'], {'metadata': {'finalizers': None}})
            except K8sError as exc:
                if exc.kind == NOT_FOUND:
                    continue
                raise
            entry = {'volume_attachment': va['name'], 'pv': va['pv'], 'finalizers': va['finalizers'],
                     'waited_s': round(self.clock() - first, 3), 't': self.elapsed(),
                     'reason': 'still deleting after {0:g}s: the driver did not release it'.format(limit)}
            self.finalizers_stripped.append(entry)
            self.written.append({'action': 'strip_finalizers', 'name': va['name'], 't': self.elapsed()})
            self.event('finalizers_stripped', target=va['name'], finalizers=va['finalizers'])


def _target(action):
    if 'namespace' in action:
        return '{0}/{1}'.format(action['namespace'], action['name'])
    if 'ticket' in action:
        return '{0}:{1}'.format(action['volume'], action['ticket'])
    return action.get('name')
