"""The course around the notebooks: running them, learner copies, Colab, clean commits.

``runner`` (papermill over the collection, as ``run`` and the tests do), ``exercises``
(learner copies with gaps and checks), ``colab`` (set-up in Colab) and ``hygiene`` (notebooks
committed without outputs).
"""
