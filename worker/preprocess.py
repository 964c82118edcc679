"""weights.transforms() for the worker's decode threads: same output bit for bit, no torch thread pool.

torchvision's float steps (convert_image_dtype, normalize) are torch ops that open an intra-op
parallel region per image. Called from several decode threads while a forward holds the cores,
each region waits for busy threads: measured 23 ms per op per image on this 2-core machine under
load, against ~0.3 ms for the same arithmetic in numpy, which stays on the calling thread.
"""

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as F


class NumpyNormalize:
    """Resize and crop with Pillow exactly as weights.transforms() does, then float32 math in numpy."""

    def __init__(self, transform: Callable) -> None:
        self.resize_size, self.crop_size = list(transform.resize_size), list(transform.crop_size)
        self.interpolation = transform.interpolation
        self.mean = np.asarray(transform.mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(transform.std, dtype=np.float32).reshape(3, 1, 1)
        self.reference = transform

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = F.center_crop(F.resize(image, self.resize_size, interpolation=self.interpolation, antialias=True),
                              self.crop_size)
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
        # The same float32 operations in the same order as convert_image_dtype + normalize.
        x = pixels.astype(np.float32) / np.float32(255)
        x -= self.mean
        x /= self.std
        return torch.from_numpy(x)

    def __repr__(self) -> str:
        return repr(self.reference)
