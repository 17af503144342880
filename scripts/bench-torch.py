#!/usr/bin/python3
"""scripts/bench-torch.py - PyTorch eval throughput of the sample architectures, for scripts/bench.

  bench-torch.py prepare OUTDIR [N]
      write OUTDIR/images.npy (float32 [N, 1, 28, 28], normalised exactly as
      scripts/train-samples does) and OUTDIR/labels.npy (int64 [N]) from the first N
      (default all 10000) Fashion-MNIST test images, for the engines of the benchmark
  bench-torch.py run MODEL.onnx IMAGES.npy LABELS.npy BATCH [THREADS [LAYOUT [MAX_SECONDS]]]
      one warm-up batch, then all images in batches of BATCH; prints one JSON line
      like scripts/bench-ort.js (images_per_s, correct, peak_rss_kb = ru_maxrss).
      LAYOUT is nchw (default) or channels_last: PyTorch's CPU convolutions are much
      faster in channels_last for some models (scripts/train-samples trains in it),
      so the benchmark tries both and keeps the better.  With MAX_SECONDS the run stops
      after the first batch that ends past that time and n counts the images done.

PyTorch runs its own nn.Module, not the ONNX file: the architecture classes are
taken from scripts/train-samples and the weights from the ONNX file's
initializers.  scripts/train-samples exports with BatchNorm preserved and no
Conv+BN folding, so every initializer is named after its state_dict key
("features.1.running_mean", ...), or, for parameters whose values equal another's,
an Identity node's output; they are loaded by name, and the class is the one whose
state_dict has exactly those keys (num_batches_tracked, a training counter, is the
only key not exported).  Eager mode, torch.inference_mode.
"""
import json
import os
import resource
import sys
import time

try:
    import numpy as np
    import torch
except ImportError as e:
    sys.exit(f"bench-torch: missing {e.name} (python3-torch, python3-numpy): run scripts/setup-bench")

HERE = os.path.dirname(os.path.abspath(__file__))


def train_samples():
    """The names defined by scripts/train-samples, without running its main()."""
    path = os.path.join(HERE, "train-samples")
    with open(path) as f:
        src = f.read()
    ns = {"__name__": "train_samples", "__file__": path}
    exec(compile(src, path, "exec"), ns)
    return ns


def prepare(outdir, n=None):
    ts = train_samples()
    x, y = ts["load_split"]("test")
    if n is not None:
        x, y = x[:n], y[:n]
    os.makedirs(outdir, exist_ok=True)
    np.save(os.path.join(outdir, "images.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(outdir, "labels.npy"), y.numpy().astype(np.int64))


def build_model(onnx_path):
    import onnx
    from onnx import numpy_helper

    ts = train_samples()
    m = onnx.load(onnx_path)
    weights = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    # the exporter stores parameters with equal values once and names the others
    # through Identity nodes
    for n in m.graph.node:
        if n.op_type == "Identity" and n.input[0] in weights:
            weights[n.output[0]] = weights[n.input[0]]
    for cls_name in ("MobileNetV2Small", "ResNetSmall"):
        model = ts[cls_name]()
        sd = model.state_dict()
        keys = {k for k in sd if not k.endswith("num_batches_tracked")}
        if keys - set(weights):
            continue
        for k in keys:
            if tuple(sd[k].shape) != weights[k].shape:
                break
        else:
            new = {k: torch.from_numpy(weights[k].copy()) for k in keys}
            model.load_state_dict(new, strict=False)
            return cls_name, model.eval()
    sys.exit(f"bench-torch: {onnx_path}: no architecture in scripts/train-samples has "
             "its initializers as state_dict keys")


def run(onnx_path, images_path, labels_path, batch, threads, layout, max_seconds):
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    arch, model = build_model(onnx_path)
    x = torch.from_numpy(np.load(images_path))
    y = torch.from_numpy(np.load(labels_path))
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout != "nchw":
        sys.exit(f"bench-torch: unknown layout {layout}")
    n = 0
    correct = 0
    with torch.inference_mode():
        model(x[:batch])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, x.shape[0], batch):
            if time.perf_counter() - t0 >= max_seconds:
                break
            out = model(x[s:s + batch])
            correct += int((out.argmax(1) == y[s:s + batch]).sum())
            n += out.shape[0]
        seconds = time.perf_counter() - t0
    print(json.dumps({
        "engine": "torch", "version": torch.__version__, "arch": arch, "layout": layout,
        "batch": batch, "n": n,
        "threads": threads, "seconds": seconds, "images_per_s": n / seconds,
        "correct": correct, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


def main(argv):
    if len(argv) in (3, 4) and argv[1] == "prepare":
        return prepare(argv[2], int(argv[3]) if len(argv) == 4 else None)
    if len(argv) in (6, 7, 8, 9) and argv[1] == "run":
        return run(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]) if len(argv) >= 7 else 2,
                   argv[7] if len(argv) >= 8 else "nchw",
                   float(argv[8]) if len(argv) == 9 else float("inf"))
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
