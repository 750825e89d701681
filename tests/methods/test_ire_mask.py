"""IRE's exact mask: the host path (counts read on the host) selects what the device path selects."""

import pytest
import torch

from methods._ire import _exact_on_device, _exact_on_host


@pytest.mark.parametrize("levels", [3, 50, None])  # heavy ties, some ties, (almost surely) none
def test_host_and_device_selection_agree(levels):
    generator = torch.Generator().manual_seed(levels or 0)
    for trial in range(20):
        n = int(torch.randint(1, 400, (1,), generator=generator))
        flat = torch.rand(n, generator=generator)
        if levels is not None:
            flat = (flat * levels).floor() / levels
        count = int(torch.randint(1, n + 1, (1,), generator=generator))
        host, device = _exact_on_host(flat, count), _exact_on_device(flat, count)
        assert int(host.sum()) == count
        assert torch.equal(host, device), (trial, n, count)
