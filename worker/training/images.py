"""Labelled images decoded once by the reader's rules into small uint8 tensors; train and eval transforms."""

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms import functional as F
from torchvision.transforms._presets import ImageClassification

from imagebatch.core import errors
from imagebatch.worker.models import get_spec, weights_enum
from imagebatch.worker.preprocess import Decoder, ImageFailure, UnusableImage

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Preprocessing:
    """How pixels reach the network: resize the short side, center crop, normalise (the inference transform)."""

    image_size: int  # crop side
    resize_size: int  # short side before the crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    @classmethod
    def for_model(cls, base_model: str, image_size: int) -> "Preprocessing":
        """The base weights' normalisation and resize/crop ratio (256/224 for resnet18, 232/224 for resnet50)."""
        preset = weights_enum(get_spec(base_model)).transforms()
        resize = image_size * preset.resize_size[0] // preset.crop_size[0]  # integers: 224 -> exactly 256 / 232
        return cls(image_size, resize, tuple(preset.mean), tuple(preset.std))

    def inference_transform(self) -> ImageClassification:
        """The same class weights.transforms() returns, so the inference side treats both alike."""
        return ImageClassification(
            crop_size=self.image_size,
            resize_size=self.resize_size,
            mean=self.mean,
            std=self.std,
            interpolation=InterpolationMode(self.interpolation),
            antialias=True,
        )

    def to_dict(self) -> dict:
        return {
            "image_size": self.image_size,
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        return cls(
            int(values["image_size"]),
            int(values["resize_size"]),
            tuple(values["mean"]),
            tuple(values["std"]),
            values.get("interpolation", "bilinear"),
        )

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW to the float32 the network takes (convert_image_dtype, then normalize)."""
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch.float() / 255 - mean) / std


class _ShortSide:
    """PIL RGB to a uint8 CHW tensor whose short side is resize_size: what every later crop starts from."""

    def __init__(self, side: int) -> None:
        self.resize_size = [side]
        # The service's fast decode: big JPEGs draft-decode, shrinking no further than this side.
        self.draft_size = side

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = F.resize(image, self.resize_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
        return F.pil_to_tensor(image)


@dataclass(frozen=True)
class Decoded:
    sha256: str  # of the file's bytes, for the dataset hash
    image: torch.Tensor | None  # uint8 CHW, short side = resize_size
    failure: ImageFailure | None


def decode_file(path: Path, side: int, max_bytes: int) -> Decoded:
    """Read and decode one file; a bad file becomes a categorized failure, never an exception."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Decoded("", None, ImageFailure(errors.NOT_FOUND, f"cannot be read: {exc.strerror or exc}"))
    digest = hashlib.sha256(data).hexdigest()
    if len(data) > max_bytes:
        too_large = ImageFailure(errors.TOO_LARGE, f"{len(data)} bytes is over the limit of {max_bytes}")
        return Decoded(digest, None, too_large)
    try:
        return Decoded(digest, Decoder(_ShortSide(side))(data).tensor, None)  # type: ignore[arg-type]
    except UnusableImage as exc:  # the decoder's categorized failure (empty, unreadable, truncated, too large)
        return Decoded(digest, None, exc.failure)
    except Exception as exc:  # a decoder bug on one odd file must not sink the run
        logger.warning("unexpected failure decoding %s", path, exc_info=True)
        return Decoded(digest, None, ImageFailure(errors.UNREADABLE, f"could not decode: {type(exc).__name__}: {exc}"))


class ImageSet:
    """One split's usable images and labels: held in memory, or decoded again on each use (over budget)."""

    def __init__(
        self, paths: Sequence[Path], labels: Sequence[int], side: int, images: list[torch.Tensor] | None, max_bytes: int
    ) -> None:
        self.paths, self.side, self.images, self.max_bytes = list(paths), side, images, max_bytes
        self.labels = torch.tensor(list(labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def image(self, index: int) -> torch.Tensor:
        if self.images is not None:
            return self.images[index]
        decoded = decode_file(self.paths[index], self.side, self.max_bytes)
        if decoded.image is None:  # the file changed since it was validated
            reason = decoded.failure.message if decoded.failure else "no image"
            raise RuntimeError(f"{self.paths[index]} no longer decodes: {reason}")
        return decoded.image

    def subset(self, indices: Sequence[int]) -> "ImageSet":
        images = [self.images[i] for i in indices] if self.images is not None else None
        return ImageSet(
            [self.paths[i] for i in indices], [int(self.labels[i]) for i in indices], self.side, images, self.max_bytes
        )


class BatchTransform:
    """Per-image crop (random in training, center in evaluation), then one normalisation per batch."""

    def __init__(
        self, prep: Preprocessing, train: bool, augment: bool, crop_scale_min: float = 1.0, flip: bool = True
    ) -> None:
        self.prep = prep
        if train and augment:
            crop = v2.RandomResizedCrop(prep.image_size, scale=(crop_scale_min, 1.0), antialias=True)
            self.crop = v2.Compose([crop, v2.RandomHorizontalFlip()]) if flip else crop
        else:
            self.crop = v2.CenterCrop(prep.image_size)

    def __call__(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.prep.normalize(torch.stack([self.crop(image) for image in images]))
