#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: proxmox_fence
short_description: Fence a Proxmox VE virtual machine and prove it is powered off
version_added: 0.1.0
description:
  - Powers a QEMU VM of a Proxmox VE cluster off (hard stop), on, or cycles it, and reports its power state.
  - Built for node recovery. Storage of a dead Kubernetes node may only be freed once its VM is B(confirmed)
    powered off. The module therefore returns RV(fenced=true) only when a fresh read of the VM's
    C(status/current) says V(stopped) after the action and nothing failed. A successful stop task proves
    nothing by itself (for an HA-managed VM it only asks the HA manager).
  - A VM on a PVE node that is offline or unreachable has an B(unknown) power state, never "off"; the
    module fails for it. It also refuses to act when the cluster is not quorate (see O(require_quorum)).
  - With O(expected_system_uuid) the VM's SMBIOS UUID (what the kubelet reports as the node's
    C(systemUUID)) must match before anything is changed.
  - The VM is found through C(/cluster/resources), by O(vmid) or by O(name), on whichever node it runs.
  - Reads and the hard stop (idempotent) are retried on network faults with exponential backoff and jitter
    within a bounded time; starts are sent once. Every wait is bounded by a timeout.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - tazlab.resilience.proxmox_auth
  - tazlab.resilience.k8s_auth.nested_auth
attributes:
  platform:
    platforms: all
  check_mode:
    support: full
    details:
      - Reads the VM (GET requests only) and returns the plan; no write request is sent.
      - For a VM a real run would stop, the result is a predicted proof (RV(predicted)), which
        M(tazlab.resilience.csi_force_detach) plans with in check mode and refuses in a real run.
  diff_mode:
    support: full
    details: Shows the power state and HA state before and after.
options:
  vmid:
    description:
      - ID of the VM. One of O(vmid) or O(name) is required.
    type: int
  name:
    description:
      - Name of the VM; must be unique in the cluster (or on O(node)). One of O(vmid) or O(name) is required.
      - VMs on an offline node may be listed without a name; use O(vmid) for those.
    type: str
  node:
    description:
      - PVE node the VM must be on. Optional; the module finds the VM wherever it runs and fails if it is
        not on this node.
    type: str
  state:
    description:
      - The fence agent action. V(off) hard-stops the VM (after an optional graceful shutdown) and confirms it reads V(stopped).
      - V(on) starts it (and gives an HA-managed VM back to the HA manager) and confirms it reads V(running).
      - V(reboot) stops it, confirms it is stopped, then starts it. It never uses a reset.
      - V(status) only reads the power state.
    type: str
    choices: [ 'off', 'on', 'reboot', 'status' ]
    default: 'off'
    aliases: [ action ]
  graceful:
    description:
      - Before the hard stop, ask the guest to shut down (ACPI or guest agent) and wait up to O(shutdown_timeout)
        seconds. If it does not power off in that time the hard stop follows.
    type: bool
    default: false
  shutdown_timeout:
    description:
      - Seconds the graceful shutdown may take (with O(graceful=true)).
    type: int
    default: 30
  stop_timeout:
    description:
      - Seconds from the hard stop request until the VM must read V(stopped); the module fails after that.
    type: int
    default: 60
  start_timeout:
    description:
      - Seconds from the start request until the VM must read V(running).
    type: int
    default: 120
  poll_interval:
    description:
      - Seconds between two reads of a task or of the VM's status while waiting (the pace grows up to 2 seconds).
    type: float
    default: 1.0
  skiplock:
    description:
      - Stop the VM even if it holds a lock (a backup, a migration). PVE only allows this to a password login
        as V(root@pam); the module refuses it for any other login before making any request.
    type: bool
    default: false
  ha_state:
    description:
      - For an HA-managed VM, the HA resource state to set while it is fenced, so the HA manager does not start
        it again during the recovery. V(ignored) is set before the stop (the stop then bypasses HA);
        V(disabled) after the stop is confirmed. O(action=on) sets the state back to V(started).
      - Without it an HA-managed VM is stopped through the HA manager (its requested state becomes V(stopped)).
    type: str
    choices: [ 'ignored', 'disabled' ]
  expected_system_uuid:
    description:
      - The SMBIOS UUID the VM must have (compared case-insensitively with the C(uuid) of its C(smbios1)
        config), for example the Kubernetes node's C(status.nodeInfo.systemUUID). On a mismatch the module
        fails before any write.
      - The VM is found by this UUID across all VMs of the cluster (one config read per VM); no VM or several
        VMs carrying it fail before any write, naming the VMIDs and PVE hosts. A O(vmid) that is not the one VM
        carrying the UUID fails too.
    type: str
  k8s_node:
    description:
      - Fence the VM of this Kubernetes node, so that "fence worker-new-03" is one task. The module reads the
        node's C(status.nodeInfo.systemUUID) through O(k8s_auth) and uses it as O(expected_system_uuid) (both
        given must agree). The VM is the one VM carrying that UUID (a renamed VM is found; a VM merely named
        like the node is not taken for it).
    type: str
  k8s_auth:
    description:
      - Kubernetes connection options for O(k8s_node), with the names, aliases and C(K8S_AUTH_*) environment
        fallbacks of the C(tazlab.resilience.k8s_auth) doc fragment (and of kubernetes.core).
      - Nested so that its C(validate_certs) never mixes with the Proxmox O(validate_certs).
    type: dict
    default: {}
  require_quorum:
    description:
      - Refuse to act when the cluster, seen from O(api_host), is not quorate. Without quorum the endpoint's view
        of the VM is not authoritative and the HA manager of the quorate part may start the VM elsewhere.
    type: bool
    default: true
  check_permissions:
    description:
      - Before any write, check with C(GET /access/permissions) that the login or token holds what the planned
        steps need (C(VM.PowerMgmt) on C(/vms/<vmid>) for stop, shutdown and start; C(Sys.Console) on C(/) to
        set the HA state) and fail with the missing privilege named. See the collection's
        C(docs/least-privilege.md) for a fencing role.
    type: bool
    default: true
