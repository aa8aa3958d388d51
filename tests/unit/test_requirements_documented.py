"""The Python requirement versions the documentation states are the ones meta/ee-requirements.txt installs."""

from __future__ import annotations

import ast
import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQ = re.compile(r'^([A-Za-z0-9_.-]+) >= ([0-9][0-9.]*)')


def ee_requirements():
    out = {}
    for line in open(os.path.join(ROOT, 'meta', 'ee-requirements.txt')):
        line = line.split('#', 1)[0].strip()
        if line:
            name, dummy, rest = line.partition('>=')
            out[name.strip().lower()] = rest.split(',')[0].strip()
    return out


def documented():
    files = glob.glob(os.path.join(ROOT, 'plugins', '*', '*.py'))
    for path in files:
        for node in ast.parse(open(path).read()).body:
            targets = []
            if isinstance(node, ast.Assign):
                targets = [node]
            elif isinstance(node, ast.ClassDef):
                targets = [n for n in node.body if isinstance(n, ast.Assign)]
            for assign in targets:
                if getattr(assign.targets[0], 'id', '') == 'DOCUMENTATION' and isinstance(assign.value, ast.Constant):
                    for req in (yaml.safe_load(assign.value.value) or {}).get('requirements') or []:
                        yield os.path.relpath(path, ROOT), req


def test_documented_versions_match_the_execution_environment():
    ee = ee_requirements()
    seen = 0
    for path, req in documented():
        found = REQ.match(req)
        assert found or ' >' not in req, (path, req)
        if found:
            seen += 1
            name, version = found.group(1).lower(), found.group(2)
            assert ee.get(name) == version, '{0}: documents {1} >= {2}, meta/ee-requirements.txt has {3}'.format(
                path, name, version, ee.get(name))
    assert seen >= 5
