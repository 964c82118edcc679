"""A seeded sample of a run's training images, saved with the model so int8 can be calibrated on its own data."""

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from imagebatch.worker.modeltools.calibration import sample_training_paths

logger = logging.getLogger(__name__)

CALIBRATION_DIR = "calibration"  # beside model.pt and model.json


def write_calibration_sample(train_paths: Sequence[Path], directory: Path, count: int, seed: int) -> dict:
    """Copy `count` training images (seeded sample) into `directory`; the record that goes into model.json.

    Files are renamed by position (000.png, 001.jpg, ...): class folders may share file names,
    and the order is the one calibration reads them in.
    """
    chosen = sample_training_paths(train_paths, count, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for i, path in enumerate(chosen):
        name = f"{i:03d}{path.suffix.lower()}"
        shutil.copyfile(path, directory / name)
        names.append(name)
    logger.info("kept %d of %d training images as the int8 calibration sample", len(names), len(train_paths))
    return {"source": "training split", "seed": seed, "of": len(train_paths), "files": names}
