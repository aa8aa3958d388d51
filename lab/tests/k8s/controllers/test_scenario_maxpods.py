"""A scenario node's maxPods becomes its capacity and allocatable pod count (what the scheduler reads)."""

from tazlab_lab.k8s.scenario import load_scenario, node_object


def test_max_pods_sets_capacity_and_allocatable():
    data = load_scenario("tazlab")
    worker = data["nodes"][3]
    dense = node_object(dict(worker, maxPods=250), 3)
    assert dense["status"]["capacity"]["pods"] == "250"
    assert dense["status"]["allocatable"]["pods"] == "250"
    assert node_object(worker, 3)["status"]["allocatable"]["pods"] == "110"
