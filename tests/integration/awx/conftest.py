"""Fixtures for the AWX harness tests: the configuration data and an installed copy of the collection."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from awx_harness import Controller, install_collection, load_configuration  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CONFIG = os.path.join(ROOT, 'playbooks', 'vars', 'awx_configuration.yml')


@pytest.fixture(scope='session')
def awx_configuration():
    return load_configuration(CONFIG)


@pytest.fixture(scope='session')
def ee_collections(tmp_path_factory):
    """The collection built and installed as the execution environment has it."""
    return install_collection(ROOT, str(tmp_path_factory.mktemp('ee')))


@pytest.fixture
def controller(awx_configuration, ee_collections, tmp_path):
    project = tmp_path / 'project-src'
    shutil.copytree(os.path.join(ROOT, 'playbooks'), project / 'playbooks')
    work = tmp_path / 'awx'
    work.mkdir()
    return Controller(awx_configuration, str(project), ee_collections, str(work))
