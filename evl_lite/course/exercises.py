"""Workshop exercises: learner copies of the notebooks, with gaps to fill and a check after each.

A code cell tagged ``solution`` holds a reference answer; its ``metadata["exercise"]`` says what
the learner must do (all values are strings unless noted)::

    {
      "id": "01-a",                  # unique (notebook number, letter); named in every message
      "title": "a zero-phase band-pass",                                     # optional
      "task": "band-pass every lead of demo[emg_id] ...",   # what to do; starts with a verb
      "shapes": "band: a float numpy array [12, 5000]",     # what the answer must look like
      "answer": "band",              # the one name the solution binds that later cells use
      "reference": "bandpass(demo[emg_id], FS_HIGH, low=0.5, high=40.0)",
                                     # expression, evaluated in the notebook: evl_lite's value,
                                     # or evl_lite's function when "inputs" is given
      "inputs": "[(s, t, 2.0), ...]",  # optional expression: argument tuples; the answer is then a
                                       # function, compared with the reference function on each
      "signature": "binary_kl(student_logits, teacher_logits, temperature)",
                                     # optional (function answers): the stub's ``def`` line
      "imports": "from evl_lite... import ...",   # optional: code the check cell runs first
      "given": "from scipy.signal import butter, sosfiltfilt",  # optional: code the stub keeps
      "hint": "...",                 # optional: printed when the answer is wrong
      "atol": 1e-6, "rtol": 1e-5     # optional numbers: |answer - ref| <= atol + rtol * |ref|
    }

``make_learner_copy`` replaces each such cell by a stub (tagged ``exercise``) that states the
task and shapes, keeps ``given`` and binds the answer to ``None`` (a function answer to a ``def``
whose body is ``...``), then adds a check cell (tagged ``exercise-check``) that only calls
``check_exercise``. That call prints one of three verdicts and returns what later cells use:

- not answered (``None``, ``...``, or a function that returns ``None``): the task, the expected
  shapes, and evl_lite's value, so the rest of the notebook still runs;
- wrong: what differs (kind, shape, dtype, NaN/inf, the largest error and where), the hint, and
  evl_lite's value;
- right: the learner's own answer (a float array in the reference's float dtype).

Solution cells are checked when a copy is made: a name the solution binds, other than the
answer and ``given``, must not be used by a later cell, or the learner copy would not run.
``make_learner_copy(..., keep_solutions=True)`` writes an answer key instead (solutions kept,
checks added: every check must say "correct"). ``python -m evl_lite exercises --out DIR``
(handled by :func:`exercises_command`) writes the learner copies of every notebook.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from evl_lite.atomic import write_notebook_atomic
from evl_lite.course.runner import list_notebooks

SOLUTION_TAG, EXERCISE_TAG, CHECK_TAG = "solution", "exercise", "exercise-check"
REQUIRED_KEYS = ("id", "task", "shapes", "answer", "reference")
OPTIONAL_KEYS = ("title", "inputs", "signature", "imports", "given", "hint", "atol", "rtol")
WIDTH = 100  # comment lines of generated cells


# ----------------------------------------------------------------------------- checking answers


def is_unanswered(answer: Any) -> bool:
    """True for the stubs' placeholders, ``None`` and ``...``."""
    return answer is None or answer is Ellipsis


def _is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def _kind(value: Any) -> str:
    """'array', 'tensor', 'number' or 'other'."""
    if _is_tensor(value):
        return "tensor"
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return "array"
    if isinstance(value, (int, float, np.number, np.ndarray)) and not isinstance(value, (bool, np.bool_)):
        return "number"
    return "other"


def _floating(value: Any) -> bool:
    """True for a floating-point array or tensor."""
    return value.dtype.is_floating_point if _is_tensor(value) else np.issubdtype(value.dtype, np.floating)


def _like(answer: Any, reference: Any) -> tuple[Any, str]:
    """A right answer in the reference's float dtype (later cells expect it), and a note if cast."""
    if _kind(reference) not in ("array", "tensor") or answer.dtype == reference.dtype:
        return answer, ""
    cast = answer.to(reference.dtype) if _is_tensor(answer) else answer.astype(reference.dtype)
    return cast, f" (converted from {answer.dtype} to {reference.dtype}, as later cells expect)"


