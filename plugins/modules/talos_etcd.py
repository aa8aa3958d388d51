#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: talos_etcd
short_description: Inspect and operate the etcd cluster of Talos control planes without breaking quorum
version_added: 0.1.0
description:
  - Lists etcd members and their health, removes a member, makes a node leave, takes a snapshot
    (streamed to a file with its SHA-256) and recovers a wiped control plane from a snapshot
    (C(EtcdRecover) then C(Bootstrap) with C(recover_etcd)).
  - Removing a member or leaving is refused when the healthy voting members left would not be a majority
    (unless O(force)); recovering is refused while etcd runs on the node or while a peer in O(peers) still
    has a leader.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.talos_auth
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details: Reads and the quorum checks run; nothing is removed, written or uploaded.
  diff_mode:
    support: full
    details: The member list before and after O(action=remove) or O(action=leave); the snapshot file; the recovered node.
options:
  action:
    description:
      - V(members), V(status) and V(health) only read; V(remove), V(leave), V(snapshot) and V(recover) change
        something.
      - V(health) is what a guard asks - the member list from the first endpoint that gives it (O(node) or
        each endpoint of the talosconfig in turn), then each member's own EtcdStatus; fails when no endpoint
        gives the member list.
    type: str
    required: true
    choices: [members, status, health, remove, leave, snapshot, recover]
  node:
    description:
      - The control plane to talk to (reached through the endpoints with the C(node) metadata).
    type: str
  member:
    description:
      - With O(action=remove), the member's hostname, address or id (decimal or hex).
    type: str
  dest:
    description:
      - With O(action=snapshot), the file to write (atomically, mode 0600).
    type: path
  src:
    description:
      - With O(action=recover), the snapshot file to upload.
    type: path
  checksum:
    description:
      - With O(action=recover), the expected SHA-256 of O(src) (as returned by a snapshot); checked before anything
        is sent.
    type: str
  recover_skip_hash_check:
    description:
      - With O(action=recover), accept a raw C(db) copy without etcd's appended integrity hash.
    type: bool
    default: false
  peers:
    description:
      - With O(action=recover), the other control planes; if one of them still reports an etcd leader, recover is
        refused.
    type: list
    elements: str
  force:
    description:
      - Remove or leave even when quorum would be lost.
    type: bool
    default: false
  snapshot_timeout:
    description:
      - Seconds the snapshot stream may take (default O(timeout)).
    type: float
"""

EXAMPLES = r"""
- name: Which etcd members are healthy (what the disaster_recovery role's etcd guard asks)
  tazlab.resilience.talos_etcd:
    action: health
  register: etcd

- name: Back up etcd
  tazlab.resilience.talos_etcd:
    node: 10.0.0.11
    action: snapshot
    dest: /backup/etcd-{{ ansible_date_time.iso8601_basic_short }}.snapshot
  register: snap

- name: Remove the member of a dead control plane
  tazlab.resilience.talos_etcd:
    node: 10.0.0.11
    action: remove
    member: cp3

- name: Restore on a wiped control plane
  tazlab.resilience.talos_etcd:
    node: 10.0.0.11
    action: recover
    src: "{{ snap.dest }}"
    checksum: "{{ snap.checksum }}"
    peers: [10.0.0.12, 10.0.0.13]
"""

RETURN = r"""
members:
  description:
    - The etcd members (after the change for remove/leave).
    - With O(action=health) each also has C(host) (its client URL's host), C(healthy), C(state) (V(healthy),
      V(down) when the node answered that its etcd does not run or has errors, V(unreachable) when the node did
      not answer) and C(error).
  returned: action in (members, status, health, remove, leave)
  type: list
  elements: dict
  sample: [{id: 1234, hostname: cp1, peer_urls: ["https://10.0.0.11:2380"], client_urls: ["https://10.0.0.11:2379"],
            is_learner: false}]
healthy:
  description: Member hostname to health (its EtcdStatus answers without errors).
  returned: action=status
  type: dict
status:
  description: EtcdStatus of O(node) (member_id, leader, db_size, raft_index, errors, ...).
  returned: action=status
  type: dict
member:
  description: The member removed (or leaving).
  returned: action in (remove, leave) and it was a member
  type: dict
voters:
  description: Voting members (O(action=health)).
  returned: action=health
  type: int
healthy_voters:
  description: Voting members whose EtcdStatus answers without errors (O(action=health)).
  returned: action=health
  type: int
quorum:
  description: Voters needed for quorum (O(action=health)).
  returned: action=health
  type: int
asked:
  description: The endpoint that gave the member list (O(action=health)).
  returned: action=health
  type: str
quorum_check:
  description: Why the removal keeps quorum.
  returned: action in (remove, leave) and it was a member
  type: str
dest:
  description: The snapshot file.
  returned: action=snapshot, not in check mode
  type: str
size:
  description: Bytes of the snapshot (written or uploaded).
  returned: action in (snapshot, recover), not in check mode for snapshot
  type: int
checksum:
  description: SHA-256 (hex) of the snapshot.
  returned: action in (snapshot, recover), not in check mode for snapshot
  type: str
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.args import (
    merge_auth_kwargs, talos_auth_argument_spec, talos_libraries)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.etcd import ACTIONS, check_options, run_etcd_module


def argument_spec():
    spec = talos_auth_argument_spec()
    spec.update(
        action=dict(type='str', required=True, choices=list(ACTIONS)),
        node=dict(type='str'),
        member=dict(type='str'),
        dest=dict(type='path'),
        src=dict(type='path'),
        checksum=dict(type='str'),
        recover_skip_hash_check=dict(type='bool', default=False),
        peers=dict(type='list', elements='str'),
        force=dict(type='bool', default=False),
        snapshot_timeout=dict(type='float'),
    )
    return spec


def main():
    run_module(argument_spec(), run_etcd_module, requires=[talos_libraries], check=check_options,
               **merge_auth_kwargs(required_if=[('action', 'remove', ['member']), ('action', 'snapshot', ['dest']),
                                                ('action', 'recover', ['src'])]))


if __name__ == '__main__':
    main()
