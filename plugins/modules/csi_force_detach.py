#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: csi_force_detach
short_description: Free the RWO volumes of a Kubernetes node that is confirmed powered off
version_added: 0.1.0
description:
  - Named for what it does - it frees the volumes of any CSI driver (Longhorn's attachment tickets too, when
    Longhorn is installed). It was called C(tazlab.resilience.longhorn_force_detach); that name still works - it
    is a redirect to this module (and to its action) in the collection's C(meta/runtime.yml), deprecated, to be
    removed in 2.0.0.
  - Ends the C(Multi-Attach error) deadlock after a node dies with ReadWriteOnce volumes attached
    (Longhorn or any CSI driver), so the pods it ran start on other nodes within seconds instead of
    the 6+ minutes Kubernetes needs on its own.
  - B(The one rule) - it never detaches storage from, taints out-of-service, or force-deletes the pods of a
    node that is not confirmed powered off. It refuses a node whose C(Ready) condition is C(True) (a
    partitioned but running node would get two writers on one volume), and it needs O(fence), the
    registered result of M(tazlab.resilience.proxmox_fence) for that node, with C(fenced=true) and a
    C(smbios_uuid) equal (case-insensitively) to the node's C(status.nodeInfo.systemUUID). Without a proof
    it refuses unless O(assume_fenced=true), which is reported loudly in the result and as a warning.
  - B(Verified at the moment of freeing) - right before its first write it reads Proxmox itself, through
    O(proxmox_auth); exactly one VM of the PVE cluster must carry the node's SMBIOS UUID, and a fresh
    C(status/current) of that VM must read C(stopped) now (and HA must not be about to start it). A proof
    alone is a claim, not a power reading - a hand-written dict with C(fenced=true) and the node's UUID, or
    an old result reused after the node came back, proves nothing. The proof must also be younger than the kubelet
    lease's last renewal. Without O(proxmox_auth) it refuses unless O(assume_fenced=true) (reported loudly).
  - It also refuses (and stops between steps) as soon as the node's kubelet renews its C(kube-node-lease) Lease
    after the node went NotReady - the VM was started again after the fence (an HA manager, a human), so a
    proof that was true is not any more. Both times compared are written by the cluster.
  - O(strategy=out_of_service) (the default, KEP-2268 non-graceful node shutdown) adds the taint
    C(node.kubernetes.io/out-of-service=nodeshutdown:NoExecute) (taints are replaced whole - read, modify,
    write with the resourceVersion) and the annotations C(node.kubernetes.io/out-of-service-applied-by) and
    C(remediation.tazlab.io/out-of-service-applied-at), then lets Kubernetes force-delete the pods and delete
    the VolumeAttachments. If that makes no progress for O(stall_timeout) seconds it falls back to the
    direct steps.
  - O(strategy=direct) follows Longhorn's own node-down order (longhorn-manager C(handlePodDeletionIfNodeDown)) -
    it deletes the node's VolumeAttachments first, waits until they are gone, and only then force-deletes the
    node's pods (a pod force-deleted first gets a replacement at once, which stays in C(Multi-Attach error) and
    the kubelet's growing retry back-off). It force-deletes the pods with grace period 0, clears the node's C(status.volumesInUse)
    (a powered-off node mounts nothing; otherwise the attach/detach controller keeps the volume for its
    6-minute C(maxWaitForUnmountDuration), or until its 1-minute resync after a VolumeAttachment deletion),
    deletes the VolumeAttachments that
    name the node (listed and filtered client-side - C(spec.nodeName) is not a VolumeAttachment field
    selector) and removes the node's stale C(csi-attacher) tickets (those whose VolumeAttachment is gone;
    while it exists the driver removes the ticket itself when it releases the attachment) from Longhorn's
    C(volumeattachments.longhorn.io) with a JSON merge patch. Finalizers of a VolumeAttachment are stripped
    only when it stayed deleting for O(finalizer_timeout) seconds (the driver cannot release it), each one
    reported.
  - Without Longhorn (no C(longhorn.io/v1beta2) API group) the Longhorn steps are skipped and any CSI driver
    is handled through its VolumeAttachments.
  - With O(wait=true) it verifies recovery - no terminating pod on the node, no VolumeAttachment and no
    Longhorn ticket naming it, every affected volume attached to its new node and not faulted, every
    affected Deployment and StatefulSet back to its desired number of running pods - and reports each
    volume and workload with the time it recovered.
  - O(state=absent) removes the out-of-service taint (and the annotations) once the node is back (C(Ready))
    or the cleanup is complete; DaemonSet pods do not tolerate the taint, so remove it before the node
    returns.
  - The plan is a pure function of the observed cluster; check mode returns it (pods, attachments, tickets,
    taint) and sends no write request. A second run finds nothing to do and reports no change.
author:
  - TazLab resilience engineers (@tazlab)
