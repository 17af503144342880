data/tinynet.onnx --data idx:data/tiny-images-idx3-ubyte,data/tiny-labels-idx1-ubyte.gz -c 'eval'