def _numpy(value: Any) -> np.ndarray:
    if _is_tensor(value):
        value = value.detach().cpu()
        return (value.float() if value.dtype.is_floating_point else value).numpy()
    return np.asarray(value)


def _shape(value: Any) -> list[int]:
    return [int(n) for n in value.shape]


def describe(value: Any) -> str:
    """A short description of a value: kind, dtype and shape, or the number itself."""
    kind = _kind(value)
    if kind == "tensor":
        return f"a {value.dtype} tensor of shape {_shape(value)}"
    if kind == "array":
        return f"a {value.dtype} numpy array of shape {_shape(value)}"
    if kind == "number":
        return f"the number {float(value):.6g}"
    if callable(value):
        return f"the function {getattr(value, '__name__', type(value).__name__)}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def compare(answer: Any, reference: Any, atol: float = 1e-6, rtol: float = 1e-5) -> list[str]:
    """What differs between an answer and the reference value, one line each; [] when they agree.

    The kind must match (numpy array, torch tensor, number), then shape and dtype (any float
    dtype will do for a float reference); values agree where ``|answer - reference| <= atol +
    rtol * |reference|`` (NaN agrees with NaN only).
    """
    kind, ref_kind = _kind(answer), _kind(reference)
    if kind != ref_kind:
        return [f"got {describe(answer)}; expected {describe(reference)}"]
    problems = []
    if kind in ("array", "tensor"):
        if _shape(answer) != _shape(reference):
            note = ""
            if int(np.prod(_shape(answer))) == int(np.prod(_shape(reference))):
                note = " (the same number of values: the right samples in the wrong arrangement?)"
            return [f"shape {_shape(answer)} instead of {_shape(reference)}{note}"]
        if answer.dtype != reference.dtype and not (_floating(answer) and _floating(reference)):
            problems.append(f"dtype {answer.dtype} instead of {reference.dtype} (later cells rely on it)")
    if kind == "other":
        try:
            same = bool(answer == reference)
        except Exception:  # e.g. ambiguous comparisons
            same = False
        return [] if same else [f"got {describe(answer)}; expected {describe(reference)}"]
    a, r = _numpy(answer), _numpy(reference)
    if a.dtype == bool or r.dtype == bool:
        wrong = a != r
        if wrong.any():
            idx = [int(i) for i in np.argwhere(wrong)[0]] if wrong.ndim else []
            problems.append(f"{int(wrong.sum())} of {wrong.size} values differ, the first at index {idx}")
        return problems
    a, r = a.astype(np.float64), r.astype(np.float64)
    fin_a, fin_r = np.isfinite(a), np.isfinite(r)
    if (lost := fin_r & ~fin_a).any():
        problems.append(f"{int(lost.sum())} NaN or inf value(s) where the reference is finite")
    if (gained := fin_a & ~fin_r).any():
        problems.append(f"{int(gained.sum())} finite value(s) where the reference is NaN or inf")
    other = ~fin_a & ~fin_r & ~((a == r) | (np.isnan(a) & np.isnan(r)))
    if other.any():
        problems.append(f"{int(other.sum())} NaN or inf value(s) differ from the reference's")
    both = fin_a & fin_r
    error = np.where(both, np.abs(np.where(both, a, 0.0) - np.where(both, r, 0.0)), 0.0)
    bad = both & (error > atol + rtol * np.abs(np.where(both, r, 0.0)))
    if bad.any():
        if a.ndim == 0:
            problems.append(f"{float(a):.6g} instead of {float(r):.6g} (difference {float(error):.3g}; "
                            f"tolerance atol={atol:g}, rtol={rtol:g})")
        else:
            idx = np.unravel_index(int(np.argmax(np.where(bad, error, -1.0))), a.shape)
            problems.append(
                f"{int(bad.sum())} of {a.size} values differ; the largest error, "
                f"{float(error[idx]):.3g}, is at index {[int(i) for i in idx]} of {list(a.shape)} "
                f"({float(a[idx]):.6g} instead of {float(r[idx]):.6g}; "
                f"tolerance atol={atol:g}, rtol={rtol:g})"
            )
    return problems


