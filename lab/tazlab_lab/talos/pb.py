"""The Talos messages, built by the twin itself from the .proto files in proto/ (the wire contract).

The twin shares no code with the collection: it does not import the collection's generated modules
(plugins/module_utils/talos/pb). It compiles every .proto under proto/ with grpcio-tools' protoc into
a FileDescriptorSet, loads it into a descriptor pool of its own and builds the message classes from
it. A .proto added or changed under proto/ is picked up at the next import, with no generation step.

Each proto file becomes a namespace named like protoc's module (``machine/machine.proto`` ->
``machine_pb2``) holding its messages and enums, and, as protoc's modules do, the values of its
top-level enums. The well-known types the files use (``empty_pb2``, ``timestamp_pb2``) come from the
same pool, so messages nest without crossing pools.
"""

from __future__ import annotations

import os
import tempfile
import types

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

PROTO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "proto")


def _proto_files(root: str) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith(".proto"):
                found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def _compile(root: str, files: list[str]) -> descriptor_pb2.FileDescriptorSet:
    """Run protoc in process; return the descriptor set of ``files`` and everything they import."""
    import grpc_tools
    from grpc_tools import protoc

    wkt = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    with tempfile.TemporaryDirectory(prefix="tazlab-lab-pb-") as tmp:
        out = os.path.join(tmp, "set.pb")
        rc = protoc.main(["protoc", f"-I{root}", f"-I{wkt}", "--include_imports",
                          f"--descriptor_set_out={out}", *files])
        if rc != 0:
            raise RuntimeError(f"protoc failed ({rc}) on {root}")
        with open(out, "rb") as fh:
            return descriptor_pb2.FileDescriptorSet.FromString(fh.read())


def _namespace(name: str, fd, classes: dict) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(__name__=name, DESCRIPTOR=fd)
    for msg_name, desc in fd.message_types_by_name.items():
        setattr(ns, msg_name, classes[desc.full_name])
    for enum_name, desc in fd.enum_types_by_name.items():
        setattr(ns, enum_name, enum_type_wrapper.EnumTypeWrapper(desc))
        for value in desc.values:
            setattr(ns, value.name, value.number)
    return ns


def _module_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0] + "_pb2"


def load(root: str = PROTO_DIR) -> dict[str, types.SimpleNamespace]:
    """Namespaces by proto path (``machine/machine.proto``) for every file of the set."""
    fds = _compile(root, _proto_files(root))
    pool = descriptor_pool.DescriptorPool()
    for proto in fds.file:  # protoc orders a set with imports first
        pool.Add(proto)
    names = [proto.name for proto in fds.file]
    classes = message_factory.GetMessageClassesForFiles(names, pool)
    return {name: _namespace(_module_name(name), pool.FindFileByName(name), classes) for name in names}


_FILES = load()
_BY_MODULE = {ns.__name__: ns for ns in _FILES.values()}

common_pb2 = _FILES["common/common.proto"]
config_pb2 = _FILES["resource/definitions/config/config.proto"]
enums_pb2 = _FILES["resource/definitions/enums/enums.proto"]
machine_pb2 = _FILES["machine/machine.proto"]
resource_pb2 = _FILES["cosi/resource.proto"]
runtime_pb2 = _FILES["resource/definitions/runtime/runtime.proto"]
status_pb2 = _FILES["google/rpc/status.proto"]
empty_pb2 = _FILES["google/protobuf/empty.proto"]
timestamp_pb2 = _FILES["google/protobuf/timestamp.proto"]


def module(name: str) -> types.SimpleNamespace:
    """The namespace of a proto file by protoc's module name (``machine_pb2``), for files added later."""
    return _BY_MODULE[name]


def __getattr__(name: str) -> types.SimpleNamespace:
    """``from tazlab_lab.talos.pb import block_pb2`` for any file under proto/ (PEP 562)."""
    try:
        return _BY_MODULE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["common_pb2", "config_pb2", "empty_pb2", "enums_pb2", "load", "machine_pb2", "module",
           "resource_pb2", "runtime_pb2", "status_pb2", "timestamp_pb2"]
