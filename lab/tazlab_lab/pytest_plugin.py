"""pytest fixtures that give tests the lab twin's world (registered through the pytest11 entry point)."""

from __future__ import annotations

import pytest

from .clock import SimClock


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "lab_world(scenario=, time_scale=, boot=, settle=): options for the lab_world fixture "
                   "(defaults: scenario 'tazlab', time_scale None = the clock moves only with advance(), "
                   "settle 60 simulated seconds run at start)")


@pytest.fixture
def sim_clock() -> SimClock:
    """A fresh simulated clock at the seed story's evening, moved only by ``await advance()``."""
    return SimClock()


def _world_options(request) -> dict:
    options = {"scenario": "tazlab", "time_scale": None, "boot": None, "settle": 60.0}
    marker = request.node.get_closest_marker("lab_world")
    if marker is not None:
        if marker.args:
            raise pytest.UsageError("the lab_world marker takes keyword arguments only")
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:  # indirect parametrization: a time scale, or a dict of options
        options.update(param if isinstance(param, dict) else {"time_scale": param})
    unknown = set(options) - {"scenario", "time_scale", "boot", "settle"}
    if unknown:
        raise pytest.UsageError("lab_world options are scenario, time_scale, boot and settle, not {0}".format(
            sorted(unknown)))
    return options


@pytest.fixture
def lab_world(request, tmp_path):
    """A started in-process LabWorld on a background event-loop thread (blocking clients work).

    Yields a :class:`tazlab_lab.world.WorldThread`: ``.world`` (also reachable by attribute:
    ``lab_world.proxmox``, ``lab_world.kube``, ``lab_world.nodes`` ...), ``.advance(s)``,
    ``.run_until(pred, timeout)``, ``.call(coro)``, ``.fault(kind, target, **params)``.
    Options: ``@pytest.mark.lab_world(scenario=..., time_scale=..., boot=..., settle=...)`` or indirect
    parametrization (``@pytest.mark.parametrize("lab_world", [None, 0.01], indirect=True)``:
    None = the clock moves only with advance(); a number = real time at that scale).
    Files (kubeconfig, talosconfig, proxmox.env, inventory.yaml, ca.crt) go into tmp_path/"world".
    """
    from .world import LabWorld, WorldThread

    options = _world_options(request)
    world = LabWorld(options["scenario"], str(tmp_path / "world"), time_scale=options["time_scale"],
                  proxmox_port=0, boot=options["boot"], settle=options["settle"], isolated=True)
    handle = WorldThread(world)
    try:
        handle.start()
    except BaseException:
        handle.stop()
        raise
    try:
        yield handle
        errors = list(world.errors)
    finally:
        handle.stop()
    # A controller, a twin's timer or a coupling hook that raised is a broken world: fail the test.
    assert not errors, "the lab world raised inside its controllers/hooks: {0!r}".format(errors)
