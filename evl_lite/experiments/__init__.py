"""The commands behind the results: each writes a results directory that regenerates its numbers.

``single_split`` (``experiment``: every method and seed on the benchmark split, label budgets),
``rotation`` (``experiment --folds rotate``: the 10-fold rotation, pooled out of fold),
``teacher_student`` and ``teacher_variants`` (teacher against scratch student, and the teacher
search), ``benchmarks`` (``bench``: speed and memory figures), ``results_page`` (the tables
of docs/results.md) and ``headline`` (the committed studies' answer to "does EVL earn its
place?", shipped for notebook 07).
"""
