data/tinynet.onnx -c 'data images:data/images --calib 1'
