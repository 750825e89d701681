"""IRE's mask: the host path (numpy, counts read on the host) selects what the device path selects."""

import pytest
import torch

from methods._ire import BRACKET_MIN, _chosen_on_device, _chosen_on_host


@pytest.mark.parametrize("size", [400, 3 * BRACKET_MIN])  # one full partition; the bracketed selection
@pytest.mark.parametrize("levels", [3, 50, None])  # heavy ties, some ties, (almost surely) none
def test_host_and_device_selection_agree(levels, size):
    generator = torch.Generator().manual_seed(levels or 0)
    for trial in range(20):
        n = int(torch.randint(1, size, (1,), generator=generator))
        flat = torch.rand(n, generator=generator)
        if levels is not None:
            flat = (flat * levels).floor() / levels
        count = int(torch.randint(1, n + 1, (1,), generator=generator))
        host, device = _chosen_on_host(flat.numpy(), count, exact=True), _chosen_on_device(flat, count, exact=True)
        assert int(host.sum()) == count
        assert torch.equal(host, device), (trial, n, count)
        official = flat <= torch.kthvalue(flat, count).values  # int(γp) smallest plus every tie at the threshold
        assert torch.equal(_chosen_on_host(flat.numpy(), count, exact=False), official), (trial, n, count)
