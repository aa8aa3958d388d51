# -*- coding: utf-8 -*-
# Copyright: contributors to tazlab.resilience
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubeconfig RPC's reply (talos-provisioning.md, section 4).

``/machine.MachineService/Kubeconfig`` (os:admin, control planes only) streams ``common.Data`` whose
concatenated bytes are a gzip'd tar with one entry ``kubeconfig``. The server never closes the tar
writer: there is no end-of-archive marker, so only the first member is read (``next()`` /
``extractfile()``), never ``getmembers()``/``extractall()``.
"""

from __future__ import annotations

import gzip
import io
import tarfile

from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError, TalosNodeError

KUBECONFIG_RPC = "/machine.MachineService/Kubeconfig"


def check_chunks(chunks, node=None):
    """Raise for a chunk whose metadata carries an error; return the concatenated bytes."""
    out = []
    for msg in chunks:
        md = msg.metadata
        if md.error or md.status.code:
            raise TalosNodeError("Kubeconfig on %s: %s" % (md.hostname or node, md.error or md.status.message),
                                 code=md.status.code or None, node=md.hostname or node, rpc=KUBECONFIG_RPC)
        out.append(msg.bytes)
    return b"".join(out)


def extract_kubeconfig(data):
    """The ``kubeconfig`` entry of the (possibly unterminated) gzip'd tar, as bytes."""
    if not data:
        raise TalosError("Kubeconfig returned no data")
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise TalosError("Kubeconfig reply is not gzip: %s" % exc)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            member = tar.next()
            if member is None or member.name.lstrip("./") != "kubeconfig" or not member.isfile():
                raise TalosError("Kubeconfig reply has no kubeconfig entry (first entry %r)"
                                 % (member.name if member else None))
            f = tar.extractfile(member)
            content = f.read() if f is not None else b""
    except tarfile.TarError as exc:
        raise TalosError("Kubeconfig reply is not a tar archive: %s" % exc)
    if len(content) != member.size:
        raise TalosError("Kubeconfig reply is truncated (%d of %d bytes)" % (len(content), member.size))
    return content


async def fetch_kubeconfig(client, node=None, endpoint=None, timeout=None):
    """Call the Kubeconfig RPC through a :class:`TalosClient` and return the kubeconfig bytes."""
    from google.protobuf import empty_pb2
    from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import common_pb2
    chunks = await client.server_stream(KUBECONFIG_RPC, empty_pb2.Empty(), common_pb2.Data, node=node,
                                        endpoint=endpoint, idempotent=True, timeout=timeout)
    return extract_kubeconfig(check_chunks(chunks, node))
