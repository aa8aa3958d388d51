"""Stand-in for ansible-test's pip bootstrap script (get_pip_<version>.py).

ansible-test --venv downloads a pip bootstrap script from a host that is not reachable from CI;
this stand-in installs the requested pip with ensurepip and the machine's own package index instead.
"""
import ensurepip
import os
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
env.pop("PIP_CONFIG_FILE", None)  # keep the machine's pip.conf (its index) in force
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env))
