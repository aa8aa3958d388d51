# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Has the cluster followed a step of the IP migration, and the bounded waits for it.

* :func:`follow_problems` / :func:`followed` - pure: what the readings (ip_migration_plan's result: ``etcd``,
  and ``kubernetes`` when read) still lack for one control plane's step ([] / True once it is followed).
* :func:`wait_followed` - read until the step is followed (``retry.wait_until``), or raise :class:`NotFollowed`
  carrying the last readings.
* :func:`wait_verified` - read until ``verified`` (a verification reports, it never fails for what it finds).

A step (ip_migration_plan's ``follow`` option, normalised by :func:`follow_step`) is ``{name, peer_url, moves,
kubernetes_address, kubernetes_address_before, all_healthy}``: etcd must have quorum and list ``peer_url`` for
the member ``name``; with ``all_healthy`` every member healthy and none a learner; and when the step ``moves``
the control plane, Kubernetes must follow: the ``default/kubernetes`` Endpoints and EndpointSlice list the new
address, the Endpoints no longer list the old one, every control plane is Ready. A step that does not move the
node (VIP and certSANs only, or a rollback) needs etcd alone.
"""

from __future__ import annotations

import time

from ansible_collections.tazlab.resilience.plugins.module_utils.ipmigration.plan import peer_url
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.errors import K8sError
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosConfigError, TalosError

__all__ = ['NotFollowed', 'follow_step', 'check_follow', 'follow_problems', 'followed', 'wait_followed',
           'wait_verified', 'transient']


class NotFollowed(Exception):
    """The cluster did not follow the step in time; the result carries the last readings."""

    kind = 'timeout'
    changed = False

    def __init__(self, message, readings=None, problems=None, polls=0, waited=0.0):
        super(NotFollowed, self).__init__(message)
        self.fields = dict(readings or {}, followed=False, follow_problems=list(problems or []), polls=polls,
                           waited=round(waited, 1))
        self.fields['changed'] = False

    def result_fields(self):
        return dict(self.fields)


def follow_step(option):
    """The ``follow`` option as a step: ``address`` becomes its peer URL; missing booleans get their defaults."""
    option = option or {}
    step = dict(name=option.get('name'), peer_url=option.get('peer_url'), moves=bool(option.get('moves')),
                kubernetes_address=option.get('kubernetes_address'),
                kubernetes_address_before=option.get('kubernetes_address_before'),
                all_healthy=option.get('all_healthy') is not False)
    if not step['peer_url'] and option.get('address'):
        step['peer_url'] = peer_url(str(option['address']).strip().strip('[]'))
    return step


def check_follow(option, k8s_auth):
    """Reasons the ``follow`` option cannot be waited for (before any API call)."""
    if option is None:
        return []
    reasons = []
    if not option.get('peer_url') and not option.get('address'):
        reasons.append('follow needs peer_url or address (the peer URL etcd must list for %s)' % option.get('name'))
    elif option.get('peer_url') and option.get('address'):
        reasons.append('follow takes peer_url or address, not both')
    if option.get('moves'):
        missing = [k for k in ('kubernetes_address', 'kubernetes_address_before') if not option.get(k)]
        if missing:
            reasons.append('follow.moves needs %s (where Kubernetes must see the node, and where it must not)'
                           % ' and '.join('follow.' + k for k in missing))
        if k8s_auth is None:
            reasons.append('follow.moves needs k8s_auth: Kubernetes must follow a control plane that moves')
    return reasons


def follow_problems(readings, step):
    """What the readings still lack for the step to be followed ([] when it is). Pure."""
    problems = []
    etcd = readings.get('etcd')
    if etcd is None:
        problems.append('etcd was not read')
    else:
        members = etcd.get('members') or []
        if not etcd.get('quorum'):
            problems.append('etcd has no quorum')
        member = next((m for m in members if m.get('name') == step['name']), None)
        urls = list((member or {}).get('peer_urls') or [])
        if member is None:
            problems.append('etcd has no member %s' % step['name'])
        elif step['peer_url'] not in urls:
            listed = ', '.join(urls) or 'no peer URL'
            problems.append('etcd lists %s for %s, not yet %s' % (listed, step['name'], step['peer_url']))
        if step.get('all_healthy', True):
            unhealthy = [m.get('name') for m in members if not m.get('healthy')]
            if unhealthy:
                problems.append('etcd member(s) not healthy: %s' % ', '.join(map(str, unhealthy)))
            learners = [m.get('name') for m in members if m.get('is_learner')]
            if learners:
                problems.append('etcd learner(s) still joining: %s' % ', '.join(map(str, learners)))
    if not step.get('moves'):
        return problems
    k8s = readings.get('kubernetes')
    if k8s is None:
        problems.append('Kubernetes was not read')
        return problems
    after, before = step['kubernetes_address'], step['kubernetes_address_before']
    endpoints = k8s.get('endpoints') or []
    if after not in endpoints:
        problems.append('Endpoints default/kubernetes list %s, not yet %s' % (endpoints, after))
    if after not in (k8s.get('slice_addresses') or []):
        problems.append('EndpointSlice default/kubernetes lists %s, not yet %s' % (k8s.get('slice_addresses'), after))
    if before in endpoints:
        problems.append('Endpoints default/kubernetes still list the old address %s' % before)
    not_ready = [n.get('name') for n in k8s.get('nodes') or [] if n.get('control_plane') and not n.get('ready')]
    if not_ready:
        problems.append('control plane(s) not Ready: %s' % ', '.join(map(str, not_ready)))
    return problems


def followed(readings, step):
    """Has the cluster followed the step (etcd, and Kubernetes when the step moves the node)? Pure."""
    return not follow_problems(readings, step)


def transient(exc):
    """A read that failed while waiting is "not yet" (the node may be restarting), unless the input is wrong."""
    return isinstance(exc, (TalosError, K8sError)) and not isinstance(exc, TalosConfigError)


class _Probe(object):
    """Counts the reads and keeps the last readings and the last error of a wait."""

    def __init__(self, read):
        self.read, self.polls, self.readings, self.error = read, 0, None, None

    def __call__(self):
        self.polls += 1
        try:
            self.readings = self.read()
        except Exception as exc:  # noqa: BLE001 - wait_until's predicate decides
            self.error = exc
            raise
        self.error = None
        return self.readings


def wait_followed(read, step, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """Read until the step is followed; returns the readings with ``followed``, ``polls`` and ``waited``.

    Raises NotFollowed (the last readings, what they lack, the last read error) after ``timeout`` seconds; a
    read error that is not transient propagates at once."""
    start = clock()
    probe = _Probe(read)
    try:
        readings = wait_until(probe, lambda r: followed(r, step), timeout, interval=interval, is_transient=transient,
                              sleep=sleep, clock=clock, what='%s followed' % step['name'])
    except WaitTimeout as exc:
        problems = follow_problems(probe.readings, step) if probe.readings is not None else []
        why = '; '.join(problems) if problems else 'no reading'
        if probe.error is not None:
            why += '; last read: %s' % probe.error
        raise NotFollowed('the cluster has not followed %s (%s) within %gs: %s' % (
            step['name'], step['peer_url'], timeout, why), readings=probe.readings, problems=problems,
            polls=probe.polls, waited=exc.elapsed)
    return dict(readings, followed=True, follow_problems=[], polls=probe.polls, waited=round(clock() - start, 1))


def wait_verified(read, timeout, interval, sleep=time.sleep, clock=time.monotonic):
    """Read until ``verified``; after ``timeout`` seconds the last readings (``verified`` false, with ``problems``).

    When the last read failed its error propagates (as a single read's would)."""
    start = clock()
    probe = _Probe(read)
    try:
        readings = wait_until(probe, lambda r: r.get('verified'), timeout, interval=interval, is_transient=transient,
                              sleep=sleep, clock=clock, what='verified')
    except WaitTimeout:
        if probe.error is not None:
            raise probe.error
        readings = probe.readings
    return dict(readings, polls=probe.polls, waited=round(clock() - start, 1))
