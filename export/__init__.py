"""Checkpoint -> ONNX (FP32) -> mixed-precision FP16 ONNX -> TensorRT engine, each checked against PyTorch.

Each step is a function you can call alone; ``python -m export`` chains them:

* ``export.onnx_export.export_onnx``: the dynamo exporter, dynamic batch/height/width, the checkpoint's
  contract in ``metadata_props``, ``onnx.checker`` full check;
* ``export.fp16.convert_fp16``: onnxconverter-common's float16 with the sensitive operators kept FP32;
* ``export.engine.build_engine``: a strongly typed TensorRT network (TensorRT 10 and 11), one
  optimisation profile, a timing cache and an engine cache;
* ``export.parity.compare``: max abs error, PSNR, NaN/Inf against the PyTorch FP32 reference on
  realistic inputs (``train.families.sample_inputs``), both sides run by the runtime's own runners;
* ``runtime.core.sidecar``: the typed JSON next to every artefact (written here, read by every runner);
* ``export.report``: the closing table and ``export_report.md``;
* ``export.triton``: a Triton Inference Server model repository.

Importing this package imports neither torch nor TensorRT; each step imports what it needs.
"""
