#!/bin/bash
# Pascal VOC 07+12 detection: RetinaNet on Swin-L + Mona, 1x.
#   sbatch [sbatch options] slurm/voc.sh [--config-file X] [key=value ...]
# from the repository root; see slurm/common.sh for the environment knobs.
#SBATCH --job-name=mona-voc
#SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --cpus-per-task=8
#SBATCH --time=24:00:00 --signal=USR1@120 --requeue
#SBATCH --output=%x-%j.out --open-mode=append
CONFIG=configs/voc/retinanet_swin_l_mona_1x.py
source "${MONA_ROOT:-$SLURM_SUBMIT_DIR}/slurm/common.sh"
