"""Figures and widgets the notebooks show: the ECG, the models, and each distillation component.

``ecg_plots`` (ECG paper, preprocessing, beats, label efficiency), ``model_plots`` (tokens,
curves, ROC, attention), ``widgets`` (the preprocessing explorer) and one explorer per EVL
component: ``attention`` (cross-attention), ``transport`` (optimal transport), ``relation``
(relation matching).
"""

import plotly.graph_objects as go
import plotly.io as pio

# Every figure: plotly_white, with the toolbar down the right edge so a long title never runs under it.
pio.templates["evl"] = go.layout.Template(layout={"modebar": {"orientation": "v"}})
TEMPLATE = "plotly_white+evl"
