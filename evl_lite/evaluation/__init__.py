"""What a trained model is worth and costs, and how it reaches a device.

``metrics`` (the PTB-XL benchmark's multi-label metrics with bootstrap intervals),
``efficiency`` (parameters, FLOPs, latency, memory), ``interpretation`` (where a model looks,
calibration, errors) and ``deployment`` (int8 quantisation and ONNX export with parity checks).
"""
