"""The likelihood term of the loss, eq. (9): softmax over the catalog.

`full_softmax_loss` is eq. (9) exactly. With `low_precision=True` its three catalog-wide
matrix products (logits, and the two gradients) take bfloat16 inputs while the logits,
the softmax, the loss and every parameter stay float32: on CPUs with AVX512-BF16 (and on
GPUs) this is about 3x faster, and those products are most of a training step. On other
CPUs the same rounded inputs are multiplied in float32 (`bf16_product`): a GPU's numbers,
no speed-up, so that bf16 accuracy can be measured anywhere.

`SampledSoftmax` is the approximation the paper uses for large catalogs (refs. [6, 18]):
each batch shares S negatives drawn (with replacement) from a proposal q (item
popularity ** 0.75). The partition function Z = sum_j exp(l_j) is estimated as
exp(l_target) + sum over sampled j != target of exp(l_j) / (S q_j): the target's term is
exact, each negative logit gets the "log-Q" correction -log(S q_j), and negatives that
hit the target are masked. That estimate of Z is unbiased, so the loss tracks the full
softmax loss as S grows (the tests check it), instead of being offset by a constant.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


@functools.cache
def cpu_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def bf16_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b of two bf16 matrices, as float32: the exact products of the bf16 inputs,
    summed in float32.

    That is what a bf16 matrix unit computes (bf16 x bf16 products are exact in float32,
    the accumulator is float32). On CUDA, `out_dtype` writes that accumulator out directly.
    A CPU with AVX512-BF16 or AMX has no such output: its product comes out in bf16,
    rounded once, and is widened at once. A CPU without them (e.g. plain AVX-512, AVX2)
    would emulate bf16 arithmetic about 12x slower than float32 (0.37 s against 0.03 s
    for a 256 x 64 x 12,102 product on one thread of a Xeon with AVX-512): there the bf16
    inputs are widened and multiplied in float32, which gives the CUDA result (the same
    exact products and float32 sums) at float32 speed, so bf16 accuracy can be measured
    on any machine.
    """
    if a.is_cuda:
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (TypeError, RuntimeError):  # a torch without out_dtype for this backend
            pass
    if a.device.type == "cpu" and not cpu_native_bf16():
        return a.float() @ b.float()
    return (a @ b).float()


class _BF16SoftmaxCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of softmax(v H^T): bf16 products, logits and softmax in float32.

    Only the three catalog-wide products (the logits and the two gradients) take bf16
    inputs. The logits, the log-softmax, the loss and the probabilities kept for the
    gradient (softmax - onehot) / B are float32: the softmax is computed once, in the
    forward pass, which saves a second pass of exponentials over the whole catalog.
    """

    @staticmethod
    def forward(ctx, user_vector, table, targets):  # type: ignore[override]
        v16, h16 = user_vector.to(torch.bfloat16), table.to(torch.bfloat16)
        logits = bf16_product(v16, h16.T)  # [B, M + 1], float32
        logits[:, 0] = float("-inf")  # padding is not an item
        log_probs = torch.log_softmax(logits, dim=1)
        rows = torch.arange(len(targets), device=targets.device)
        loss = -log_probs[rows, targets].mean()
        ctx.save_for_backward(v16, h16, log_probs.exp_(), targets)
        return loss

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        v16, h16, probs, targets = ctx.saved_tensors
        batch = probs.shape[0]
        rows = torch.arange(batch, device=probs.device)
        g = probs  # float32, reused in place: d loss / d logits = (softmax - onehot) / B
        g[rows, targets] -= 1.0
        g16 = g.mul_(grad / batch).to(torch.bfloat16)
        return bf16_product(g16, h16), bf16_product(g16.T, v16), None


def full_softmax_loss(
    user_vector: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    low_precision: bool = False,
) -> torch.Tensor:
    """eq. (9): mean over the batch of -log softmax(H v)[target], over all M items.

    `table` is H with its padding row 0 (which never scores: its logit is -inf), so that
    targets are item indices and the gradient lands in the table without a copy.
    """
    if low_precision:
        return _BF16SoftmaxCrossEntropy.apply(user_vector, table, targets)
    return _SoftmaxCrossEntropy.apply(user_vector, table, targets)


class _SoftmaxCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of softmax(v H^T) in float32, with one pass of exponentials.

    `F.cross_entropy` on the logits computes the log-softmax, then in the backward pass
    fills a [B, M + 1] gradient with zeros, scatters the targets into it and takes the
    exponentials again. Here the probabilities are kept from the forward pass and turned
    into the gradient (softmax - onehot) / B in place: the same arithmetic, about 1.2x
    faster for the loss and its two catalog-wide products (bench/results/train_speed.md).
    """

    @staticmethod
    def forward(ctx, user_vector, table, targets):  # type: ignore[override]
        logits = user_vector @ table.T  # [B, M + 1]
        logits[:, 0] = float("-inf")  # padding is not an item
        log_probs = torch.log_softmax(logits, dim=1)
        rows = torch.arange(len(targets), device=targets.device)
        loss = -log_probs[rows, targets].mean()
        ctx.save_for_backward(user_vector, table, log_probs.exp_(), targets)
        return loss

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        user_vector, table, probs, targets = ctx.saved_tensors
        rows = torch.arange(len(targets), device=probs.device)
        g = probs  # reused in place: d loss / d logits = (softmax - onehot) / B
        g[rows, targets] -= 1.0
        g.mul_(grad / len(targets))
        return g @ table, g.T @ user_vector, None


class SampledSoftmax:
    """Sampled softmax with log-Q correction over a shared set of negatives per batch."""

    def __init__(self, item_counts: np.ndarray, negatives: int, generator: torch.Generator,
                 power: float = 0.75):
        counts = np.asarray(item_counts[1:], dtype=np.float64) + 1.0  # smoothed; no padding
        q = counts**power
        self.q = torch.as_tensor(q / q.sum(), dtype=torch.float32)
        self.log_q = torch.log(self.q)
        self.negatives = negatives
        self.generator = generator

    def __call__(self, user_vector: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                 low_precision: bool = False) -> torch.Tensor:
        device = user_vector.device
        sampled = torch.multinomial(self.q, self.negatives, replacement=True, generator=self.generator)
        if device.type == "cuda":  # drawn on the host (seeded); copied without a sync
            sampled = sampled.pin_memory().to(device, non_blocking=True)
        sampled = sampled + 1  # item indices
        if self.log_q.device != device:  # moved once, not at every step
            self.log_q = self.log_q.to(device)
        log_q = self.log_q
        correction = float(np.log(self.negatives))
        positive = (user_vector * table[targets]).sum(-1)  # exact: counted once, as in Z
        negative = user_vector @ table[sampled].T - (log_q[sampled - 1] + correction)  # [B, S]
        negative = negative.masked_fill(sampled.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        logits = torch.cat([positive.unsqueeze(1), negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))
