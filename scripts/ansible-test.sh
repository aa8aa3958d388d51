#!/usr/bin/env bash
# Run ansible-test on a staged copy of the collection, offline.
# ansible-test wants the collection at a physical .../ansible_collections/tazlab/resilience path (a
# symlink is rejected), so the tracked files (minus the lab, which is not part of the collection)
# are copied there. Its --venv bootstrap downloads a pip installer from a host CI cannot reach:
# the cache is seeded with a stand-in that uses ensurepip and the machine's own package index.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Outside the checkout: inside it, git would see the copy as ignored and ansible-test would skip it.
stage=${ANSIBLE_TEST_STAGE:-${TMPDIR:-/tmp}/tazlab-ansible-test-$(printf %s "$root" | md5sum | cut -c1-8)}
dest=$stage/ansible_collections/tazlab/resilience
venv=$root/.venv

pip_version=$("$venv/bin/python" - <<'PY'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"default_packages = dict\(\s*pip='([^']+)'", src).group(1))
PY
)
mkdir -p ~/.ansible/test/cache
cp "$root/scripts/get_pip_standin.py" ~/.ansible/test/cache/get_pip_${pip_version//./_}.py

# Fresh copy of what git tracks (and untracked, not ignored files), without the lab.
rm -rf "$dest/plugins" "$dest/roles" "$dest/playbooks" "$dest/tests/unit" "$dest/tests/integration" "$dest/meta" "$dest/extensions"
mkdir -p "$dest"
cd "$root"
git ls-files -z --cached --others --exclude-standard \
  | grep -zv -e '^lab/' -e '^collections/' \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$dest"
cd "$dest"
export PATH="$venv/bin:$PATH"
exec ansible-test "$@"
