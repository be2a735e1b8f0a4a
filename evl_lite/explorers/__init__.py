"""Figures and widgets the notebooks show: the ECG, the models, and each distillation component.

``ecg_plots`` (ECG paper, preprocessing, beats, label efficiency), ``model_plots`` (tokens,
curves, ROC, attention), ``widgets`` (the preprocessing explorer) and one explorer per EVL
component: ``attention`` (cross-attention), ``transport`` (optimal transport), ``relation``
(relation matching).
"""
