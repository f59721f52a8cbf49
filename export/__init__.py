"""Checkpoint -> ONNX -> FP16 ONNX -> TensorRT engine, with parity checks.

Not built yet: the export pipeline is tracked in its own issue. Checkpoints written by
``train`` already carry the input/output contract that export will put in its sidecars.
"""
