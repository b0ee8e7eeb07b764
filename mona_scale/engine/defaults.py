"""The train / evaluate workflow that ``projects/train_net.py`` runs.

Kept in the library (not in the project script) so that tests, SLURM jobs and users'
own scripts share one implementation.
"""
from __future__ import annotations

import logging
import os

from mona_scale import collectives

import torch
from detectron2.config import instantiate
from detectron2.engine import hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from omegaconf import DictConfig, OmegaConf
from torch import nn

from .checkpoint import (
    PeriodicCheckpointHook,
    TrainingCheckpointer,
    WeightsOnlyCheckpointer,
    last_checkpoint,
    read_meta,
    resolve_checkpoint,
)
from .checkpoint_weights import load_checkpoint_weights
from .compile import compile_model
from .config import save_config
from .evaluation import EqualLengthLoader, SkipPadding
from .model_protocol import find_backbone, find_shardable
from .optim import optimizer_param_groups
from .precision import Precision
from .run_dir import prepare_output_dir
from .stopping import StopControl
from .strategies import Strategy, build_strategy
from .trainer import StrategyTrainer
from .wandb_writer import WandbWriter
from .writers import MemoryHook, build_event_writers

__all__ = ["setup_run", "resolve_device", "check_device", "configure_tf32", "build_model",
           "load_init_checkpoint", "do_test", "do_train", "optimizer_factory",
           "build_run_strategy", "run"]

logger = logging.getLogger("mona_scale")


def resolve_device(name: str) -> torch.device:
    """The device ``train.device`` names, for this process.

    Args:
        name: ``cpu``, ``cuda`` (this process's GPU: the local rank's, which
            :func:`~mona_scale.launch.init_distributed` made current) or ``cuda:<index>``.

    Returns:
        The device; ``ValueError`` for ``cuda`` on a machine where CUDA is not available.
    """
    device = check_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def check_device(name: str) -> torch.device:
    """``train.device`` parsed, or ``ValueError`` for ``cuda`` without CUDA. Creates no CUDA
    context (a launcher calls it before spawning its workers).

    Args:
        name: ``cpu``, ``cuda`` or ``cuda:<index>``.

    Returns:
        ``torch.device(name)``.
    """
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but CUDA is not available on this machine "
                         f"(torch.cuda.is_available() is False): run with train.device=cpu")
    return device


def configure_tf32(enabled: bool, device_type: str) -> bool:
    """``train.tf32``: float32 matmuls and convolutions on CUDA use TF32 tensor cores
    (Ampere and newer; about 10 mantissa bits instead of 23). This covers a whole fp32 run and,
    under bf16 / fp16 autocast, the ops autocast leaves in fp32. Nothing changes on CPU.

    Args:
        enabled: ``train.tf32``.
        device_type: ``train.device``'s type.

    Returns:
        Whether TF32 is now on.
    """
    if device_type != "cuda":
        return False
    torch.set_float32_matmul_precision("high" if enabled else "highest")
    torch.backends.cudnn.allow_tf32 = enabled
    logger.info(f"train.tf32={enabled}: float32 matmuls and convolutions "
                f"{'use' if enabled else 'do not use'} TF32")
    return enabled


def setup_run(cfg: DictConfig, eval_only: bool = False, resume: bool = False) -> str | None:
    """Output directory, logging, seeds, TF32 and ``config.yaml`` (rank 0 writes).

    For training, first decides how the run starts in ``train.output_dir``
    (:func:`~mona_scale.engine.run_dir.prepare_output_dir`): a new run in an earlier run's
    directory is refused unless ``train.overwrite=True``; a resumed one has its
    ``metrics.json`` cut back to the restored iteration.

    Args:
        cfg: the config.
        eval_only: ``--eval-only`` (nothing is written but logs).
        resume: ``--resume``.

    Returns:
        The checkpoint directory a training run resumes from, or None.
    """
    device = resolve_device(cfg.train.get("device", "cpu"))
    out = cfg.train.output_dir
    os.makedirs(out, exist_ok=True)
    rank = comm.get_rank()
    for name in ("fvcore", "detectron2", "mona_scale"):
        setup_logger(out, distributed_rank=rank, name=name)
    logger.info(f"process {rank} of {comm.get_world_size()}, output in {out}")
    last = None
    if not eval_only:
        last = prepare_output_dir(out, resume, bool(cfg.train.get("overwrite", False)),
                                  cfg.train.get("strategy", "ddp"), comm.get_world_size())
        collectives.barrier()  # rank 0's repairs (pointer, metrics) are seen by every rank
        if rank == 0:
            save_config(cfg, os.path.join(out, "config.yaml"))
    seed = int(cfg.train.get("seed", 0))
    seed_all_rng(None if seed < 0 else seed + rank)
    configure_tf32(bool(cfg.train.get("tf32", True)), device.type)
    return last


