"""mona_scale: Mona adapters for Swin Transformers at cluster scale."""
from setuptools import find_packages, setup

setup(
    name="mona_scale",
    version="0.1.0",
    description="Mona adapter tuning of Swin Transformers with detectron2, FSDP and DeepSpeed",
    packages=find_packages(include=["mona_scale", "mona_scale.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "torchvision",
        "fvcore",
        "iopath<0.1.10",
        "numpy",
        "tabulate",
        "tqdm",
        "safetensors",
    ],
    entry_points={"console_scripts": ["mona-shards = mona_scale.console:mona_shards"]},
    extras_require={
        "dev": ["pytest", "ruff", "timm==1.0.31", "psutil"],
        "stream": ["webdataset==1.0.2"],
        "wandb": ["wandb==0.31.0"],
        "deepspeed": ["deepspeed==0.19.8"],
    },
)
