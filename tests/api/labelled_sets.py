"""Test helpers for labelled sets: ImageFolder archives in memory, models registered straight into the registry."""

import io
import tarfile
import zipfile

from PIL import Image
from sqlalchemy.orm import Session

from imagebatch.db import lifecycle


def png(shade: int = 0) -> bytes:
    data = io.BytesIO()
    Image.new("RGB", (8, 8), (shade, 255 - shade, 128)).save(data, format="PNG")
    return data.getvalue()


def folder_zip(classes: dict[str, int], *, extra: dict[str, bytes] | None = None, dirs: tuple[str, ...] = ()) -> bytes:
    """A zip of <class>/<n>.png per class (count images each), plus `extra` members and empty folders."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name in dirs:
            archive.writestr(f"{name}/", b"")
        for label, count in classes.items():
            for i in range(count):
                archive.writestr(f"{label}/{i:03d}.png", png(i * 20 % 256))
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return data.getvalue()


def folder_tar(classes: dict[str, int]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for label, count in classes.items():
            for i in range(count):
                content = png(i)
                info = tarfile.TarInfo(f"set/{label}/{i}.png")
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
    return data.getvalue()


def register_model(engine, name: str, classes: list[str], tenant: str | None = None) -> int:
    """A registry entry as a completed training job makes one (no files: nothing here loads it)."""
    model = lifecycle.NewModel(
        name=name,
        base_model="resnet18",
        mode="transfer",
        classes=classes,
        metrics={"val_accuracy": 0.75, "best_epoch": 2},
        weights_sha256="0" * 64,
        weights_key=f"models/_/{name}/run/model.pt",
        meta={
            "history": [
                {
                    "epoch": 1,
                    "train_loss": 1.0,
                    "train_accuracy": 0.5,
                    "val_loss": 1.0,
                    "val_accuracy": 0.5,
                    "seconds": 1.0,
                }
            ],
            "evaluation": {"top1_accuracy": 0.75},
        },
    )
    with Session(engine) as session, session.begin():
        return lifecycle.register_model(session=session, tenant=tenant, model=model)
