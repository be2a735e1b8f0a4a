"""Synthetic 12-lead ECG datasets in the PTB-XL layout, from a vectorcardiographic dipole model.

The heart is one current dipole d(t) [3] in body coordinates (x: the patient's left, y: the
feet, z: anterior). Every wave of a beat (P of the right and left atrium, septal q, R, S, T, an
ST "injury current", and the extra waves of a pathology) is an asymmetric Gaussian bump in time
with a fixed 3-D direction u_w, as in the Gaussian-kernel ECG model of McSharry et al. (2003,
IEEE Trans. Biomed. Eng. 50:289) and its 3-D dipole form (Sameni et al. 2007, EURASIP J. Adv.
Signal Process. 2007:43407):

    d(t) = sum_k sum_w  g_k,w a_w u_w exp(-(t - t_k - c_w)^2 / (2 s_w^2))     (s_w: left/right width)

for beats k at R-peak times t_k (beat-to-beat gains g_k,w follow respiration). A lead is the
projection v_l(t) = L_l . d(t) on its lead vector L_l (Burger & van Milaan 1946): frontal-plane
angles 0 deg (I) and 60 deg (II), Dower's chest-lead vectors for V1-V6. III, aVR, aVL and aVF
are derived from I and II (Einthoven: III = II - I; Goldberger: aVR = -(I + II)/2,
aVL = I - II/2, aVF = II - I/2), and noise enters at the electrodes (RA, LA, LL, V1-V6) before
the leads are formed, so these identities hold in every written record.

Classes change the dipole sequence the way textbooks describe the pathology (Surawicz & Knilans,
"Chou's Electrocardiography in Clinical Practice"): MI = initial QRS forces pointing away from
the infarcted territory (pathological Q), loss of R toward it, an injury current toward it (ST
elevation, reciprocal depression) and T inversion; STTC = ST depression (injury current away
from a territory) and flat or inverted T; CD = complete or incomplete right bundle branch block
(late slow rightward-anterior R'), left bundle branch block (broad notched leftward-posterior R,
discordant ST-T), left anterior fascicular block (axis < -45 deg) or first degree AV block (PR >
200 ms); HYP = Sokolow-Lyon high voltage (S in V1 + R in V5/V6; Sokolow & Lyon 1949) with optional
strain. Each finding has a random severity (subtle ones get PTB-XL's lower likelihoods), and
subject variability (axis, voltage with age, sex and habitus, intervals, electrode placement)
makes the classes overlap. Heart rate 50-110 bpm with
respiratory sinus arrhythmia and random RR jitter; QT follows Bazett (QTc * sqrt(RR)). Noise
follows the components of the MIT-BIH noise stress test (Moody, Muldrow & Mark 1984): baseline
wander (< 0.5 Hz), muscle (EMG) noise and 50/60 Hz powerline, with random per-record levels.

Signals are synthesised at 500 Hz with 0.2 s margins, freed of their mean (an AC-coupled
recorder: PTB-XL's leads have mean ~0.003 mV, so a lead's mean cannot leak the T-wave area of a
class) and decimated to 100 Hz with ``scipy.signal.resample_poly``. The files follow PTB-XL
(Wagner et al. 2020, Sci. Data 7:154): ``ptbxl_database.csv``, ``scp_statements.csv`` and WFDB
records, plus ``synthetic_truth.csv`` with the generating parameters. Every record draws from its
own seed (seed, ecg_id), so the output is byte-identical for a seed whatever the number of worker
processes.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import wfdb
from scipy.signal import resample_poly
from tqdm.auto import tqdm

from evl_lite.constants import LEADS, SUPERCLASSES
from evl_lite.errors import ECGDataError

FS_HIGH = 500  # Hz, synthesis rate and records500/
FS_LOW = 100  # Hz, records100/
DURATION_S = 10.0
TRUTH_CSV = "synthetic_truth.csv"
DRAW_JSON = "synthetic_draw.json"  # which draw a dataset is: {"seed": ..., "records": ...}
TARGET_SECONDS = 60.0  # benchmark target for 2,000 records at 100 Hz on 2 cores
_MARGIN_S = 0.2  # synthesised beyond both ends so decimation has no edge effects
_BEAT_WINDOW_S = (-0.7, 0.8)  # extent of one beat's template around its R peak
_ADC_GAIN = 1000.0  # digital units per mV (1 uV resolution), as PTB-XL
_CHUNK = 50  # records per worker task

# --------------------------------------------------------------------------- labels

# Superclass combinations and their shares: marginals NORM 45%, MI 21%, STTC 21%, CD 20%,
# HYP 11%, 18% multi-label (PTB-XL: 44/25/24/22/12%).
LABEL_MIX: dict[tuple[str, ...], float] = {
    ("NORM",): 0.45,
    ("MI",): 0.11,
    ("STTC",): 0.10,
    ("CD",): 0.12,
    ("HYP",): 0.04,
    ("MI", "STTC"): 0.05,
    ("MI", "CD"): 0.04,
    ("STTC", "HYP"): 0.04,
    ("STTC", "CD"): 0.02,
    ("CD", "HYP"): 0.02,
    ("MI", "HYP"): 0.01,
}

# Rows of PTB-XL 1.0.1's scp_statements.csv (verbatim) for the codes this generator writes.
_SCP_HEADER = (",description,diagnostic,form,rhythm,diagnostic_class,diagnostic_subclass,Statement Category,"
               "SCP-ECG Statement Description,AHA code,aECG REFID,CDISC Code,DICOM Code")
SCP_ROWS: dict[str, str] = {
    "NDT": "NDT,non-diagnostic T abnormalities,1.0,1.0,,STTC,STTC,other ST-T descriptive statements,"
           "non-diagnostic T abnormalities,,,,",
    "NST_": "NST_,non-specific ST changes,1.0,1.0,,STTC,NST_,Basic roots for coding ST-T changes and "
            "abnormalities,non-specific ST changes,145,MDC_ECG_RHY_STHILOST,,",
    "NORM": "NORM,normal ECG,1.0,,,NORM,NORM,Normal/abnormal,normal ECG,1,,,F-000B7",
    "IMI": "IMI,inferior myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferior myocardial "
           "infarction,161,,,",
    "ASMI": "ASMI,anteroseptal myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anteroseptal "
            "myocardial infarction,165,,,",
    "LVH": "LVH,left ventricular hypertrophy,1.0,,,HYP,LVH,Ventricular Hypertrophy,left ventricular "
           "hypertrophy,142,,C71076,",
    "ISC_": "ISC_,non-specific ischemic,1.0,,,STTC,ISC_,Basic roots for coding ST-T changes and "
            "abnormalities,ischemic ST-T changes,226,,,",
    "1AVB": '1AVB,first degree AV block,1.0,,,CD,_AVB,"Sinus node dysfunction, atrial and AV-conduction '
            'defects",first degree AV block,,MDC_ECG_RHY_AV_HEART_BLK_DEG_1,C111088,',
    "ISCAL": "ISCAL,ischemic in anterolateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in anterolateral "
             "leads,,,,",
    "CRBBB": "CRBBB,complete right bundle branch block,1.0,,,CD,CRBBB,Intraventricular and intra-atrial "
             "Conduction disturbances,(complete) right bundle branch block,106,MDC_ECG_BEAT_RBB_BLK_COMP,"
             "C62270,D3-33110",
    "CLBBB": "CLBBB,complete left bundle branch block,1.0,,,CD,CLBBB,Intraventricular and intra-atrial "
             "Conduction disturbances,(complete) left bundle branch block,104,MDC_ECG_BEAT_LBB_BLK_COMP,"
             "C62269,D3-33120 or 122752",
    "LAFB": "LAFB,left anterior fascicular block,1.0,,,CD,LAFB/LPFB,Intraventricular and intra-atrial "
            "Conduction disturbances,left anterior fascicular block,101,MDC_ECG_BEAT_BLK_ANT_L_HEMI,C62267,"
            "D3-33140",
    "IRBBB": "IRBBB,incomplete right bundle branch block,1.0,,,CD,IRBBB,Intraventricular and intra-atrial "
             "Conduction disturbances,incomplete right bundle branch block,105,MDC_ECG_BEAT_RBB_BLK_INCOMP,"
             "C71048,D3-33112",
    "ILMI": "ILMI,inferolateral myocardial infarction,1.0,,,MI,IMI,Myocardial Infarction,inferolateral "
            "myocardial infarction,,,,",
    "AMI": "AMI,anterior myocardial infarction,1.0,,,MI,AMI,Myocardial Infarction,anterior myocardial "
           "infarction,160,,,",
    "ISCLA": "ISCLA,ischemic in lateral leads,1.0,,,STTC,ISCA,ischemic ST-T changes,in lateral leads,,,,",
    "STD_": "STD_,non-specific ST depression,,1.0,,,,Basic roots for coding ST-T changes and abnormalities,"
            "non-specific ST depression,502,,,F-38278",
    "INVT": "INVT,inverted T-waves,,1.0,,,,other ST-T descriptive statements,inverted T-waves,367,,,",
    "SR": "SR,sinus rhythm,,,1.0,,,Statements related to impulse formation (abnormalities),sinus rhythm,20,"
          "MDC_ECG_RHY_SINUS_RHY,,",
}
_DESCRIPTION = {code: row.split(",")[1] for code, row in SCP_ROWS.items()}

# Columns of PTB-XL's ptbxl_database.csv, in its order (ecg_id is the index).
_DATABASE_COLUMNS = (
    "patient_id", "age", "sex", "height", "weight", "nurse", "site", "device", "recording_date", "report",
    "scp_codes", "heart_axis", "infarction_stadium1", "infarction_stadium2", "validated_by", "second_opinion",
    "initial_autogenerated_report", "validated_by_human", "baseline_drift", "static_noise", "burst_noise",
    "electrodes_problems", "extra_beats", "pacemaker", "strat_fold", "filename_lr", "filename_hr",
)

# --------------------------------------------------------------------------- geometry


def _unit(v: np.ndarray | list[float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _frontal(deg: float, z: float = 0.0) -> np.ndarray:
    """Unit vector at frontal-plane angle ``deg`` (0 = leftward, +90 = toward the feet) plus z."""
    r = math.radians(deg)
    return _unit([math.cos(r), math.sin(r), z])


def _rotate_frontal(v: np.ndarray, deg: float) -> np.ndarray:
    """Rotate v [3] by ``deg`` in the frontal (x, y) plane; positive = clockwise toward the feet."""
    r = math.radians(deg)
    c, s = math.cos(r), math.sin(r)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1], v[2]])


# Chest lead vectors V1..V6 [6, 3]: Dower's VCG-to-12-lead coefficients (Dower et al. 1980, J.
# Electrocardiol. 13:189; Frank Z flipped to point anterior), scaled to the unit limb leads.
_CHEST_VECTORS = 1.5 * np.array([
    [-0.515, 0.157, 0.917],
    [0.044, 0.164, 1.387],
    [0.882, 0.098, 1.277],
    [1.213, 0.127, 0.601],
    [1.125, 0.127, 0.086],
    [0.831, 0.076, -0.230],
])


def _lead_vectors(rng: np.random.Generator) -> np.ndarray:
    """Lead vectors of I, II, V1..V6 -> [8, 3]; chest electrodes jittered like real placement
    (horizontal rotation sd 5 deg, gain sd 8%)."""
    angles = np.deg2rad(rng.normal(0.0, 5.0, 6))
    c, s = np.cos(angles), np.sin(angles)
    x, z = _CHEST_VECTORS[:, 0], _CHEST_VECTORS[:, 2]
    chest = np.stack([c * x - s * z, _CHEST_VECTORS[:, 1], s * x + c * z], axis=1)
    chest *= np.exp(rng.normal(0.0, 0.08, 6))[:, None]
    return np.vstack([_frontal(0.0), _frontal(60.0), chest])


def limb_and_chest_to_leads(i: np.ndarray, ii: np.ndarray, chest: np.ndarray) -> np.ndarray:
    """I [T], II [T], V1..V6 [6, T] -> the 12 leads [12, T] in LEADS order (Einthoven, Goldberger)."""
    return np.vstack([i, ii, ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2, chest])


# --------------------------------------------------------------------------- heart model


@dataclass
class Wave:
    """One Gaussian bump of the dipole: amplitude (mV) x direction [3], centred ``center_s`` after R."""

    group: str  # beat-gain group: "P", "QRS" or "T" (the ST injury current moves with T)
    center_s: float
    sigma_left_s: float
    sigma_right_s: float
    amplitude_mv: float
    direction: np.ndarray  # [3] unit vector

    def shape(self, tau: np.ndarray) -> np.ndarray:
        """Time course at offsets tau [W] (s) from the R peak -> [W] (mV)."""
        sigma = np.where(tau < self.center_s, self.sigma_left_s, self.sigma_right_s)
        return self.amplitude_mv * np.exp(-0.5 * ((tau - self.center_s) / sigma) ** 2)


@dataclass
class Heart:
    """Parameters of one subject's beat; pathologies edit them before the waves are built."""

    rr_s: float
    pr_s: float
    p_dur_s: float
    qrs_s: float
    qtc_s: float
    habitus: float  # overall voltage factor of this body (age, sex, build)
    p_amp: float
    p_la_share: float  # left-atrial share of the P wave
    p_ra_dir: np.ndarray
    p_la_dir: np.ndarray
    q_amp: float
    q_dir: np.ndarray
    r_amp: float
    r_dir: np.ndarray
    s_amp: float
    s_dir: np.ndarray
    t_amp: float
    t_dir: np.ndarray
    t_width: tuple[float, float]  # T half-widths as fractions of QT (left, right)
    st_vec: np.ndarray = field(default_factory=lambda: np.zeros(3))  # injury current [3] (mV)
    conduction: str = "normal"  # "normal", "RBBB" or "LBBB"
    qrs_initial_s: float = 0.0  # RBBB: duration of the normal (left-ventricular) part
    rprime_amp: float = 0.0  # RBBB terminal R'
    rprime_dir: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rprime_sigma_s: float = 0.0
    r2_dir: np.ndarray = field(default_factory=lambda: np.zeros(3))  # LBBB second (notch) peak
    qmi_amp: float = 0.0  # MI: initial forces away from the scar (pathological Q)
    qmi_dir: np.ndarray = field(default_factory=lambda: np.zeros(3))
    qmi_sigma_s: float = 0.012

    @property
    def qt_s(self) -> float:
        """Bazett QT = QTc * sqrt(RR), lengthened by a widened QRS."""
        return self.qtc_s * math.sqrt(self.rr_s) + 0.8 * max(self.qrs_s - 0.09, 0.0)

    def qrs_onset_s(self) -> float:
        if self.conduction == "LBBB":
            return -0.46 * self.qrs_s
        return -0.45 * (self.qrs_initial_s if self.conduction == "RBBB" else self.qrs_s)

    def waves(self) -> list[Wave]:
        """The waves of one beat, R peak at 0 s."""
        onset = self.qrs_onset_s()
        d = self.qrs_initial_s if self.conduction == "RBBB" else self.qrs_s
        p0 = onset - self.pr_s
        ps = self.p_dur_s / 6
        out = [
            Wave("P", p0 + 0.4 * self.p_dur_s, ps, ps, self.p_amp * (1 - self.p_la_share), self.p_ra_dir),
            Wave("P", p0 + 0.6 * self.p_dur_s, ps, ps, self.p_amp * self.p_la_share, self.p_la_dir),
        ]
        if self.conduction == "LBBB":
            w = 0.13 * self.qrs_s
            out += [
                Wave("QRS", onset + 0.30 * self.qrs_s, w, w, self.r_amp, self.r_dir),
                Wave("QRS", onset + 0.62 * self.qrs_s, w, w, self.r_amp, self.r2_dir),
                Wave("QRS", onset + 0.85 * self.qrs_s, 0.09 * d, 0.09 * d, self.s_amp, self.s_dir),
            ]
        else:
            out += [
                Wave("QRS", onset + 0.17 * d, 0.07 * d, 0.07 * d, self.q_amp, self.q_dir),
                Wave("QRS", onset + 0.45 * d, 0.10 * d, 0.10 * d, self.r_amp, self.r_dir),
                Wave("QRS", onset + 0.75 * d, 0.09 * d, 0.09 * d, self.s_amp, self.s_dir),
            ]
        if self.conduction == "RBBB":
            s = self.rprime_sigma_s
            out.append(Wave("QRS", onset + self.qrs_s - 2.3 * s, s, s, self.rprime_amp, self.rprime_dir))
        if self.qmi_amp > 0:
            s = self.qmi_sigma_s
            out.append(Wave("QRS", onset + 2.0 * s, s, s, self.qmi_amp, self.qmi_dir))
        qt = self.qt_s
        sl, sr = self.t_width[0] * qt, self.t_width[1] * qt
        t_center = onset + qt - 2.5 * sr
        out.append(Wave("T", t_center, sl, sr, self.t_amp, self.t_dir))
        st_amp = float(np.linalg.norm(self.st_vec))
        if st_amp > 0:
            j = onset + self.qrs_s
            # injury current: rises at the J point, fades through the T wave
            fade = max(t_center - j, 0.05) * 0.6
            out.append(Wave("T", j + 0.02, 0.012, fade, st_amp, self.st_vec / st_amp))
        return out

    def qrs_axis_deg(self) -> float:
        """Frontal-plane axis of the net QRS area (sum of amplitude x width x direction)."""
        net = sum(w.amplitude_mv * (w.sigma_left_s + w.sigma_right_s) * w.direction
                  for w in self.waves() if w.group == "QRS")
        return math.degrees(math.atan2(net[1], net[0]))


