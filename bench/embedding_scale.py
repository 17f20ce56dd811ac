"""Prints the scale of a run's clean latents: RMS of the raw embedding rows and of LayerNorm's weight.

usage: python3 bench/embedding_scale.py RUN_DIR...   (reads RUN_DIR/model.safetensors; standard library only)
"""
import json
import math
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        yield name, struct.unpack(f"<{(end - begin) // 4}f", data[begin:end])


def rms(values):
    return math.sqrt(sum(v * v for v in values) / len(values))


for run in sys.argv[1:]:
    found = dict((k, v) for k, v in tensors(f"{run}/model.safetensors") if k.startswith(("embedding", "norm")))
    line = [run, f"embedding rms {rms(found['embedding.weight']):.4f}"]
    if "norm.weight" in found:
        line.append(f"norm.weight rms {rms(found['norm.weight']):.3f}")
    print(" · ".join(line))
