"""Preprocessing: image bytes to a DecodedImage holding the model's input tensor (see decode and transforms)."""

from imagebatch.worker.preprocess.decode import (
    DecodedImage,
    Decoder,
    ImageFailure,
    UnusableImage,
    check_pixels,
    is_jpeg,
)
from imagebatch.worker.preprocess.transforms import (
    HostTransform,
    NumpyNormalize,
    ResizeCrop,
    Uint8Transform,
    WeightsTransform,
    fast_decode,
    host_transform,
    normalize_uint8,
)

__all__ = [
    "DecodedImage",
    "Decoder",
    "HostTransform",
    "ImageFailure",
    "NumpyNormalize",
    "ResizeCrop",
    "Uint8Transform",
    "UnusableImage",
    "WeightsTransform",
    "check_pixels",
    "fast_decode",
    "host_transform",
    "is_jpeg",
    "normalize_uint8",
]