def _jitter(rng: np.random.Generator, v: list[float], scale: float) -> np.ndarray:
    return _unit(np.asarray(v, dtype=np.float64) + rng.normal(0.0, scale, 3))


def _normal_heart(rng: np.random.Generator, age: float, sex: int) -> Heart:
    """A healthy subject: sinus rhythm 50-110 bpm, normal axis, intervals and voltages."""
    habitus = math.exp(rng.normal(0.0, 0.18)) * (0.9 if sex == 1 else 1.0) * float(
        np.clip(1.0 + 0.008 * (50.0 - age), 0.75, 1.3))
    axis = float(np.clip(rng.normal(40.0, 25.0), -25.0, 100.0))
    t_axis = float(np.clip(rng.normal(0.5 * axis + 20.0, 12.0), -10.0, 90.0))
    heart = Heart(
        rr_s=60.0 / rng.uniform(50.0, 110.0),
        pr_s=float(np.clip(rng.normal(0.155, 0.018), 0.12, 0.20)),
        p_dur_s=rng.uniform(0.08, 0.11),
        qrs_s=float(np.clip(rng.normal(0.088, 0.007), 0.07, 0.105)),
        qtc_s=rng.normal(0.41, 0.017),
        habitus=habitus,
        p_amp=rng.uniform(0.10, 0.22),
        p_la_share=rng.uniform(0.4, 0.55),
        p_ra_dir=_jitter(rng, [0.15, 0.9, 0.45], 0.1),
        p_la_dir=_jitter(rng, [0.85, 0.35, -0.45], 0.1),
        q_amp=rng.uniform(0.1, 0.3) * habitus,
        q_dir=_jitter(rng, [-0.7, 0.15, 0.7], 0.15),
        r_amp=1.1 * math.exp(rng.normal(0.0, 0.2)) * habitus,
        r_dir=_frontal(axis, rng.normal(-0.25, 0.12)),
        s_amp=rng.uniform(0.25, 0.6) * habitus,
        s_dir=_jitter(rng, [-0.45, -0.45, -0.75], 0.15),
        t_amp=rng.uniform(0.2, 0.45) * math.sqrt(habitus),
        t_dir=_frontal(t_axis, rng.normal(0.45, 0.15)),
        t_width=(rng.uniform(0.14, 0.18), rng.uniform(0.09, 0.11)),
    )
    if rng.random() < 0.12:  # benign early repolarisation: ST elevation in V2-V4 and inferior leads
        heart.st_vec += rng.uniform(0.03, 0.1) * _jitter(rng, [0.3, 0.5, 0.8], 0.1)
    return heart


