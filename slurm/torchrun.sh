#!/bin/bash
# The torchrun-per-node variant: one task per node, each a torchrun that starts one rank
# per GPU (NPROC_PER_NODE, default: the node's GPUs) and meets the others through a c10d
# rendezvous on the first node. Default config: COCO; any other with --config-file.
#   sbatch [sbatch options] slurm/torchrun.sh [--config-file X] [key=value ...]
#SBATCH --job-name=mona-torchrun
#SBATCH --nodes=2 --ntasks-per-node=1 --gpus-per-node=8 --cpus-per-task=64
#SBATCH --time=48:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py
LAUNCHER=torchrun
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
