#!/bin/bash
# ADE20K semantic segmentation: UperNet on Swin-L + Mona, 160k iterations.
#   sbatch [sbatch options] slurm/ade20k.sh [--config-file X] [key=value ...]
# from the repository root; see slurm/common.sh for the environment knobs.
#SBATCH --job-name=mona-ade20k
#SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --cpus-per-task=8
#SBATCH --time=48:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/ade20k/upernet_swin_l_mona_160k.py
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
