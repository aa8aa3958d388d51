# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can the cluster lose this node for a while? Plain functions over data read from the APIs.

Disk encryption of STATE/EPHEMERAL wipes them (talos-hardening.md sections 2 and 3): a control plane
loses its etcd data (it leaves etcd and rejoins as a new member), a worker loses every Longhorn replica
under ``/var/lib/longhorn``. Before each node:

* etcd: every member started and voting (no learner), every voter healthy except at most the node
  itself, and the voters left after it leaves keep a majority (:func:`etcd_gate`);
* Longhorn: every volume healthy (attached: ``status.robustness == healthy``; detached: no failed
  replica), and every volume attached to the node or with a replica on it has at least
  ``min_healthy_elsewhere`` healthy replicas on other nodes (``spec.failedAt == ""``, ``spec.healthyAt``
  set, ``status.currentState == running`` for an attached volume) (:func:`longhorn_gate`).

Both return a list of reasons; empty means the node may go.
"""

from __future__ import annotations


def etcd_gate(members, healthy, node_member_id=None):
    """Reasons why the control plane with ``node_member_id`` may not leave etcd now ([] = it may).

    ``members``: EtcdMemberList (dicts with id, hostname, is_learner); ``healthy``: {member id: status
    or None} (talos.etcd.health). ``node_member_id`` None: a worker, or a control plane that is no member
    (then only the cluster's health is checked).
    """
    reasons = []
    if not members:
        return ['etcd has no members (or they could not be listed)']
    learners = [m['hostname'] for m in members if m.get('is_learner')]
    if learners:
        reasons.append('etcd member(s) %s are still learners: a joining member must be promoted first'
                       % ', '.join(sorted(learners)))
    voters = [m for m in members if not m.get('is_learner')]
    unhealthy = sorted(m['hostname'] for m in voters
                       if healthy.get(m['id']) is None and m['id'] != node_member_id)
    if unhealthy:
        reasons.append('etcd member(s) %s are not healthy: losing another member now risks quorum'
                       % ', '.join(unhealthy))
    if node_member_id is not None and any(m['id'] == node_member_id for m in voters):
        left = [m for m in voters if m['id'] != node_member_id]
        healthy_left = [m for m in left if healthy.get(m['id']) is not None]
        need = len(left) // 2 + 1
        if not left:
            reasons.append('this is the only etcd member: wiping it loses the cluster')
        elif len(healthy_left) < need:
            reasons.append('with this member gone %d of %d voters are healthy; quorum needs %d'
                           % (len(healthy_left), len(left), need))
        # while it is away the full cluster (still N members until it leaves) must keep a majority too
        if len(healthy_left) <= len(voters) // 2:
            reasons.append('with this member down %d of %d members are healthy: no majority of %d'
                           % (len(healthy_left), len(voters), len(voters)))
    return reasons


def _spec(obj):
    return obj.get('spec') or {}


def _status(obj):
    return obj.get('status') or {}


def replica_healthy(replica, attached):
    spec, status = _spec(replica), _status(replica)
    if spec.get('failedAt') or not spec.get('healthyAt'):
        return False
    if attached:
        return status.get('currentState') == 'running'
    return True


def volume_summary(volume, replicas):
    """{name, state, robustness, node, replicas: [{name, node, healthy}]} for reports."""
    st = _status(volume)
    attached = st.get('state') == 'attached'
    return dict(name=volume['metadata']['name'], state=st.get('state'), robustness=st.get('robustness'),
                node=st.get('currentNodeID') or '', wanted=int(_spec(volume).get('numberOfReplicas') or 0),
                replicas=[dict(name=r['metadata']['name'], node=_spec(r).get('nodeID'),
                               healthy=replica_healthy(r, attached)) for r in replicas])


def _by_volume(replicas):
    out = {}
    for r in replicas:
        out.setdefault(_spec(r).get('volumeName') or '', []).append(r)
    return out


def longhorn_gate(volumes, replicas, node, min_healthy_elsewhere=1):
    """Reasons why ``node``'s Longhorn data may not be wiped now ([] = it may)."""
    if min_healthy_elsewhere < 1:
        raise ValueError('min_healthy_elsewhere must be at least 1')
    reasons = []
    by_vol = _by_volume(replicas)
    for vol in sorted(volumes, key=lambda v: v['metadata']['name']):
        name = vol['metadata']['name']
        st = _status(vol)
        attached = st.get('state') == 'attached'
        reps = by_vol.get(name, [])
        if attached and st.get('robustness') != 'healthy':
            reasons.append('volume %s is %s, not healthy: wait for Longhorn to rebuild it first'
                           % (name, st.get('robustness') or 'unknown'))
        elif not attached and any(_spec(r).get('failedAt') for r in reps):
            reasons.append('volume %s (detached) has failed replicas: it cannot rebuild while detached'
                           % name)
        here = [r for r in reps if _spec(r).get('nodeID') == node]
        if not here and st.get('currentNodeID') != node:
            continue
        elsewhere = [r for r in reps if _spec(r).get('nodeID') != node and replica_healthy(r, attached)]
        if len(elsewhere) < min_healthy_elsewhere:
            reasons.append('volume %s has %d healthy replica(s) outside %s (needs %d): wiping %s would leave it '
                           'without a healthy copy' % (name, len(elsewhere), node, min_healthy_elsewhere, node))
    return reasons


def longhorn_rebuilt(volumes, replicas):
    """Reasons why Longhorn is not back to full health yet ([] = every volume healthy again)."""
    reasons = []
    by_vol = _by_volume(replicas)
    for vol in sorted(volumes, key=lambda v: v['metadata']['name']):
        name = vol['metadata']['name']
        st = _status(vol)
        attached = st.get('state') == 'attached'
        if attached and st.get('robustness') != 'healthy':
            reasons.append('volume %s is %s' % (name, st.get('robustness') or 'unknown'))
            continue
        if attached:
            healthy = [r for r in by_vol.get(name, []) if replica_healthy(r, True)]
            if len(healthy) < int(_spec(vol).get('numberOfReplicas') or 1):
                reasons.append('volume %s has %d of %s replicas healthy' % (
                    name, len(healthy), _spec(vol).get('numberOfReplicas')))
    return reasons


def without_healthy_replica(volumes, replicas):
    """Names of volumes with no healthy replica at all (the invariant the rollout keeps)."""
    out = []
    by_vol = _by_volume(replicas)
    for vol in volumes:
        attached = _status(vol).get('state') == 'attached'
        if not any(replica_healthy(r, attached) for r in by_vol.get(vol['metadata']['name'], [])):
            out.append(vol['metadata']['name'])
    return sorted(out)