def _max_error(answer: Any, reference: Any) -> float:
    """Largest |answer - reference| over the positions where both are finite (0.0 if none)."""
    a, r = _numpy(answer).astype(np.float64), _numpy(reference).astype(np.float64)
    both = np.isfinite(a) & np.isfinite(r)
    return float(np.abs(a[both] - r[both]).max()) if both.any() else 0.0


def _describe_args(args: tuple) -> str:
    return ", ".join(f"{_shape(a)}" if _kind(a) in ("array", "tensor") else repr(a) for a in args)


def _compare_function(
    answer: Any, reference: Callable, inputs: Sequence[tuple], atol: float, rtol: float
) -> tuple[str, list[str], float]:
    """("unanswered" | "wrong" | "right", problems, max error) for a function answer."""
    if not callable(answer):
        return "wrong", [f"got {describe(answer)}; expected a function"], 0.0
    worst = 0.0
    for i, args in enumerate(inputs):
        where = f"on input {i + 1} of {len(inputs)} (arguments {_describe_args(args)})"
        try:
            out = answer(*copy.deepcopy(args))
        except Exception as exc:  # the learner's code: report it, never stop the notebook
            return "wrong", [f"{where} it raised {type(exc).__name__}: {exc}"], 0.0
        if i == 0 and is_unanswered(out):
            return "unanswered", [], 0.0
        expected = reference(*copy.deepcopy(args))
        problems = compare(out, expected, atol, rtol)
        if problems:
            return "wrong", [f"{where}: {p}" for p in problems], 0.0
        worst = max(worst, _max_error(out, expected))
    return "right", [], worst


