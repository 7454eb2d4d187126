"""RD-RE (Reverse Distillation with Feature Reconstruction Enhancement) building blocks.

Contract: every component is a plain ``torch.nn.Module`` (or a pure function) that works on batched
NCHW float32 tensors, keeps to APIs present in both PyTorch 1.13 and 2.x, and traces to ONNX opset 17
with only the batch dimension dynamic. Widths follow the teacher's feature taps, so the same code serves
the ResNet18 teacher of the paper and the MobileNetV2 teacher these machines can train with.
"""
