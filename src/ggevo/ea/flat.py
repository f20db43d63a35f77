"""A flat-vector view of a module's trainable parameters (docs/ALGORITHM.md, "Problem")."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call


class ParamLayout:
    """Where each parameter tensor lies in the flat decision vector ``x`` of length ``D``."""

    def __init__(self, shapes: Sequence[torch.Size]):
        self.shapes = [torch.Size(s) for s in shapes]
        self.numels = [s.numel() for s in self.shapes]
        self.dim = sum(self.numels)
        if self.dim == 0:
            raise ValueError("the model has no trainable parameters")

    def split(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Views of ``x`` (D,) shaped like the parameters; works under ``vmap``."""
        return [c.view(s) for c, s in zip(torch.split(x, self.numels, dim=-1), self.shapes)]

    def flatten(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def is_weight(self) -> torch.Tensor:
        """(D,) bool: True for entries of tensors with two or more dimensions (weights, not biases)."""
        return torch.cat([torch.full((n,), len(s) >= 2) for n, s in zip(self.numels, self.shapes)])


class FlatParams:
    """Evaluate a module at any flat vector with ``torch.func.functional_call``.

    The module's own parameters are never written during evaluation (``bound`` points them at a row for
    one network's evaluation, then back); ``load_`` writes one chosen solution into them (for export
    and inspection).
    """

    def __init__(self, module: nn.Module):
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.module = module
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.layout = ParamLayout([p.shape for p in self.params])

    @property
    def dim(self) -> int:
        return self.layout.dim

    def as_dict(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.layout.split(x)))

    def __call__(self, x: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        """The module's output at parameters ``x`` (D,)."""
        return functional_call(self.module, self.as_dict(x), inputs)

    @contextmanager
    def bound(self, x: torch.Tensor) -> Iterator[list[nn.Parameter]]:
        """For the block, the module's own parameters hold views of ``x`` (D,) detached (their ``.data``;
        restored after): the module runs and ``torch.autograd.grad`` differentiates it as plain autograd
        does, without ``functional_call``'s swap of every tensor or a flat leaf's split in the backward
        (~0.3 ms of a 3.5 ms step of one network of the paper's autoencoder: ``benchmarks/README.md``,
        "AMD EPYC family 26 model 2").
        Yields the parameters, in the layout's order; nothing else may use the module meanwhile."""
        saved = [p.data for p in self.params]
        try:
            for p, v in zip(self.params, self.layout.split(x.detach())):
                p.data = v
            yield self.params
        finally:
            for p, data in zip(self.params, saved):
                p.data = data

    def current(self) -> torch.Tensor:
        """The module's present parameters as one (D,) vector."""
        return self.layout.flatten(self.params)

    @torch.no_grad()
    def load_(self, x: torch.Tensor) -> None:
        """Copy the solution ``x`` (D,) into the module's parameters."""
        for p, v in zip(self.params, self.layout.split(x)):
            p.copy_(v)
