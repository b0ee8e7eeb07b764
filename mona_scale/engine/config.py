"""LazyConfig loading with strict ``key=value`` overrides.

detectron2's ``LazyConfig.apply_overrides`` silently creates a key that does not exist
(``train.max_iters=10`` trains with the default ``max_iter``). Here an override must name
an existing key, or a keyword argument that the ``_target_`` of its parent node accepts;
anything else is a ``KeyError`` that names the key and suggests close matches.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import os

from mona_scale.atomic_io import atomic_path

from detectron2.config import LazyCall, LazyConfig
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import locate
from omegaconf import DictConfig, OmegaConf

__all__ = ["load_config", "apply_overrides", "save_config"]

REQUIRED_NODES = ("model", "dataloader", "optimizer", "lr_multiplier", "train", "tuning")


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            path = f"{prefix}{k}"
            keys.append(path)
            keys += _all_keys(cfg._get_node(k), path + ".")
    return keys


def _target_accepts(node, name: str) -> bool:
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return False
    obj = locate(target) if isinstance(target, str) else target
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _check_key(cfg: DictConfig, key: str) -> None:
    if OmegaConf.select(cfg, key, default="__missing__") != "__missing__":
        return
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if parent is not None and _target_accepts(parent, name):
        return
    close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
    hint = f"; did you mean {close}?" if close else ""
    raise KeyError(f"unknown config key {key!r} in override {key}=...{hint}")


def _apply_literal(cfg: DictConfig, override: str, error: Exception) -> None:
    """Set ``key`` to the raw text after ``=`` when the override grammar rejects the value
    (e.g. ``url_template=pipe:aws s3 cp s3://bucket/{name} -``) and the node holds a string
    or nothing; otherwise re-raise the parser's error with the override in it."""
    key, _, value = override.partition("=")
    key = key.strip()
    current = OmegaConf.select(cfg, key, default=None)
    if current is not None and not isinstance(current, str):
        raise ValueError(f"cannot parse override {override!r}: {error}. A string value with "
                         f"spaces or braces is taken literally only for a key that holds a "
                         f"string; quote it for the override grammar: {key}='...'") from error
    LazyConfig.apply_overrides(cfg, [f"{key}=null"])  # detectron2's checks on the path
    OmegaConf.update(cfg, key, value, merge=True)


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """Apply ``key=value`` overrides (values parsed like detectron2 does).

    A value the override grammar rejects (spaces, braces, ``:`` in a shell command such as
    ``pipe:aws s3 cp s3://bucket/{name} -``) is taken as the literal string when the key
    holds a string (or nothing); for other keys the grammar's error is raised.

    Args:
        cfg: a loaded LazyConfig.
        overrides: strings such as ``train.max_iter=100`` or ``tuning.method=lora``.

    Returns:
        The same config; ``KeyError`` naming an unknown key, ``ValueError`` for a malformed
        override or a flag (``--resume``) placed among the overrides.
    """
    from hydra.errors import OverrideParseException

    for override in overrides:
        if override.startswith("-"):
            raise ValueError(f"{override!r} is a flag among the key=value overrides: put "
                             f"flags first, e.g. --config-file X {override} key=value ...")
        key, sep, _ = override.partition("=")
        if not sep or not key:
            raise ValueError(f"override {override!r} is not of the form key=value")
        _check_key(cfg, key.strip())
    for override in overrides:
        try:
            LazyConfig.apply_overrides(cfg, [override])
        except OverrideParseException as e:
            _apply_literal(cfg, override, e)
    return cfg


def load_config(path: str, overrides: list[str] | None = None) -> DictConfig:
    """Load a LazyConfig file, check its top-level nodes and apply overrides.

    Args:
        path: a ``configs/...py`` (or .yaml) file.
        overrides: ``key=value`` strings.

    Returns:
        The config.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    cfg = LazyConfig.load(path)
    missing = [n for n in REQUIRED_NODES if n not in cfg]
    if missing:
        raise KeyError(f"{path}: config lacks the top-level node(s) {missing}")
    return apply_overrides(cfg, list(overrides or []))


def save_config(cfg: DictConfig, path: str) -> None:
    """Write the config as YAML (detectron2's ``LazyConfig.save``), atomically, with
    credentials in its strings (e.g. a ``pipe:`` shard URL's token) redacted by
    :func:`mona_scale.redact.redact`, and detectron2 ``ShapeSpec`` values (detectron2's
    own model configs hold some) written as ``L(ShapeSpec)(...)`` nodes, so that the file
    is plain YAML that a safe loader (``yaml.safe_load``, ``OmegaConf.load``) reads and
    instantiates to the same model.

    Args:
        cfg: the config (not changed).
        path: the ``config.yaml`` to write.
    """
    import copy

    from mona_scale.redact import redact

    from omegaconf import ListConfig

    def scrub(node) -> None:
        keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
        for key in list(keys):
            child = node._get_node(key)
            if isinstance(child, DictConfig) and OmegaConf.get_type(child) is ShapeSpec:
                # upstream detectron2: a dataclass, stored as a structured config node
                node[key] = LazyCall(ShapeSpec)(**OmegaConf.to_container(child))
                continue
            if isinstance(child, (DictConfig, ListConfig)):
                scrub(child)
                continue
            value = child._value() if child is not None else None
            if isinstance(value, str) and redact(value) != value:
                node[key] = redact(value)
            elif isinstance(value, ShapeSpec):  # a namedtuple in v0.6, a dataclass on main
                fields = value._asdict() if hasattr(value, "_asdict") else dataclasses.asdict(value)
                node[key] = LazyCall(ShapeSpec)(**fields)

    cfg = copy.deepcopy(cfg)
    scrub(cfg)
    with atomic_path(path) as tmp:
        LazyConfig.save(cfg, tmp)
