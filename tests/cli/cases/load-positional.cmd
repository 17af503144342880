data/tinynet.onnx -c 'show settings'
