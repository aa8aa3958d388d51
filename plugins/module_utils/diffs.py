# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``--diff`` of the modules that change things, built from their plan or result alone (pure functions).

Each returns Ansible's diff shape, ``{'before': dict, 'after': dict, 'before_header', 'after_header'}``; in
check mode the plan is the diff, after a run it is what was done.
"""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils import names

__all__ = ['force_detach_diff', 'etcd_diff']

OUT_OF_SERVICE = names.OUT_OF_SERVICE_TAINT


def _taint_text(taint):
    taint = taint or {}
    value = taint.get('value')
    return '{0}{1}:{2}'.format(taint.get('key') or OUT_OF_SERVICE, '=' + value if value else '',
                               taint.get('effect') or 'NoExecute')


def force_detach_diff(plan):
    """What csi_force_detach changes on the node: the out-of-service taint, its pods, the VolumeAttachments
    and the Longhorn attachment tickets that name it (out_of_service: Kubernetes' controllers remove pods and
    attachments once the taint is on; direct: the module removes what its actions name)."""
    plan = plan or {}
    node = plan.get('node')
    taint = _taint_text(plan.get('taint'))
    pods = sorted('{0}/{1}'.format(p.get('namespace'), p.get('name')) for p in plan.get('pods') or [])
    vas = sorted(v.get('name') for v in plan.get('volume_attachments') or [] if v.get('name'))
    tickets = sorted('{0}: {1}'.format(t.get('volume'), t.get('ticket')) for t in plan.get('longhorn_tickets') or [])
    action = plan.get('taint_action')
    has_taint = action in ('keep', 'remove')
    before = {'node': node, 'taints': [taint] if has_taint else [], 'pods': pods, 'volume_attachments': vas,
              'longhorn_tickets': tickets}
    after = dict(before)
    actions = plan.get('actions') or []
    kinds = set(a.get('action') for a in actions)
    if action == 'add':
        after['taints'] = [taint]
    elif action == 'remove':
        after['taints'] = []
    if plan.get('state') != 'absent' and action == 'add' and plan.get('strategy') == 'out_of_service':
        # The out-of-service taint makes the pod GC force-delete the node's pods and the attach-detach
        # controller delete its VolumeAttachments.
        after.update(pods=[], volume_attachments=[])
    if 'force_delete_pod' in kinds:
        gone = set('{0}/{1}'.format(a['namespace'], a['name']) for a in actions if a['action'] == 'force_delete_pod')
        after['pods'] = [p for p in after['pods'] if p not in gone]
    if 'delete_volume_attachment' in kinds:
        gone = set(a['name'] for a in actions if a['action'] == 'delete_volume_attachment')
        after['volume_attachments'] = [v for v in after['volume_attachments'] if v not in gone]
    if 'remove_longhorn_ticket' in kinds:
        gone = set('{0}: {1}'.format(a['volume'], a['ticket']) for a in actions if a['action'] == 'remove_longhorn_ticket')
        after['longhorn_tickets'] = [t for t in after['longhorn_tickets'] if t not in gone]
    return {'before': before, 'after': after, 'before_header': 'node {0}'.format(node),
            'after_header': 'node {0} ({1})'.format(node, plan.get('strategy') or plan.get('state'))}


def _member(m):
    urls = ', '.join(m.get('peer_urls') or [])
    return '{0} ({1}){2}'.format(m.get('hostname'), urls, ' learner' if m.get('is_learner') else '')


def etcd_diff(result):
    """What talos_etcd changes: the member list (remove, leave), the snapshot file, the recovered data."""
    action = result.get('action')
    if action in ('remove', 'leave'):
        members = result.get('members_before') or []
        target = result.get('member') or {}
        before = {'members': sorted(_member(m) for m in members)}
        after = {'members': sorted(_member(m) for m in members if not target or m.get('id') != target.get('id'))}
        return {'before': before, 'after': after, 'before_header': 'etcd members',
                'after_header': 'etcd members after {0} {1}'.format(action, target.get('hostname') or '')}
    if action == 'snapshot':
        dest = result.get('dest')
        return {'before': {'snapshot': None}, 'after': {'snapshot': dest, 'checksum': result.get('checksum')},
                'before_header': 'etcd snapshot', 'after_header': dest or 'etcd snapshot'}
    if action == 'recover':
        return {'before': {'etcd': 'Preparing (no data)'},
                'after': {'etcd': 'recovered from {0}'.format(result.get('src')), 'checksum': result.get('checksum')},
                'before_header': 'etcd on {0}'.format(result.get('node')),
                'after_header': 'etcd on {0}'.format(result.get('node'))}
    return {'before': {}, 'after': {}}
