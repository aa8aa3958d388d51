"""ansible-rulebook against a lab started with `tazlab-lab up` (make demo-auto, bench_dr.py, the EDA tests).

    .venv/bin/python scripts/eda_lab.py java     # the JDK check ansible-rulebook needs (exit 1 with a message)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
READY_LINE = "node_health: watching"

JAVA_HELP = """ansible-rulebook needs a Java runtime >= 17 (the Drools rule engine runs in the JVM through jpy).
{problem}
Install one and make it findable, for example:
  Debian/Ubuntu:  apt-get install openjdk-17-jre-headless
  RHEL/Fedora:    dnf install java-17-openjdk-headless
  macOS:          brew install openjdk@17
then set JAVA_HOME to it (ansible-rulebook looks there first), e.g.
  export JAVA_HOME=$(dirname $(dirname $(readlink -f $(command -v java))))"""


def java_home():
    """(JAVA_HOME to use, major version) or raise RuntimeError with what is wrong and how to fix it."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise RuntimeError(JAVA_HELP.format(problem="No java found (JAVA_HOME={0!r}, no java on PATH).".format(home)))
    java = os.path.realpath(java)
    proc = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', proc.stderr + proc.stdout)
    if not match:
        raise RuntimeError(JAVA_HELP.format(problem="{0} -version did not say its version.".format(java)))
    major = int(match.group(1))
    if major == 1 and match.group(2):  # 1.8 style
        major = int(match.group(2))
    if major < 17:
        raise RuntimeError(JAVA_HELP.format(problem="{0} is Java {1}, older than 17.".format(java, major)))
    return os.path.dirname(os.path.dirname(java)), major


def write_vars(directory, **extra):
    """eda-vars.yml for the rulebook: the lab's connection dicts (from its inventory) plus `extra`."""
    with open(os.path.join(directory, "inventory.yaml"), encoding="utf-8") as fh:
        inventory = yaml.safe_load(fh)
    lab_vars = inventory["all"]["vars"]
    data = {"tazlab_kubernetes": lab_vars["tazlab_kubernetes"], "tazlab_proxmox": lab_vars["tazlab_proxmox"],
            "timeline_dir": os.path.join(directory, "artifacts")}
    data.update(extra)
    path = os.path.join(directory, "eda-vars.yml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(data, fh)
    return path


def rulebook_env():
    home, _major = java_home()
    return dict(os.environ, JAVA_HOME=home, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "collections"),
                                                         os.path.join(ROOT, ".cache", "collections")]),
                PATH=BIN + os.pathsep + os.environ["PATH"])


class Rulebook(object):
    """ansible-rulebook -r <rulebook> -i <lab inventory> -e eda-vars.yml, logging to <dir>/rulebook.log."""

    def __init__(self, directory, rulebook="tazlab.resilience.auto_recover", **extra_vars):
        self.directory = directory
        self.rulebook = rulebook
        self.vars = write_vars(directory, **extra_vars)
        self.log_path = os.path.join(directory, "rulebook.log")
        self.proc = None

    def start(self, timeout=120):
        """Start it and wait until the source watches the cluster; returns self."""
        log = open(self.log_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [os.path.join(BIN, "ansible-rulebook"), "-r", self.rulebook, "-i",
             os.path.join(self.directory, "inventory.yaml"), "-e", self.vars, "-v"],
            cwd=self.directory, env=rulebook_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while READY_LINE not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError("ansible-rulebook exited ({0}):\n{1}".format(self.proc.returncode, self.log()[-4000:]))
            if time.monotonic() > deadline:
                raise RuntimeError("the node_health source did not start within {0}s:\n{1}".format(
                    timeout, self.log()[-4000:]))
            time.sleep(0.2)
        return self

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""

    def count(self, text):
        return self.log().count(text)

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(20)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["java"]:
        try:
            found, version = java_home()
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            sys.exit(1)
        print("java {0} at {1}".format(version, found))
        sys.exit(0)
    print(__doc__)
    sys.exit(2)
