"""Build a requested artefact, a model export or a Grad-CAM map, store its file and record it ready (or why not)."""

import logging
import tempfile
from pathlib import Path
from typing import cast

from torch import nn

from imagebatch.core import artefacts
from imagebatch.core.storage import get_store
from imagebatch.db import lifecycle
from imagebatch.db.artefacts import BuildOrder, build_order
from imagebatch.db.retry import retry_database
from imagebatch.db.session import session_scope
from imagebatch.worker.context import WorkerContext
from imagebatch.worker.custom_models import RegisteredWeights
from imagebatch.worker.models import LoadedModel, ModelUnavailable, ResNetWithEmbedding
from imagebatch.worker.modeltools.export import card_for, export_onnx, export_torchscript
from imagebatch.worker.modeltools.gradcam import explain
from imagebatch.worker.preprocess import UnusableImage
from imagebatch.worker.preprocess.turbo import decode_pillow

logger = logging.getLogger(__name__)


class BuildError(Exception):
    """An artefact that cannot be built; the message is what the API answers with."""


@retry_database
def _order(artefact_id: int) -> BuildOrder | None:
    with session_scope() as session:
        return build_order(session, artefact_id)


@retry_database
def _finish(artefact_id: int, key: str, size: int, weights_sha256: str) -> bool:
    with session_scope() as session:
        return lifecycle.finish_artefact(
            session=session, artefact_id=artefact_id, storage_key=key, size_bytes=size, weights_sha256=weights_sha256
        )


@retry_database
def _fail(artefact_id: int, error: str) -> bool:
    with session_scope() as session:
        return lifecycle.fail_artefact(session=session, artefact_id=artefact_id, error=error)


def _plain_net(model: LoadedModel) -> nn.Module:
    """The eager module under a torch.compile wrapper: exporters and Grad-CAM need its submodules."""
    return getattr(model.net, "_orig_mod", model.net)


def _model(ctx: WorkerContext, order: BuildOrder) -> LoadedModel:
    if order.custom_missing:
        raise BuildError(f"custom model {order.model} was deleted")
    custom = None
    if order.custom is not None:
        name, version, key, sha = order.custom
        custom = RegisteredWeights(name, version, order.base_model, key, sha)
    try:
        return ctx.model_for(order.base_model, custom)
    except ModelUnavailable as exc:
        raise BuildError(str(exc)) from exc


def _export(model: LoadedModel, order: BuildOrder, folder: Path) -> Path:
    path = folder / artefacts.file_name(order.model, order.format)
    if order.format == "onnx":
        return export_onnx(_plain_net(model), path, card_for(model))
    return export_torchscript(_plain_net(model), path, card_for(model))


def _gradcam(ctx: WorkerContext, model: LoadedModel, order: BuildOrder) -> bytes:
    if order.image_location is None:
        raise BuildError(f"image {order.image_index} of job {order.job_id} is gone")
    try:  # decoded as the classification did: opened, EXIF-transposed, RGB
        rgb = decode_pillow(ctx.reader.fetch_bytes(order.image_location), None).image
    except UnusableImage as exc:
        raise BuildError(f"the image cannot be read again: {exc}") from exc
    try:
        explained = explain(cast(ResNetWithEmbedding, _plain_net(model)), model.transform, rgb, order.class_index)
    except ValueError as exc:  # a class out of the model's range
        raise BuildError(str(exc)) from exc
    return explained.heatmap_png if order.format == "heatmap" else explained.overlay_png


def _build(ctx: WorkerContext, order: BuildOrder, folder: Path) -> tuple[str, int, str]:
    """Build and store the file; (storage key, size, weights SHA-256)."""
    model = _model(ctx, order)
    store = get_store()
    weights_key = order.custom[2] if order.custom else None
    key = artefacts.storage_key(
        order.kind, order.id, job_id=order.job_id, model=order.model, fmt=order.format, weights_key=weights_key
    )
    if order.kind == artefacts.GRADCAM:
        data = _gradcam(ctx, model, order)
        store.write_bytes(key, data)
        return key, len(data), model.weights_sha256
    path = _export(model, order, folder)
    with path.open("rb") as handle:
        size = store.write_stream(key, handle)
    return key, size, model.weights_sha256


def build_artefact(ctx: WorkerContext, artefact_id: int) -> str:
    """Build one artefact; its final state (a duplicate message of a finished one does nothing)."""
    order = _order(artefact_id)
    if order is None or order.state != artefacts.PENDING:
        return order.state if order else "gone"
    logger.info("building %s %s of %s (artefact %d)", order.kind, order.format, order.model, artefact_id)
    try:
        with tempfile.TemporaryDirectory(prefix="imagebatch-artefact-") as tmp:
            key, size, sha = _build(ctx, order, Path(tmp))
    except BuildError as exc:
        _fail(artefact_id, str(exc))
        return artefacts.FAILED
    except Exception as exc:  # an exporter or Grad-CAM bug: say so rather than leave the artefact pending
        logger.exception("artefact %d failed", artefact_id)
        _fail(artefact_id, f"building it failed: {type(exc).__name__}: {exc}")
        return artefacts.FAILED
    _finish(artefact_id, key, size, sha)
    logger.info("artefact %d ready: %s (%d bytes)", artefact_id, key, size)
    return artefacts.READY