def check_exercise(
    exercise_id: str,
    answer: Any,
    reference: Any,
    *,
    task: str = "",
    shapes: str = "",
    using: str = "",
    hint: str = "",
    inputs: Sequence[tuple] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> Any:
    """Print the verdict on a learner's answer; return the answer if right, else ``reference``.

    ``reference`` is evl_lite's value, or with ``inputs`` (argument tuples) evl_lite's function,
    which the answer must match on every input. ``using`` names how the reference was computed.
    Never raises on a bad answer: the notebook goes on with the reference.
    """
    source = f" ({using})" if using else ""
    if inputs is not None:
        status, problems, error = _compare_function(answer, reference, inputs, atol, rtol)
    elif is_unanswered(answer):
        status, problems, error = "unanswered", [], 0.0
    else:
        problems = compare(answer, reference, atol, rtol)
        status = "wrong" if problems else "right"
        error = 0.0 if problems else _max_error(answer, reference)
    if status == "unanswered":
        print(f"exercise {exercise_id} not answered yet: {task}; expected {shapes}.\n"
              f"  For now the notebook goes on with evl_lite's answer{source}, so the rest of it runs.\n"
              f"  Write yours in the cell above, then run it and this check again.")
        return reference
    if status == "wrong":
        lines = "\n".join(f"  - {p}" for p in problems)
        print(f"exercise {exercise_id}: not right yet. Compared with evl_lite's answer{source}:\n{lines}"
              + (f"\n  hint: {hint}" if hint else "")
              + "\n  The notebook goes on with evl_lite's answer; fix yours and run both cells again.")
        return reference
    note = ""
    if inputs is None:
        answer, note = _like(answer, reference)
    print(f"exercise {exercise_id}: correct! Your answer matches evl_lite's{source} "
          f"(largest difference {error:.2g}); the notebook goes on with yours{note}.")
    return answer


# ----------------------------------------------------------------------------- learner copies


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _python(source: str) -> ast.Module | None:
    """The cell as a Python syntax tree (IPython magics turned into calls); None if it does not parse."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except ImportError:  # pragma: no cover - IPython comes with the kernel
        pass
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _bound(tree: ast.Module) -> set[str]:
    """Names a cell binds at its top level (assignments, defs, imports, loop and with targets)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            names |= {n.id for n in ast.walk(node)
                      if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _loaded(tree: ast.Module) -> set[str]:
    """Names a cell reads that it does not bind anywhere itself (function arguments included)."""
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stores = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    args = {a.arg for n in ast.walk(tree) if isinstance(n, ast.arguments)
            for a in n.posonlyargs + n.args + n.kwonlyargs + [n.vararg, n.kwarg] if a is not None}
    return loads - stores - args


def exercise_spec(cell: nbformat.NotebookNode, where: str = "") -> dict[str, Any]:
    """The validated ``metadata["exercise"]`` of a solution cell (ValueError naming the problem)."""
    spec = dict(cell.get("metadata", {}).get("exercise") or {})
    missing = [k for k in REQUIRED_KEYS if not spec.get(k)]
    unknown = sorted(set(spec) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        raise ValueError(f"{where}: a {SOLUTION_TAG!r} cell needs metadata['exercise'] with "
                         f"{list(REQUIRED_KEYS)}; missing {missing}, unknown {unknown}")
    if not spec["answer"].isidentifier():
        raise ValueError(f"{where}: exercise {spec['id']}: answer must be one Python name, "
                         f"not {spec['answer']!r}")
    if spec.get("signature") and not spec["signature"].startswith(f"{spec['answer']}("):
        raise ValueError(f"{where}: exercise {spec['id']}: signature must define {spec['answer']}(...)")
    return spec


def _check_names(cells: list, index: int, spec: dict[str, Any], where: str) -> None:
    """ValueError if a name the solution binds (not the answer, not given) is needed later."""
    tree = _python(cells[index].source)
    if tree is None:
        raise ValueError(f"{where}: exercise {spec['id']}: the solution cell is not valid Python")
    bound = _bound(tree)
    if spec["answer"] not in bound:
        raise ValueError(f"{where}: exercise {spec['id']}: the solution cell does not bind "
                         f"{spec['answer']!r}")
    given = _python(spec.get("given", "")) or ast.Module(body=[], type_ignores=[])
    private = bound - {spec["answer"]} - _bound(given)
    rebound: set[str] = set()
    for later in cells[index + 1:]:
        if later.cell_type != "code" or private <= rebound or (tree := _python(later.source)) is None:
            continue
        needed = (_loaded(tree) & private) - rebound
        if needed:
            raise ValueError(f"{where}: exercise {spec['id']}: later cells use {sorted(needed)}, which only "
                             f"the solution binds; bind them elsewhere or make them the answer")
        rebound |= _bound(tree)


def _comment(label: str, text: str) -> list[str]:
    lines = textwrap.wrap(f"{label}{text}", WIDTH - 2, subsequent_indent=" " * len(label),
                          break_on_hyphens=False)
    return [f"# {line}" for line in lines]


def _literal(value: Any, indent: str) -> str:
    """``repr(value)``; a long string becomes adjacent literals in parentheses, one per line."""
    if not isinstance(value, str) or len(value) <= WIDTH - 30:
        return repr(value)
    chunks = textwrap.wrap(value, WIDTH - 30, drop_whitespace=False, break_on_hyphens=False)
    inner = f"\n{indent} ".join(repr(c) for c in chunks)
    return f"({inner})"


def stub_source(spec: dict[str, Any]) -> str:
    """The learner's cell: the task, the expected shapes, ``given`` code and a placeholder answer."""
    title = f": {spec['title']}" if spec.get("title") else ""
    lines = [f"# Exercise {spec['id']}{title}", "#"]
    lines += _comment("Task: ", spec["task"]) + _comment("Expected: ", spec["shapes"])
    lines += ["#"] + _comment("", "Write your answer in place of the placeholder below, then run this cell "
                              "and the check after it. Left as it is, the check says so and the notebook "
                              "goes on with evl_lite's answer.")
    if spec.get("given"):
        lines.append(spec["given"].rstrip())
    lines.append("")
    if spec.get("inputs") is not None:
        signature = spec.get("signature") or f"{spec['answer']}(*args)"
        lines += ["", f"def {signature}:", "    ...  # your code: return the answer"]
    else:
        lines.append(f"{spec['answer']} = None  # your answer")
    return "\n".join(lines)


def check_source(spec: dict[str, Any]) -> str:
    """The check cell: one ``check_exercise`` call that rebinds the answer name."""
    name = spec["answer"]
    kwargs = {"task": spec["task"], "shapes": spec["shapes"], "using": spec["reference"]}
    if spec.get("hint"):
        kwargs["hint"] = spec["hint"]
    args = [f'    "{spec["id"]}",', f"    {name},", f"    {spec['reference']},"]
    if spec.get("inputs") is not None:
        args.append(f"    inputs={spec['inputs']},")
    args += [f"    {k}={_literal(v, '    ' + ' ' * (len(k) + 1))}," for k, v in kwargs.items()]
    args += [f"    {k}={float(spec[k])!r}," for k in ("atol", "rtol") if k in spec]
    head = [f"# Check of exercise {spec['id']}: your `{name}` against evl_lite's implementation.",
            "from evl_lite.course.exercises import check_exercise"]
    if spec.get("imports"):
        head.insert(1, spec["imports"].rstrip())
    return "\n".join([*head, "", f"{name} = check_exercise(", *args, ")"])


def _cell_id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)[:64]


def make_learner_copy(
    notebook_path: str | os.PathLike, out_path: str | os.PathLike, keep_solutions: bool = False
) -> list[str]:
    """Write the learner copy of a notebook; returns the exercise ids in order.

    Each ``solution`` code cell becomes a stub (tag ``exercise``) followed by a check cell (tag
    ``exercise-check``); ``solution`` markdown cells are dropped. With ``keep_solutions`` the
    solutions stay in place of the stubs: an answer key whose checks must all say "correct".
    Outputs and execution counts are cleared; the copy is written atomically.
    """
    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    cells, ids = [], []
    for i, cell in enumerate(nb.cells):
        if SOLUTION_TAG not in _tags(cell):
            cells.append(cell)
            continue
        if cell.cell_type != "code":
            if keep_solutions:
                cells.append(cell)
            continue
        where = f"{path.name}, cell {i}"
        spec = exercise_spec(cell, where)
        if spec["id"] in ids:
            raise ValueError(f"{where}: exercise id {spec['id']!r} is used twice")
        _check_names(nb.cells, i, spec, where)
        ids.append(spec["id"])
        exercise = copy.deepcopy(cell) if keep_solutions else nbformat.v4.new_code_cell(stub_source(spec))
        if not keep_solutions:
            exercise.metadata = {"tags": [EXERCISE_TAG], "exercise": {"id": spec["id"]}}
        exercise.id = _cell_id(f"exercise-{spec['id']}")
        check = nbformat.v4.new_code_cell(check_source(spec))
        check.metadata = {"tags": [CHECK_TAG], "exercise": {"id": spec["id"]}}
        check.id = _cell_id(f"check-{spec['id']}")
        cells += [exercise, check]
    for cell in cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells = cells
    nb.metadata["evl_lite"] = {"learner_copy": not keep_solutions, "source": path.name, "exercises": ids}
    out = Path(out_path)
    write_notebook_atomic(out, nb)
    return ids


def write_learner_copies(
    out_dir: str | os.PathLike, notebooks: Sequence[str | os.PathLike] | None = None
) -> dict[str, dict[str, Any]]:
    """Learner copies of the notebooks (default: all of notebooks/) in ``out_dir``, same file names.

    Returns, per notebook name, ``{"path", "exercises" (how many), "ids"}``.
    """
    out = Path(out_dir)
    summary = {}
    for source in map(Path, notebooks or list_notebooks()):
        target = out / source.name
        ids = make_learner_copy(source, target)
        summary[source.name] = {"path": str(target), "exercises": len(ids), "ids": ids}
    return summary


# ----------------------------------------------------------------------------- command line


def exercises_command(args: argparse.Namespace) -> int:
    """``python -m evl_lite exercises --out DIR``: write the copies, print what was written as JSON."""
    summary = write_learner_copies(args.out, args.notebooks or None)
    print(json.dumps({"out": str(args.out), "notebooks": summary,
                      "exercises": sum(e["exercises"] for e in summary.values())}, indent=2))
    return 0
