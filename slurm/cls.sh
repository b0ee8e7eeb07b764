#!/bin/bash
# Image classification: Swin-L + Mona on Flowers102 (Oxford Pets, VOC07: --config-file).
#   sbatch [sbatch options] slurm/cls.sh [--config-file X] [key=value ...]
# from the repository root; see slurm/common.sh for the environment knobs.
#SBATCH --job-name=mona-cls
#SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --cpus-per-task=8
#SBATCH --time=12:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/classification/flowers102_swin_l_mona.py
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