def load_init_checkpoint(model: nn.Module, path: str) -> str:
    """Load ``train.init_checkpoint``: a checkpoint of this very model (detectron2 format,
    e.g. ``model_final.pth``, or a checkpoint directory ``<output_dir>/model_<iter>``, or an
    output directory: its last checkpoint) loads everything; anything else loads into the
    backbone through its ``load_pretrained``
    (:class:`~mona_scale.engine.model_protocol.PretrainedBackbone`).

    Args:
        model: the built model (before the strategy wraps it).
        path: a weight file or a directory.

    Returns:
        ``"model"`` or ``"backbone"``: what was loaded.
    """
    directory = os.path.isdir(path)
    path = resolve_checkpoint(path) if directory else path
    state = load_checkpoint_weights(path)
    own = model.state_dict()
    matched = sum(k in own and own[k].shape == v.shape for k, v in state.items())
    if matched >= 0.5 * len(own):
        if directory:
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"train.init_checkpoint={path!r} is a checkpoint of another "
                                 f"model: {e}") from None
        else:
            WeightsOnlyCheckpointer(model).load(path, checkpointables=[])
        logger.info(f"loaded the whole model from {path} ({matched}/{len(own)} tensors)")
        return "model"
    backbone = find_backbone(model)
    if backbone is None:
        raise ValueError(f"train.init_checkpoint={path!r} matches {matched}/{len(own)} model "
                         f"tensors and the model has no backbone that loads pretrained weights")
    backbone.load_pretrained(state if directory else path)
    return "backbone"


