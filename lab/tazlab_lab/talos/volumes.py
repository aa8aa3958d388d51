"""The system disk volumes of a twin node (STATE, EPHEMERAL): format, LUKS2 encryption, wipe, status.

Written from upstream behaviour (../shared/reference/talos-hardening.md sections 2 and 4; talos.md
"Machine config"), not from any client:

* The encryption of a volume comes from a ``VolumeConfig`` document (``name: STATE|EPHEMERAL``,
  ``encryption{provider: luks2, keys[{slot, nodeID{} | static{passphrase} | tpm{} | kms{endpoint}},
  lockToState]}``, the ``encryption`` field exists from v1.11) or, before that and still read later,
  ``machine.systemDiskEncryption.{state,ephemeral}`` (same keys).
* Only an empty partition is encrypted. At boot (``HandleEncryption``): no filesystem -> format (and
  encrypt when the config asks); ``luks`` -> open with one of the configured keys; anything else with
  encryption configured -> ``block dev type mismatch: xfs != luks`` and the volume goes Failed. A
  failed EPHEMERAL (or STATE) cannot be mounted: the boot does not go on.
* A Reset wiping a partition (``wipe: true`` per label, or the whole disk) leaves it empty; etcd data
  lives in EPHEMERAL (the machine model clears it), so do Longhorn's replicas under
  ``/var/lib/longhorn`` (listeners of :func:`on_wipe` are told, the world tells Longhorn).
* ``VolumeStatuses.block.talos.dev`` (namespace ``runtime``, ids STATE, EPHEMERAL) reports phase,
  location, mountLocation (``/dev/dm-N`` when mapped), encryptionProvider, configuredEncryptionKeys
  (sorted kinds), encryptionSlot, encryptionLockedToState, encryptionFailedSyncs; not Sensitive (a
  reader may read it).

Key kinds: ``nodeID`` is derived from the SMBIOS system UUID (``machine.system_uuid``, set by the
world from the VM): a volume formatted under one UUID does not open under another. ``static`` opens
with the same passphrase. ``tpm`` and ``kms`` are taken to unseal (the twin has no TPM or KMS to fail).
The reverse case (a LUKS volume with no encryption configured any more) is taken to fail to open; that
path is an inference of the twin, not read from upstream.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import config as cfg

from .pb import block_pb2  # the lab's own messages, built from proto/ (tazlab_lab.talos.pb)

VOLUME_STATUS_TYPE = "VolumeStatuses.block.talos.dev"
VOLUME_CONFIG_KIND = "VolumeConfig"
SYSTEM_VOLUMES = ("STATE", "EPHEMERAL")
# Partition layout of a Talos system disk (EFI, BIOS, BOOT, META, STATE, EPHEMERAL).
PARTITIONS = {"STATE": "/dev/sda5", "EPHEMERAL": "/dev/sda6"}
KEY_KINDS = ("nodeID", "static", "tpm", "kms")

_SALTS = random.Random(0x57A7E)
PHASES = {"waiting": 0, "failed": 1, "missing": 2, "located": 3, "provisioned": 4, "prepared": 5,
          "ready": 6, "closed": 7}


@dataclass
class Volume:
    name: str
    fs: str | None = "xfs"            # what is on the partition: xfs, luks, or nothing (wiped)
    keys: list[dict] = field(default_factory=list)   # the LUKS key slots enrolled: {slot, kind, secret}
    slot: int | None = None           # the slot that opened it
    locked_to_state: bool = False
    phase: str = "ready"
    error: str = ""
    mapped: int | None = None         # dm-N when opened
    failed_syncs: list[str] = field(default_factory=list)
    salt: int | None = None           # STATE: the random salt kept there; lockToState volumes: the salt they mixed in


def encryption_config(docs: list[dict], version: str = "v1.13.9") -> dict[str, dict | None]:
    """Per system volume, its ``encryption`` block from the config (None = not encrypted)."""
    out: dict[str, dict | None] = {v: None for v in SYSTEM_VOLUMES}
    v1 = cfg.v1alpha1(docs) or {}
    legacy = ((v1.get("machine") or {}).get("systemDiskEncryption") or {})
    for name in SYSTEM_VOLUMES:
        block = legacy.get(name.lower())
        if isinstance(block, dict) and block.get("provider"):
            out[name] = block
    if cfg.version_tuple(version)[:2] >= (1, 11):
        for d in docs:
            if d.get("kind") == VOLUME_CONFIG_KIND and d.get("name") in SYSTEM_VOLUMES:
                enc = d.get("encryption")
                if isinstance(enc, dict) and enc.get("provider"):
                    out[d["name"]] = enc
    return out


def _key_kind(key: dict) -> str | None:
    return next((k for k in KEY_KINDS if k in key), None)


def _secret(machine, volume: str, key: dict, kind: str):
    if kind == "nodeID":    # SMBIOS UUID + partition label (nodeid.go)
        return (getattr(machine, "system_uuid", None) or machine.name) + volume
    if kind == "static":
        return str((key.get("static") or {}).get("passphrase", ""))
    return kind             # tpm/kms: sealed elsewhere; the twin takes them to unseal


def _enrolled(machine, volume: str, enc: dict) -> list[dict]:
    out = []
    for i, key in enumerate(enc.get("keys") or []):
        kind = _key_kind(key or {})
        if kind:
            out.append({"slot": int(key.get("slot", i)), "kind": kind, "secret": _secret(machine, volume, key, kind)})
    return out


def initial(machine) -> dict[str, Volume]:
    """The volumes as the node's first boot made them from its config."""
    enc = encryption_config(machine.docs(), machine.version)
    vols = {}
    for name in SYSTEM_VOLUMES:
        v = Volume(name)
        _format(machine, v, enc[name])
        vols[name] = v
    return vols


