"""``train.strategy=deepspeed``: DeepSpeed ZeRO stage 1, 2 or 3.

The DeepSpeed JSON is generated from our config (:func:`deepspeed_config`), never written
by hand. The optimizer is ours (a torch optimizer over trainable parameters only, with our
parameter groups), wrapped by ZeRO: frozen weights get no gradient partitions and no
optimizer state. Stages 1 and 2 replicate the module's weights; stage 3 partitions all of
them, the frozen backbone included. Mixed precision is torch autocast around the forward
(DeepSpeed's own fp16/bf16 modes cast the whole module, which detectron2 models do not
support); gradient accumulation and clipping are DeepSpeed's.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .base import STRATEGIES, Strategy
from .ddp import cpu_sync_batchnorm

__all__ = ["DeepSpeedStrategy", "DeepSpeedOptions", "deepspeed_config"]

TAG = "state"  # DeepSpeed's checkpoint tag inside our checkpoint directory


def deepspeed_config(stage: int, grad_accum: int, clip_grad: float, world_size: int,
                     offload_optimizer: bool = False) -> dict:
    """The DeepSpeed config for one of our runs.

    Args:
        stage: ZeRO stage (1, 2 or 3).
        grad_accum: micro-batches per optimizer step.
        clip_grad: max global gradient norm, 0 = off.
        world_size: number of ranks.
        offload_optimizer: keep optimizer state (and its step) on the CPU, stepped by our
            own optimizer (``zero_force_ds_cpu_optimizer: false``).

    Returns:
        The dict passed as ``config`` to ``deepspeed.initialize``.
    """
    zero = {"stage": stage}
    if offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        # detectron2 batches are lists of dicts: DeepSpeed only needs these for bookkeeping
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": grad_accum * world_size,
        "gradient_clipping": clip_grad,
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,
        # ZeRO-Offload steps our optimizer (train.optimizer, e.g. torch AdamW) on the CPU
        # partitions; without this DeepSpeed refuses any optimizer but its own CPU Adam
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 2 ** 31 - 1,
        "wall_clock_breakdown": False,
    }


@dataclass(frozen=True)
class DeepSpeedOptions:
    """``train.deepspeed`` options.

    Attributes:
        stage: ZeRO stage 1, 2 or 3.
        offload_optimizer: optimizer state on the CPU (ZeRO-Offload; stage 2 or 3).
    """

    stage: int = 2
    offload_optimizer: bool = False

    def __post_init__(self) -> None:
        if self.stage not in (1, 2, 3):
            raise ValueError(f"train.deepspeed.stage={self.stage!r} must be 1, 2 or 3")
        if self.offload_optimizer and self.stage == 1:
            raise ValueError("train.deepspeed.offload_optimizer needs stage 2 or 3, not 1")


@STRATEGIES.register("deepspeed")
class DeepSpeedStrategy(Strategy):
    """ZeRO through a DeepSpeed engine; options: :class:`DeepSpeedOptions`."""

    name = "deepspeed"
    Options = DeepSpeedOptions
    engine = None  # the DeepSpeed engine, once setup() made it

    @property
    def collective_forward(self) -> bool:
        return self.options.stage == 3

    def __init__(self, precision, grad_accum: int = 1, clip_grad: float = 0.0, **options):
        super().__init__(precision, grad_accum, clip_grad, **options)
        if precision.name == "fp16":
            raise ValueError(
                "train.precision=fp16 with train.strategy=deepspeed is not supported: "
                "DeepSpeed's fp16 mode casts every parameter (the frozen backbone too) to half, "
                "which detectron2's ops do not take, and its torch_autocast fp16 mode clips "
                "still-scaled gradients and does not checkpoint its scaler. Use "
                "train.precision=bf16 (no loss scaling needed), or fp16 with "
                "train.strategy=ddp or fsdp")

    def setup(self, model: nn.Module, make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
              ) -> tuple[nn.Module, torch.optim.Optimizer]:
        os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
        import deepspeed

        if not dist.is_initialized():  # used without train_net: DeepSpeed needs a group
            from mona_scale.launch import init_distributed

            init_distributed()  # cuda:nccl,cpu:gloo with CUDA, as train_net's
        if not torch.cuda.is_available():
            model = cpu_sync_batchnorm(model)
        optimizer = make_optimizer(model)
        config = deepspeed_config(self.options.stage, self.grad_accum, self.clip_grad,
                                  dist.get_world_size(), self.options.offload_optimizer)
        self.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer,
                                                    config=config, dist_init_required=False)
        # The LR scheduler and the trainer see the torch optimizer ZeRO steps.
        return self.engine, optimizer

    def close(self) -> None:
        """DeepSpeed's ``engine.destroy()``: ZeRO's gradient hooks otherwise keep the engine,
        its parameters and its process groups alive until the interpreter exits."""
        if self.engine is not None:
            self.engine.destroy()
            self.engine = None

    def backward(self, loss: torch.Tensor) -> None:
        # The trainer already divided by grad_accum; DeepSpeed must not divide again.
        self.engine.backward(loss, scale_wrt_gas=False)
        if not self.engine.is_gradient_accumulation_boundary():
            self.engine.step()  # counts the micro-step; no optimizer step

    def grad_norm(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float | None:
        """DeepSpeed's ``engine.step()``: ZeRO takes the global norm of its gradient
        partitions and, when it is not finite, skips the optimizer step and reports an
        infinite norm (stages 1-3); so a non-finite norm is never applied, and the trainer
        then stops on it. (ZeRO reads the norm on the host itself: its own synchronisation.)

        Returns:
            The global gradient norm before clipping, or None where ZeRO does not compute it.
        """
        self.engine.step()
        norm = self.engine.get_global_grad_norm()
        return None if norm is None else float(norm)

    def apply_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Nothing: :meth:`grad_norm` ran ``engine.step()``, which applied a finite step."""

    @property
    def checks_grad_norm(self) -> bool:
        return True  # no fp16 loss scaling under DeepSpeed here (refused in __init__)

    def save_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer
                   ) -> None:
        self.engine.save_checkpoint(path, tag=TAG, save_latest=False)

    def load_state(self, path: str, model: nn.Module, optimizer: torch.optim.Optimizer | None
                   ) -> None:
        if not os.path.isdir(os.path.join(path, TAG)):
            raise FileNotFoundError(f"{path} is not a DeepSpeed checkpoint (no {TAG}/ inside): "
                                    f"resume with the train.strategy that wrote it")
        loaded, _ = self.engine.load_checkpoint(
            path, tag=TAG, load_module_strict=True, load_optimizer_states=optimizer is not None,
            load_lr_scheduler_states=False)
        if loaded is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint in {path}")

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        import deepspeed

        module = self.engine.module
        # ZeRO-3 gathers the partitioned weights; a no-op for stages 1-2 (no ZeRO parameters)
        with deepspeed.zero.GatheredParameters(module.parameters(), modifier_rank=None):
            state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        return state if not dist.is_initialized() or dist.get_rank() == 0 else None
