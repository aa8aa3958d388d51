"""The twin shares no code with the collection: a shared misreading would be invisible to every test."""

from __future__ import annotations

import os
import subprocess
import sys

import tazlab_lab

LAB = os.path.dirname(tazlab_lab.__file__)


def _modules() -> list[str]:
    names = []
    for dirpath, _dirs, files in os.walk(LAB):
        for name in files:
            if name.endswith(".py") and name != "__init__.py":
                rel = os.path.relpath(os.path.join(dirpath, name[:-3]), os.path.dirname(LAB))
                names.append(rel.replace(os.sep, "."))
    return sorted(n for n in names if n != "tazlab_lab.pytest_plugin")


def test_importing_every_twin_module_loads_nothing_of_the_collection():
    code = ("import importlib, sys\n"
            f"for name in {_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('ansible_collections') or m.startswith('ansible.')))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd="/", env={**os.environ, "PYTHONPATH": ""}).stdout
    assert len(_modules()) > 20
    assert out.strip() == "[]"


def test_no_twin_source_names_the_collection_package():
    offenders = []
    for dirpath, _dirs, files in os.walk(LAB):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as fh:
                    if "ansible_collections" in fh.read():
                        offenders.append(os.path.relpath(path, LAB))
    assert offenders == []


def test_the_twin_builds_its_talos_messages_from_the_proto_files():
    from tazlab_lab.talos import pb

    assert pb.machine_pb2.DESCRIPTOR.name == "machine/machine.proto"
    assert pb.machine_pb2.VersionResponse.DESCRIPTOR.file.pool is not None
    request = pb.machine_pb2.ResetRequest(graceful=True)
    assert pb.machine_pb2.ResetRequest.FromString(request.SerializeToString()).graceful is True
    assert "ansible_collections" not in str(pb.machine_pb2.VersionResponse.__module__)