def _invert_t(heart: Heart, n: np.ndarray, rng: np.random.Generator, low: float, high: float,
              strength: float = 1.0) -> bool:
    """Turn the T vector away from territory n [3] (strength 1: past perpendicular by U(low, high));
    True when T is now inverted there."""
    beta = strength * (float(heart.t_dir @ n) + rng.uniform(low, high))
    heart.t_dir = _unit(heart.t_dir - beta * n)
    return bool(heart.t_dir @ n < 0)


def _likelihood(severity: float) -> float:
    """PTB-XL-style certainty of a statement: subtle findings are coded 15-50%, clear ones 100%."""
    return 15.0 if severity < 0.3 else 35.0 if severity < 0.45 else 50.0 if severity < 0.6 else 100.0


def _apply_lvh(heart: Heart, rng: np.random.Generator) -> dict:
    """Left ventricular hypertrophy: high leftward-posterior voltage, slightly wide QRS, LA load."""
    severity = rng.uniform(0.4, 1.0)
    factor = 1.0 + severity * rng.uniform(0.7, 1.2)
    heart.r_amp *= factor
    heart.s_amp *= 1.0 + severity * rng.uniform(0.4, 1.0)
    r = _rotate_frontal(heart.r_dir, -severity * rng.uniform(0.0, 20.0))
    r[2] -= severity * rng.uniform(0.1, 0.3)
    heart.r_dir = _unit(r)
    heart.qrs_s += severity * rng.uniform(0.005, 0.02)
    heart.p_la_share = min(heart.p_la_share * (1.0 + 0.3 * severity), 0.75)
    heart.p_dur_s += severity * rng.uniform(0.0, 0.02)
    if rng.random() < 0.3:  # mild strain below the STTC threshold
        heart.st_vec -= rng.uniform(0.02, 0.05) * _unit([1.0, -0.3, 0.0])
        heart.t_amp *= rng.uniform(0.5, 0.9)
    return {"hyp_severity": severity, "hyp_voltage_factor": factor,
            "hyp_likelihood": 50.0 if severity < 0.5 else 100.0}


