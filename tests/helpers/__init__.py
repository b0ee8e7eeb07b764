"""Shared test helpers (not tests): tiny train_net runs (``train_net``), one optimizer step
per tuning method (``tuning_methods``), a one-weight trainer for checkpoint tests
(``tiny_trainer``), data sets in their owners' real layouts (``real_layouts``), a local
SLURM cluster (``slurm_cluster``), wandb run files (``wandb_records``), and the torchrun
workers of the 2-rank tests (``*_worker``).

Test modules import them as ``from helpers.<module> import ...`` (pytest puts ``tests/`` on
``sys.path``; the workers, run as scripts, put it there themselves)."""
