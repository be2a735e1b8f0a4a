"""The two architectures distillation connects, and the contract between them.

``teacher`` (a transformer over lead-aware patches, the foundation model's architecture),
``student`` (a compact depthwise-separable CNN) and ``output`` (the ``ModelOutput`` both
return: logits, tokens, pooled embedding and what each token covers on the ECG).
"""
