"""Classify your own ECG: ``python -m evl_lite predict`` with the shipped distilled student.

The way of a record, in one direction:

- :mod:`~evl_lite.predict.records`: the records a path names (WFDB with or without extension,
  EDF, directories searched recursively) and their 12 standard leads (the data layer's reader),
- :mod:`~evl_lite.predict.pipeline`: preparation as for the models' training records, sliding
  windows, probabilities, the decision and the window that drove it; timed per stage,
- :mod:`~evl_lite.predict.predictor`: the model: the shipped student, an experiment's student or
  an ONNX export, run by PyTorch or onnxruntime,
- :mod:`~evl_lite.predict.student_hub`: the shipped student's directory, model card and verified hash,
- :mod:`~evl_lite.predict.from_experiment`: how the shipped student is chosen from an experiment
  (validation only) and its card written (``python -m evl_lite student ship``),
- :mod:`~evl_lite.predict.report`: the offline HTML report (``--report DIR``),
- :mod:`~evl_lite.predict.command`: the command line.

Educational use only, not a diagnosis.
"""
