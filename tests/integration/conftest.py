"""Integration tests: the collection's code against the lab twin (and fakepve) on loopback.

Shared helpers for these tests (k8s_lab: the lab world handle, in-process and `ansible -m` module runs)
live in this folder, which is put on sys.path here.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the collection, and tests/ for module_harness (a module's main() in-process, shared by both test trees)
for path in (os.path.join(ROOT, "collections"), os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