def _apply_cd(heart: Heart, rng: np.random.Generator, kind: str) -> None:
    """Conduction disturbance ``kind``: complete/incomplete RBBB (late rightward-anterior R'),
    CLBBB (broad notched leftward R, discordant ST-T), LAFB (axis < -45 deg) or 1AVB (PR > 200 ms)."""
    if kind == "1AVB":
        heart.pr_s = rng.uniform(0.205, 0.32)
    elif kind in ("CRBBB", "IRBBB"):
        complete = kind == "CRBBB"
        heart.conduction = "RBBB"
        heart.qrs_initial_s = heart.qrs_s
        heart.qrs_s = (rng.uniform(0.12, 0.16) if complete
                       else max(rng.uniform(0.10, 0.118), heart.qrs_s + 0.01))
        heart.rprime_amp = (rng.uniform(0.5, 1.1) if complete else rng.uniform(0.2, 0.5)) * heart.habitus
        heart.rprime_dir = _jitter(rng, [-0.6, 0.05, 0.8], 0.12)
        heart.rprime_sigma_s = rng.uniform(0.014, 0.02) if complete else rng.uniform(0.010, 0.014)
        heart.s_amp *= rng.uniform(0.5, 0.9)
        secondary = 1.0 if complete else 0.3
        heart.t_dir = _unit(heart.t_dir - secondary * rng.uniform(0.5, 1.0) * heart.rprime_dir)
        heart.st_vec -= secondary * rng.uniform(0.02, 0.08) * heart.rprime_dir
    elif kind == "CLBBB":
        heart.conduction = "LBBB"
        heart.qrs_s = rng.uniform(0.13, 0.17)
        heart.q_amp = 0.0
        heart.s_amp *= 0.2
        heart.r_amp *= rng.uniform(0.8, 1.1)
        heart.r_dir = _unit(heart.r_dir + np.array([0.15, -0.15, -0.35]))
        heart.r2_dir = _unit(heart.r_dir + np.array([0.25, -0.1, -0.1]) + rng.normal(0.0, 0.1, 3))
        mean_dir = _unit(heart.r_dir + heart.r2_dir)
        heart.t_dir = _unit(-mean_dir + rng.normal(0.0, 0.2, 3))
        heart.t_amp = rng.uniform(0.25, 0.55) * heart.habitus
        heart.st_vec -= rng.uniform(0.05, 0.15) * mean_dir
    elif kind == "LAFB":
        # left anterior hemiblock: late forces superior-leftward, initial forces inferior-rightward
        heart.r_dir = _frontal(rng.uniform(-80.0, -45.0), heart.r_dir[2])
        heart.q_dir = _jitter(rng, [-0.3, 1.0, 0.3], 0.15)
        heart.qrs_s += rng.uniform(0.0, 0.015)
    else:
        raise ValueError(f"unknown conduction disturbance {kind!r}")


