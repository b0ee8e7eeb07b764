#!/bin/bash
# COCO instance segmentation: Cascade Mask R-CNN on Swin-B + Mona, the paper's 3x recipe.
#   sbatch [sbatch options] slurm/coco.sh [--config-file X] [key=value ...]
# from the repository root; see slurm/common.sh for the environment knobs.
#SBATCH --job-name=mona-coco
#SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --cpus-per-task=8
#SBATCH --time=48:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/coco/cascade_mask_rcnn_swin_b_mona_3x.py
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
