"""The Kubeconfig RPC's gzip'd tar without end-of-archive marker (as Talos sends it)."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.talos import kubeconfig as kc
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.errors import TalosError, TalosNodeError
from ansible_collections.tazlab.resilience.plugins.module_utils.talos.pb import common_pb2

CONTENT = b"apiVersion: v1\nkind: Config\nclusters:\n- name: tazlab\n  cluster: {server: https://10.0.0.10:6443}\n"


def talos_archive(content=CONTENT, name="kubeconfig"):
    """A tar header and the data, no block padding and no end-of-archive blocks (Go's unclosed tar.Writer)."""
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mode = 0o600
    return gzip.compress(info.tobuf(tarfile.USTAR_FORMAT) + content)


def test_unterminated_archive_is_read_where_extractall_would_fail():
    data = talos_archive()
    with pytest.raises(tarfile.ReadError):
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data)), mode="r:") as tar:
            tar.getmembers()
    assert kc.extract_kubeconfig(data) == CONTENT


def test_chunks_are_concatenated_and_errors_checked():
    data = talos_archive()
    chunks = [common_pb2.Data(bytes=data[i:i + 7]) for i in range(0, len(data), 7)]
    assert kc.extract_kubeconfig(kc.check_chunks(chunks)) == CONTENT
    bad = [common_pb2.Data(metadata=common_pb2.Metadata(hostname="w1", error="not a control plane"))]
    with pytest.raises(TalosNodeError, match="w1: not a control plane"):
        kc.check_chunks(bad)


@pytest.mark.parametrize("data,match", [
    (b"", "no data"),
    (b"not gzip", "not gzip"),
    (None, "no kubeconfig entry"),
])
def test_bad_replies_are_refused(data, match):
    if data is None:
        data = talos_archive(name="other")
    with pytest.raises(TalosError, match=match):
        kc.extract_kubeconfig(data)


def test_truncated_entry_is_refused():
    info = tarfile.TarInfo("kubeconfig")
    info.size = len(CONTENT)
    data = gzip.compress(info.tobuf(tarfile.USTAR_FORMAT) + CONTENT[:10])
    with pytest.raises(TalosError):
        kc.extract_kubeconfig(data)
