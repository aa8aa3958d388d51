# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypt a running node's STATE and EPHEMERAL (LUKS2), one node at a time, keeping etcd and Longhorn whole.

The procedure (talos-hardening.md sections 2-4), for one node:

1. already encrypted (VolumeStatus READY + LUKS2 + no failed key syncs for every volume, and the running
   config carries the encryption): nothing to do but finish what an interrupted run left (wait for the
   node's etcd member, Kubernetes Ready, Longhorn rebuilt, uncordon);
2. refuse unless the cluster can lose the node (:mod:`.gates`: etcd quorum with it gone, every Longhorn
   volume with a healthy replica elsewhere);
3. cordon and drain (Eviction API, PDBs honoured: :mod:`.drain`);
4. a control plane leaves etcd (EtcdLeaveCluster; the quorum is checked again just before);
5. apply the config with the encryption STAGED (a VolumeConfig per volume from Talos 1.11,
   ``machine.systemDiskEncryption`` before), then Reset graceful + reboot wiping each volume by label
   (``wipe: true``; never an empty list, which wipes the whole disk);
6. with STATE wiped the node boots into maintenance mode: the full config is applied there (insecure
   TLS, as Talos' maintenance service wants); it was saved to ``state_dir`` (0600) before the reset, so
   a rerun after a failure in between carries on;
7. wait: Talos RUNNING and ready, both volumes encrypted, (control plane) the etcd member back and
   voting, the Kubernetes node Ready, Longhorn volumes healthy again (no volume ever without a
   healthy replica: checked at every poll), then uncordon.

Key types: ``nodeID`` (derived from the SMBIOS UUID: anyone with VM.Audit on Proxmox can read it, and a
later ``smbios1`` change locks the volume for good), ``static`` (a passphrase from a vault; on STATE
Talos keeps it in clear in META), ``tpm`` (needs a vTPM and SecureBoot to mean something), ``kms``.
"""

from __future__ import annotations

import copy
import json
import os
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import drain as hd
from ansible_collections.tazlab.resilience.plugins.module_utils.hardening import gates
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import WaitTimeout, wait_until_async
from ansible_collections.tazlab.resilience.plugins.module_utils.talos import patch as tp
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import (
    TalosApiError, TalosDisconnected, TalosTimeout, TalosTLSError, TalosUnreachable)
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.etcd import health

try:
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import block_pb2
except ImportError:  # pragma: no cover - protobuf missing: the modules report it
    block_pb2 = None

VOLUME_STATUS_TYPE = 'VolumeStatuses.block.talos.dev'
VOLUMES = ('STATE', 'EPHEMERAL')
KEY_TYPES = ('nodeID', 'static', 'tpm', 'kms')
PHASES = {0: 'waiting', 1: 'failed', 2: 'missing', 3: 'located', 4: 'provisioned', 5: 'prepared', 6: 'ready',
          7: 'closed'}
VOLUME_CONFIG_FROM = (1, 11)
_DOWN = (TalosUnreachable, TalosDisconnected, TalosTimeout, TalosTLSError)

NODEID_WARNING = ('key type nodeID derives the LUKS passphrase from the VM\'s SMBIOS UUID (smbios1 uuid on Proxmox), '
                  'which anyone with VM.Audit can read: it only protects a disk taken away from the cluster. '
                  'Changing the VM\'s smbios1 afterwards makes the volumes unopenable for good.')
STATIC_STATE_WARNING = ('a static key on STATE is stored in clear in the META partition (Talos docs): prefer nodeID, '
                        'tpm or kms for STATE')
KMS_STATE_WARNING = ('with a kms key on STATE the node cannot take its network config from the machine config, '
                     'nor custom CAs for the KMS server (it needs DHCP or kernel ip= to reach the KMS)')


class HardeningRefused(Exception):
    """A precondition failed before anything changed."""

    def __init__(self, message, reasons=None):
        super(HardeningRefused, self).__init__(message)
        self.reasons = list(reasons or [])


class HardeningFailed(Exception):
    """A step failed after changes began; ``where`` says which step."""

    def __init__(self, message, where=None, steps=None):
        super(HardeningFailed, self).__init__(message)
        self.where = where
        self.steps = list(steps or [])


# -- what to apply ----------------------------------------------------------------------------------
def validate_key(key):
    """A normalised key dict {type, slot, passphrase, endpoint, pcrs, lock_to_state}; ValueError for bad input."""
    key = dict(key or {})
    ktype = key.get('type') or 'nodeID'
    if ktype not in KEY_TYPES:
        raise ValueError('key.type must be one of %s, not %r' % (', '.join(KEY_TYPES), ktype))
    if ktype == 'static' and not key.get('passphrase'):
        raise ValueError('key.type static needs key.passphrase (from a vault)')
    if ktype == 'kms' and not key.get('endpoint'):
        raise ValueError('key.type kms needs key.endpoint')
    slot = key.get('slot', 0)
    if not isinstance(slot, int) or not 0 <= slot < 32:
        raise ValueError('key.slot must be an integer 0..31')
    return dict(type=ktype, slot=slot, passphrase=key.get('passphrase'), endpoint=key.get('endpoint'),
                pcrs=key.get('pcrs'), lock_to_state=bool(key.get('lock_to_state', False)))


def key_entry(key, volume):
    entry = {'slot': key['slot']}
    if key['type'] == 'nodeID':
        entry['nodeID'] = {}
    elif key['type'] == 'static':
        entry['static'] = {'passphrase': key['passphrase']}
    elif key['type'] == 'kms':
        entry['kms'] = {'endpoint': key['endpoint']}
    else:
        entry['tpm'] = {'options': {'pcrs': list(key['pcrs'])}} if key.get('pcrs') else {}
    if key['lock_to_state'] and volume == 'EPHEMERAL':
        entry['lockToState'] = True
    return entry


def encryption_block(key, volume):
    return {'provider': 'luks2', 'keys': [key_entry(key, volume)]}


def warnings_for(key, volumes):
    out = []
    if key['type'] == 'nodeID':
        out.append(NODEID_WARNING)
    if key['type'] == 'static' and 'STATE' in volumes:
        out.append(STATIC_STATE_WARNING)
    if key['type'] == 'kms' and 'STATE' in volumes:
        out.append(KMS_STATE_WARNING)
    return out


def encryption_patch(version, key, volumes=VOLUMES):
    """Patch documents that add the encryption: VolumeConfig documents (1.11+) or systemDiskEncryption."""
    parsed = tp.parse_version(version) or (1, 13, 0)
    if tuple(parsed[:2]) >= VOLUME_CONFIG_FROM:
        return [{'apiVersion': 'v1alpha1', 'kind': 'VolumeConfig', 'name': v, 'encryption': encryption_block(key, v)}
                for v in volumes]
    return [{'version': 'v1alpha1', 'machine': {'systemDiskEncryption': dict(
        (v.lower(), encryption_block(key, v)) for v in volumes)}}]


def configured_encryption(docs, version):
    """{volume: encryption block or None} the config asks for (VolumeConfig wins on 1.11+)."""
    out = dict((v, None) for v in VOLUMES)
    v1 = next((d for d in docs if tp.is_v1alpha1(d)), {}) or {}
    legacy = ((v1.get('machine') or {}).get('systemDiskEncryption') or {})
    for v in VOLUMES:
        if isinstance(legacy.get(v.lower()), dict) and legacy[v.lower()].get('provider'):
            out[v] = legacy[v.lower()]
    parsed = tp.parse_version(version) or (1, 13, 0)
    if tuple(parsed[:2]) >= VOLUME_CONFIG_FROM:
        for d in docs:
            if d.get('kind') == 'VolumeConfig' and d.get('name') in VOLUMES and isinstance(d.get('encryption'), dict):
                out[d['name']] = d['encryption']
    return out


def desired_config(current_docs, version, key, volumes=VOLUMES):
    """(docs, changed_volumes, refused): the config with the encryption; a different key already set is refused."""
    want = dict((v, encryption_block(key, v)) for v in volumes)
    have = configured_encryption(current_docs, version)
    refused = []
    for v in volumes:
        if have[v] and _key_kinds(have[v]) != _key_kinds(want[v]):
            refused.append('%s is configured with keys %s, not %s: changing keys of an encrypted volume is a key '
                           'rotation (add the new key, reboot, remove the old one), not done here'
                           % (v, _key_kinds(have[v]), _key_kinds(want[v])))
    docs = tp.strategic_merge(current_docs, encryption_patch(version, key, volumes)) if not refused else current_docs
    return docs, [v for v in volumes if not have[v]], refused


def _key_kinds(block):
    return sorted(next((k for k in KEY_TYPES if k in (e or {})), '?') for e in block.get('keys') or [])


# -- what the node says -------------------------------------------------------------------------------
def decode_volume_status(resource):
    spec = block_pb2.VolumeStatusSpec.FromString(resource.spec.proto_spec)
    return dict(phase=PHASES.get(spec.phase, str(spec.phase)), location=spec.location,
                error=spec.error_message, mount_location=spec.mount_location,
                provider='luks2' if spec.encryption_provider == 1 else 'none',
                keys=list(spec.configured_encryption_keys), slot=spec.encryption_slot,
                locked_to_state=spec.encryption_locked_to_state, failed_syncs=list(spec.encryption_failed_syncs))


def encrypted(status):
    """Encrypted and healthy: phase ready, provider luks2, no failed key syncs."""
    return bool(status) and status['phase'] == 'ready' and status['provider'] == 'luks2' and not status['failed_syncs']


async def volume_statuses(client, node, volumes=VOLUMES, **target):
    out = {}
    where = target or dict(node=node)
    for v in volumes:
        try:
            out[v] = decode_volume_status(await client.get_resource('runtime', VOLUME_STATUS_TYPE, v, **where))
        except TalosApiError as exc:
            if exc.status != 'NOT_FOUND':
                raise
            out[v] = None
    return out


# -- the saved config for maintenance mode ----------------------------------------------------------
def saved_config_path(state_dir, node_name):
    return os.path.join(state_dir, 'hardening-%s.yaml' % node_name)


def save_config(path, data):
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.secrets import write_private
    write_private(path, data.decode('utf-8') if isinstance(data, bytes) else data)


# -- one node ---------------------------------------------------------------------------------------
class NodeRoll(object):
    """Everything for one node. ``talos``: a TalosClient (mTLS); ``maintenance``: a factory of an insecure
    TalosClient for the node (async context manager); ``k8s``: a K8sClient (or None: no Kubernetes steps)."""

    def __init__(self, talos, k8s, params, maintenance=None, clock=time.monotonic):
        self.talos = talos
        self.k8s = k8s
        self.p = params
        self.maintenance = maintenance
        self.clock = clock
        self.steps = []
        self.where = 'preflight'
        self.t0 = clock()
        self.key = validate_key(params.get('encryption_key'))
        self.volumes = list(VOLUMES if params.get('volumes') is None else params['volumes'])
        for v in self.volumes:
            if v not in VOLUMES:
                raise ValueError('volumes must be among %s, not %r' % (', '.join(VOLUMES), v))
        if not self.volumes:
            raise ValueError('volumes must not be empty (an empty wipe list wipes the whole system disk)')
        self.node = params['node']
        self.name = params.get('node_name') or self.node
        self.role = params.get('role') or 'worker'
        self.poll = float(params.get('poll_interval') or 2.0)
        self.timeout = float(params.get('wait_timeout') or 900.0)
        self.peers = [c for c in (params.get('control_planes') or []) if c != self.node]
        self.invariant_violations = []

    def step(self, name, **info):
        entry = dict(step=name, at=round(self.clock() - self.t0, 3))
        entry.update(info)
        self.steps.append(entry)
        self.where = name

    # -- reads --------------------------------------------------------------------------------------
    async def _etcd_view(self):
        """(members, health, this node's member id) asked of a control plane other than the node when there is one."""
        last = None
        for peer in self.peers + [self.node]:
            try:
                members = await self.talos.etcd_member_list(node=peer)
                break
            except (TalosApiError,) + _DOWN as exc:
                last = exc
        else:
            raise HardeningRefused('cannot list etcd members from %s: %s' % (', '.join(self.peers + [self.node]), last))
        hl = await health(self.talos, members)
        own = None
        if self.role == 'controlplane':
            hostname = self.p.get('hostname') or self.name
            own = next((m['id'] for m in members if m['hostname'] in (hostname, self.name)), None)
            if own is None:
                own = next((m['id'] for m in members
                            if any(self.node in u for u in (m.get('peer_urls') or []))), None)
        return members, hl, own

    def _longhorn(self):
        if self.k8s is None or not self.p.get('longhorn', True):
            return [], []
        return self.k8s.list_custom('volumes'), self.k8s.list_custom('replicas')

    async def preflight(self):
        reasons = []
        members, hl, own = await self._etcd_view()
        reasons += gates.etcd_gate(members, hl, own if self.role == 'controlplane' else None)
        volumes, replicas = self._longhorn()
        reasons += gates.longhorn_gate(volumes, replicas, self.name, int(self.p.get('min_healthy_elsewhere') or 1))
        return reasons, dict(etcd_members=len(members), etcd_healthy=sum(1 for v in hl.values() if v is not None),
                             member_id=own, longhorn_volumes=[gates.volume_summary(v, [r for r in replicas if (
                                 r.get('spec') or {}).get('volumeName') == v['metadata']['name']]) for v in volumes])

    async def state(self):
        """Where the node is: reachable, stage, maintenance, volume statuses."""
        try:
            st = await self.talos.machine_status(node=self.node, retries=0)
            vols = await volume_statuses(self.talos, self.node, self.volumes)
            return dict(reachable=True, stage=st['stage'], ready=st['ready'], volumes=vols)
        except _DOWN + (TalosApiError,) as exc:
            if self.maintenance is not None:
                try:
                    async with self.maintenance() as insecure:
                        st = await insecure.machine_status(retries=0)
                        return dict(reachable=True, stage=st['stage'], ready=st['ready'], volumes={},
                                    maintenance=st['stage'] == 'maintenance')
                except Exception:  # noqa: BLE001 - down both ways
                    pass
            return dict(reachable=False, error=str(exc), volumes={})

    # -- the run ------------------------------------------------------------------------------------
    async def run(self, check_mode=False):
        result = dict(node=self.name, address=self.node, role=self.role, changed=False, steps=self.steps,
                      warnings=warnings_for(self.key, self.volumes))
        state = await self.state()
        saved = saved_config_path(self.p['state_dir'], self.name) if self.p.get('state_dir') else None
        if state.get('maintenance'):
            # an interrupted run: STATE was wiped, the node waits for its config
            if not saved or not os.path.exists(saved):
                raise HardeningFailed('%s is in maintenance mode and no saved config was found at %s: apply its '
                                      'config by hand (talos_node insecure)' % (self.name, saved), 'maintenance')
            result['resumed'] = 'maintenance'
            if check_mode:
                result.update(changed=True, plan=['apply the saved config in maintenance mode', 'wait', 'rejoin'])
                return result
            with open(saved, 'rb') as f:
                data = f.read()
            return await self._after_reset(result, data, saved, resumed=True)
        if not state.get('reachable'):
            raise HardeningRefused('%s does not answer on the Talos API: %s' % (self.name, state.get('error')))
        version = (await self.talos.version(node=self.node)).messages[0].version.tag
        current = await self.talos.machine_config(node=self.node)
        current_docs = tp.load_documents(current.decode('utf-8'))
        docs, missing, refused = desired_config(current_docs, version, self.key, self.volumes)
        if refused:
            raise HardeningRefused('refusing to change the encryption keys of %s' % self.name, refused)
        vols = state['volumes']
        result['volumes_before'] = vols
        if all(encrypted(vols.get(v)) for v in self.volumes) and not missing:
            result['already_encrypted'] = True
            return await self._finish(result, check_mode)
        reasons, facts = await self.preflight()
        result['preflight'] = facts
        if reasons:
            raise HardeningRefused('refusing to encrypt %s: the cluster cannot lose it now' % self.name, reasons)
        data = tp.dump_documents(docs).encode('utf-8')
        result['plan'] = self.plan(missing)
        result['changed'] = True
        if check_mode:
            dry = await self.talos.apply_configuration(data, mode='staged', dry_run=True, node=self.node)
            result['dry_run_summary'] = dry['mode_details']
            return result
        self.step('cordon', changed=hd.cordon(self.k8s, self.name, True) if self.k8s is not None else False)
        if self.k8s is not None:
            evicted = hd.drain(self.k8s, self.name, timeout=float(self.p.get('drain_timeout') or 300), poll=self.poll)
            self.step('drain', evicted=evicted)
        if self.role == 'controlplane':
            members, hl, own = await self._etcd_view()
            again = gates.etcd_gate(members, hl, own)
            if again:
                raise HardeningFailed('etcd changed since the preflight: %s' % '; '.join(again), 'etcd-leave',
                                      self.steps)
            if own is not None:
                await self.talos.etcd_leave_cluster(node=self.node)
            self.step('etcd-leave', member_id=own)
        if saved:
            save_config(saved, data)
        reply = await self.talos.apply_configuration(data, mode='staged', node=self.node)
        self.step('apply-staged', mode_details=reply['mode_details'])
        await self.talos.reset(node=self.node, graceful=True, reboot=True, wipe_partitions=list(self.volumes))
        self.step('reset', wiped=list(self.volumes))
        return await self._after_reset(result, data, saved)

    def plan(self, missing):
        steps = ['preflight: etcd quorum without %s; every Longhorn volume with a healthy replica elsewhere' % self.name,
                 'cordon and drain %s (evictions honour PodDisruptionBudgets)' % self.name]
        if self.role == 'controlplane':
            steps.append('leave etcd')
        steps += ['apply the config with LUKS2 encryption of %s staged' % ', '.join(self.volumes),
                  'reset (graceful, reboot) wiping %s' % ', '.join(self.volumes)]
        if 'STATE' in self.volumes:
            steps.append('apply the full config in maintenance mode (STATE was wiped)')
        steps += ['wait: RUNNING and ready, volumes encrypted'
                  + (', etcd member back and voting' if self.role == 'controlplane' else '')
                  + ', Kubernetes node Ready, Longhorn volumes healthy', 'uncordon']
        return steps

    async def _wait(self, what, probe):
        async def round_():
            """One round: the probe (the node may be down meanwhile), then the Longhorn invariant, every round."""
            try:
                ok, last = await probe()
            except _DOWN + (TalosApiError,) as exc:
                ok, last = False, str(exc)
            self._check_invariant()
            return ok, last

        try:
            await wait_until_async(round_, lambda read: read[0], self.timeout, interval=self.poll, what=what)
        except WaitTimeout as exc:
            last = exc.last[1]
            raise HardeningFailed('%s: %s not reached after %ss (last: %s)' % (self.name, what, self.timeout, last),
                                  what, self.steps) from None

    def _check_invariant(self):
        if self.k8s is None or not self.p.get('longhorn', True):
            return
        try:
            volumes, replicas = self._longhorn()
        except Exception:  # noqa: BLE001 - the API may blink while a control plane reboots
            return
        lost = gates.without_healthy_replica(volumes, replicas)
        if lost:
            self.invariant_violations.append(dict(at=round(self.clock() - self.t0, 3), volumes=lost))

    async def _after_reset(self, result, data, saved, resumed=False):
        if 'STATE' in self.volumes:
            async def in_maintenance():
                async with self.maintenance() as insecure:
                    st = await insecure.machine_status(retries=0)
                    return st['stage'] == 'maintenance', 'stage %s' % st['stage']
            if self.maintenance is None:
                raise HardeningFailed('STATE is wiped but no maintenance-mode client was given', 'maintenance',
                                      self.steps)
            if not resumed:
                await self._wait('maintenance mode', in_maintenance)
            async with self.maintenance() as insecure:
                reply = await insecure.apply_configuration(data, mode='auto')
            self.step('apply-maintenance', mode_details=reply['mode_details'])
        result['changed'] = True
        return await self._finish(result, False)

    async def _finish(self, result, check_mode):
        """Wait until the node is back whole, then uncordon (also what a rerun does for an encrypted node)."""
        async def running():
            st = await self.talos.machine_status(node=self.node, retries=0)
            return st['stage'] == 'running' and st['ready'], 'stage %s ready %s' % (st['stage'], st['ready'])

        async def vols_encrypted():
            vols = await volume_statuses(self.talos, self.node, self.volumes)
            return all(encrypted(vols.get(v)) for v in self.volumes), vols

        async def etcd_back():
            members, hl, own = await self._etcd_view()
            reasons = gates.etcd_gate(members, hl, None)
            return own is not None and not reasons, reasons or 'member of %s not found' % self.name
        since = {}

        async def k8s_ready():
            # Ready alone may be stale (a quick reboot never turns it NotReady): the kubelet that started
            # after Talos was RUNNING again must have renewed its Lease (both times are the cluster's)
            from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import node_ready, parse_time
            ready = node_ready(self.k8s.get_node(self.name))
            lease = self.k8s.get_node_lease(self.name)
            renew = parse_time(((lease or {}).get('spec') or {}).get('renewTime'))
            fresh = renew is not None and since.get('t') is not None and renew > since['t']
            return ready and fresh, 'node %s Ready %s, kubelet lease renewed since it came back: %s' % (
                self.name, ready, fresh)

        async def rebuilt():
            volumes, replicas = self._longhorn()
            reasons = gates.longhorn_rebuilt(volumes, replicas)
            return not reasons, reasons
        if check_mode:
            node = self.k8s.get_node(self.name) if self.k8s is not None else None
            if node is not None and hd.cordon_patch(node, False) is not None:
                result.update(changed=True, plan=['uncordon %s (an earlier run left it cordoned)' % self.name])
            return result
        await self._wait('Talos running and ready', running)
        self.step('running')
        if self.k8s is not None:
            self.k8s.get_node(self.name)          # the API server's clock now (its Date header)
            since['t'] = self.k8s.server_time
        await self._wait('volumes encrypted', vols_encrypted)
        result['volumes'] = await volume_statuses(self.talos, self.node, self.volumes)
        self.step('encrypted')
        if self.role == 'controlplane':
            await self._wait('etcd member back and voting', etcd_back)
            self.step('etcd-rejoined')
        if self.k8s is not None:
            await self._wait('Kubernetes node Ready', k8s_ready)
            self.step('node-ready')
            if self.p.get('longhorn', True):
                await self._wait('Longhorn volumes healthy', rebuilt)
                self.step('longhorn-rebuilt')
            if hd.cordon(self.k8s, self.name, False):
                result['changed'] = True
                self.step('uncordon')
        result['invariant_violations'] = self.invariant_violations
        if self.invariant_violations:
            raise HardeningFailed('Longhorn volumes were left without a healthy replica while %s was away: %s'
                                  % (self.name, json.dumps(self.invariant_violations)), 'longhorn-invariant',
                                  self.steps)
        result['seconds'] = round(self.clock() - self.t0, 3)
        return result


def params_copy(params):
    """The parameters without secrets, for reports."""
    out = copy.deepcopy(dict(params))
    if isinstance(out.get('encryption_key'), dict) and out['encryption_key'].get('passphrase'):
        out['encryption_key']['passphrase'] = tp.MASK
    return out


# -- a guard for code that changes a VM's smbios1 (provisioning, replace) ----------------------------
def _smbios_uuid(smbios1):
    for part in str(smbios1 or '').split(','):
        if part.strip().lower().startswith('uuid='):
            return part.split('=', 1)[1].strip().lower()
    return None


def smbios_change_refusal(volume_status_by_name, old_smbios1, new_smbios1):
    """A reason to refuse changing a VM's smbios1 (None when the change is safe).

    ``volume_status_by_name``: the node's VolumeStatus dicts (:func:`volume_statuses`). A volume encrypted
    with a ``nodeID`` key derives its passphrase from the SMBIOS UUID: a new UUID makes it unopenable for good.
    Code that writes ``smbios1`` (provisioning, node replacement) calls this first."""
    old, new = _smbios_uuid(old_smbios1), _smbios_uuid(new_smbios1)
    if old == new:
        return None
    locked = sorted(name for name, st in (volume_status_by_name or {}).items()
                    if st and st.get('provider') == 'luks2' and 'nodeID' in (st.get('keys') or []))
    if not locked:
        return None
    return ('refusing to change smbios1 uuid %s -> %s: %s %s encrypted with a nodeID key derived from that UUID and '
            'would never open again (add another key slot first, or keep the UUID)'
            % (old, new, ', '.join(locked), 'is' if len(locked) == 1 else 'are'))
