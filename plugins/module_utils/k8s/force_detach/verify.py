# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verifying a force-detach: poll until the node ties nothing and every volume and workload is back.

Per volume: attached (Longhorn's view when it is a Longhorn volume, else the VolumeAttachments) to a node
other than the dead one, on the node of its live consumer when there is one, not faulted. Per workload: as
many ready replicas off the dead node as it wants. Each with the time (seconds since the operation started)
it held; ``VerificationFailed`` carries the report when wait_timeout ends first.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.observe import Observer
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.plan import cleanup_remaining
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import (
    is_terminating, meta, name_of, pod_pvc_names, pod_ready,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import Outcome

__all__ = ['Verifier', 'VerificationFailed']


class Verifier(Observer):
    """Observe, plan and verify (no write)."""

    def verify(self, plan):
        """Poll until every check holds or wait_timeout; per-volume and per-workload report with times."""
        node_name = plan['node']
        volumes = dict((v['pv'], {'pv': v['pv'], 'pvc': v['pvc'], 'longhorn_volume': v['longhorn_volume'],
                                  'ok': False, 'node': None, 'state': None, 'robustness': None, 'ok_at': None})
                       for v in plan['volumes'])
        workloads = dict(('{kind}/{namespace}/{name}'.format(**w), dict(w, ok=False, ready=0, desired=None,
                                                                        ok_at=None)) for w in plan['workloads'])
        checks = {'no_terminating_pods': None, 'no_volume_attachments': None, 'no_longhorn_tickets': None}
        pace = self._pace(first=0.5)
        while True:
            observed = self.observe()
            # One list of pods per namespace concerned and one list per workload kind and namespace, per round
            # (not a GET per workload and a list per volume): requests grow with namespaces, not with objects.
            self._round = {'pods': {}, 'workloads': {}}
            passed = self._passed(checks, volumes, workloads)
            remaining = cleanup_remaining(observed, plan)
            checks_now = {'no_terminating_pods': not remaining['terminating_pods'],
                          'no_volume_attachments': not remaining['volume_attachments'],
                          'no_longhorn_tickets': not self._tickets_naming(observed, plan)}
            for key, value in checks_now.items():
                if value and checks[key] is None:
                    checks[key] = self.elapsed()
                elif not value:
                    checks[key] = None
            self._check_volumes(observed, plan, volumes)
            self._check_workloads(plan, workloads)
            if self._passed(checks, volumes, workloads) > passed:
                # Progress this round: the rest usually follows within a second (the next pod, the next
                # volume), so look again soon instead of after the grown pause; idle rounds still slow down.
                pace.reset()
            done = all(v is not None for v in checks.values()) and all(v['ok'] for v in volumes.values()) and \
                all(w['ok'] for w in workloads.values())
            if done or pace.expired():
                report = {
                    'ok': done, 'elapsed_s': self.elapsed(),
                    'checks': dict((k, {'ok': v is not None, 'at': v}) for k, v in checks.items()),
                    'volumes': [volumes[k] for k in sorted(volumes)],
                    'workloads': [workloads[k] for k in sorted(workloads)],
                }
                if not done:
                    raise VerificationFailed('recovery of node {0} not verified within wait_timeout'.format(node_name),
                                             report)
                return report
            pace.sleep()

    @staticmethod
    def _passed(checks, volumes, workloads):
        """How many of the checks, volumes and workloads hold so far."""
        return (sum(1 for v in checks.values() if v is not None) + sum(1 for v in volumes.values() if v['ok'])
                + sum(1 for w in workloads.values() if w['ok']))

    def _tickets_naming(self, observed, plan):
        if not observed.get('longhorn'):
            return []
        wanted = set(v['longhorn_volume'] for v in plan['volumes'] if v['longhorn_volume'])
        out = []
        for lhva in observed.get('longhorn_attachments') or []:
            volume = (lhva.get('spec') or {}).get('volume') or name_of(lhva)
            if wanted and volume not in wanted:
                continue
            for tid, ticket in ((lhva.get('spec') or {}).get('attachmentTickets') or {}).items():
                if (ticket or {}).get('nodeID') == plan['node']:
                    out.append('{0}:{1}'.format(volume, tid))
        return out

    def _consumers(self, pvc):
        """Nodes of live (not terminating, scheduled) pods that mount the PVC 'ns/name'."""
        if not pvc:
            return []
        ns, claim = pvc.split('/', 1)
        nodes = []
        for pod in self._pods_in(ns):
            if is_terminating(pod) or claim not in pod_pvc_names(pod):
                continue
            if (pod.get('status') or {}).get('phase') in ('Succeeded', 'Failed'):
                continue
            node = (pod.get('spec') or {}).get('nodeName')
            if node:
                nodes.append(node)
        return nodes

    def _check_volumes(self, observed, plan, volumes):
        old = plan['node']
        lh_volumes = dict((name_of(v), v) for v in observed.get('longhorn_volumes') or [])
        for pv, entry in volumes.items():
            consumers = self._consumers(entry['pvc'])
            if entry['longhorn_volume'] and entry['longhorn_volume'] in lh_volumes:
                status = lh_volumes[entry['longhorn_volume']].get('status') or {}
                entry['state'] = status.get('state')
                entry['robustness'] = status.get('robustness')
                attached_to = status.get('currentNodeID') if status.get('state') == 'attached' else None
                faulted = status.get('robustness') == 'faulted'
            else:
                attached_to = None
                for va in observed.get('volume_attachments') or []:
                    spec = va.get('spec') or {}
                    if (spec.get('source') or {}).get('persistentVolumeName') == pv and \
                            (va.get('status') or {}).get('attached') and not is_terminating(va):
                        attached_to = spec.get('nodeName')
                entry['state'] = 'attached' if attached_to else 'detached'
                faulted = False
            entry['node'] = attached_to
            entry['consumers'] = sorted(set(consumers))
            if consumers:
                ok = attached_to is not None and attached_to != old and attached_to in consumers and not faulted
            else:
                ok = attached_to != old and not faulted
            if ok and not entry['ok']:
                entry['ok_at'] = self.elapsed()
            if not ok:
                entry['ok_at'] = None
            entry['ok'] = ok

    def _round_cache(self):
        cache = getattr(self, '_round', None)
        if cache is None:
            cache = self._round = {'pods': {}, 'workloads': {}}
        return cache

    def _pods_in(self, namespace):
        """The pods of a namespace, listed once per verification round."""
        cache = self._round_cache()['pods']
        if namespace not in cache:
            cache[namespace] = self.client.list_pods(namespace=namespace)
        return cache[namespace]

    def _workload(self, kind, namespace, name):
        """A workload from one list per kind and namespace per verification round (None when it is gone)."""
        cache = self._round_cache()['workloads']
        if (kind, namespace) not in cache:
            cache[(kind, namespace)] = dict((name_of(o), o) for o in self.client.list_workloads(kind, namespace))
        return cache[(kind, namespace)].get(name)

    def _check_workloads(self, plan, workloads):
        for key, entry in workloads.items():
            obj = self._workload(entry['kind'], entry['namespace'], entry['name'])
            if obj is None:
                entry.update(ok=True, desired=0, ready=0, note='workload is gone')
                continue
            spec = obj.get('spec') or {}
            desired = spec.get('replicas')
            desired = 1 if desired is None else int(desired)
            match = (spec.get('selector') or {}).get('matchLabels') or {}
            # The label selector applied to the namespace's pods (the same matchLabels a labelSelector sends).
            pods = [p for p in self._pods_in(entry['namespace'])
                    if all((meta(p).get('labels') or {}).get(k) == v for k, v in match.items())]
            running = [p for p in pods if pod_ready(p) and (p.get('spec') or {}).get('nodeName') != plan['node']]
            entry['desired'] = desired
            entry['ready'] = len(running)
            entry['pods'] = sorted('{0}@{1}'.format(name_of(p), (p.get('spec') or {}).get('nodeName'))
                                   for p in running)
            ok = len(running) >= desired
            if ok and not entry['ok']:
                entry['ok_at'] = self.elapsed()
            if not ok:
                entry['ok_at'] = None
            entry['ok'] = ok


class VerificationFailed(Outcome):
    """wait_timeout ended before every check held (a domain outcome, not an API error); carries the report."""

    kind = 'timeout'

    def __init__(self, message, report):
        super(VerificationFailed, self).__init__(message)
        self.report = report

    def result_fields(self):
        return {'verification': self.report}
