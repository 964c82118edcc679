"""Preprocessing: image bytes to a DecodedImage holding the model's input tensor and the image's thumbnail
(see opening, decode, transforms and renditions)."""

from imagebatch.worker.preprocess.budget import PixelBudget
from imagebatch.worker.preprocess.decode import DecodedImage, Decoder
from imagebatch.worker.preprocess.opening import ImageFailure, UnusableImage, check_pixels, is_jpeg
from imagebatch.worker.preprocess.renditions import RenditionMaker, Renditions
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
    "PixelBudget",
    "RenditionMaker",
    "Renditions",
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