notes:
  - Tested against the fakepve twin of the PVE API and compared with the ClusterLabs C(fence_pve) agent, which the
    module agrees with or is stricter than.
  - To fence by Kubernetes node name give O(k8s_node) (and O(k8s_auth)); the VM is still found by the node's
    SMBIOS UUID, never by its name.
seealso:
  - name: fence_pve
    description: The ClusterLabs fence agent for Proxmox VE.
    link: https://github.com/ClusterLabs/fence-agents/tree/main/agents/pve
"""

EXAMPLES = r"""
- name: Fence the VM of a dead Kubernetes node, making sure it is the right machine
  tazlab.resilience.proxmox_fence:
    api_host: pve1.example.org
    api_user: root@pam
    api_token_id: fence
    api_token_secret: "{{ vault_pve_fence_token }}"
    ca_path: /etc/pki/pve-root-ca.pem
    name: talos-worker-2
    action: "off"
    expected_system_uuid: "{{ node_info.systemUUID }}"
    stop_timeout: 60
  register: fence

- name: Only now free the node's storage
  ansible.builtin.debug:
    msg: "{{ fence.name }} confirmed off on {{ fence.node }} at {{ fence.timestamp }}"
  when: fence.fenced

- name: Stop an HA-managed VM and keep the HA manager away from it during recovery
  tazlab.resilience.proxmox_fence:
    api_host: pve1.example.org
    api_password: "{{ vault_pve_root_password }}"
    vmid: 104
    action: "off"
    ha_state: ignored
    graceful: true
    shutdown_timeout: 20

- name: Power it back on and give it back to HA
  tazlab.resilience.proxmox_fence:
    api_host: pve1.example.org
    api_password: "{{ vault_pve_root_password }}"
    vmid: 104
    action: "on"

- name: What would happen (no write request)
  tazlab.resilience.proxmox_fence:
    api_host: pve1.example.org
    api_password: "{{ vault_pve_root_password }}"
    vmid: 104
  check_mode: true
  register: plan
"""

RETURN = r"""
fenced:
  description:
    - True only if the VM read V(stopped) in a fresh C(status/current) after the action (O(action=off) or
      O(action=status)), nothing failed, and an HA-managed VM is not requested to be V(started).
    - In check mode true only for a VM that reads V(stopped) now (that read is the proof) and that HA would
      not start again; a running VM is never reported fenced in check mode (see RV(would_fence) and
      RV(predicted)).
    - Always false for V(on) and V(reboot).
  returned: always
  type: bool
  sample: true
would_fence:
  description:
    - Check mode only - whether the run would leave the VM fenced (stopped, and not requested V(started) by HA).
  returned: in check mode
  type: bool
  sample: true
