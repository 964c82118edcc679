"""int8 engines outside torch: ONNX Runtime static quantization and OpenVINO with NNCF."""

import contextlib
import functools
import io
import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import onnx
import torch
from torch import nn

from imagebatch.worker.modeltools.export import INPUT_NAME, onnx_model
from imagebatch.worker.modeltools.int8_engine import Int8Model, Outputs, Recipe

if TYPE_CHECKING:
    import openvino as ov

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _numpy(batch: torch.Tensor) -> np.ndarray:
    return batch.detach().to(torch.float32).contiguous().numpy()


def _export_fp32(net: nn.Module, batches: Sequence[torch.Tensor], directory: Path) -> Path:
    path = directory / "fp32.onnx"
    onnx.save_model(onnx_model(net, int(batches[0].shape[-1])), str(path))
    return path


class FirstCallAlone:
    """Runs the first call through it alone in the process; later calls run side by side.

    OpenVINO's Python binding (pybind11) sets up its numpy support on the first array it converts,
    inside a function-local static whose guard a thread keeps while it waits for the GIL: two threads
    converting their first arrays at once can each hold what the other waits for, and the whole
    process freezes with them (seen in a worker whose two chunks entered their first int8 forward
    together: no chunk, heartbeat or consumer ran again). After one call has run to the end, that
    set-up is done.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = threading.Event()

    def run(self, call: Callable[[], T]) -> T:
        if self._done.is_set():
            return call()
        with self._lock:  # the waiting threads hold no binding state, only this lock
            result = call()
            self._done.set()
            return result


_OPENVINO_FIRST_CALL = FirstCallAlone()


@functools.cache
def openvino_core() -> "ov.Core":
    """The process's one OpenVINO Core, kept for its lifetime.

    Loading the CPU plugin gives the loading thread an alternate signal stack that the plugin owns:
    a Core dropped after use freed that stack under the thread, and the next signal with a Python
    handler delivered there (SIGCHLD under a DataLoader, say) killed the process with SIGSEGV.
    """
    import openvino as ov

    return ov.Core()


def threads() -> int:
    """The runtimes get the same thread budget the worker gives torch (settings.TORCH_THREADS)."""
    return max(1, torch.get_num_threads())


class OrtModel(Int8Model):
    """ONNX Runtime: QDQ format, per-channel int8 weights, uint8 activations (U8S8), MinMax calibration.

    Weights use the full int8 range on a CPU with VNNI and 7 bits without (reduce_range), as ONNX
    Runtime advises: there the U8S8 kernels' 16-bit pairwise sums saturate. Measured on an AVX2-only
    EPYC, the full range moved top-1 on a clearly decided photo; 7 bits kept it.
    """

    engine = "onnxruntime"
    artefact = "model.onnx"

    def __init__(self, model_bytes: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No spin-waiting between ops: the worker decodes on other threads meanwhile (measured +15%
        # on a loaded 2-core machine).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.model_bytes = model_bytes
        self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    @classmethod
    def recipe(cls, vnni: bool) -> Recipe:
        return {"reduce_range": not vnni}

    @classmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor], recipe: Recipe) -> "OrtModel":
        from onnxruntime import quantization as q

        class Reader(q.CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = iter([{INPUT_NAME: _numpy(b)} for b in batches])

            def get_next(self) -> dict | None:
                return next(self.feeds, None)

        with tempfile.TemporaryDirectory() as tmp:
            fp32, prepared, int8 = (
                _export_fp32(net, batches, Path(tmp)),
                Path(tmp) / "pre.onnx",
                Path(tmp) / "int8.onnx",
            )
            q.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
            q.quantize_static(
                str(prepared),
                str(int8),
                Reader(),
                quant_format=q.QuantFormat.QDQ,
                per_channel=True,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                reduce_range=recipe["reduce_range"],
                calibrate_method=q.CalibrationMethod.MinMax,
            )
            return cls(int8.read_bytes())

    @classmethod
    def load(cls, directory: Path) -> "OrtModel":
        return cls((directory / cls.artefact).read_bytes())

    def save(self, directory: Path) -> None:
        (directory / self.artefact).write_bytes(self.model_bytes)

    def __call__(self, x: torch.Tensor) -> Outputs:
        logits, embedding = self.session.run(None, {INPUT_NAME: _numpy(x)})
        return torch.from_numpy(logits), torch.from_numpy(embedding)


class OpenVinoModel(Int8Model):
    """OpenVINO's CPU plugin running a model quantized by NNCF (default preset, full bias correction, all
    calibration images). NNCF's default overflow fix already quantizes the first layer's weights to
    7 bits, which is what keeps a CPU without VNNI from saturating, so one recipe serves every CPU.

    One infer request per calling thread: a compiled model's own __call__ shares one request, which
    concurrent chunks in a threaded worker would trample.
    """

    engine = "openvino"
    artefact = "model.xml"  # with model.bin beside it

    def __init__(self, model: object, streams: int = 1) -> None:
        self.model, self.streams = model, streams
        # Read now (threads() is the creating thread's torch setting), compiled on first use: a worker
        # loads a model and at once asks for it with_streams(slots), which would otherwise compile twice.
        self._threads = threads()
        self._compiled: ov.CompiledModel | None = None
        self._compiling = threading.Lock()
        self._local = threading.local()

    @property
    def compiled(self) -> "ov.CompiledModel":
        with self._compiling:
            if self._compiled is None:
                # One CPU stream runs one request at a time: requests beyond it queue, even from other threads
                # (two 1-thread forward slots measured 221 img/s together, as one). A stream per slot runs them
                # side by side.
                config = {"INFERENCE_NUM_THREADS": self._threads * self.streams, "NUM_STREAMS": self.streams}
                self._compiled = openvino_core().compile_model(self.model, "CPU", config)
            return self._compiled

    @classmethod
    def quantize(cls, net: nn.Module, batches: Sequence[torch.Tensor], recipe: Recipe) -> "OpenVinoModel":
        import nncf
        import openvino as ov

        with tempfile.TemporaryDirectory() as tmp:
            model = ov.convert_model(str(_export_fp32(net, batches, Path(tmp))))
        dataset = nncf.Dataset(list(batches), _numpy)
        # NNCF draws rich progress bars and logs on stdout; the worker logs through logging only.
        with contextlib.redirect_stdout(io.StringIO()) as chatter:
            # Full bias correction, not NNCF's fast one: on the digits ResNet-18 the fast one moved 2 of the 360
            # held-out images off fp32's answer (-0.56 points), the full one none; it quantized ResNet-18 no slower.
            quantized = nncf.quantize(model, dataset, subset_size=len(batches), fast_bias_correction=False)
        logger.debug("nncf: %s", chatter.getvalue().strip())
        return cls(quantized)

    @classmethod
    def load(cls, directory: Path) -> "OpenVinoModel":
        return cls(openvino_core().read_model(str(directory / cls.artefact)))

    def with_streams(self, streams: int) -> "OpenVinoModel":
        return self if streams == self.streams else OpenVinoModel(self.model, streams)

    def save(self, directory: Path) -> None:
        import openvino as ov

        ov.save_model(self.model, str(directory / self.artefact), compress_to_fp16=False)

    def __call__(self, x: torch.Tensor) -> Outputs:
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()

        def infer() -> Outputs:
            result = request.infer(_numpy(x))
            # Copies: the request reuses its output buffers on the next call.
            return torch.from_numpy(result[0].copy()), torch.from_numpy(result[1].copy())

        return _OPENVINO_FIRST_CALL.run(infer)