# Unit vectors pointing from the heart's centre toward a territory.
_MI_TERRITORY = {
    "IMI": [-0.3, 1.0, 0.05],  # II, III, aVF (right coronary: III > II)
    "ILMI": [0.55, 0.85, 0.0],  # II, III, aVF and V5, V6
    "ASMI": [-0.35, 0.05, 1.0],  # V1-V3
    "AMI": [0.35, 0.1, 1.0],  # V2-V4
}
_STTC_TERRITORY = {
    "ISCLA": [1.0, -0.35, -0.05],  # I, aVL, V5, V6
    "ISCAL": [0.7, -0.1, 0.7],  # I, aVL, V2-V6
    "NDT": [1.0, 0.2, 0.3],
    "NST_": [1.0, 0.3, 0.2],
}


def _apply_mi(heart: Heart, rng: np.random.Generator, code: str) -> dict:
    """Myocardial infarction in the territory of ``code``: Q waves, lost R, ST elevation (acute) or
    T inversion (evolved), scaled by a severity so that small infarcts stay subtle."""
    severity = rng.uniform(0.05, 1.0)
    n = _jitter(rng, _MI_TERRITORY[code], 0.1)
    heart.qmi_amp = severity * rng.uniform(0.2, 0.7) * heart.habitus
    heart.qmi_dir = _jitter(rng, list(-n), 0.15)
    heart.qmi_sigma_s = rng.uniform(0.010, 0.014)
    toward = float(heart.r_dir @ n)
    if toward > 0:
        heart.r_dir = _unit(heart.r_dir - severity * rng.uniform(0.5, 1.0) * toward * n)
    if code in ("ASMI", "AMI"):
        heart.q_amp *= 1.0 - severity * rng.uniform(0.7, 1.0)  # septal r lost: QS in V1-V3
    acute = bool(rng.random() < 0.25)
    st = rng.uniform(0.08, 0.3) if acute else severity * rng.uniform(0.0, 0.05)
    heart.st_vec += st * n
    if not acute or rng.random() < 0.5:
        _invert_t(heart, n, rng, 0.2, 0.7, strength=severity)
    return {"mi_territory": "inferior" if code in ("IMI", "ILMI") else "anterior",
            "mi_stage": "acute" if acute else "old", "mi_severity": severity, "mi_st_elevation_mv": st,
            "mi_likelihood": 100.0 if acute else _likelihood(severity)}


def _apply_sttc(heart: Heart, rng: np.random.Generator, code: str) -> tuple[list[str], float]:
    """ST-T change ``code``; returns the form codes it also earns (STD_, INVT) and its severity."""
    severity = rng.uniform(0.2, 1.0)
    n = _unit(heart.r_dir + np.array([0.0, 0.0, 0.4])) if code == "ISC_" else _jitter(
        rng, _STTC_TERRITORY[code], 0.1)
    forms = []
    if code in ("ISCLA", "ISCAL", "ISC_"):
        heart.st_vec -= severity * rng.uniform(0.05, 0.2) * n
        forms.append("STD_")
        if _invert_t(heart, n, rng, 0.2, 0.8, strength=severity):
            forms.append("INVT")
        heart.t_amp *= rng.uniform(0.7, 1.2)
    elif code == "NDT":
        heart.t_amp *= 1.0 - severity * rng.uniform(0.4, 0.9)
        if _invert_t(heart, n, rng, -0.3, 0.4, strength=severity):
            forms.append("INVT")
    elif code == "NST_":
        heart.st_vec -= severity * rng.uniform(0.03, 0.08) * n
        heart.t_amp *= 1.0 - severity * rng.uniform(0.2, 0.6)
    else:
        raise ValueError(f"unknown ST-T code {code!r}")
    return forms, severity


def _sample_heart(rng: np.random.Generator, superclasses: tuple[str, ...], age: float,
                  sex: int) -> tuple[Heart, dict[str, float], dict]:
    """Subject + pathologies -> (heart, scp_codes, truth annotations)."""
    unknown = set(superclasses) - set(SUPERCLASSES)
    if unknown or not superclasses:
        raise ECGDataError(None, f"superclasses {superclasses!r} must be a non-empty subset of "
                                 f"{SUPERCLASSES}")
    heart = _normal_heart(rng, age, sex)
    codes: dict[str, float] = {}
    forms: list[str] = []
    truth: dict = {"mi_territory": "", "mi_stage": "", "mi_severity": 0.0, "mi_st_elevation_mv": 0.0,
                   "sttc_type": "", "sttc_severity": 0.0, "cd_type": "", "hyp_severity": 0.0,
                   "hyp_voltage_factor": 1.0}
    if "NORM" in superclasses:
        codes["NORM"] = float(rng.choice([80.0, 100.0], p=[0.2, 0.8]))
    if "HYP" in superclasses:
        truth.update(_apply_lvh(heart, rng))
    if "CD" in superclasses:
        kinds = ["CRBBB", "CLBBB", "IRBBB", "LAFB", "1AVB"]
        weights = [0.25, 0.0, 0.2, 0.25, 0.3] if "MI" in superclasses else [0.25, 0.15, 0.15, 0.2, 0.25]
        truth["cd_type"] = str(rng.choice(kinds, p=weights))  # LBBB would mask the infarct
        _apply_cd(heart, rng, truth["cd_type"])
    if "MI" in superclasses:
        code = str(rng.choice(["IMI", "ILMI", "ASMI", "AMI"], p=[0.45, 0.15, 0.25, 0.15]))
        truth.update(_apply_mi(heart, rng, code))
        codes[code] = truth.pop("mi_likelihood")
    if "STTC" in superclasses:
        if "HYP" in superclasses:  # strain: lateral
            options, weights = ["ISCLA", "ISC_", "NDT"], [0.4, 0.3, 0.3]
        else:
            options, weights = ["NDT", "ISC_", "ISCAL", "ISCLA", "NST_"], [0.35, 0.2, 0.15, 0.1, 0.2]
        code = str(rng.choice(options, p=weights))
        forms, truth["sttc_severity"] = _apply_sttc(heart, rng, code)
        codes[code] = 100.0
        truth["sttc_type"] = code
    if truth["cd_type"]:
        codes[truth["cd_type"]] = 100.0
    if "HYP" in superclasses:
        codes["LVH"] = truth.pop("hyp_likelihood")
    codes.update({f: 0.0 for f in forms})
    codes["SR"] = 0.0
    return heart, codes, truth


