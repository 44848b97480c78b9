"""Training examples as the training loop reads them: held whole, or cut per batch.

`DenseExamples` materialises every example window once (8 * (n + 1) bytes each) on the
training device, the fastest for a log that fits. `LazyExamples` keeps only each
example's (start, end) in the click sequence (16 bytes) and cuts the windows of a batch
when it is drawn, from a click array that may be mapped from disk (logs larger than
memory, sine/data/stream.py); the batch is then copied to the device.
"""

from __future__ import annotations

import numpy as np
import torch

from sine.data.split import SplitData, windows


class DenseExamples:
    def __init__(self, data: SplitData, max_len: int, device: torch.device):
        inputs, targets = data.training_examples(max_len)
        self.lengths = torch.as_tensor((inputs > 0).sum(axis=1))
        self.inputs = torch.as_tensor(inputs, device=device)
        self.targets = torch.as_tensor(targets, device=device)

    def __len__(self) -> int:
        return len(self.targets)

    def batch(self, indices: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[indices, -width:], self.targets[indices]


class LazyExamples:
    def __init__(self, data: SplitData, max_len: int, device: torch.device):
        self.items = data.items
        self.starts, self.ends = data.example_bounds()
        self.lengths = torch.as_tensor(np.minimum(self.ends - self.starts, max_len))
        self.device = device

    def __len__(self) -> int:
        return len(self.ends)

    def batch(self, indices: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = indices.cpu().numpy()
        ends = self.ends[rows]
        clicks = windows(self.items, self.starts[rows], ends, width)
        targets = np.asarray(self.items[ends], dtype=np.int64)
        return (torch.from_numpy(clicks).to(self.device, non_blocking=True),
                torch.from_numpy(targets).to(self.device, non_blocking=True))


def training_examples(data: SplitData, max_len: int, device: torch.device,
                      lazy: bool) -> DenseExamples | LazyExamples:
    return (LazyExamples if lazy else DenseExamples)(data, max_len, device)
