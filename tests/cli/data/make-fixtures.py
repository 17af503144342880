#!/usr/bin/python3
# make-fixtures.py - regenerate the small model and tensors the transcript
# tests use.  Run by hand (needs python3-torch, python3-onnx, numpy); the
# tests themselves only read the committed files.
#
#   cd tests/cli/data && /usr/bin/python3 make-fixtures.py
#
# It prints the expected output statistics, which the .out files check.
import numpy as np
import onnx
import torch
from onnx import numpy_helper


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.conv2 = torch.nn.Conv2d(4, 6, 1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(6, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        f = torch.flatten(self.pool(x), 1)
        return torch.softmax(self.fc(f), 1), f


def main():
    torch.manual_seed(7)
    net = TinyNet()
    with torch.no_grad():
        net.bn1.running_mean.uniform_(-0.2, 0.2)
        net.bn1.running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.from_numpy(np.random.RandomState(3).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32))
    torch.onnx.export(net, x, "tinynet.onnx", opset_version=13,
                      input_names=["image"], output_names=["probs/softmax:0", "features"],
                      dynamic_axes={"image": {0: "batch"}, "probs/softmax:0": {0: "batch"},
                                    "features": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    np.save("tinynet_input.npy", x.numpy())
    with open("tinynet_input.pb", "wb") as f:
        f.write(numpy_helper.from_array(x.numpy(), "image").SerializeToString())
    np.save("tinynet_input_int.npy", np.arange(2 * 3 * 8 * 8, dtype=np.int32).reshape(2, 3, 8, 8) % 3 - 1)
    np.save("wrong_shape.npy", np.zeros((1, 3, 4, 4), np.float32))
    with torch.no_grad():
        for name, inp in [("input", x), ("input_int", torch.from_numpy(
                np.load("tinynet_input_int.npy").astype(np.float32)))]:
            p, f = net(inp)
            for oname, o in [("probs", p.numpy()), ("features", f.numpy())]:
                print(name, oname, o.shape, "min %.5g max %.5g mean %.5g argmax[0] %d"
                      % (o.min(), o.max(), o.mean(dtype=np.float64), o[0].argmax()))
    m = onnx.load("tinynet.onnx")
    print("params", sum(int(np.prod(i.dims)) for i in m.graph.initializer))
    print([n.op_type for n in m.graph.node])


if __name__ == "__main__":
    main()
