data/tinynet.onnx -q --data npy:data/tiny_x.npy,data/tiny_y.npy -c 'eval --n 100'
