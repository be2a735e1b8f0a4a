"""How models are trained: one loop for the teacher and every student, and the shared recipes.

``loop`` (the Accelerate training loop, resumable, with the supervised and distillation
objectives), ``pretraining`` (the teacher's masked-patch stage), ``weight_average`` (an EMA of
the weights) and ``recipes`` (the teacher's and the student's schedules, the teacher a run
distils from, and one student trained with any method).
"""
