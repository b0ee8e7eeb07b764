"""Shared test helpers (not tests): tiny train_net runs, one optimizer step per tuning
method, data sets in their owners' real layouts, a local SLURM cluster, wandb run files.

Test modules import them as ``from helpers.<module> import ...`` (pytest puts ``tests/`` on
``sys.path``; so does a script run as ``python tests/<script>.py``)."""
