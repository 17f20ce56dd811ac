"""PyTorch peer of bench/gpu_matmul.ts and gpu_matmul_tc.ts: fp32 (TF32 off), TF32, and fp16/bf16 operands
with fp32 accumulation (the tensor-core modes) matmul TFLOP/s on the same shapes.

    python3 bench/torch_matmul.py [--reps 50]

Prints one JSON line per shape and mode, then a table. Shapes are M x N x K with the same stored layouts
(NT: a [M, K] @ b[N, K].t(); TN: a[K, M].t() @ b[K, N]). Timed with CUDA events, median of reps.
"""
import argparse
import json
import os

import torch

SHAPES = [
    ("square", 4096, 4096, 4096, False, False),
    ("attn qkv/out fwd (NT)", 16384, 512, 512, False, True),
    ("ffn up fwd (NT)", 16384, 2048, 512, False, True),
    ("ffn down fwd (NT)", 16384, 512, 2048, False, True),
    ("lm_head fwd (NT)", 16384, 8000, 512, False, True),
    ("ffn down dx (NN)", 16384, 2048, 512, False, False),
    ("ffn up dx (NN)", 16384, 512, 2048, False, False),
    ("dW 512x512 (TN)", 512, 512, 16384, True, False),
    ("dW ffn up (TN)", 2048, 512, 16384, True, False),
    ("dW lm_head (TN)", 8000, 512, 16384, True, False),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=50)
    args = parser.parse_args()
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    print(json.dumps({"what": "torch", "device": name, "torch": torch.__version__}))
    rows = []
    lines = []
    for label, m, n, k, trans_a, trans_b in SHAPES:
        g = torch.Generator(device=dev).manual_seed(0)
        a = torch.rand((k, m) if trans_a else (m, k), device=dev, generator=g) * 2 - 1
        b = torch.rand((n, k) if trans_b else (k, n), device=dev, generator=g) * 2 - 1
        c = torch.empty((m, n), device=dev)
        aa = a.t() if trans_a else a
        bb = b.t() if trans_b else b
        for mode in ("fp32", "tf32", "fp16", "bf16"):
            torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
            if mode in ("fp16", "bf16"):
                dt = torch.float16 if mode == "fp16" else torch.bfloat16
                x, y = aa.to(dt), bb.to(dt)
                out = torch.empty((m, n), device=dev, dtype=dt)
            else:
                x, y, out = aa, bb, c
            for _ in range(3):
                torch.matmul(x, y, out=out)
            torch.cuda.synchronize()
            times = []
            for _ in range(args.reps):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                torch.matmul(x, y, out=out)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            times.sort()
            ms = times[len(times) // 2]
            tflops = 2 * m * n * k / (ms * 1e-3) / 1e12
            rec = {"what": "torch_matmul", "shape": label, "M": m, "N": n, "K": k, "mode": mode,
                   "ms": round(ms, 4), "tflops": round(tflops, 2)}
            lines.append(json.dumps(rec))
            print(lines[-1])
            rows.append((label, f"{m}x{n}x{k}", mode, f"{ms:.3f}", f"{tflops:.1f}"))
        del a, b, c
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "torch_matmul.jsonl"), "w") as f:
            f.write("\n".join(lines) + "\n")
    print(f"\n{name}, torch {torch.__version__}, median of {args.reps} reps (CUDA events)")
    header = ("shape", "MxNxK", "mode", "ms", "TFLOP/s")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for r in [header, *rows]:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)))


if __name__ == "__main__":
    main()
