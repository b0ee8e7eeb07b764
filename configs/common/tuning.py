# The tuning method and its options (mona_scale.adapters.tuning.TuningOptions).
# tuning.method: full fixed bitfit ln partial-1 adapter adaptformer lora mona
tuning = dict(
    method="mona",
    bottleneck=64,  # adapter / Mona inner width
    dropout=0.1,  # adapter dropout
    scale=0.1,  # AdaptFormer output scale
    rank=64,  # LoRA rank
    alpha=1.0,  # LoRA alpha
    fused=True,  # Mona fused execution path
    recompute=False,  # Mona recomputes its branch in backward (less memory)
    # mmdet Swin's frozen_stages on top of the method: -1 none; >= 0 the patch embedding;
    # k >= 2 also stages 1..k-1 (the authors' VOC RetinaNet runs use 1)
    frozen_stages=-1,
)
