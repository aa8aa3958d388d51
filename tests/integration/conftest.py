"""Integration tests: the collection's code against the lab twin (and fakepve) on loopback.

Shared helpers for these tests (k8s_lab: the lab world handle, in-process and `ansible -m` module runs)
live in this folder, which is put on sys.path here.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
