"""The world outside Kubernetes: machines that are powered, reachable, booting.

Kubernetes only sees what kubelets report; this module is what those kubelets run on. It is kept
small and separate so Proxmox (power) and Talos (boot, config) can drive it later through the same
hooks: ``KubeWorld.subscribe(fn)`` gets ``fn(node_name, what)`` after every change, ``what`` one of
``power_off``, ``power_on``, ``booted``, ``partition``, ``heal``, ``address``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class KubeMachine:
    """A machine as the Kubernetes twin models it: power, reachability, boot (what its kubelet runs on).

    Not the Talos twin's ``TalosMachine`` (config, stages, etcd); in the lab, ``LabWorld`` drives both."""

    name: str
    address: str = ""
    role: str = "worker"
    powered: bool = True
    reachable: bool = True
    booting: bool = False
    boot_id: int = 0  # bumps on every boot: containers that ran before are gone
    boot_timer: Any = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        """Running and able to talk to the control plane: only then does its kubelet act."""
        return self.powered and not self.booting and self.reachable

    @property
    def running(self) -> bool:
        """The OS runs (containers keep running on a partitioned node)."""
        return self.powered and not self.booting


class KubeWorld:
    """The Kubernetes twin's machines and incidents (``twin.world``); the lab's ``LabWorld``
    (tazlab_lab.world) drives it from Proxmox and Talos through the KubeTwin's hooks."""

    def __init__(self, clock: Any, boot_seconds: float = 45.0):
        self.clock = clock
        self.boot_seconds = boot_seconds
        self.machines: dict[str, KubeMachine] = {}
        self._subs: list[Callable[[str, str], None]] = []
        #: what happened outside Kubernetes that nobody inside can see (e.g. two writers on one volume)
        self.incidents: list[dict] = []

    def record(self, kind: str, **data: object) -> None:
        self.incidents.append({"time": self.clock.now(), "kind": kind, **data})

    def add(self, name: str, address: str = "", role: str = "worker", powered: bool = True) -> KubeMachine:
        m = KubeMachine(name=name, address=address, role=role, powered=powered)
        self.machines[name] = m
        return m

    def __getitem__(self, name: str) -> KubeMachine:
        return self.machines[name]

    def __contains__(self, name: str) -> bool:
        return name in self.machines

    def subscribe(self, fn: Callable[[str, str], None]) -> None:
        self._subs.append(fn)

    def _emit(self, name: str, what: str) -> None:
        for fn in list(self._subs):
            fn(name, what)

    def alive(self, name: str) -> bool:
        m = self.machines.get(name)
        return bool(m and m.alive)

    # -- the knobs ---------------------------------------------------------------------------
    def power_off(self, name: str) -> None:
        m = self.machines[name]
        if not m.powered:
            return
        m.powered = False
        m.booting = False
        if m.boot_timer is not None:
            m.boot_timer.cancel()
            m.boot_timer = None
        self._emit(name, "power_off")

    def power_on(self, name: str, boot_seconds: float | None = None) -> None:
        m = self.machines[name]
        if m.powered:
            return
        m.powered = True
        m.booting = True
        m.boot_id += 1
        self._emit(name, "power_on")
        delay = self.boot_seconds if boot_seconds is None else boot_seconds

        def booted() -> None:
            m.boot_timer = None
            if m.powered and m.booting:
                m.booting = False
                self._emit(name, "booted")

        m.boot_timer = self.clock.call_later(delay, booted, name=f"boot-{name}")

    def reset(self, name: str, boot_seconds: float | None = None) -> None:
        """A hard reset: power cycle without a graceful shutdown."""
        self.power_off(name)
        self.power_on(name, boot_seconds)

    def partition(self, name: str) -> None:
        m = self.machines[name]
        if not m.reachable:
            return
        m.reachable = False
        self._emit(name, "partition")

    def heal(self, name: str) -> None:
        m = self.machines[name]
        if m.reachable:
            return
        m.reachable = True
        self._emit(name, "heal")

    def set_address(self, name: str, address: str) -> None:
        self.machines[name].address = address
        self._emit(name, "address")

    def state(self, name: str) -> dict:
        m = self.machines[name]
        return {"name": m.name, "address": m.address, "role": m.role, "powered": m.powered,
                "reachable": m.reachable, "booting": m.booting, "alive": m.alive, "bootId": m.boot_id}
