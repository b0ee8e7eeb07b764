from mona_scale.data.transforms import RandomChoice

import numpy as np
from detectron2.data import transforms as T


def test_random_choice_applies_one_pipeline_per_image():
    choice = RandomChoice([
        [T.Resize((20, 30))],
        [T.Resize((40, 40)), T.RandomCrop("absolute", (10, 12)), T.Resize((50, 60))],
    ])
    np.random.seed(0)
    shapes = set()
    for _ in range(20):
        aug_input = T.AugInput(np.zeros((64, 48, 3), dtype=np.uint8),
                               boxes=np.array([[0.0, 0.0, 10.0, 10.0]]))
        transform = choice(aug_input)
        shapes.add(aug_input.image.shape[:2])
        assert transform.apply_box(np.array([[0.0, 0.0, 10.0, 10.0]])).shape == (1, 4)
    assert shapes == {(20, 30), (50, 60)}
