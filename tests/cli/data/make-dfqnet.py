#!/usr/bin/python3
# make-dfqnet.py - regenerate dfqnet.onnx and its data set, the fixtures of the DFQ
# command transcripts (layers, fold, equalize, quantize, eval, ...).  Run by hand
# (needs python3-torch, python3-onnx, numpy); the tests only read the committed files.
#
#   cd tests/cli/data && /usr/bin/python3 make-dfqnet.py
#
# dfqnet is a MobileNetV2-like miniature on 1x8x8 images: a conv stem with ReLU6, an
# inverted residual block (1x1 expand + ReLU6, depthwise 3x3 + ReLU6, 1x1 project,
# residual Add), a 1x1 conv with ReLU, global average pooling and a Linear layer, all
# convolutions followed by BatchNorm (kept: training=PRESERVE).  It is trained for a
# few seconds on a synthetic 4-class task (where the bright blob is), so accuracy
# numbers mean something, then one BN channel is given a large mean (a "high bias"
# for absorb) and one stem filter is scaled up (a range imbalance for equalize).
#
# Data: dfqnet_x.npy uint8 [256, 1, 8, 8] and dfqnet_y.npy int64 [256]; dfq reads
# them with `data npy:data/dfqnet_x.npy,data/dfqnet_y.npy` (x/255 normalised).
# dfqnet_input.npy: the first two samples as float32 x/255, for `infer`.
# dfqnet_nan.onnx: dfqnet with one NaN weight (load must refuse it).
# dfqnet_folded.onnx: dfqnet exported with BatchNorm folded (no BN statistics).
import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn

N = 256


def make_data(rng, n):
    """Class c: a bright 3x3 blob in quadrant c, plus noise."""
    y = rng.randint(0, 4, n)
    x = rng.uniform(0, 110, (n, 1, 8, 8))
    for i in range(n):
        r0 = 0 if y[i] in (0, 1) else 4
        c0 = 0 if y[i] in (0, 2) else 4
        r, c = r0 + rng.randint(0, 2), c0 + rng.randint(0, 2)
        x[i, 0, r:r + 3, c:c + 3] += rng.uniform(10, 120)
    return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)


class DfqNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
                                nn.BatchNorm2d(16), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Sequential(nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        x = self.head(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def main():
    torch.manual_seed(11)
    torch.set_num_threads(1)
    rng = np.random.RandomState(5)
    xtr, ytr = make_data(rng, 2048)
    xte, yte = make_data(rng, N)
    net = DfqNet()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt = torch.from_numpy(xtr.astype(np.float32) / 255)
    yt = torch.from_numpy(ytr)
    for step in range(300):
        idx = torch.randint(0, len(xt), (64,))
        loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        print("before the tweaks: %.4f" % (net(torch.from_numpy(xte.astype(np.float32) / 255)).argmax(1).numpy() == yte).mean())
        # a high bias for absorb: channel 3 of the expand BN moves up to 3 (with a small
        # spread), and the depthwise BN mean follows, so the function barely changes
        bn, dw, bn2 = net.expand[1], net.dw[0], net.dw[1]
        delta = 3.0 - bn.bias[3].item()
        bn.weight[3] *= 0.25
        bn.bias[3] += delta
        bn2.running_mean[3] += delta * dw.weight[3].sum()
        # a range imbalance for equalize: stem filter 0 eight times larger, its BN
        # statistics scaled with it so the function stays the same
        net.stem[0].weight[0] *= 8
        net.stem[1].running_mean[0] *= 8
        net.stem[1].running_var[0] *= 64
    xe = torch.from_numpy(xte.astype(np.float32) / 255)
    with torch.no_grad():
        acc = (net(xe).argmax(1).numpy() == yte).mean()
    torch.onnx.export(net, xe[:1], "dfqnet.onnx", opset_version=13, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=True)
    # the same model exported the default way: BatchNorm folded away, no statistics
    torch.onnx.export(net, xe[:1], "dfqnet_folded.onnx", opset_version=13, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    np.save("dfqnet_x.npy", xte)
    np.save("dfqnet_y.npy", yte)
    np.save("dfqnet_input.npy", xe[:2].numpy())  # for infer: two normalised samples
    # the same model with a NaN weight, which load must refuse
    m = onnx.load("dfqnet.onnx")
    for init in m.graph.initializer:
        if init.name == "expand.0.weight":
            w = numpy_helper.to_array(init).copy()
            w.flat[5] = np.nan
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(m, "dfqnet_nan.onnx")
    print("dfqnet: PyTorch top-1 on all %d samples %.4f" % (N, acc))


if __name__ == "__main__":
    main()