def _next_dm(machine) -> int:
    used = {v.mapped for v in machine.volumes.values() if v.mapped is not None} if hasattr(machine, "volumes") else set()
    n = 0
    while n in used:
        n += 1
    return n


def _format(machine, v: Volume, enc: dict | None) -> None:
    v.error, v.failed_syncs = "", []
    if enc:
        v.fs = "luks"
        v.keys = _enrolled(machine, v.name, enc)
        v.slot = v.keys[0]["slot"] if v.keys else None
        v.locked_to_state = any(bool(k.get("lockToState")) for k in enc.get("keys") or [])
        v.mapped = _next_dm(machine)
        v.salt = _state_salt(machine) if v.locked_to_state else None
    else:
        v.fs, v.keys, v.slot, v.locked_to_state, v.mapped = "xfs", [], None, False, None
    v.phase = "ready"


def _state_salt(machine) -> int | None:
    state = getattr(machine, "volumes", {}).get("STATE")
    if state is None or state.fs is None:
        return None
    if state.salt is None:
        state.salt = _SALTS.getrandbits(64)
    return state.salt


def wipe(machine, labels: list[str], wipe_all: bool) -> None:
    """Reset wiped these partitions: nothing is left on them; listeners are told."""
    hit = [n for n in SYSTEM_VOLUMES if wipe_all or n in labels]
    for name in hit:
        v = machine.volumes[name]
        v.fs, v.keys, v.slot, v.locked_to_state, v.mapped = None, [], None, False, None
        v.phase, v.error, v.failed_syncs, v.salt = "waiting", "", [], None
    for fn in list(getattr(machine, "_wipe_listeners", [])):
        fn(machine, hit)


def on_wipe(machine, fn) -> None:
    """fn(machine, [wiped volume names]) after every Reset that wiped something."""
    if not hasattr(machine, "_wipe_listeners"):
        machine._wipe_listeners = []
    machine._wipe_listeners.append(fn)


def prepare(machine) -> bool:
    """Boot: format empty volumes, open LUKS ones, fail on a mismatch. False: a volume failed."""
    enc = encryption_config(machine.docs(), machine.version)
    ok = True
    for name in SYSTEM_VOLUMES:
        v = machine.volumes[name]
        want = enc[name]
        if v.fs is None:
            _format(machine, v, want)
            continue
        if v.fs == "luks":
            if not want:
                v.phase, v.error = "failed", "volume is encrypted, but no encryption is configured for it"
                ok = False
                continue
            if v.locked_to_state and v.salt != _state_salt(machine):
                # the key mixed in a salt kept in STATE: a wiped and re-created STATE cannot open it
                v.phase, v.error, v.mapped = "failed", "failed to open encrypted volume: the STATE salt changed", None
                ok = False
                continue
            wanted = _enrolled(machine, name, want)
            opener = next((k for k in v.keys for w in wanted if w["kind"] == k["kind"] and w["secret"] == k["secret"]),
                          None)
            if opener is None:
                v.phase = "failed"
                v.error = "failed to open encrypted volume: no key slot could be unlocked with the configured keys"
                v.mapped = None
                ok = False
                continue
            v.slot = opener["slot"]
            v.keys = wanted          # Talos syncs the key slots to the config
            v.locked_to_state = any(bool(k.get("lockToState")) for k in want.get("keys") or [])
            v.mapped = v.mapped if v.mapped is not None else _next_dm(machine)
            v.phase, v.error, v.failed_syncs = "ready", "", []
            continue
        if want:
            v.phase, v.error = "failed", f"block dev type mismatch: {v.fs} != luks"
            ok = False
            continue
        v.phase, v.error = "ready", ""
    return ok


# -- the resource ----------------------------------------------------------------------------------
def status_spec(v: Volume):
    luks = v.fs == "luks" and v.phase == "ready"
    spec = block_pb2.VolumeStatusSpec(
        phase=PHASES[v.phase], location=PARTITIONS[v.name], error_message=v.error,
        filesystem=1 if v.phase == "ready" else 0,
        mount_location=f"/dev/dm-{v.mapped}" if luks and v.mapped is not None else
        (PARTITIONS[v.name] if v.phase == "ready" else ""),
        encryption_provider=1 if v.fs == "luks" else 0,
        encryption_failed_syncs=list(v.failed_syncs),
        configured_encryption_keys=sorted({k["kind"] for k in v.keys}),
        encryption_locked_to_state=v.locked_to_state,
        encryption_slot=v.slot or 0)
    lines = [f"phase: {v.phase}", f"location: {spec.location}"]
    if v.error:
        lines.append(f"errorMessage: {v.error}")
    if spec.mount_location:
        lines.append(f"mountLocation: {spec.mount_location}")
    if v.phase == "ready":
        lines.append("filesystem: xfs")
    if v.fs == "luks":
        lines.append("encryptionProvider: luks2")
        lines.append("configuredEncryptionKeys:")
        lines.extend(f"    - {k}" for k in spec.configured_encryption_keys)
        if v.slot is not None:
            lines.append(f"encryptionSlot: {v.slot}")
        lines.append(f"encryptionLockedToState: {str(v.locked_to_state).lower()}")
    return spec, "\n".join(lines) + "\n"


def ids(machine) -> list[str]:
    return list(SYSTEM_VOLUMES)
