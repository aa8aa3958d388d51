"""The collection tarball: built from the checkout, without the lab or dev files, installable, documented."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
MODULES = {"proxmox_fence", "proxmox_vm_status", "csi_force_detach", "longhorn_volume_info",
           "k8s_endpoint_fix", "k8s_remediation", "remediation_plan", "talos_node", "talos_etcd", "timeline_report"}


def run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **kw)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_build_install_and_document(tmp_path):
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), ROOT],
        cwd=str(tmp_path))
    tarball = tmp_path / "tazlab-resilience-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    tops = {n.split("/")[0] for n in names}
    assert {"plugins", "roles", "playbooks", "meta", "MANIFEST.json", "FILES.json", "README.md", "LICENSE"} <= tops
    for unwanted in ("lab", ".venv", ".cache", "collections", "scripts", "benchmarks", ".lab", "dist", "artifacts"):
        assert unwanted not in tops, unwanted
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/output")]
    assert {"plugins/modules/{0}.py".format(m) for m in MODULES} <= set(names)
    # Developer files stay out; what a user needs (the examples, the unit tests) is in.
    for unwanted in ("ansible.cfg", ".ansible-lint", "proto", "Makefile", "requirements-dev.txt"):
        assert unwanted not in tops, unwanted
    assert not [n for n in names if n.startswith(("tests/integration", "extensions/molecule"))]
    assert {"examples/README.md", "examples/ansible.cfg", "examples/inventory/tazlab.cluster.yml",
            "plugins/inventory/cluster.py", "plugins/filter/timeline_lines.yml"} <= set(names)

    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "installed"), ANSIBLE_CONFIG=str(cfg))
    run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "-p", str(tmp_path / "installed"),
         str(tarball)], cwd=str(tmp_path), env=env)
    listed = run([os.path.join(BIN, "ansible-doc"), "-l", "tazlab.resilience"], cwd=str(tmp_path), env=env)
    assert {line.split()[0].rsplit(".", 1)[1] for line in listed.splitlines() if line.strip()} >= MODULES
    doc = run([os.path.join(BIN, "ansible-doc"), "tazlab.resilience.proxmox_fence"], cwd=str(tmp_path), env=env)
    assert "expected_system_uuid" in doc and "api_token_secret" in doc
    inventory = run([os.path.join(BIN, "ansible-doc"), "-t", "inventory", "tazlab.resilience.cluster"], cwd=str(tmp_path),
                    env=env)
    assert "unfenceable" in inventory and "K8S_AUTH_KUBECONFIG" in inventory
    lines = run([os.path.join(BIN, "ansible-doc"), "-t", "filter", "tazlab.resilience.timeline_lines"], cwd=str(tmp_path),
                env=env)
    assert "never as" in lines
    roles = run([os.path.join(BIN, "ansible-doc"), "-t", "role", "-l", "tazlab.resilience"], cwd=str(tmp_path), env=env)
    assert "disaster_recovery" in roles
    # The runbooks run by their FQCN from the installed collection (no hyphen in a collection playbook name).
    for playbook in ("dr_recover", "dr_restore", "ip_migrate", "audit", "drill"):
        listed = run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", "tazlab.resilience." + playbook],
                     cwd=str(tmp_path), env=env)
        assert "installed/ansible_collections/tazlab/resilience/playbooks/{0}.yml".format(playbook) in listed, listed
