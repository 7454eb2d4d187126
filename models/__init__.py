"""RD-RE in PyTorch for RD-RE Studio.

Contract: the only artefact other parts of the project consume is the ONNX file written by
``models.export`` (input ``image``, outputs ``anomaly_map``, ``score``, ``rd_map``, self-describing
metadata); the command-line entry points are ``models.train``, ``models.export``, ``models.golden``,
``models.predict`` and ``models.evaluate``.
"""
