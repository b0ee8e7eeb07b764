"""Which backbone parameters each tuning method trains, and one SGD step on a config's
model, for tests that check a method trains exactly its parameters."""
from __future__ import annotations

from mona_scale.engine.defaults import build_model

import torch
from detectron2.config import instantiate
from detectron2.utils.events import EventStorage

# a part of the backbone parameter names each method trains (None: nothing, "": everything),
# written from the methods' definitions, not read from the library
METHOD_PARTS = {"mona": "my_module_", "adapter": "_adapter.", "adaptformer": "parallel_adapter.",
                "lora": "lora_", "bitfit": "bias", "ln": "norm", "partial-1": "layers.3.blocks.1.",
                "fixed": None, "full": ""}


def one_sgd_step(cfg) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """Build ``cfg.model``, take one SGD step (lr 0.1) on one training batch.

    Args:
        cfg: a loaded LazyConfig with ``model`` and ``dataloader.train``.

    Returns:
        The stepped model and a copy of its parameters before the step, by name.
    """
    model = build_model(cfg).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = next(iter(instantiate(cfg.dataloader.train)))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with EventStorage(0):
        sum(model(batch).values()).backward()
    optimizer.step()
    return model, before
