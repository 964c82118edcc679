"""The demo's weights handling: where torch looks, and random weights kept out of the user's cache."""

from pathlib import Path

import pytest

from imagebatch.cli import demo
from imagebatch.core.catalog import MODELS
from tests.harness.services import free_port


@pytest.mark.parametrize("variables", [{"TORCH_HOME": "th"}, {"XDG_CACHE_HOME": "xdg"}, {}])
def test_torch_home_matches_torch_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variables: dict):
    import torch.hub

    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for key, value in variables.items():
        monkeypatch.setenv(key, str(tmp_path / value))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # torch.hub.set_dir() must not be in force
    assert demo.torch_home_dir() / "hub" == Path(torch.hub.get_dir())


def test_offline_demo_writes_random_weights_only_into_its_own_folder(monkeypatch, tmp_path: Path):
    user_home = tmp_path / "user-torch"
    monkeypatch.setenv("TORCH_HOME", str(user_home))
    # Nothing listens there: the one download attempt fails at once, as on an offline machine.
    monkeypatch.setattr(demo, "WEIGHTS_BASE_URL", f"http://127.0.0.1:{free_port()}/models/")
    data_dir = tmp_path / "demo-data"
    data_dir.mkdir()
    home, is_random = demo.prepare_weights(data_dir, random_weights=True)
    assert is_random and home == data_dir / "torch"
    assert (home / "hub" / "checkpoints" / MODELS["resnet18"].weights_file).stat().st_size > 1_000_000
    assert not user_home.exists() or not any(user_home.rglob("*.pth"))


def test_declining_random_weights_gives_up(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.setattr(demo, "WEIGHTS_BASE_URL", f"http://127.0.0.1:{free_port()}/models/")
    assert demo.prepare_weights(tmp_path, random_weights=False) == (None, False)
    assert not any(tmp_path.rglob("*.pth"))
