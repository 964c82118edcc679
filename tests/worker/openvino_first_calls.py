"""Run by tests/worker/test_int8_first_call.py in a fresh process: load a saved OpenVINO model (no array
converted yet in this process), then make the first calls from several threads released together.

Prints "finished N" and exits 0 when every call returned; a process frozen in its first calls never
prints (the parent's timeout ends it).
"""

import sys
import threading

import torch

from imagebatch.worker.modeltools.int8_runtimes import OpenVinoModel, openvino_core


def main(model_xml: str, threads: int) -> int:
    torch.set_num_threads(1)
    model = OpenVinoModel(openvino_core().read_model(model_xml), streams=2)
    assert model.compiled is not None  # compiled before the race: only the first conversions run side by side
    start, finished = threading.Barrier(threads), []
    batch = torch.randn(2, 3, 16, 16)

    def call() -> None:
        start.wait()
        logits, embedding = model(batch)
        finished.append(logits.shape == embedding.shape == (2, 4))

    workers = [threading.Thread(target=call, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    print(f"finished {sum(finished)}", flush=True)
    return 0 if sum(finished) == threads else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
