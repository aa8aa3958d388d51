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
                         cwd="/", env={**os.environ, "PYTHONPATH": os.path.dirname(LAB)}).stdout
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


def test_the_store_modules_import_alone():
    """No import circle between the store's modules: each one loads first in a fresh interpreter
    (``errors`` and ``objects`` are leaves; a circle shows up as an ImportError for one of them)."""
    names = ["errors", "objects", "resources", "selectors", "patch", "structure", "admission", "gc", "watch",
             "store", "eviction", "server"]
    for name in names:
        subprocess.run([sys.executable, "-c", f"import tazlab_lab.k8s.{name}"], check=True, capture_output=True,
                       text=True, cwd="/", env={**os.environ, "PYTHONPATH": os.path.dirname(LAB)})
    out = subprocess.run([sys.executable, "-c", "import sys, tazlab_lab.k8s.errors as e, tazlab_lab.k8s.objects as o\n"
                          "print(sorted(m for m in sys.modules if m.startswith('tazlab_lab.')))"],
                         check=True, capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": os.path.dirname(LAB)}).stdout
    assert out.strip() == "['tazlab_lab.k8s', 'tazlab_lab.k8s.errors', 'tazlab_lab.k8s.objects']"
