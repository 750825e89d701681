"""A per-trial request no node holds is refused with the request and every node's CPUs/GPUs named."""

from __future__ import annotations

import pytest

from tuner.errors import UserError
from tuner.run.placement import check_placement

NODES = [{"Alive": True, "Resources": {"CPU": 1.0}},
         {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}},
         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]


def _accepted(cpu: float, gpu: float, nodes: list, workers: int = 1) -> bool:
    try:
        check_placement(cpu, gpu, nodes, workers=workers)
    except UserError:
        return False
    return True


def test_a_request_one_node_holds_passes_and_a_little_more_does_not() -> None:
    assert _accepted(1, 0, NODES) and _accepted(0.5, 0.5, NODES)
    assert _accepted(4, 2, NODES)  # exactly the largest live node
    assert not _accepted(4.5, 2, NODES) and not _accepted(4, 2.5, NODES)


@pytest.mark.parametrize(("cpu", "gpu"), [(1, 3), (5, 0), (2, 0.5 + 2)])
def test_a_request_no_live_node_holds_is_refused(cpu: float, gpu: float) -> None:
    with pytest.raises(UserError) as err:
        check_placement(cpu, gpu, NODES)
    text = str(err.value)
    assert f"cpu: {cpu:g}, gpu: {gpu:g}" in text and "1 CPU, 0 GPU; 4 CPU, 2 GPU" in text
    assert "64 CPU" not in text and "\n" not in text  # a dead node offers nothing


def test_cpu_and_gpu_must_fit_on_the_same_node() -> None:
    with pytest.raises(UserError):
        check_placement(3, 1, [{"Resources": {"CPU": 4.0}}, {"Resources": {"CPU": 1.0, "GPU": 1.0}}])


def test_workers_of_one_trial_spread_over_the_nodes_that_hold_them() -> None:
    # one worker per CPU; the Tune trial that waits takes a sliver of one, so the 5th CPU-worker has no room
    assert _accepted(1, 0, NODES, workers=4) and not _accepted(1, 0, NODES, workers=5)
    # the GPU node holds both (2 CPU + 1 GPU each), not a third
    assert _accepted(2, 1, NODES, workers=2) and not _accepted(2, 1, NODES, workers=3)
    # 1.5 CPU, room for the waiting Tune trial; 2 CPU would leave it none
    two = [{"Resources": {"CPU": 2.0}}]
    assert _accepted(0.5, 0, two, workers=3) and not _accepted(0.5, 0, two, workers=4)


@pytest.mark.parametrize(("cpu", "gpu", "workers", "held"), [(1, 0, 5, 4), (2, 1, 3, 2), (1, 0, 2, 1)])
def test_more_workers_than_the_cluster_holds_is_refused_with_one_line(cpu, gpu, workers, held) -> None:
    nodes = NODES if workers != 2 else [{"Resources": {"CPU": 2.0}}]  # 2 CPUs: no room for the Tune trial too
    with pytest.raises(UserError) as err:
        check_placement(cpu, gpu, nodes, workers=workers)
    text = str(err.value)
    assert f"workers: {workers}, cpu: {cpu:g}, gpu: {gpu:g}" in text and f"holds {held} such workers" in text
    assert "resources.workers" in text and "\n" not in text
