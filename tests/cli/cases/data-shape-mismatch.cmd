data/tinynet.onnx -c 'data idx:data/tiny-images-idx3-ubyte,data/tiny-labels-idx1-ubyte.gz'
