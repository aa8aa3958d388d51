from __future__ import annotations

import pathlib
import re

from ansible_collections.tazlab.resilience.plugins.module_utils import names

PLUGINS = pathlib.Path(names.__file__).resolve().parents[1]


def test_every_name_the_collection_owns_is_under_one_domain():
    own = [v for k, v in vars(names).items() if k.isupper() and isinstance(v, str) and 'tazlab.io/' in v]
    legacy = [v for k, v in vars(names).items() if k.startswith('LEGACY_')]
    assert own and all(v.startswith(names.DOMAIN + '/') for v in own if v not in legacy)
    assert all(v.startswith('resilience.tazlab.io/') for v in legacy)


def test_no_module_utils_file_spells_a_taint_or_annotation_of_its_own():
    # The literals live in names.py; code elsewhere refers to them (docstrings and comments may name them).
    pattern = re.compile(r"""^[^#]*['"](?:node\\.kubernetes\\.io/out-of-service|remediation\\.tazlab\\.io/|resilience\\.tazlab\\.io/)""")
    offenders = []
    for path in (PLUGINS / 'module_utils').rglob('*.py'):
        if path.name == 'names.py':
            continue
        in_doc = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.count('\"\"\"') % 2 == 1:
                in_doc = not in_doc
                continue
            if not in_doc and pattern.search(line):
                offenders.append('{0}:{1}'.format(path.relative_to(PLUGINS), number))
    assert offenders == []
