"""Make ``ansible_collections.tazlab.resilience`` importable from the checkout (see `make venv`)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the collection, and tests/ for module_harness (a module's main() in-process, shared by both test trees)
for path in (os.path.join(ROOT, "collections"), os.path.join(ROOT, "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)