extends_documentation_fragment:
  - tazlab.resilience.k8s_auth
  - tazlab.resilience.proxmox_auth.nested
attributes:
  check_mode:
    support: full
    description: Returns the exact plan and writes nothing.
  diff_mode:
    support: full
    description: The node's out-of-service taint, its pods, VolumeAttachments and Longhorn tickets before and after.
options:
  node:
    description:
      - Name of the Kubernetes node whose storage is released.
    type: str
    required: true
  state:
    description:
      - V(present) releases the node's storage.
      - V(absent) removes the out-of-service taint when the node is C(Ready) again or nothing ties it any
        more (no terminating pod, no VolumeAttachment); otherwise it fails and says what remains.
    type: str
    choices: [ present, absent ]
    default: present
  strategy:
    description:
      - V(out_of_service) taints the node and lets Kubernetes clean up, falling back to V(direct) steps when
        progress stalls.
      - V(direct) force-deletes pods, deletes VolumeAttachments and removes Longhorn tickets itself.
    type: str
    choices: [ out_of_service, direct ]
    default: out_of_service
  fence:
    description:
      - The registered result of M(tazlab.resilience.proxmox_fence) for this node's VM. It must say
        C(fenced=true), must not have failed, C(power_state_after) (when present) must be C(stopped), and its
        C(smbios_uuid) must equal the node's C(status.nodeInfo.systemUUID) (case-insensitive).
      - A proof that contradicts these is a refusal even with O(assume_fenced=true), except in check mode, where
        O(assume_fenced=true) shows the plan as if the fence had been confirmed and warns why the proof would not
        do for real.
      - B(Check mode) - M(tazlab.resilience.proxmox_fence) in check mode stops nothing; for a VM a real run would
        stop it returns a predicted proof (C(predicted=true), C(fenced=false)). In check mode this module accepts
        it - it shows the plan as if the fence had been confirmed, and what a real run would refuse (the power
        state Proxmox reads now, another SMBIOS UUID) becomes a check-mode warning. Outside check mode a predicted
        proof is always refused (a predicted proof from a check-mode fence is not a proof), with
        O(assume_fenced=true) too, before any API call.
    type: dict
  assume_fenced:
    description:
      - Act without O(fence) because you have confirmed yourself that the node is powered off. Reported in
        RV(assumed_fenced) and as a warning. Dangerous on a node that is only unreachable.
      - Also what lets a run without O(proxmox_auth) go on (the power state is then not read before freeing).
    type: bool
    default: false
  proxmox_auth:
    description:
      - The Proxmox VE connection, to read the node's VM (by SMBIOS UUID) right before freeing. The options of
        the C(tazlab.resilience.proxmox_auth) doc fragment (O(proxmox_auth.api_host), O(proxmox_auth.api_user),
        O(proxmox_auth.api_token_id), O(proxmox_auth.api_token_secret), ...), with the same E(PROXMOX_*)
        environment fallbacks.
      - Filled from the C(module_defaults) of C(group/tazlab.resilience.proxmox) when the play sets them (the
        module's action plugin reads them); keys given here win over those defaults.
      - Without an O(proxmox_auth.api_host) the module has no Proxmox access and refuses unless O(assume_fenced).
      - Nested so that its C(validate_certs) never mixes with the Kubernetes O(validate_certs).
    type: dict
    default: {}
  pvcs:
    description:
      - Limit the direct steps and the verification to these PersistentVolumeClaims, as V(namespace/name)
        or V(name). The out-of-service taint always applies to the whole node.
    type: list
    elements: str
  volumes:
    description:
      - Limit the direct steps and the verification to these volumes (PersistentVolume names or Longhorn
        volume names, that is CSI volume handles).
    type: list
    elements: str
  actor:
    description:
      - Who applies the taint, written to the C(node.kubernetes.io/out-of-service-applied-by) annotation.
      - The default is the name the taint has always been applied under (the module's former name), so that
        tooling that looks for it keeps finding it.
    type: str
    default: tazlab.resilience.longhorn_force_detach
  wait:
    description:
      - Wait for the cleanup and verify recovery (see description). With V(false) the module returns after
        tainting (V(out_of_service)) or after the direct steps (V(direct)).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds from the start of the module until cleanup and verification must be done.
    type: float
    default: 300
  poll_interval:
    description:
      - Seconds between two observations while waiting.
    type: float
    default: 2
  stall_timeout:
    description:
      - V(out_of_service) only - seconds without progress (fewer pods, attachments or tickets tying the node)
        after which the direct steps are carried out.
    type: float
    default: 60
  stale_ready_after:
    description:
      - Right after a power loss the node still reads C(Ready) until Kubernetes notices (its node monitor grace
        period). With a B(verified) fence proof, a node whose kubelet has not renewed its Lease for this many
        seconds (judged on the API server's clock) is known to be down. Its C(Ready) condition is stale and its
        storage is freed with the direct steps (the out-of-service path waits for C(NotReady)). Without a
        verified proof a C(Ready) node is always refused.
      - Unset, it derives from the node's own Lease - one renew interval of the kubelet (a quarter of
        C(leaseDurationSeconds), plus its 4% jitter) plus 2 seconds for a renewal in flight, 12.4 seconds for the
        default 40 second lease - so a lease this silent has missed a renewal. The power proof stays required.
    type: float
  stale_wait:
    description:
      - Seconds to wait for that silence (or for C(NotReady)) when the node still reads C(Ready) and the fence
        proof is verified; a lease renewal meanwhile means the node is alive and ends in a refusal. V(0) does not
        wait.
    type: float
    default: 60
  finalizer_timeout:
    description:
      - Seconds a deleted VolumeAttachment of the node may stay (held by its finalizer) before the finalizers
        are stripped, when O(strip_finalizers=true).
    type: float
    default: 60
  longhorn_namespace:
    description:
      - The namespace Longhorn is installed in (its C(volumes.longhorn.io) and C(volumeattachments.longhorn.io)).
        The Helm chart installs it in C(longhorn-system) unless told otherwise.
    type: str
    default: longhorn-system
  strip_finalizers:
    description:
      - Allow stripping the finalizers of a VolumeAttachment that the driver did not release within
        O(finalizer_timeout). This skips the storage-side detach, so it is a last resort; each one is reported
        in RV(finalizers_stripped).
    type: bool
    default: true
notes:
  - C(tazlab.resilience.longhorn_force_detach) is redirected here (module and action, with a deprecation warning);
    plays that use it work unchanged, with C(module_defaults) of the C(group/tazlab.resilience.kubernetes) and
    C(group/tazlab.resilience.proxmox) groups and as an C(async) task.
  - Run it after M(tazlab.resilience.proxmox_fence) (see the safe order in the collection's runbooks), and
    remove the taint with O(state=absent) before powering the VM back on.
seealso:
  - module: tazlab.resilience.proxmox_fence
  - name: Non-graceful node shutdown
    description: The out-of-service taint (KEP-2268).
    link: https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/#non-graceful-node-shutdown
"""

EXAMPLES = r"""
- name: Fence the dead worker through Proxmox
  tazlab.resilience.proxmox_fence:
    api_host: pve1.example.org
    api_token_id: "{{ pve_token_id }}"
    api_token_secret: "{{ pve_token_secret }}"
    name: worker-new-03
    action: "off"
  register: fence

- name: Free its Longhorn volumes the Kubernetes way (out-of-service taint), re-reading Proxmox first
  tazlab.resilience.csi_force_detach:
    node: worker-new-03
    fence: "{{ fence }}"
    proxmox_auth:
      api_host: pve1.example.org
      api_token_id: "{{ pve_token_id }}"
      api_token_secret: "{{ pve_token_secret }}"
    wait_timeout: 180
  register: freed

- name: Only Traefik's volume, doing the steps directly
  tazlab.resilience.csi_force_detach:
    node: worker-new-03
    fence: "{{ fence }}"
    strategy: direct
    pvcs:
      - traefik/traefik-data

- name: What would happen (no write request)
  tazlab.resilience.csi_force_detach:
    node: worker-new-03
    fence: "{{ fence }}"
  check_mode: true
  register: plan

- name: Before the VM comes back, remove the out-of-service taint
  tazlab.resilience.csi_force_detach:
    node: worker-new-03
    state: absent
"""

RETURN = r"""
plan:
  description: The plan computed from the observed cluster (what check mode shows).
  returned: always
  type: dict
  contains:
    node:
      description: The node.
      type: str
      sample: worker-new-03
    node_ready:
      description: The node's C(Ready) condition status.
      type: str
      sample: Unknown
    strategy:
      description: The strategy.
      type: str
      sample: out_of_service
    taint_action:
      description: What happens to the out-of-service taint (V(add), V(keep), V(remove), V(none)).
      type: str
      sample: add
    pods:
      description: Pods on the node that are force-deleted (V(direct)) or that Kubernetes removes (V(out_of_service)).
      type: list
      elements: dict
    volumes_in_use:
      description: Entries of the node's C(status.volumesInUse) the direct strategy clears.
      type: list
      elements: str
    volume_attachments:
      description: VolumeAttachments naming the node.
      type: list
      elements: dict
    longhorn_tickets:
      description: Longhorn C(csi-attacher) tickets naming the node; C(stale) when their VolumeAttachment is gone.
      type: list
      elements: dict
    volumes:
      description: Affected volumes (PV, PVC, Longhorn volume).
      type: list
      elements: dict
    workloads:
      description: Affected Deployments and StatefulSets.
      type: list
      elements: dict
    actions:
      description: The ordered write actions.
      type: list
      elements: dict
    longhorn:
      description: Whether the Longhorn API group was found.
      type: bool
  sample: {}
strategy:
  description: The strategy used.
  returned: always
  type: str
  sample: out_of_service
volumes:
  description:
    - The affected volumes; with O(wait=true) each with its recovery (C(node) attached to, C(state), C(robustness),
      C(ok), C(ok_at) seconds after the module started), as in RV(verification).
  returned: always
  type: list
  elements: dict
workloads:
  description:
    - The affected Deployments and StatefulSets; with O(wait=true) each with C(ready), C(desired), C(ok) and
      C(ok_at), as in RV(verification).
  returned: always
  type: list
  elements: dict
fence:
  description:
    - The fence verdict (C(verified), C(assumed), C(predicted), C(system_uuid), C(smbios_uuid)).
    - C(predicted) is true in check mode when O(fence) was the predicted proof of M(tazlab.resilience.proxmox_fence)
      in check mode (C(verified) is then false).
  returned: when state is present
  type: dict
  sample: {"verified": true, "assumed": false, "predicted": false,
           "system_uuid": "5B0D3F1E-8A64-4B8E-9A53-0F4A8D1B7C21", "smbios_uuid": "5b0d3f1e-8a64-4b8e-9a53-0f4a8d1b7c21"}
power_check:
  description:
    - What Proxmox said right before the first write - C(checked), C(confirmed_off), C(identity), C(vmid),
      C(pve_node), C(status), C(matches) (every VM carrying the node's SMBIOS UUID).
  returned: when state is present and something was to be done
  type: dict
  sample: {"checked": true, "confirmed_off": true, "identity": "ok", "vmid": 106, "pve_node": "pve2",
           "status": "stopped"}
assumed_fenced:
  description: True when the module acted on O(assume_fenced) without a fence proof.
  returned: always
  type: bool
  sample: false
actions_done:
  description: Write actions carried out, with the time (seconds since the module started).
  returned: when not in check mode
  type: list
  elements: dict
fallback:
  description: Whether the V(out_of_service) strategy fell back to the direct steps, when and why.
  returned: always
  type: dict
  sample: {"used": false}
finalizers_stripped:
  description: VolumeAttachments whose finalizers were stripped, with the finalizers and the time waited.
  returned: always
  type: list
  elements: dict
verification:
  description:
    - With O(wait=true), the checks with the time each held, and per volume and per workload the state and
      the time (seconds since the module started) it recovered.
  returned: when wait is true and not in check mode
  type: dict
  sample: {"ok": true, "elapsed_s": 21.4, "volumes": [{"pv": "pvc-1", "node": "worker-2", "ok": true, "ok_at": 18.2}],
           "workloads": [{"kind": "Deployment", "namespace": "traefik", "name": "traefik", "ready": 1,
                          "desired": 1, "ok": true, "ok_at": 21.4}]}
warnings:
  description:
    - The warnings of this run, each also shown as an Ansible warning, for example C(ASSUMED FENCED) when the
      module acted on O(assume_fenced) without a proof, what a real run would refuse in check mode, or pods
      without a controller that nothing recreates. The collection's one key for warnings, kept by C(register)
      (formerly C(safety_warnings), which is gone).
  returned: when there is one
  type: list
  elements: str
refused:
  description: Why the module refused to act.
  returned: on refusal
  type: list
  elements: str
events:
  description: What happened, in order, with times.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.args import k8s_argument_spec
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach.module import (
    BOUNDS, check_params, libraries, run_force_detach,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import proxmox_auth_suboptions
from ansible_collections.tazlab.resilience.plugins.module_utils.runner import run_module


def argument_spec():
    return k8s_argument_spec(
        node=dict(type='str', required=True),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        strategy=dict(type='str', default='out_of_service', choices=['out_of_service', 'direct']),
        fence=dict(type='dict'),
        assume_fenced=dict(type='bool', default=False),
        pvcs=dict(type='list', elements='str'),
        volumes=dict(type='list', elements='str'),
        actor=dict(type='str', default='tazlab.resilience.longhorn_force_detach'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='float', default=300),
        poll_interval=dict(type='float', default=2),
        stall_timeout=dict(type='float', default=60),
        stale_ready_after=dict(type='float'),
        stale_wait=dict(type='float', default=60),
        finalizer_timeout=dict(type='float', default=60),
        strip_finalizers=dict(type='bool', default=True),
        proxmox_auth=dict(type='dict', default={}, options=proxmox_auth_suboptions()),
        longhorn_namespace=dict(type='str', default='longhorn-system'),
    )


def main():
    run_module(argument_spec(), run_force_detach, requires=[libraries], bounds=BOUNDS, check=check_params)


if __name__ == '__main__':
    main()