predicted:
  description:
    - Check mode only - true when RV(fenced) is false only because check mode stops nothing - a real run would
      stop the VM and prove it off (RV(would_fence) is true, the VM does not read V(stopped) yet). The result is
      then a predicted proof, with RV(smbios_uuid) as read and RV(power_state_after) the expected V(stopped).
    - A predicted proof is not a proof - M(tazlab.resilience.csi_force_detach) accepts it as its
      O(tazlab.resilience.csi_force_detach#module:fence) in check mode only, and refuses it in a real run.
    - A real run never returns it.
  returned: in check mode
  type: bool
  sample: true
power_state_before:
  description: Power state before the action.
  returned: always
  type: str
  sample: running
  choices: [ running, stopped, unknown ]
power_state_after:
  description: Power state read after the action (in check mode, the expected one). V(unknown) if it could not be read.
  returned: always
  type: str
  sample: stopped
ha_state_before:
  description: HA state of the VM before the action (null if it is not HA-managed).
  returned: when the VM was found
  type: str
  sample: started
ha_state_after:
  description: HA state read after the action.
  returned: when the VM was found
  type: str
  sample: stopped
vmid:
  description: ID of the VM.
  returned: always
  type: int
  sample: 104
name:
  description: Name of the VM.
  returned: always
  type: str
  sample: talos-worker-2
node:
  description: PVE node the VM is on.
  returned: always
  type: str
  sample: pve2
action:
  description: The action carried out.
  returned: always
  type: str
  sample: "off"
permissions_checked:
  description: The privileges checked before the first write (O(check_permissions)).
  returned: when something was to be done
  type: list
  elements: str
  sample: ["VM.PowerMgmt on /vms/106", "Sys.Console on /"]
smbios_uuid:
  description: The VM's SMBIOS UUID (from C(smbios1)); null if it could not be read.
  returned: always
  type: str
  sample: 5b0d3f1e-8a64-4b8e-9a53-0f4a8d1b7c21
identity_verified:
  description: Whether the SMBIOS UUID was checked against O(expected_system_uuid).
  returned: when the action ran
  type: bool
upid:
  description: UPID of the last task started (null if none).
  returned: always
  type: str
  sample: "UPID:pve2:00003A2B:0001F3C4:6563A1B0:qmstop:104:root@pam:"
exitstatus:
  description: "Exit status of that task: V(OK), C(WARNINGS: n) or the error text."
  returned: always
  type: str
  sample: OK
tasks:
  description: Every task started, with its step, UPID and exit status.
  returned: when the action ran
  type: list
  elements: dict
elapsed:
  description: Seconds the module took.
  returned: always
  type: float
  sample: 3.412
started_at:
  description: UTC time the action started (ISO 8601).
  returned: when the action ran
  type: str
timestamp:
  description: UTC time of the result (ISO 8601), the moment the final power state was read.
  returned: always
  type: str
  sample: "2026-11-25T09:12:44Z"
plan:
  description: The steps planned (op, args, why), the expected power state and warnings.
  returned: when the VM was found and no refusal applied
  type: dict
facts:
  description: What was read about the VM before planning (status, lock, HA, node online, quorum).
  returned: when the VM was found
  type: dict
error:
  description:
    - On failure, the classified error. C(kind) is one of V(auth_rejected), V(permission), V(invalid),
      V(not_found), V(network), V(timeout), V(host_offline), V(locked), V(no_quorum), V(task_failed),
      V(identity_mismatch), V(api); C(task_log) holds the last lines of a failed task's log.
  returned: on failure
  type: dict
  sample: {kind: locked, message: "task UPID:... failed: VM is locked (backup)", task_log: ["TASK ERROR: VM is locked (backup)"]}
warnings:
  description:
    - Things worth knowing (a lock, a graceful shutdown that timed out), each also shown as an Ansible warning.
      The collection's one key for warnings, kept by C(register) (formerly C(notes), which is gone).
  returned: when there is one
  type: list
  elements: str
api_retries:
  description: How many API requests were retried after a transient fault.
  returned: when the action ran
  type: int
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import (
    merge_auth_kwargs, proxmox_auth_argument_spec, proxmox_libraries,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.fence import check_options, run_fence_module
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    spec = proxmox_auth_argument_spec()
    spec.update(
        vmid=dict(type='int'),
        name=dict(type='str'),
        node=dict(type='str'),
        state=dict(type='str', default='off', choices=['off', 'on', 'reboot', 'status'], aliases=['action']),
        graceful=dict(type='bool', default=False),
        shutdown_timeout=dict(type='int', default=30),
        stop_timeout=dict(type='int', default=60),
        start_timeout=dict(type='int', default=120),
        poll_interval=dict(type='float', default=1.0),
        skiplock=dict(type='bool', default=False),
        ha_state=dict(type='str', choices=['ignored', 'disabled']),
        expected_system_uuid=dict(type='str'),
        require_quorum=dict(type='bool', default=True),
        check_permissions=dict(type='bool', default=True),
        k8s_node=dict(type='str'),
        k8s_auth=dict(type='dict', default={}, options=k8s_auth_suboptions(request_bounds=False)),
    )
    return spec


def main():
    run_module(argument_spec(), run_fence_module, requires=[proxmox_libraries], check=check_options,
               **merge_auth_kwargs(required_one_of=[('vmid', 'name', 'k8s_node')]))


if __name__ == '__main__':
    main()