# --------------------------------------------------------------------------- rhythm and noise


def _beat_times(rng: np.random.Generator, rr_s: float, f_resp: float) -> np.ndarray:
    """R-peak times [K] (s) covering the record and its margins: RSA plus random RR jitter."""
    rsa, jitter, phase = rng.uniform(0.0, 0.06), rng.uniform(0.005, 0.03) * rr_s, rng.uniform(0, 2 * math.pi)
    # from a beat whose template ends before the margin begins to one starting after it ends
    start, stop = -_MARGIN_S - _BEAT_WINDOW_S[1], DURATION_S + _MARGIN_S - _BEAT_WINDOW_S[0]
    times = [start - rng.uniform(0.0, rr_s)]
    while times[-1] < stop:
        t = times[-1]
        rr = rr_s * (1.0 + rsa * math.sin(2 * math.pi * f_resp * t + phase)) + rng.normal(0.0, jitter)
        times.append(t + max(rr, 0.6 * rr_s))
    return np.asarray(times)


def _electrode_noise(rng: np.random.Generator, n: int, f_resp: float) -> tuple[np.ndarray, dict]:
    """Noise at electrodes RA, LA, LL, V1..V6 -> [9, n] (mV) at FS_HIGH, and its levels."""
    t = np.arange(n) / FS_HIGH
    # baseline wander: three slow sinusoids per electrode, one at the breathing rate
    wander = 10 ** rng.uniform(math.log10(0.01), math.log10(0.3))
    freqs = rng.uniform(0.05, 0.5, (9, 3))
    freqs[:, 0] = f_resp
    amps = wander * rng.uniform(0.2, 1.0, (9, 3)) / math.sqrt(3)
    phases = rng.uniform(0.0, 2 * math.pi, (9, 3))
    noise = np.einsum("ek,ekt->et", amps, np.sin(2 * math.pi * freqs[..., None] * t + phases[..., None]))
    # muscle noise: high-pass (first difference of white) noise, limb electrodes louder, optional burst
    emg = 10 ** rng.uniform(math.log10(0.003), math.log10(0.04))
    gains = rng.uniform(0.5, 1.5, (9, 1)) * np.r_[1.5, 1.5, 1.5, np.ones(6)][:, None]
    muscle = np.diff(rng.standard_normal((9, n + 1)), axis=1) / math.sqrt(2) * emg * gains
    if rng.random() < 0.2:
        centre, width = rng.uniform(0.0, n / FS_HIGH), rng.uniform(0.3, 1.0)
        muscle *= 1.0 + rng.uniform(2.0, 5.0) * np.exp(-0.5 * ((t - centre) / width) ** 2)
    noise += muscle
    # powerline: one mains frequency, per-electrode amplitude, nearly common phase
    mains = float(rng.choice([50.0, 60.0]))
    line = rng.uniform(0.0, 0.05)
    phase = rng.uniform(0.0, 2 * math.pi) + rng.normal(0.0, 0.3, (9, 1))
    noise += line * rng.uniform(0.0, 1.0, (9, 1)) * np.sin(2 * math.pi * mains * t + phase)
    return noise, {"baseline_wander_mv": wander, "emg_mv": emg, "powerline_hz": mains, "powerline_mv": line}


# --------------------------------------------------------------------------- one record


def _heart_axis_code(axis: float) -> str:
    if axis < -30.0:
        return "LAD"
    return "RAD" if axis > 90.0 else "MID"


