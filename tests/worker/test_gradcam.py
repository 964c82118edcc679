"""Grad-CAM of layer4 agrees with one computed independently on torchvision's plain ResNet."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from imagebatch.worker.modeltools.gradcam import OVERLAY_ALPHA, explain, grad_cam, jet
from imagebatch.worker.samples import write_sample_photos

MIN_CORRELATION = 0.99


def independent_grad_cam(model: torchvision.models.ResNet, image: torch.Tensor, class_index: int) -> np.ndarray:
    """Grad-CAM written from the paper with hooks on layer4, upsampled, not normalised."""
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output: torch.Tensor) -> None:
        saved["activation"] = output
        output.register_hook(lambda grad: saved.__setitem__("gradient", grad))

    handle = model.layer4.register_forward_hook(keep)
    try:
        x = image.unsqueeze(0).clone().requires_grad_(True)
        model(x)[0, class_index].backward()
    finally:
        handle.remove()
    weights = saved["gradient"].mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * saved["activation"]).sum(dim=1, keepdim=True)).detach()
    return F.interpolate(cam, size=image.shape[1:], mode="bilinear", align_corners=False)[0, 0].numpy()


def correlation(heatmap: np.ndarray, reference: np.ndarray) -> float:
    assert reference.max() > reference.min(), "the reference map is flat: pick a class with positive evidence"
    return float(np.corrcoef(heatmap.ravel(), reference.ravel())[0, 1])


def strongest_evidence_class(model: torchvision.models.ResNet, image: torch.Tensor) -> int:
    """The class whose fc weights respond most to the pooled features (bias aside): its map is never flat."""
    pooled: list[torch.Tensor] = []
    handle = model.avgpool.register_forward_hook(lambda _m, _i, out: pooled.append(out.flatten(1)))
    with torch.no_grad():
        model(image.unsqueeze(0))
    handle.remove()
    return int((pooled[0] @ model.fc.weight.T).argmax())


@pytest.fixture(scope="module")
def photos(resnet18, tmp_path_factory: pytest.TempPathFactory) -> list[Image.Image]:
    paths = write_sample_photos(tmp_path_factory.mktemp("gradcam"), 5)  # astronaut, cat, coffee, rocket, cameraman
    return [Image.open(p).convert("RGB") for p in paths]


# With these random weights the top-1 class of photos 0, 2 and 4 has positive evidence in layer4.
@pytest.mark.parametrize("which", [0, 2, 4])
def test_heatmap_matches_an_independent_grad_cam(resnet18, reference_resnet18, photos, which: int) -> None:
    image = resnet18.transform(photos[which])
    cam = grad_cam(resnet18.net, image)
    with torch.no_grad():
        top1 = int(reference_resnet18(image.unsqueeze(0)).argmax())
    assert cam.class_index == top1
    reference = independent_grad_cam(reference_resnet18, image, top1)
    assert cam.heatmap.shape == reference.shape == (224, 224)
    assert correlation(cam.heatmap, reference) >= MIN_CORRELATION
    assert cam.grey().min() == 0 and cam.grey().max() == 255


def test_explicit_class_inside_inference_mode(resnet18, reference_resnet18, photos) -> None:
    image = resnet18.transform(photos[1])
    chosen = strongest_evidence_class(reference_resnet18, image)
    with torch.inference_mode():  # as the worker runs; Grad-CAM needs gradients all the same
        cam = grad_cam(resnet18.net, image, class_index=chosen)
    assert cam.class_index == chosen
    assert correlation(cam.heatmap, independent_grad_cam(reference_resnet18, image, chosen)) >= MIN_CORRELATION


def test_class_without_positive_evidence_gives_an_all_zero_map(resnet18, reference_resnet18, photos) -> None:
    """The cat's top-1 class under random weights owes its rank to the fc bias: ReLU leaves nothing."""
    image = resnet18.transform(photos[1])
    cam = grad_cam(resnet18.net, image)
    assert independent_grad_cam(reference_resnet18, image, cam.class_index).max() == 0
    assert not cam.grey().any()


@pytest.mark.parametrize("bad", [1000, -1, 10**6])
def test_class_out_of_range_is_a_clear_error(resnet18, photos, bad: int) -> None:
    with pytest.raises(ValueError, match=r"class .* out of range: the model has 1000 classes \(0 to 999\)"):
        grad_cam(resnet18.net, resnet18.transform(photos[0]), class_index=bad)


def test_explain_gives_grey_heatmap_and_colour_overlay_pngs(resnet18, photos) -> None:
    result = explain(resnet18.net, resnet18.transform, photos[0])
    heatmap = Image.open(io.BytesIO(result.heatmap_png))
    overlay = Image.open(io.BytesIO(result.overlay_png))
    assert (heatmap.format, heatmap.mode, heatmap.size) == ("PNG", "L", (224, 224))
    assert (overlay.format, overlay.mode, overlay.size) == ("PNG", "RGB", (224, 224))
    assert np.array_equal(np.asarray(heatmap), result.cam.grey())
    # The overlay is the input crop blended with the jet colour map: recompute it from the crop.
    crop_of = torchvision.transforms.Compose(
        [torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224)]
    )
    crop = np.asarray(crop_of(photos[0]), dtype=np.float64)
    colours = np.asarray(jet(result.cam.heatmap), dtype=np.float64)
    expected = crop * (1 - OVERLAY_ALPHA) + colours * OVERLAY_ALPHA
    assert np.abs(np.asarray(overlay, dtype=np.float64) - expected).mean() < 2.0