def build_model(cfg: DictConfig) -> nn.Module:
    """Instantiate ``cfg.model`` on ``train.device`` (this process's GPU for ``cuda``) with
    activation checkpointing and ``train.compile`` applied.

    Every rank draws the same initial weights (from ``train.seed``; a shared random seed
    when negative): sharding strategies take each rank's shard from its own copy.
    """
    seed = int(cfg.train.get("seed", 0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(collectives.shared_random_seed() if seed < 0 else seed)
        model = instantiate(cfg.model)
    for backbone in find_shardable(model):
        backbone.set_activation_checkpointing(bool(cfg.train.get("activation_checkpointing")))
    model.to(resolve_device(cfg.train.get("device", "cpu")))
    compile_model(model, str(cfg.train.get("compile") or ""))
    logger.info(f"model: {type(model).__name__}, tuning={cfg.tuning.method}, trainable "
                f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} of "
                f"{sum(p.numel() for p in model.parameters()):,} parameters")
    return model


def do_test(cfg: DictConfig, model: nn.Module, strategy: Strategy | None = None) -> dict:
    """Evaluate on ``dataloader.test`` with ``dataloader.evaluator``; returns the results.

    Args:
        cfg: the config.
        model: the model (as the strategy wrapped it, when training).
        strategy: the training strategy; sharded ones get equal forward counts per rank.
    """
    if cfg.dataloader.get("evaluator") is None or cfg.dataloader.get("test") is None:
        return {}  # no evaluation configured (or dataloader.evaluator=null)
    loader, evaluator = instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    if strategy is not None and strategy.collective_forward:
        loader, evaluator = EqualLengthLoader(loader), SkipPadding(evaluator)
    results = inference_on_dataset(model, loader, evaluator)
    if comm.is_main_process() and results:
        print_csv_format(results)
    return results


def optimizer_factory(cfg: DictConfig):
    """A function model -> optimizer from ``cfg.optimizer`` over
    :func:`~mona_scale.engine.optim.optimizer_param_groups`.

    Args:
        cfg: the config (``cfg.optimizer``: a lazy call of an optimizer class; its
            ``params`` are replaced by the parameter groups).

    Returns:
        The function a strategy calls with the model it wrapped.
    """

    def make(model: nn.Module) -> torch.optim.Optimizer:
        opt_cfg = OmegaConf.to_container(cfg.optimizer, resolve=True)
        opt_cfg["params"] = optimizer_param_groups(model, opt_cfg.get("weight_decay", 0.0))
        return instantiate(opt_cfg)
    return make


def _writers(cfg: DictConfig) -> list:
    """The log printer, ``metrics.json`` and (``train.wandb.enabled``) wandb, which rewinds
    its run to the iteration a resumed run restores (the ``last_checkpoint`` pointer's)."""
    out = cfg.train.output_dir
    writers = build_event_writers(out, cfg.train.max_iter)
    options = cfg.train.get("wandb") or {}
    if options.get("enabled", False) and options.get("mode", "auto") != "disabled":
        last = last_checkpoint(out)
        writers.append(WandbWriter(out, OmegaConf.to_container(cfg, resolve=False),
                                   project=options.get("project", "mona_scale"),
                                   name=options.get("name", ""),
                                   mode=options.get("mode", "auto"),
                                   resume_iteration=None if last is None
                                   else read_meta(last).get("iteration")))
    return writers


def build_run_strategy(cfg: DictConfig) -> Strategy:
    """The strategy ``train.strategy`` names, with ``train.<strategy>`` options."""
    train = cfg.train
    precision = Precision(train.get("precision", "fp32"), resolve_device(train.device).type)
    name = train.get("strategy", "ddp")
    return build_strategy(name, precision, grad_accum=int(train.get("grad_accum", 1)),
                          clip_grad=float(train.get("clip_grad", 0.0)),
                          **dict(train.get(name) or {}))


def do_train(cfg: DictConfig, model: nn.Module, resume: bool = False) -> None:
    """Train ``model`` as ``cfg.train`` says, with periodic checkpoints and evaluation.

    Pretrained weights (``train.init_checkpoint``) load before the strategy wraps the model;
    a resumed run loads its last checkpoint after (the strategy reads its own shards).
    SIGUSR1 / SIGTERM are recorded from the start (a signal during set-up is honoured at the
    first step) and turned into a checkpointed stop by
    :class:`~mona_scale.engine.stopping.StopControl`.

    Raises:
        TrainingStopped: (a ``SystemExit``) after a signalled stop before ``train.max_iter``
            that was not followed by a SLURM requeue: the process exits with status
            ``128 + signal``, so the job is not recorded as completed.
    """
    train = cfg.train
    stopping = StopControl(int(train.get("stop_at_iter", 0) or 0),
                           requeue=bool(train.get("requeue", True)))
    stopping.install()
    try:
        strategy = build_run_strategy(cfg)
        last = last_checkpoint(train.output_dir) if resume else None
        if last is None and train.init_checkpoint:
            load_init_checkpoint(model, train.init_checkpoint)
        wrapped, optimizer = strategy.setup(model, optimizer_factory(cfg))
        trainer = StrategyTrainer(wrapped, instantiate(cfg.dataloader.train), optimizer, strategy,
                              stopping)
        checkpointer = TrainingCheckpointer(train.output_dir, strategy, wrapped, optimizer, trainer)
        trainer.register_hooks([
            hooks.IterationTimer(),
            MemoryHook(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            PeriodicCheckpointHook(checkpointer, **train.checkpointer),
            hooks.EvalHook(train.eval_period, lambda: do_test(cfg, wrapped, strategy)),
            hooks.PeriodicWriter(_writers(cfg), period=train.log_period)
            if comm.is_main_process() else None,
        ])
        start_iter = 0
        if last is not None:
            checkpointer.load(last)
            start_iter = trainer.iter + 1
            logger.info(f"resuming at iteration {start_iter} from {last}")
        trainer.train(start_iter, train.max_iter)  # its writers are closed when it returns
        status = stopping.conclude(trainer.iter, train.max_iter)  # collective: a barrier
    finally:
        stopping.restore()
    strategy.close()  # not after an error: a peer may still wait in a collective
    if status:
        raise stopping.exit_error(status, trainer.iter)


def _load_for_evaluation(cfg: DictConfig, model: nn.Module, resume: bool) -> None:
    """``--eval-only``: the last checkpoint's weights (``--resume``) or
    ``train.init_checkpoint`` (a weight file, a checkpoint directory or an output directory);
    ``FileNotFoundError`` when there is nothing to load (no evaluation of random weights)."""
    out = cfg.train.output_dir
    last = last_checkpoint(out) if resume else None
    if last is None and cfg.train.init_checkpoint:
        if load_init_checkpoint(model, cfg.train.init_checkpoint) == "backbone":
            logger.warning(f"--eval-only: train.init_checkpoint={cfg.train.init_checkpoint} "
                           f"held only backbone weights; the heads are evaluated as "
                           f"initialised")
        return
    if last is None:
        raise FileNotFoundError(
            "--eval-only has no weights to evaluate: train.init_checkpoint is empty and "
            + (f"{out} holds no checkpoint to resume" if resume else "--resume was not given")
            + ". Pass train.init_checkpoint=<model_final.pth, a checkpoint directory "
            "model_<iteration>/ or an output directory>, or --resume with the run's "
            "train.output_dir")
    model.load_state_dict(load_checkpoint_weights(last))
    logger.info(f"evaluating the weights of {last}")


def run(cfg: DictConfig, eval_only: bool = False, resume: bool = False) -> dict:
    """The whole job for one process: set up, build, then train or evaluate."""
    setup_run(cfg, eval_only, resume)
    model = build_model(cfg)
    if eval_only:
        _load_for_evaluation(cfg, model, resume)
        return do_test(cfg, model)
    do_train(cfg, model, resume)
    return {}