def _simulate(seed: int, ecg_id: int, superclasses: tuple[str, ...], age: float, sex: int,
              noise: bool) -> tuple[np.ndarray, dict]:
    """One record at FS_HIGH with margins -> x [12, (DURATION_S + 2 margins) * FS_HIGH] (mV), info."""
    heart_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence([seed, ecg_id]).spawn(2))
    heart, codes, truth = _sample_heart(heart_rng, superclasses, age, sex)
    leads = _lead_vectors(heart_rng)  # [8, 3]
    f_resp = heart_rng.uniform(0.15, 0.4)
    beats = np.round(_beat_times(heart_rng, heart.rr_s, f_resp) * FS_HIGH) / FS_HIGH  # [K] on the 2 ms grid

    # beat-to-beat gains per wave group: breathing modulation plus a little jitter
    resp = np.sin(2 * math.pi * f_resp * beats + heart_rng.uniform(0, 2 * math.pi))
    gains = {g: 1.0 + a * resp + heart_rng.normal(0.0, 0.015, beats.size)
             for g, a in (("P", 0.03), ("QRS", heart_rng.uniform(0.0, 0.08)), ("T", 0.04))}

    # one template per group [3, W], overlap-added at every beat on a padded canvas [3, n + pad]
    w0, w1 = (round(w * FS_HIGH) for w in _BEAT_WINDOW_S)
    tau = np.arange(w0, w1) / FS_HIGH
    waves = heart.waves()
    templates = {g: sum((np.outer(w.direction, w.shape(tau)) for w in waves if w.group == g),
                        np.zeros((3, tau.size))) for g in gains}
    n = round((DURATION_S + 2 * _MARGIN_S) * FS_HIGH)
    origin = round(4.0 * FS_HIGH)  # canvas index of time -margin; 4 s of room for the outermost beats
    canvas = np.zeros((3, n + 2 * origin))
    for k, t_k in enumerate(beats):
        start = origin + round(t_k * FS_HIGH) + round(_MARGIN_S * FS_HIGH) + w0
        for g, template in templates.items():
            canvas[:, start:start + template.shape[1]] += gains[g][k] * template
    dipole = canvas[:, origin:origin + n]  # [3, n], time -margin .. DURATION_S + margin

    v = leads @ dipole  # [8, n]: I, II, V1..V6
    levels: dict = {}
    if noise:
        e, levels = _electrode_noise(noise_rng, n, f_resp)  # [9, n]: RA, LA, LL, V1..V6
        v[0] += e[1] - e[0]
        v[1] += e[2] - e[0]
        v[2:] += e[3:] - e[:3].mean(axis=0)
    x = limb_and_chest_to_leads(v[0], v[1], v[2:])  # [12, n]
    # AC-coupled amplifier: no DC in the record (the mean of PTB-XL's leads is ~0.003 mV)
    m = round(_MARGIN_S * FS_HIGH)
    x -= x[:, m:-m].mean(axis=1, keepdims=True)

    inside = beats[(beats >= 0.0) & (beats < DURATION_S)]
    axis = heart.qrs_axis_deg()
    info = {
        "superclasses": "|".join(c for c in SUPERCLASSES if c in superclasses),
        "scp_codes": codes,
        "heart_rate_bpm": 60.0 / float(np.mean(np.diff(inside))),
        "rr_std_ms": 1000.0 * float(np.std(np.diff(inside))),
        "pr_ms": 1000.0 * heart.pr_s,
        "qrs_ms": 1000.0 * heart.qrs_s,
        "qt_ms": 1000.0 * heart.qt_s,
        "qrs_axis_deg": axis,
        "heart_axis": _heart_axis_code(axis),
        "r_amplitude_mv": heart.r_amp,
        "st_injury_mv": float(np.linalg.norm(heart.st_vec)),
        **truth,
        **levels,
        "r_peaks_s": " ".join(f"{t:.3f}" for t in inside),
    }
    return x, info


def synthesize_record(seed: int, ecg_id: int, superclasses: tuple[str, ...], age: float = 60.0, sex: int = 0,
                      noise: bool = True) -> tuple[np.ndarray, dict]:
    """One 10 s record at 500 Hz -> (x [12, 5000] in mV, ground truth dict).

    Deterministic in (seed, ecg_id); ``noise=False`` gives the same heart and rhythm without noise.
    """
    if not (_is_integer(seed) and seed >= 0 and _is_integer(ecg_id) and ecg_id >= 0):
        raise ECGDataError(None, f"seed and ecg_id must be non-negative integers, got {seed!r}, {ecg_id!r}")
    x, info = _simulate(seed, ecg_id, tuple(superclasses), age, sex, noise)
    m = round(_MARGIN_S * FS_HIGH)
    return x[:, m:-m], info


def _to_low_rate(x: np.ndarray) -> np.ndarray:
    """[12, n] at FS_HIGH with margins -> [12, DURATION_S * FS_LOW] (polyphase anti-alias decimation)."""
    y = resample_poly(x, FS_LOW, FS_HIGH, axis=1)
    m = round(_MARGIN_S * FS_LOW)
    return y[:, m:-m]


def _write_wfdb(path: Path, x: np.ndarray, fs: int) -> None:
    """x [12, T] (mV) -> WFDB record ``path`` (.hea + .dat, format 16, 1 uV per unit, baseline 0)."""
    digital = np.round(np.clip(x, -32.767, 32.767) * _ADC_GAIN).astype(np.int16)
    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(path.name, fs=fs, units=["mV"] * len(LEADS), sig_name=list(LEADS), d_signal=digital.T,
                fmt=["16"] * len(LEADS), adc_gain=[_ADC_GAIN] * len(LEADS), baseline=[0] * len(LEADS),
                write_dir=str(path.parent))


def record_name(ecg_id: int, rate: int) -> str:
    """PTB-XL relative path: records100/00000/00001_lr, records500/01000/01234_hr."""
    folder = f"{(ecg_id // 1000) * 1000:05d}"
    return f"records{rate}/{folder}/{ecg_id:05d}_{'lr' if rate == FS_LOW else 'hr'}"


def _write_chunk(job: tuple[str, int, bool, list[tuple[int, tuple[str, ...], float, int]]]) -> list[dict]:
    """Worker: synthesise and write the records of one chunk; returns their info rows."""
    out_dir, seed, write_hr, items = job
    rows = []
    for ecg_id, labels, age, sex in items:
        x, info = _simulate(seed, ecg_id, labels, age, sex, noise=True)
        _write_wfdb(Path(out_dir) / record_name(ecg_id, FS_LOW), _to_low_rate(x), FS_LOW)
        if write_hr:
            m = round(_MARGIN_S * FS_HIGH)
            _write_wfdb(Path(out_dir) / record_name(ecg_id, FS_HIGH), x[:, m:-m], FS_HIGH)
        rows.append({"ecg_id": ecg_id, **info})
    return rows


# --------------------------------------------------------------------------- dataset


