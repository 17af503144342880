#!/usr/bin/python3
# make-data-fixtures.py - regenerate the small data sets the data/eval transcript
# tests read.  Run by hand (needs numpy; python3-torch only for the expected
# accuracy it prints); the tests themselves only read the committed files.
#
#   cd tests/cli/data && /usr/bin/python3 make-data-fixtures.py
#
#   tiny_x.npy, tiny_y.npy     20 images [3, 8, 8] float32 and int64 labels 0..4 (tinynet's input)
#   tiny-images-idx3-ubyte     12 one-channel 8x8 images, raw IDX (does not fit tinynet)
#   tiny-labels-idx1-ubyte.gz  their labels, gzip IDX
#   images/{circle,square}/    PNGs of several sizes and colour types
import gzip
import os
import struct
import zlib

import numpy as np


def write_idx(path, arr, gz=False):
    head = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if gz:
        # mtime=0 keeps the file the same on every run
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def write_png(path, pixels):
    """pixels: uint8 [H, W] (gray) or [H, W, C] with C 2, 3 or 4."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(png)


def main():
    rs = np.random.RandomState(5)
    x = rs.uniform(-1, 1, (20, 3, 8, 8)).astype(np.float32)
    y = (np.arange(20) % 5).astype(np.int64)
    np.save("tiny_x.npy", x)
    np.save("tiny_y.npy", y)
    write_idx("tiny-images-idx3-ubyte", rs.randint(0, 256, (12, 8, 8)))
    write_idx("tiny-labels-idx1-ubyte.gz", np.arange(12) % 3, gz=True)
    for d in ("images/circle", "images/square"):
        os.makedirs(d, exist_ok=True)
    write_png("images/circle/a.png", rs.randint(0, 256, (6, 10, 3)).astype(np.uint8))
    write_png("images/circle/b.png", rs.randint(0, 256, (10, 6)).astype(np.uint8))
    write_png("images/square/a.png", rs.randint(0, 256, (8, 8, 4)).astype(np.uint8))
    write_png("images/square/b.png", rs.randint(0, 256, (12, 12, 3)).astype(np.uint8))
    write_png("images/square/c.png", rs.randint(0, 256, (4, 4, 2)).astype(np.uint8))
    try:
        import torch
    except ImportError:
        return
    # tinynet's accuracy on tiny_x/tiny_y, which `eval` must find: rebuild the
    # network exactly as make-fixtures.py does (same seed, same draws)
    src = open("make-fixtures.py").read().replace('if __name__ == "__main__":', "if False:")
    g = {"__name__": "fixtures"}
    exec(compile(src, "make-fixtures.py", "exec"), g)
    torch.manual_seed(7)
    net = g["TinyNet"]()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
    net.eval()
    with torch.no_grad():
        probs = net(torch.from_numpy(x))[0].numpy()
    for n in (10, 18, 20):
        top1 = int((probs[:n].argmax(1) == y[:n]).sum())
        print(f"tinynet on the first {n}: top-1 {top1}")

if __name__ == "__main__":
    main()
