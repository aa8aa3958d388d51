"""ee/execution-environment.yml and ee/decision-environment.yml rendered by `ansible-builder create` (no
container engine), and the rendered dependency lists checked against what the modules import."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)
# Names Ansible itself provides in every execution environment.
PROVIDED = {"ansible", "ansible_collections", "__future__"}


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def plugin_imports():
    """Every absolute import under plugins/ that is neither stdlib nor Ansible: {dotted name: [files]}."""
    found = {}
    for base, _dirs, files in os.walk(os.path.join(ROOT, "plugins")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(base, name)
            with open(path) as fh:
                tree = ast.parse(fh.read(), path)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for dotted in names:
                    top = dotted.split(".")[0]
                    if top in sys.stdlib_module_names or top in PROVIDED:
                        continue
                    found.setdefault(dotted, []).append(os.path.relpath(path, ROOT))
    return found


def distribution_of(dotted):
    """The installed distribution that ships the module (namespace packages such as google.* resolved)."""
    parts = dotted.split(".")
    for depth in range(len(parts), 0, -1):
        prefix = "/".join(parts[:depth])
        for dist in importlib.metadata.distributions():
            for f in dist.files or []:
                s = str(f)
                if s == prefix + ".py" or s.startswith(prefix + "/__init__.py") or (
                        depth > 1 and s.startswith(prefix + "/")):
                    return canonical(dist.metadata["Name"])
    raise AssertionError("no installed distribution provides {0}".format(dotted))


def required_distributions():
    imports = plugin_imports()
    dists = dict((distribution_of(d), files) for d, files in imports.items())
    # proxmoxer declares no dependencies, but its https backend (the one the Proxmox client uses) needs requests.
    import proxmoxer.backends.https as https_backend
    assert "import requests" in open(https_backend.__file__).read()
    dists["requests"] = ["proxmoxer.backends.https"]
    return dists


def requirement_names(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            out[canonical(name)] = line[len(name):].strip()
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Both definitions rendered from a copy of the checkout's layout (ee/, meta/, dist/ with the tarball)."""
    work = tmp_path_factory.mktemp("ee")
    shutil.copytree(os.path.join(ROOT, "ee"), work / "ee")
    shutil.copytree(os.path.join(ROOT, "meta"), work / "meta")
    proc = subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path",
                           str(work / "dist"), ROOT], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = {}
    for kind in ("execution", "decision"):
        context = work / ("context-" + kind)
        proc = subprocess.run([os.path.join(BIN, "ansible-builder"), "create", "-f",
                               str(work / "ee" / "{0}-environment.yml".format(kind)), "-c", str(context),
                               "--output-filename", "Containerfile"], cwd=str(work), capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out[kind] = context
    return out


def test_the_modules_imports_are_what_the_collection_declares():
    declared = requirement_names(open(os.path.join(ROOT, "meta", "ee-requirements.txt")).read().splitlines())
    required = required_distributions()
    assert set(declared) == set(required), (declared, required)
    # AAP resolves one set for every collection in an EE: lower bounds only, never an upper bound or a pin.
    for name, spec in declared.items():
        assert re.fullmatch(r">=[0-9][0-9.]*", spec), (name, spec)


@pytest.mark.parametrize("kind", ["execution", "decision"])
def test_rendered_context_installs_the_collection_and_its_dependencies(rendered, kind):
    context = rendered[kind]
    containerfile = (context / "Containerfile").read_text()
    build = context / "_build"
    pip = requirement_names((build / "requirements.txt").read_text().splitlines())
    bindep = (build / "bindep.txt").read_text()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    version = yaml.safe_load(open(os.path.join(ROOT, "galaxy.yml")))["version"]
    tarball = "collections/tazlab-resilience-{0}.tar.gz".format(version)

    # the collection tarball (of galaxy.yml's version) is in the context and installed by the galaxy stage
    assert galaxy == {"collections": [{"name": tarball, "type": "file"}]}
    assert (build / tarball).is_file()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    # the Python dependencies are exactly what the modules import (+ ansible-rulebook for the DE), lower bounds only
    expected = set(required_distributions()) | ({"ansible-rulebook"} if kind == "decision" else set())
    assert set(pip) == expected, pip
    assert all(re.fullmatch(r">=[0-9][0-9.]*", spec) for spec in pip.values()), pip
    assert "--user-pip=requirements.txt" in containerfile and "--user-bindep=bindep.txt" in containerfile
    # ansible-core new enough for meta/runtime.yml, on a Python it supports
    requires = yaml.safe_load(open(os.path.join(ROOT, "meta", "runtime.yml")))["requires_ansible"]
    assert 'ARG ANSIBLE_INSTALL_REFS="ansible-core{0} ansible-runner>=2.4.0"'.format(requires) in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.12"' in containerfile
    # the Talos client's Ed25519 TLS uses the system OpenSSL
    assert "openssl" in bindep and "ca-certificates" in bindep
    if kind == "decision":
        assert "java-17-openjdk" in bindep
        assert "ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk" in containerfile