def allocate_labels(n_records: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """Label sets for n records in the LABEL_MIX proportions (largest remainder), shuffled."""
    combos = list(LABEL_MIX)
    expected = np.array([LABEL_MIX[c] for c in combos]) * n_records
    counts = np.floor(expected).astype(int)
    for i in np.argsort(-(expected - counts), kind="stable")[: n_records - counts.sum()]:
        counts[i] += 1
    labels = [c for c, k in zip(combos, counts, strict=True) for _ in range(k)]
    return [labels[i] for i in rng.permutation(n_records)]


def assign_folds(labels: list[tuple[str, ...]], rng: np.random.Generator, n_folds: int = 10) -> np.ndarray:
    """Stratified folds 1..n_folds [N]: records sorted by their rarest superclass, then by label set
    (random within), are dealt round-robin, so every class with >= n_folds records reaches every fold
    and fold sizes differ by at most one."""
    counts = {c: sum(c in ls for ls in labels) for c in SUPERCLASSES}
    by_rarity = sorted(SUPERCLASSES, key=lambda c: (counts[c], SUPERCLASSES.index(c)))
    rank = {c: r for r, c in enumerate(by_rarity)}
    combos = {c: i for i, c in enumerate(LABEL_MIX)}
    rarest = np.array([min(rank[c] for c in ls) for ls in labels])
    combo = np.array([combos.get(tuple(ls), len(combos)) for ls in labels])
    order = np.lexsort((rng.random(len(labels)), combo, rarest))
    folds = np.empty(len(labels), dtype=int)
    folds[order] = np.arange(len(labels)) % n_folds + 1
    return folds


def _report(codes: dict[str, float]) -> str:
    return ". ".join(_DESCRIPTION[c] for c in codes) + "."


def _is_integer(v: object) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _check_arguments(out_dir: Path, n_records: int, seed: int, sampling_rate: int) -> None:
    if not _is_integer(seed) or seed < 0:
        raise ECGDataError(out_dir, f"seed must be a non-negative integer, got {seed!r}")
    if not _is_integer(n_records) or not 1 <= n_records <= 99_999:
        raise ECGDataError(out_dir, "n_records must be an integer from 1 to 99999 (PTB-XL's 5-digit names), "
                                    f"got {n_records!r}")
    if sampling_rate not in (FS_LOW, FS_HIGH):
        raise ECGDataError(out_dir, f"sampling_rate must be {FS_LOW} or {FS_HIGH} Hz (the two PTB-XL "
                                    f"stores), got {sampling_rate!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ECGDataError(out_dir, "exists and is not a directory")


def _default_workers(n_records: int) -> int:
    """Two processes pay off from a few hundred records on (start-up costs about a second)."""
    return 2 if n_records >= 400 and (os.cpu_count() or 1) >= 2 else 1


def generate_dataset(out_dir: str | os.PathLike, n_records: int, seed: int = 0, sampling_rate: int = 100,
                     write_hr: bool = False, progress: bool = True, workers: int | None = None) -> Path:
    """Write ``n_records`` synthetic records in the PTB-XL layout into ``out_dir``; returns its path.

    records100/ (100 Hz) is always written; records500/ too when ``write_hr`` or
    ``sampling_rate == 500``. ``workers``: processes (default: 2 for >= 400 records where the
    machine has 2+ cores, else 1); the output does not depend on it.
    """
    out = Path(out_dir).expanduser()
    _check_arguments(out, n_records, seed, sampling_rate)
    write_hr = bool(write_hr or sampling_rate == FS_HIGH)
    out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))  # ecg_ids start at 1: no clash
    labels = allocate_labels(n_records, rng)
    folds = assign_folds(labels, rng)
    ages = [float(np.clip(round(rng.normal(45.0, 16.0) if ls == ("NORM",) else rng.normal(64.0, 12.0)),
                          18, 95)) for ls in labels]
    sexes = rng.integers(0, 2, n_records)
    patients = rng.choice(np.arange(10_000, 100_000), n_records, replace=False).astype(float)

    items = [(i + 1, labels[i], ages[i], int(sexes[i])) for i in range(n_records)]
    jobs = [(str(out), seed, write_hr, items[i:i + _CHUNK]) for i in range(0, n_records, _CHUNK)]
    workers = _default_workers(n_records) if workers is None else workers
    rows: list[dict] = []
    bar = tqdm(total=n_records, desc="synthesising ECGs", unit="rec", disable=not progress)
    if workers <= 1:
        for job in jobs:
            rows += _write_chunk(job)
            bar.update(len(job[3]))
    else:
        # fork where available: children need nothing from __main__ (a spawned child would re-run it)
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
            for job, chunk in zip(jobs, pool.map(_write_chunk, jobs), strict=True):
                rows += chunk
                bar.update(len(job[3]))
    bar.close()

    info = pd.DataFrame(rows).set_index("ecg_id").sort_index()
    db = pd.DataFrame(index=pd.Index(info.index, name="ecg_id"), columns=list(_DATABASE_COLUMNS),
                      dtype=object)  # columns this generator does not model stay empty, as in PTB-XL
    db["patient_id"] = patients
    db["age"] = ages
    db["sex"] = sexes
    db["device"] = "synthetic"
    db["report"] = [_report(c) for c in info["scp_codes"]]
    db["scp_codes"] = [str(c) for c in info["scp_codes"]]
    db["heart_axis"] = info["heart_axis"]
    db["infarction_stadium1"] = info["mi_stage"].map({"acute": "Stadium I", "old": "Stadium III"})
    db["second_opinion"] = False
    db["initial_autogenerated_report"] = False
    db["validated_by_human"] = True
    db["strat_fold"] = folds
    db["filename_lr"] = [record_name(i, FS_LOW) for i in db.index]
    db["filename_hr"] = [record_name(i, FS_HIGH) if write_hr else "" for i in db.index]
    db.to_csv(out / "ptbxl_database.csv", lineterminator="\n")
    (out / "scp_statements.csv").write_bytes(("\n".join([_SCP_HEADER, *SCP_ROWS.values()]) + "\n").encode())

    truth = info.drop(columns=["scp_codes", "heart_axis"]).copy()
    truth.insert(1, "strat_fold", folds)
    truth.round(4).to_csv(out / TRUTH_CSV, lineterminator="\n")
    (out / DRAW_JSON).write_text(json.dumps({"seed": int(seed), "records": int(n_records)}) + "\n")
    return out


def synthetic_draw(root: str | os.PathLike) -> dict | None:
    """``{"seed", "records"}`` of the synthetic dataset at ``root`` (None: not a synthetic draw)."""
    path = Path(root) / DRAW_JSON
    return json.loads(path.read_text()) if path.is_file() else None


def benchmark_generation(n_records: int = 2000, seed: int = 0, workers: int | None = None) -> dict:
    """Time ``generate_dataset`` (100 Hz only) into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="evl-synth-bench-") as tmp:
        start = time.perf_counter()
        generate_dataset(tmp, n_records=n_records, seed=seed, progress=False, workers=workers)
        seconds = time.perf_counter() - start
    return {"records": n_records, "seconds": round(seconds, 3),
            "records_per_second": round(n_records / seconds, 1), "target_seconds": TARGET_SECONDS,
            "workers": workers or _default_workers(n_records)}
