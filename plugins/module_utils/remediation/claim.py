# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Claiming a node for remediation: one actor per node, and no new pods on it meanwhile.

A claim is three things, planned from what is observed and then carried out:

* a ``coordination.k8s.io/v1`` Lease ``tazlab-remediation-<node>`` whose holder is the actor (so two
  runs, two AWX jobs or a run and a human never act on the same node; medik8s does the same);
* the remediation taint ``remediation.tazlab.io/fencing:NoSchedule`` and a cordon (only recorded as
  ours when the node was schedulable, so a release never uncordons what a human cordoned);
* annotations naming the actor and the time.

``plan_claim`` and ``plan_release`` are pure: they take the Node and the Lease (or None) as dicts and
the cluster's time, and return the steps. ``ClaimService`` reads, plans and executes them.
"""

from __future__ import annotations

import datetime
import time

from ansible_collections.tazlab.resilience.plugins.module_utils import names
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time, rfc3339
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.plan import REMEDIATION_TAINT
from ansible_collections.tazlab.resilience.plugins.module_utils.remediation.run import (
    RUN_ANNOTATION, blocking_run,
)

__all__ = ['ClaimError', 'ClaimService', 'utc', 'is_run_hold', 'lease_name', 'lease_run', 'plan_claim', 'plan_end_run',
           'plan_release', 'view', 'predict',
           'ANNOTATION_ACTOR', 'ANNOTATION_SINCE', 'ANNOTATION_CORDONED']

ANNOTATION_ACTOR = names.ANNOTATION_ACTOR
ANNOTATION_SINCE = names.ANNOTATION_CLAIMED_AT
ANNOTATION_CORDONED = names.ANNOTATION_CORDONED


class ClaimError(Exception):
    """The claim cannot be taken or released (held by another actor, bad input). Nothing more is written."""

    changed = False


def lease_name(node):
    return 'tazlab-remediation-{0}'.format(node)


def micro_time(epoch):
    """Kubernetes MicroTime (RFC 3339 with microseconds)."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def utc(epoch):
    """The aware UTC datetime of epoch seconds (what ``k8s.objects.rfc3339`` formats)."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)


def lease_state(lease, now):
    """(holder, expires_at) of a Lease, holder None when there is no lease or it has expired."""
    if not lease:
        return None, None
    spec = lease.get('spec') or {}
    holder = spec.get('holderIdentity')
    renewed = parse_time(spec.get('renewTime') or spec.get('acquireTime'))
    duration = spec.get('leaseDurationSeconds') or 0
    if not holder or renewed is None:
        return None, None
    expires = renewed + duration
    if expires <= now:
        return None, expires
    return holder, expires


def is_run_hold(step):
    """A step that only moves the run's hold on a claim the actor already has (a later run of the same actor
    taking it, or a run handing it back): lock bookkeeping of the run, not a change of the claim."""
    return step['action'] == 'end_run' or (step['action'] == 'take_over_lease'
                                           and step.get('previous_holder') == step.get('holder'))


def lease_run(lease):
    """The run identity recorded on a Lease (None: no run holds it, only its actor)."""
    return (((lease or {}).get('metadata') or {}).get('annotations') or {}).get(RUN_ANNOTATION) or None


def _our_taint(taints):
    return [t for t in taints or [] if t.get('key') == REMEDIATION_TAINT]


def plan_claim(node, lease, actor, now, duration, cordon=True, run=None, take_over_run=None):
    """The steps that make ``actor`` (and its ``run``) hold ``node``: [] when it already does (idempotent).

    Raises ClaimError when another actor, or another run of the same actor that may still be going, holds
    an unexpired lease (run identities: module_utils/remediation/run.py).
    """
    if not actor:
        raise ClaimError('actor must be a non-empty string')
    if duration <= 0:
        raise ClaimError('lease_duration must be positive')
    name = node['metadata']['name']
    holder, expires = lease_state(lease, now)
    held_run = lease_run(lease) if holder else None
    if holder and holder != actor:
        raise ClaimError('node {0} is being remediated by {1} (its lease {2} runs until {3}): refusing to act on it '
                         'too'.format(name, holder, lease_name(name), rfc3339(utc(expires))))
    blocked = blocking_run(holder, held_run, actor, run, take_over_run)
    if blocked:
        raise ClaimError('node {0}: {1} (its lease {2} runs until {3}): refusing to act on it too; nothing '
                         'written'.format(name, blocked, lease_name(name), rfc3339(utc(expires))))
    steps = []
    if lease is None:
        steps.append({'action': 'create_lease', 'lease': lease_name(name), 'holder': actor, 'run': run})
    elif holder != actor or (run and held_run != run):
        steps.append({'action': 'take_over_lease', 'lease': lease_name(name), 'holder': actor, 'run': run,
                      'previous_holder': (lease.get('spec') or {}).get('holderIdentity'),
                      'previous_run': lease_run(lease),
                      'resource_version': lease['metadata'].get('resourceVersion')})
    spec = node.get('spec') or {}
    annotations = (node.get('metadata') or {}).get('annotations') or {}
    if not _our_taint(spec.get('taints')):
        steps.append({'action': 'add_taint', 'node': name,
                      'taint': {'key': REMEDIATION_TAINT, 'value': 'true', 'effect': 'NoSchedule'}})
    if cordon and not spec.get('unschedulable'):
        steps.append({'action': 'cordon', 'node': name})
    if annotations.get(ANNOTATION_ACTOR) != actor:
        steps.append({'action': 'annotate', 'node': name, 'actor': actor})
    return steps


def plan_end_run(node, lease, actor, now, run):
    """The steps that end ``run``'s hold on the claim and keep the claim itself (lease of ``actor``, taint,
    cordon): what a run does when it is done with a node, so that a later run of the same actor (a rerun,
    a restore from another AWX job) may act on it. [] when the lease is not held by this run."""
    holder = lease_state(lease, now)[0]
    if not run or holder != actor or lease_run(lease) != run:
        return []
    name = node['metadata']['name']
    return [{'action': 'end_run', 'lease': lease_name(name), 'holder': actor, 'previous_run': run,
             'resource_version': lease['metadata'].get('resourceVersion')}]


def plan_release(node, lease, actor, now, force=False, run=None, take_over_run=None):
    """The steps that undo a claim of ``actor``: [] when nothing of it is left.

    Refuses (ClaimError) to release an unexpired claim of another actor, or of another run of this actor
    that may still be going, unless ``force``.
    """
    name = node['metadata']['name']
    holder, expires = lease_state(lease, now)
    if holder and holder != actor and not force:
        raise ClaimError('node {0} is claimed by {1} until {2}, not by {3}: not releasing it (force overrides)'.format(
            name, holder, rfc3339(utc(expires)), actor))
    blocked = blocking_run(holder, lease_run(lease) if holder else None, actor, run, take_over_run)
    if blocked and not force:
        raise ClaimError('node {0}: {1} (until {2}): not releasing it (force overrides)'.format(
            name, blocked, rfc3339(utc(expires))))
    spec = node.get('spec') or {}
    annotations = (node.get('metadata') or {}).get('annotations') or {}
    steps = []
    if _our_taint(spec.get('taints')):
        steps.append({'action': 'remove_taint', 'node': name, 'key': REMEDIATION_TAINT})
    if spec.get('unschedulable') and annotations.get(ANNOTATION_CORDONED) == 'true':
        steps.append({'action': 'uncordon', 'node': name})
    if any(k in annotations for k in (ANNOTATION_ACTOR, ANNOTATION_SINCE, ANNOTATION_CORDONED)):
        steps.append({'action': 'remove_annotations', 'node': name})
    if lease is not None:
        steps.append({'action': 'delete_lease', 'lease': lease_name(name),
                      'resource_version': lease['metadata'].get('resourceVersion')})
    return steps


def view(node, lease, now):
    """What k8s_remediation reports of a node and its claim: taint, cordon, lease holder and run."""
    spec = node.get('spec') or {}
    holder = lease_state(lease, now)[0]
    return {
        'remediation_taint': any(t.get('key') == REMEDIATION_TAINT for t in spec.get('taints') or []),
        'unschedulable': bool(spec.get('unschedulable')),
        'lease_holder': holder,
        'lease_run': lease_run(lease) if holder else None,
    }


def predict(before, steps, actor, run=None):
    """The view after `steps` (check mode shows it without doing them)."""
    after = dict(before)
    effects = {
        'add_taint': ('remediation_taint', True), 'remove_taint': ('remediation_taint', False),
        'cordon': ('unschedulable', True), 'uncordon': ('unschedulable', False),
        'create_lease': ('lease_holder', actor), 'take_over_lease': ('lease_holder', actor),
        'delete_lease': ('lease_holder', None),
    }
    for step in steps:
        if step['action'] in ('create_lease', 'take_over_lease'):
            after['lease_run'] = run
        elif step['action'] in ('end_run', 'delete_lease'):
            after['lease_run'] = None
        if step['action'] in effects:
            key, value = effects[step['action']]
            after[key] = value
    return after


class ClaimService(object):
    """Reads the node and its lease, plans, and carries the plan out through a K8sClient."""

    def __init__(self, client, namespace='kube-system', coordination_api=None):
        self.client = client
        self.namespace = namespace
        self.leases = client.coordination if coordination_api is None else coordination_api

    def now(self):
        """The cluster's time: the API server's clock at the client's last response (the local clock before
        any), which is what leases and durations use."""
        return self.client.server_time if self.client.server_time is not None else time.time()

    # -- reads ----------------------------------------------------------------------------------
    def read(self, node_name):
        node = self.client.call('get node {0}'.format(node_name), self.client.core.read_node,
                                name=node_name)
        try:
            lease = self.client.call('get lease {0}'.format(lease_name(node_name)),
                                     self.leases.read_namespaced_lease,
                                     name=lease_name(node_name), namespace=self.namespace)
        except K8sError as exc:
            if not isinstance(exc, K8sError) or exc.status != 404:
                raise
            lease = None
        return node, lease

    # -- writes ---------------------------------------------------------------------------------
    def execute(self, steps, actor, duration, run=None):
        now = self.now()
        node_patch = {}
        for step in steps:
            action = step['action']
            if action in ('create_lease', 'take_over_lease', 'end_run'):
                body = {
                    'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
                    'metadata': {'name': step['lease'], 'namespace': self.namespace,
                                 'labels': {'app.kubernetes.io/managed-by': 'tazlab.resilience'}},
                    'spec': {'holderIdentity': actor, 'leaseDurationSeconds': int(duration),
                             'acquireTime': micro_time(now), 'renewTime': micro_time(now)},
                }
                if run and action != 'end_run':
                    body['metadata']['annotations'] = {RUN_ANNOTATION: run}
                if action == 'create_lease':
                    self._create_lease(step['lease'], body, actor, run)
                else:
                    body['metadata']['resourceVersion'] = step['resource_version']
                    self._replace_lease(step, body)
            elif action == 'delete_lease':
                self.client.call('delete lease {0}'.format(step['lease']), self.leases.delete_namespaced_lease,
                                 write=True, name=step['lease'], namespace=self.namespace,
                                 body={'preconditions': {'resourceVersion': step['resource_version']}})
            else:
                node_patch.setdefault(step['node'], []).append(step)
        for node_name, node_steps in node_patch.items():
            self._patch_node(node_name, node_steps, actor, now)

    def _replace_lease(self, step, body):
        """Replace the lease at the resourceVersion the plan read. Another run that wrote it since (took it
        over first) makes this a lost race: ClaimError, nothing else written. A 409 re-reads the lease
        (read-modify-write) instead of re-sending a write that can only conflict again."""
        what = 'end run {0} on lease {1}'.format(step.get('previous_run'), step['lease']) \
            if step['action'] == 'end_run' else 'take over lease {0}'.format(step['lease'])
        planned = step['resource_version']

        def read():
            return self.client.call('read lease {0}'.format(step['lease']), self.leases.read_namespaced_lease,
                                    name=step['lease'], namespace=self.namespace) or {}

        def modify(lease):
            if (lease.get('metadata') or {}).get('resourceVersion') != planned:
                raise ClaimError('lease {0} changed since it was read (now held by {1}{2}): another run took it '
                                 'first; this run does not act on the node and writes nothing else'.format(
                                     step['lease'], (lease.get('spec') or {}).get('holderIdentity'),
                                     ' run {0}'.format(lease_run(lease)) if lease_run(lease) else ''))
            return body

        def write(new):
            return self.client.call(what, self.leases.replace_namespaced_lease, write=True, name=step['lease'],
                                    namespace=self.namespace, body=new)

        self.client.read_modify_write(what, read, modify, write)

    def _create_lease(self, name, body, actor, run=None):
        """Create the lease. A 409 AlreadyExists on it after a lost answer (our own create committed, its
        response dropped, the retry met the object) counts as done when the lease there is ours; held by
        another actor it is a lost race: ClaimError, and nothing else is written."""
        try:
            self.client.call('create lease {0}'.format(name), self.leases.create_namespaced_lease,
                             write=True, namespace=self.namespace, body=body)
            return
        except K8sError as exc:
            if exc.kind != 'already_exists':
                raise
        lease = self.client.call('read lease {0}'.format(name), self.leases.read_namespaced_lease,
                                 name=name, namespace=self.namespace) or {}
        holder = (lease.get('spec') or {}).get('holderIdentity')
        held_run = lease_run(lease)
        if holder != actor or (run and held_run != run):
            raise ClaimError('lease {0} was just taken by {1}{2}: another run claims this node; this run{3} writes '
                             'nothing'.format(name, holder, ' run {0}'.format(held_run) if held_run else '',
                                              ' ({0})'.format(run) if run else ''))

    def _patch_node(self, node_name, steps, actor, now):
        actions = set(s['action'] for s in steps)

        def read():
            return self.client.get_node(node_name)

        def modify(node):
            spec = node.get('spec') or {}
            annotations = dict((node.get('metadata') or {}).get('annotations') or {})
            taints = list(spec.get('taints') or [])
            unschedulable = bool(spec.get('unschedulable'))
            if 'add_taint' in actions and not _our_taint(taints):
                taints.append(dict(next(s for s in steps if s['action'] == 'add_taint')['taint']))
            if 'remove_taint' in actions:
                taints = [t for t in taints if t.get('key') != REMEDIATION_TAINT]
            if 'cordon' in actions and not unschedulable:
                unschedulable = True
                annotations[ANNOTATION_CORDONED] = 'true'
            if 'uncordon' in actions:
                unschedulable = False
            if 'annotate' in actions:
                annotations[ANNOTATION_ACTOR] = actor
                annotations[ANNOTATION_SINCE] = rfc3339(utc(now))
            if 'remove_annotations' in actions:
                for key in (ANNOTATION_ACTOR, ANNOTATION_SINCE, ANNOTATION_CORDONED):
                    annotations.pop(key, None)
            old_annotations = (node.get('metadata') or {}).get('annotations') or {}
            patch = {'metadata': {'resourceVersion': node['metadata']['resourceVersion']}, 'spec': {}}
            # Taints are replaced whole, so the patch carries the full list and the resourceVersion it
            # was computed from: a concurrent writer makes the apiserver answer 409 and we re-read.
            patch['spec']['taints'] = taints or None
            patch['spec']['unschedulable'] = unschedulable or None
            annotation_patch = dict((k, v) for k, v in annotations.items() if old_annotations.get(k) != v)
            for key in old_annotations:
                if key not in annotations:
                    annotation_patch[key] = None
            if annotation_patch:
                patch['metadata']['annotations'] = annotation_patch
            return patch

        def write(patch):
            return self.client.patch_node(node_name, patch, content_type='application/merge-patch+json')

        self.client.read_modify_write('claim node {0}'.format(node_name), read, modify, write)
