"""A per-trial request no node holds is refused with the request and every node's CPUs/GPUs named."""

from __future__ import annotations

import pytest

from tuner.errors import UserError
from tuner.run.placement import check_placement

NODES = [{"Alive": True, "Resources": {"CPU": 1.0}},
         {"Alive": True, "Resources": {"CPU": 4.0, "GPU": 2.0}},
         {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]


def test_a_request_one_node_holds_passes() -> None:
    check_placement(1, 0, NODES)
    check_placement(0.5, 0.5, NODES)
    check_placement(4, 2, NODES)


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
