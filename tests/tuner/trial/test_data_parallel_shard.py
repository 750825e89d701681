"""`tuner.trial.data_parallel.shard`: each worker's rows of a global batch (issue 34, `resources.workers`)."""

from __future__ import annotations

import pytest
import torch

from tuner.errors import UserError
from tuner.trial.data_parallel import shard, shard_batches


def test_the_shards_of_every_tensor_put_back_together_are_the_global_batch() -> None:
    batch = {"input_ids": torch.arange(24).view(6, 4), "labels": (torch.arange(6), torch.tensor(3.0)), "n": 6}
    parts = [shard(batch, rank, 3) for rank in range(3)]
    assert torch.equal(torch.cat([p["input_ids"] for p in parts]), batch["input_ids"])
    assert torch.equal(torch.cat([p["labels"][0] for p in parts]), batch["labels"][0])
    assert [p["labels"][0].tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]  # contiguous, rank order
    assert all(p["labels"][1] is batch["labels"][1] and p["n"] == 6 for p in parts)  # scalars stay whole


def test_a_batch_that_does_not_split_evenly_is_refused_with_one_line() -> None:
    with pytest.raises(UserError) as err:
        shard((torch.zeros(10, 2), torch.zeros(10)), 0, 4)
    assert "10 rows" in str(err.value) and "resources.workers" in str(err.value) and "\n" not in str(err.value)


def test_shard_batches_keeps_the_seeds_order_and_takes_the_ranks_rows() -> None:
    class Stream:
        def __init__(self) -> None:
            self.calls = 0

        def next_batch(self) -> torch.Tensor:
            self.calls += 1
            return torch.arange(4) + 10 * self.calls

    stream = Stream()
    shard_batches(stream, 1, 2)
    assert stream.next_batch().tolist() == [12, 13] and stream.next_batch().tolist() == [22, 23]
