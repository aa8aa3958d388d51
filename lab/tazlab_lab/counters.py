"""Request counters of the Proxmox and Talos twins (the Kubernetes twin's store counts its own).

* Proxmox: fakepve keeps every request it answered (``pve.requests``: method, path, redacted body);
  here they are grouped by method and path template (``/nodes/{node}/qemu/{vmid}/status/current``).
* Talos: the RPCs the twin's machines served (MachineService and cosi.resource.State), counted by a
  thin wrapper around the twin's ``MachineApi`` (calls refused before they reach a machine -- wrong
  role, not served in maintenance mode -- are not counted).
"""

from __future__ import annotations

import collections
import inspect
import re

_UPID = re.compile(r"/tasks/UPID:[^/]+")
_NODE = re.compile(r"^/nodes/[^/]+")
_VMID = re.compile(r"/(qemu|lxc)/\d+")
_SID = re.compile(r"/resources/(vm:)?\d+")
_STORAGE = re.compile(r"/storage/[^/]+")


def proxmox_template(path: str) -> str:
    path = path.split("?", 1)[0]
    path = path[len("/api2/json"):] if path.startswith("/api2/json") else path
    path = _UPID.sub("/tasks/{upid}", path)
    path = _NODE.sub("/nodes/{node}", path)
    path = _VMID.sub(lambda m: "/{0}/{{vmid}}".format(m.group(1)), path)
    path = _SID.sub("/resources/{sid}", path)
    path = _STORAGE.sub("/storage/{storage}", path)
    return path


def proxmox_counts(pve) -> dict:
    counts = collections.Counter((method, proxmox_template(path)) for method, path, _body in pve.requests)
    rows = [{"method": m, "path": p, "count": n} for (m, p), n in sorted(counts.items())]
    return {"counts": rows, "total": sum(counts.values())}


class CountingApi:
    """Wraps a MachineApi: every RPC implementation that is called is counted by name."""

    def __init__(self, api):
        self._api = api
        self.counts: collections.Counter = collections.Counter()

    def __getattr__(self, name):
        value = getattr(self._api, name)
        if not callable(value) or name.startswith("_"):
            return value
        counts = self.counts
        if inspect.isasyncgenfunction(value):
            async def stream(*args, **kwargs):
                counts[name] += 1
                async for item in value(*args, **kwargs):
                    yield item
            return stream

        async def unary(*args, **kwargs):
            counts[name] += 1
            return await value(*args, **kwargs)
        return unary if inspect.iscoroutinefunction(value) else value

    def report(self) -> dict:
        rows = [{"rpc": k, "count": n} for k, n in sorted(self.counts.items())]
        return {"counts": rows, "total": sum(self.counts.values())}
