data/tinynet.onnx -q -c eval
