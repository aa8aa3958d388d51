# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disaster drill's record of the cluster's reaction: pure functions over polled observations.

``Recorder(target, t0, workloads, initial)`` is fed one observation per poll::

    {'time': <API server clock, epoch s>, 'node': <Node>, 'pods': [...], 'events': [...], 'vas': [...]}

and keeps the first time each milestone was seen, on the cluster's clock: timestamps the objects carry
(the Ready condition's lastTransitionTime, a taint's timeAdded, a pod's deletionTimestamp minus its
grace, its creationTimestamp, an Event's time) where there are any, else the poll's own time.
Milestones: node NotReady, each new taint, each pod of a watched workload going Terminating, its
replacement created / waiting (Pending, ContainerCreating, Init) / Multi-Attach, the node's
VolumeAttachments gone (detach), the out-of-service taint (the fence was proven first), each workload
Running again. ``done()`` says every watched workload is back.
"""

from __future__ import annotations

import calendar
import datetime
import time

from ansible_collections.tazlab.resilience.plugins.module_utils import names

__all__ = ['Recorder', 'parse_ts', 'iso', 'SEED_TIMELINE', 'workload_of', 'pod_ready_time', 'selector_matches']

OUT_OF_SERVICE = names.OUT_OF_SERVICE_TAINT

#: The seed story's Phase 5 "5-minute test", by hand with a watch (minutes after the forced shutdown).
SEED_TIMELINE = [
    {'t': 0, 'kind': 'fault', 'detail': 'worker forcibly shut down'},
    {'t': 60, 'kind': 'node_not_ready', 'detail': 'node NotReady; the pod is still considered Running'},
    {'t': 300, 'kind': 'pod_terminating', 'detail': 'pod Terminating, a new one created on another node'},
    {'t': 480, 'kind': 'blocked', 'detail': 'the new pod still in Init:0/1, blocked by the Longhorn volume'},
]


def parse_ts(value):
    """RFC 3339 (with or without fraction) -> epoch seconds, None when empty."""
    if not value:
        return None
    text = str(value).replace('Z', '+00:00')
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return calendar.timegm(dt.utctimetuple()) + dt.microsecond / 1e6


def iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch)) if epoch is not None else None


def selector_matches(match_labels, labels):
    labels = labels or {}
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def workload_of(pod, replicasets):
    """(kind, name) of the controller behind a pod: Deployment through its ReplicaSet, or the owner itself."""
    refs = [r for r in (pod.get('metadata') or {}).get('ownerReferences') or [] if r.get('controller', True)]
    if not refs:
        return None
    ref = refs[0]
    if ref.get('kind') == 'ReplicaSet':
        ns = pod['metadata'].get('namespace')
        for rs in replicasets or []:
            meta = rs.get('metadata') or {}
            if meta.get('namespace') == ns and meta.get('name') == ref.get('name'):
                owners = [o for o in meta.get('ownerReferences') or [] if o.get('kind') == 'Deployment']
                if owners:
                    return 'Deployment', owners[0].get('name')
        return 'ReplicaSet', ref.get('name')
    return ref.get('kind'), ref.get('name')


def pod_ready_time(pod):
    """When a pod became Ready (epoch), None unless it is Running, Ready and not terminating."""
    meta, status = pod.get('metadata') or {}, pod.get('status') or {}
    if meta.get('deletionTimestamp') or status.get('phase') != 'Running':
        return None
    for cond in status.get('conditions') or []:
        if cond.get('type') == 'Ready' and cond.get('status') == 'True':
            return parse_ts(cond.get('lastTransitionTime')) or 0.0
    return None


def _waiting_reason(pod):
    status = pod.get('status') or {}
    for group in ('initContainerStatuses', 'containerStatuses'):
        statuses = status.get(group) or []
        for idx, cs in enumerate(statuses):
            waiting = (cs.get('state') or {}).get('waiting')
            if waiting:
                reason = waiting.get('reason') or 'Waiting'
                if group == 'initContainerStatuses' and reason == 'PodInitializing':
                    return 'Init:{0}/{1}'.format(idx, len(statuses))
                return reason
    if status.get('phase') == 'Pending':
        return 'Pending'
    return None


def _event_time(event):
    for key in ('lastTimestamp', 'eventTime', 'firstTimestamp'):
        value = parse_ts(event.get(key))
        if value:
            return value
    return parse_ts((event.get('metadata') or {}).get('creationTimestamp'))


class Recorder(object):
    """Milestones of one drilled node, on the cluster's clock, relative to the fault (t0)."""

    def __init__(self, target, t0, workloads, initial):
        """workloads: [{namespace, kind, name, selector, ready}] to watch; initial: the first observation
        (before the fault): which taints, pods and VolumeAttachments were there already."""
        self.target = target
        self.t0 = float(t0)
        self.workloads = list(workloads)
        self.events = []
        self._seen = set()
        node = initial.get('node') or {}
        self.taints_before = set(t.get('key') for t in (node.get('spec') or {}).get('taints') or [])
        self.old_pods = set()
        for pod in initial.get('pods') or []:
            if (pod.get('spec') or {}).get('nodeName') == target:
                self.old_pods.add((pod['metadata'].get('namespace'), pod['metadata'].get('name')))
        self.vas_before = [v['metadata']['name'] for v in initial.get('vas') or []
                           if (v.get('spec') or {}).get('nodeName') == target]
        self.back = {}
        self.last_state = {}
        self.last_time = self.t0

    # -- recording --------------------------------------------------------------------------------
    def add(self, kind, when, obj, detail=''):
        key = (kind, obj)
        if key in self._seen:
            return False
        self._seen.add(key)
        when = self.t0 if when is None else min(max(float(when), self.t0), max(self.last_time, self.t0))
        self.events.append({'t': round(when - self.t0, 1), 'time': iso(when), 'kind': kind, 'object': obj,
                            'detail': detail})
        self.events.sort(key=lambda e: (e['t'], e['kind']))
        return True

    def _key(self, w):
        return '{0}/{1}/{2}'.format(w['kind'], w['namespace'], w['name'])

    def observe(self, obs):
        now = float(obs['time'])
        self.last_time = now
        node = obs.get('node') or {}
        for cond in (node.get('status') or {}).get('conditions') or []:
            if cond.get('type') == 'Ready' and cond.get('status') != 'True':
                since = parse_ts(cond.get('lastTransitionTime'))
                if since is None or since >= self.t0 - 1:
                    self.add('node_not_ready', since or now, 'Node ' + self.target,
                             'Ready={0} ({1})'.format(cond.get('status'), cond.get('reason') or ''))
        for taint in (node.get('spec') or {}).get('taints') or []:
            key = taint.get('key')
            if key in self.taints_before:
                continue
            # timeAdded is written by whoever added the taint, on its own clock: never later than we saw it.
            when = min(parse_ts(taint.get('timeAdded')) or now, now)
            self.add('taint', when, 'Node {0} {1}:{2}'.format(self.target, key, taint.get('effect')), key)
            if key == OUT_OF_SERVICE:
                self.add('fenced', when, 'Node ' + self.target,
                         'out-of-service taint: power-off proven, storage may be freed')
        pods = obs.get('pods') or []
        for w in self.workloads:
            self._observe_workload(w, pods, obs.get('events') or [], now)
        if self.vas_before:
            left = [v for v in obs.get('vas') or [] if (v.get('spec') or {}).get('nodeName') == self.target]
            if not left:
                self.add('detached', now, 'Node ' + self.target,
                         '{0} VolumeAttachment(s) of the node gone'.format(len(self.vas_before)))

    def _observe_workload(self, w, pods, events, now):
        key = self._key(w)
        mine = [p for p in pods if p['metadata'].get('namespace') == w['namespace']
                and selector_matches(w.get('selector'), p['metadata'].get('labels'))]
        new_names = set()
        for pod in mine:
            meta = pod['metadata']
            ident = (meta.get('namespace'), meta.get('name'))
            if ident in self.old_pods:
                if meta.get('deletionTimestamp'):
                    when = parse_ts(meta['deletionTimestamp'])
                    if when is not None:
                        when -= float(meta.get('deletionGracePeriodSeconds') or 0)
                    self.add('pod_terminating', when or now, 'Pod {0}/{1}'.format(*ident), key)
                continue
            created = parse_ts(meta.get('creationTimestamp'))
            if created is None or created < self.t0 - 1:
                continue
            new_names.add(meta.get('name'))
            self.add('replacement_created', created, 'Pod {0}/{1}'.format(*ident), key)
            reason = _waiting_reason(pod)
            if reason:
                self.add('replacement_' + reason.split(':')[0].lower(), now, 'Pod {0}/{1}'.format(*ident),
                         reason)
                self.last_state[key] = reason
        for event in events:
            inv = event.get('involvedObject') or {}
            if inv.get('namespace') == w['namespace'] and inv.get('name') in new_names \
                    and event.get('reason') == 'FailedAttachVolume' and 'Multi-Attach' in (event.get('message') or ''):
                self.add('multi_attach', _event_time(event) or now, 'Pod {0}/{1}'.format(w['namespace'], inv['name']),
                         event.get('message'))
                self.last_state[key] = 'ContainerCreating (Multi-Attach error)'
        ready = [(pod_ready_time(p), p) for p in mine if (p.get('spec') or {}).get('nodeName') != self.target]
        ready = [(t, p) for t, p in ready if t is not None]
        want = max(1, int(w.get('ready') or 1))
        if key not in self.back and len(ready) >= want:
            when = max(r[0] for r in ready)
            when = max(when, self.t0)
            self.back[key] = when
            self.add('running_again', when, key, '{0} ready replica(s) off {1}'.format(len(ready), self.target))

    # -- results ----------------------------------------------------------------------------------
    def done(self):
        """Every watched workload is Running again and the node's loss was seen (NotReady)."""
        seen = any(e['kind'] == 'node_not_ready' for e in self.events)
        return seen and all(self._key(w) in self.back for w in self.workloads)

    def recovered(self):
        return all(self._key(w) in self.back for w in self.workloads)

    def elapsed(self):
        return self.last_time - self.t0

    def mttr(self):
        return dict((self._key(w), round(self.back[self._key(w)] - self.t0, 1) if self._key(w) in self.back else None)
                    for w in self.workloads)

    def result(self, timeout=None):
        outcome = 'recovered' if self.recovered() else 'blocked'
        if outcome == 'blocked':
            for w in self.workloads:
                key = self._key(w)
                if key not in self.back:
                    self.add('blocked', self.last_time, key,
                             'still not running after {0:.0f} s: {1}'.format(
                                 self.elapsed(), self.last_state.get(key, 'no replacement Running')))
        return {'node': self.target, 't0': iso(self.t0), 'outcome': outcome, 'observed_seconds':
                round(self.elapsed(), 1), 'timeout': timeout, 'events': list(self.events), 'mttr': self.mttr(),
                'blocked': dict((k, self.last_state.get(k, 'not running')) for k, v in self.mttr().items()
                                if v is None)}
