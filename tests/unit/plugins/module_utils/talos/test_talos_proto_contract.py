"""The generated messages (proto/ -> pb/) match the Talos wire contract in talos.md: names, numbers, types.

The contract is parsed from the shared reference (``$TAZLAB_REFERENCE_DIR/talos.md``, default
``<repo>/../shared/reference/talos.md``). Where that file is not available, a copy of its message blocks
kept below is used instead, and the test says so with a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import (
    common_pb2, config_pb2, enums_pb2, machine_pb2, resource_pb2, runtime_pb2, status_pb2)
from google.protobuf.descriptor import FieldDescriptor as FD

REPO = Path(__file__).resolve().parents[5]
REFERENCE = Path(os.environ.get("TAZLAB_REFERENCE_DIR", REPO.parent / "shared" / "reference")) / "talos.md"

# Copy of talos.md's contract (v1.13.9), used only when the reference file is not present.
FALLBACK = r'''
## Protobuf (package `common`)

```
message Metadata { string hostname = 1; string error = 2; google.rpc.Status status = 3; }
  // google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
message Data     { Metadata metadata = 1; bytes bytes = 2; }
message Empty    { Metadata metadata = 1; }
```

## Protobuf (package `machine`, service `MachineService`, paths `/machine.MachineService/<Rpc>`)

```
rpc ApplyConfiguration(ApplyConfigurationRequest) returns (ApplyConfigurationResponse);
rpc Bootstrap(BootstrapRequest) returns (BootstrapResponse);
rpc EtcdMemberList(EtcdMemberListRequest) returns (EtcdMemberListResponse);
rpc EtcdRemoveMemberByID(EtcdRemoveMemberByIDRequest) returns (EtcdRemoveMemberByIDResponse);
rpc EtcdLeaveCluster(EtcdLeaveClusterRequest) returns (EtcdLeaveClusterResponse);
rpc EtcdRecover(stream common.Data) returns (EtcdRecoverResponse);      // client streaming
rpc EtcdSnapshot(EtcdSnapshotRequest) returns (stream common.Data);     // server streaming
rpc EtcdStatus(google.protobuf.Empty) returns (EtcdStatusResponse);
rpc Hostname(google.protobuf.Empty) returns (HostnameResponse);
rpc Reboot(RebootRequest) returns (RebootResponse);
rpc Reset(ResetRequest) returns (ResetResponse);
rpc ServiceList(google.protobuf.Empty) returns (ServiceListResponse);
rpc Shutdown(ShutdownRequest) returns (ShutdownResponse);
rpc Version(google.protobuf.Empty) returns (VersionResponse);

ApplyConfigurationRequest { enum Mode { REBOOT=0; AUTO=1; NO_REBOOT=2; STAGED=3; TRY=4; }
  bytes data=1; Mode mode=4; bool dry_run=5; google.protobuf.Duration try_mode_timeout=6; }
ApplyConfiguration { Metadata metadata=1; repeated string warnings=2; Mode mode=3; string mode_details=4; }
RebootRequest { enum Mode { DEFAULT=0; POWERCYCLE=1; FORCE=2; } Mode mode=1; }
Reboot { Metadata metadata=1; string actor_id=2; }
ShutdownRequest { bool force=1; }      Shutdown { Metadata metadata=1; string actor_id=2; }
BootstrapRequest { bool recover_etcd=1; bool recover_skip_hash_check=2; }   Bootstrap { Metadata metadata=1; }
Version { Metadata metadata=1; VersionInfo version=2; PlatformInfo platform=3; FeaturesInfo features=4; }
VersionInfo { string tag=1; string sha=2; string built=3; string go_version=4; string os=5; string arch=6; }
PlatformInfo { string name=1; string mode=2; }      FeaturesInfo { bool rbac=1; }
ServiceList { Metadata metadata=1; repeated ServiceInfo services=2; }
ServiceInfo { string id=1; string state=2; ServiceEvents events=3; ServiceHealth health=4; }
ServiceEvents { repeated ServiceEvent events=1; }
ServiceEvent { string msg=1; string state=2; google.protobuf.Timestamp ts=3; }
ServiceHealth { bool unknown=1; bool healthy=2; string last_message=3; google.protobuf.Timestamp last_change=4; }
Hostname { Metadata metadata=1; string hostname=2; }
EtcdMemberListRequest { bool query_local=1; }
EtcdMember { uint64 id=2; string hostname=3; repeated string peer_urls=4; repeated string client_urls=5; bool is_learner=6; }
EtcdMembers { Metadata metadata=1; repeated string legacy_members=2; repeated EtcdMember members=3; }
EtcdRemoveMemberByIDRequest { uint64 member_id=1; }   EtcdRemoveMemberByID { Metadata metadata=1; }
EtcdLeaveClusterRequest {}   EtcdLeaveCluster { Metadata metadata=1; }
EtcdSnapshotRequest {}       EtcdRecover { Metadata metadata=1; }
EtcdStatus { Metadata metadata=1; EtcdMemberStatus member_status=2; }
EtcdMemberStatus { string protocol_version=1; int64 db_size=2; int64 db_size_in_use=3; uint64 leader=4;
  uint64 raft_index=5; uint64 raft_term=6; uint64 raft_applied_index=7; repeated string errors=8;
  bool is_learner=9; uint64 member_id=10; string storage_version=11; }
ResetPartitionSpec { string label=1; bool wipe=2; }
ResetRequest { enum WipeMode { ALL=0; SYSTEM_DISK=1; USER_DISKS=2; } bool graceful=1; bool reboot=2;
  repeated ResetPartitionSpec system_partitions_to_wipe=3; repeated string user_disks_to_wipe=4; WipeMode mode=5; }
Reset { Metadata metadata=1; string actor_id=2; }
```

## Resource API (package `cosi.resource`, service `State`, `/cosi.resource.State/Get|List|Watch`)

```
GetRequest { string namespace=1; string type=2; string id=3; GetOptions options=4; }   GetOptions {}
GetResponse { Resource resource=1; }
ListRequest { string namespace=1; string type=2; ListOptions options=3; }   // List streams ListResponse
ListResponse { Resource resource=1; }
Resource { Metadata metadata=1; Spec spec=2; }
Spec { bytes proto_spec=1; string yaml_spec=2; }
Metadata { string namespace=1; string type=2; string id=3; string version=4; string owner=5; string phase=6;
  google.protobuf.Timestamp created=7; google.protobuf.Timestamp updated=8; repeated string finalizers=9;
  map<string,string> labels=10; map<string,string> annotations=11; }
```

  `MachineConfigSpec { bytes yaml_marshalled = 1; }`: the exact multi-document YAML.
  `MachineStatusSpec { RuntimeMachineStage stage=1; MachineStatusStatus status=2; }`,
  `MachineStatusStatus { bool ready=1; repeated UnmetCondition unmet_conditions=2; }`,
  `UnmetCondition { string name=1; string reason=2; }`; stages UNKNOWN=0 BOOTING=1 INSTALLING=2
  MAINTENANCE=3 RUNNING=4 REBOOTING=5 SHUTTING_DOWN=6 RESETTING=7 UPGRADING=8.

## Machine config
'''

SCALARS = {"string": FD.TYPE_STRING, "bytes": FD.TYPE_BYTES, "bool": FD.TYPE_BOOL, "int32": FD.TYPE_INT32,
           "int64": FD.TYPE_INT64, "uint32": FD.TYPE_UINT32, "uint64": FD.TYPE_UINT64, "double": FD.TYPE_DOUBLE,
           "float": FD.TYPE_FLOAT}
MODULES = [common_pb2, config_pb2, enums_pb2, machine_pb2, resource_pb2, runtime_pb2, status_pb2]
PACKAGES = {"common": common_pb2, "machine": machine_pb2, "cosi.resource": resource_pb2}


def reference_text():
    if REFERENCE.is_file():
        return REFERENCE.read_text(encoding="utf-8"), str(REFERENCE)
    warnings.warn(f"{REFERENCE} not found: checking against the copy of its contract kept in this test")
    return FALLBACK, "fallback copy in test_talos_proto_contract.py"


def sections(text):
    """(package, section text) for the three protobuf sections of talos.md."""
    parts = re.split(r"^## ", text, flags=re.M)
    out = []
    for part in parts:
        m = re.match(r"(?:Protobuf|Resource API) \(package `([\w.]+)`", part)
        if m:
            out.append((m.group(1), part))
    return out


def _blocks(text):
    """Top-level ``Name { ... }`` blocks (balanced braces) with their bodies."""
    text = re.sub(r"^\s*//\s?", "", text, flags=re.M)
    for m in re.finditer(r"(?:message\s+)?([A-Z][\w.]*)\s*\{", text):
        # only blocks not nested in another block
        if text[:m.start()].count("{") != text[:m.start()].count("}"):
            continue
        depth, i = 0, m.end() - 1
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        yield m.group(1), text[m.end():i]


def parse_message(body):
    enums = {}
    for em in re.finditer(r"enum\s+(\w+)\s*\{([^}]*)\}", body):
        enums[em.group(1)] = {n: int(v) for n, v in re.findall(r"(\w+)\s*=\s*(\d+)", em.group(2))}
    body = re.sub(r"enum\s+\w+\s*\{[^}]*\}", "", body)
    fields = {}
    for label, ftype, name, number in re.findall(
            r"(repeated\s+)?(map<\s*\w+\s*,\s*\w+\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)", body):
        fields[name] = (int(number), ftype.replace(" ", ""), bool(label))
    return fields, enums


def contract():
    text, source = reference_text()
    messages, rpcs, stages = [], [], {}
    for package, part in sections(text):
        for name, body in _blocks(part):
            if name.startswith("X") and name in ("XResponse", "X"):
                continue
            fields, enums = parse_message(body)
            messages.append((package, name, fields, enums))
        rpcs += re.findall(r"rpc (\w+)\((stream )?([\w.]+)\) returns \((stream )?([\w.]+)\);", part)
        sm = re.search(r"stages ((?:\w+=\d+\s*)+)", part)
        if sm:
            stages = {n: int(v) for n, v in re.findall(r"(\w+)=(\d+)", sm.group(1))}
    return messages, rpcs, stages, source


MESSAGES, RPCS, STAGES, SOURCE = contract()


def descriptor(package, name):
    if "." in name:                                  # google.rpc.Status
        package, name = name.rsplit(".", 1)
        if package == "google.rpc":
            return status_pb2.DESCRIPTOR.message_types_by_name[name]
    mod = PACKAGES.get(package)
    if mod is not None and name in mod.DESCRIPTOR.message_types_by_name:
        return mod.DESCRIPTOR.message_types_by_name[name]
    for mod in MODULES:                              # MachineConfigSpec, MachineStatusSpec, ...
        if name in mod.DESCRIPTOR.message_types_by_name:
            return mod.DESCRIPTOR.message_types_by_name[name]
    raise AssertionError(f"message {name} of the contract is missing from the generated code")


def test_contract_was_parsed():
    names = {m[1] for m in MESSAGES}
    # every message block of the reference, plus the four resource specs
    assert {"Metadata", "Status", "Data", "Empty", "ApplyConfigurationRequest", "EtcdMemberStatus", "ResetRequest",
            "Resource", "GetRequest", "MachineConfigSpec", "MachineStatusSpec", "MachineStatusStatus",
            "UnmetCondition"} <= names, SOURCE
    assert len(MESSAGES) >= 45 and len(RPCS) == 14 and len(STAGES) == 9, SOURCE


@pytest.mark.parametrize("package,name,fields,enums", MESSAGES, ids=[f"{m[0]}.{m[1]}" for m in MESSAGES])
def test_message_matches_reference(package, name, fields, enums):
    desc = descriptor(package, name)
    assert {f.name for f in desc.fields} == set(fields), f"{desc.full_name}: field names differ from {SOURCE}"
    for fname, (number, ftype, repeated) in fields.items():
        f = desc.fields_by_name[fname]
        assert f.number == number, f"{desc.full_name}.{fname} number"
        if ftype.startswith("map<"):
            assert f.message_type.GetOptions().map_entry, f"{desc.full_name}.{fname} is not a map"
            continue
        assert f.is_repeated == repeated, f"{desc.full_name}.{fname} repeated"
        if ftype in SCALARS:
            assert f.type == SCALARS[ftype], f"{desc.full_name}.{fname} type"
        elif f.type == FD.TYPE_ENUM:
            assert f.enum_type.name == ftype.rsplit(".", 1)[-1], f"{desc.full_name}.{fname} enum type"
        else:
            assert f.type == FD.TYPE_MESSAGE and f.message_type.name == ftype.rsplit(".", 1)[-1], \
                f"{desc.full_name}.{fname} message type"
    for ename, values in enums.items():
        got = {v.name: v.number for v in desc.enum_types_by_name[ename].values}
        assert got == values, f"{desc.full_name}.{ename}"


def test_every_unary_reply_wraps_repeated_messages():
    service = machine_pb2.DESCRIPTOR.services_by_name["MachineService"]
    for method in service.methods:
        out = method.output_type
        if out.name.endswith("Response"):
            (field,) = out.fields
            assert (field.name, field.number, field.is_repeated) == ("messages", 1, True)
            first = field.message_type.fields_by_number[1]
            assert (first.name, first.message_type.full_name) == ("metadata", "common.Metadata")


@pytest.mark.parametrize("rpc", RPCS, ids=[r[0] for r in RPCS])
def test_rpc_signature_matches_reference(rpc):
    name, client_stream, req, server_stream, resp = rpc
    method = machine_pb2.DESCRIPTOR.services_by_name["MachineService"].methods_by_name[name]
    assert method.client_streaming == bool(client_stream)
    assert method.server_streaming == bool(server_stream)
    for want, got in ((req, method.input_type), (resp, method.output_type)):
        full = want if "." in want else f"machine.{want}"
        assert got.full_name == full


def test_state_service_and_stages():
    state = resource_pb2.DESCRIPTOR.services_by_name["State"]
    get, lst = state.methods_by_name["Get"], state.methods_by_name["List"]
    assert (get.input_type.name, get.output_type.name, get.server_streaming) == ("GetRequest", "GetResponse", False)
    assert (lst.input_type.name, lst.output_type.name, lst.server_streaming) == ("ListRequest", "ListResponse", True)
    enum = enums_pb2.DESCRIPTOR.enum_types_by_name["RuntimeMachineStage"]
    assert {v.name.replace("MACHINE_STAGE_", ""): v.number for v in enum.values} == STAGES
