"""Workshop exercises: learner copies, the check's three verdicts, the command, and a learner run."""

from __future__ import annotations

import ast
import json
import re
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
import torch

from evl_lite.cli import build_parser
from evl_lite.course.exercises import (
    CHECK_TAG,
    EXERCISE_TAG,
    SOLUTION_TAG,
    check_exercise,
    compare,
    make_learner_copy,
    write_learner_copies,
)
from evl_lite.course.runner import list_notebooks, run_notebook
from evl_lite.distillation.logit_kd import binary_kl_with_logits
from evl_lite.distillation.optimal_transport import sinkhorn_plans
from evl_lite.evaluation.interpretation import ece_per_class

NOTEBOOKS = list_notebooks()


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def solutions(path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if SOLUTION_TAG in tags(c)]


def words(text: str) -> str:
    """Comment marks and line breaks removed, whitespace collapsed (stubs wrap the task in comments)."""
    return " ".join(" ".join(re.sub(r"^\s*# ?", "", line) for line in text.splitlines()).split())


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp("learner")
    return out, write_learner_copies(out)


# ----------------------------------------------------------------------------- learner copies


def test_every_notebook_gets_a_copy_with_one_exercise_per_solution_cell(copies):
    out, summary = copies
    assert set(summary) == {p.name for p in NOTEBOOKS}
    for path in NOTEBOOKS:
        expected = [c.metadata["exercise"]["id"] for c in solutions(path) if c.cell_type == "code"]
        entry = summary[path.name]
        assert entry["ids"] == expected and entry["exercises"] == len(expected)
        copy = nbformat.read(out / path.name, as_version=4)
        assert not [c for c in copy.cells if SOLUTION_TAG in tags(c)]
        stubs = [c.metadata["exercise"]["id"] for c in copy.cells if EXERCISE_TAG in tags(c)]
        checks = [c.metadata["exercise"]["id"] for c in copy.cells if CHECK_TAG in tags(c)]
        assert stubs == checks == expected
        assert copy.metadata["evl_lite"] == {"learner_copy": True, "source": path.name, "exercises": expected}
        code = [c for c in copy.cells if c.cell_type == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code)
    for prefix in ("01_", "02_", "03_", "04_", "05_", "06_", "07_", "08_"):
        name = next(p.name for p in NOTEBOOKS if p.name.startswith(prefix))
        assert summary[name]["exercises"] >= 1, f"{name} has no exercise"
    ids = [i for entry in summary.values() for i in entry["ids"]]
    assert len(ids) == len(set(ids)), "exercise ids repeat across notebooks"


def test_each_stub_states_task_and_shapes_without_the_solution_and_its_check_follows(copies):
    out, _ = copies
    for path in NOTEBOOKS:
        copy = nbformat.read(out / path.name, as_version=4).cells
        for solution in solutions(path):
            spec = solution.metadata["exercise"]
            i = next(k for k, c in enumerate(copy) if EXERCISE_TAG in tags(c)
                     and c.metadata["exercise"]["id"] == spec["id"])
            stub, check = copy[i], copy[i + 1]
            assert CHECK_TAG in tags(check) and check.cell_type == stub.cell_type == "code"
            assert f"Exercise {spec['id']}" in stub.source
            assert words(spec["task"]) in words(stub.source), f"{spec['id']}: task missing from the stub"
            assert words(spec["shapes"]) in words(stub.source), f"{spec['id']}: shapes missing from the stub"
            given = {line.strip() for line in spec.get("given", "").splitlines()}
            given.add(f"def {spec.get('signature')}:")  # a function exercise's stub states its signature
            secret = [line.strip() for line in solution.source.splitlines()
                      if line.strip() and not line.strip().startswith("#") and line.strip() not in given]
            assert secret, f"{spec['id']}: the solution has no code of its own"
            leaked = [line for line in secret if line in stub.source]
            assert not leaked, f"{spec['id']}: the stub shows solution code {leaked}"
            placeholder = (f"def {spec['signature']}:\n    ..." if spec.get("inputs")
                           else f"{spec['answer']} = None")
            assert placeholder in stub.source
            assert check.source.count("check_exercise(") == 1  # the check cell only calls the package
            assert f"{spec['answer']} = check_exercise(" in check.source
            assert f'"{spec["id"]}"' in check.source and spec["reference"] in check.source


def test_the_kd_solution_of_notebook_03_passes_its_check_and_an_unstable_one_fails(capsys):
    path = next(p for p in NOTEBOOKS if p.name.startswith("03_"))
    cell = next(c for c in solutions(path) if c.metadata["exercise"]["id"] == "03-a")
    spec = cell.metadata["exercise"]
    namespace = {"torch": torch, "TEMPERATURE": 2.0}
    exec(cell.source, namespace)  # the reference answer, as the notebook defines it
    inputs = eval(spec["inputs"], namespace)
    kwargs = dict(task=spec["task"], shapes=spec["shapes"], hint=spec["hint"], atol=spec["atol"],
                  rtol=spec["rtol"])
    answer = namespace[spec["answer"]]
    assert check_exercise("03-a", answer, binary_kl_with_logits, inputs=inputs, **kwargs) is answer
    assert "exercise 03-a: correct!" in capsys.readouterr().out

    def naive(s, t, tau):
        p, q = torch.sigmoid(t / tau), torch.sigmoid(s / tau)
        return p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))

    result = check_exercise("03-a", naive, binary_kl_with_logits, inputs=inputs, **kwargs)
    assert result is binary_kl_with_logits
    out = capsys.readouterr().out
    assert "not right yet" in out and "on input 3 of 3" in out and "NaN or inf value(s)" in out
    assert "F.logsigmoid" in out  # the hint


def notebook_code(prefix: str) -> list:
    path = next(p for p in NOTEBOOKS if p.name.startswith(prefix))
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def notebook_imports(cells: list) -> str:
    """Every import statement of the notebook's code cells (each cell imports what it uses), in order."""
    statements = []
    for cell in cells:
        if cell.source.lstrip().startswith(("%", "!")) or "google.colab" in cell.source:
            continue  # the Colab set-up cell
        tree = ast.parse(cell.source)
        statements += [ast.get_source_segment(cell.source, node) for node in tree.body
                       if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(statements)


def check_function_answer(spec: dict, namespace: dict, answer):
    """The learner copy's check of a function exercise, run in ``namespace``; returns (result, reference)."""
    exec(spec.get("imports", ""), namespace)
    reference, inputs = eval(spec["reference"], namespace), eval(spec["inputs"], namespace)
    tolerance = {k: spec[k] for k in ("atol", "rtol") if k in spec}
    result = check_exercise(spec["id"], answer, reference, inputs=inputs, task=spec["task"],
                            shapes=spec["shapes"], hint=spec.get("hint", ""), **tolerance)
    return result, reference


def test_the_attention_solution_of_04_matches_the_package_and_unscaled_scores_do_not(capsys):
    cells = notebook_code("04_")
    first = next(i for i, c in enumerate(cells) if "torch.manual_seed(SEED)\nB, N_S" in c.source)
    last = next(i for i, c in enumerate(cells) if SOLUTION_TAG in tags(c))
    spec = cells[last].metadata["exercise"]
    assert spec["id"] == "04-a"
    namespace = {"SEED": 0}
    exec(notebook_imports(cells), namespace)
    for cell in cells[first:last + 1]:  # the toy problem, step by step, up to the attention weights
        exec(cell.source, namespace)
    answer, reference = namespace["A"], eval(spec["reference"], namespace)
    assert list(answer.shape) == [1, 2, 4, 6]
    kwargs = dict(task=spec["task"], shapes=spec["shapes"], hint=spec["hint"])
    assert check_exercise("04-a", answer, reference, **kwargs) is answer
    assert "exercise 04-a: correct!" in capsys.readouterr().out
    q, k = namespace["q"], namespace["k"]
    unscaled = torch.softmax(q @ k.transpose(-1, -2), dim=-1)  # forgot the 1 / sqrt(d_k)
    assert check_exercise("04-a", unscaled, reference, **kwargs) is reference
    out = capsys.readouterr().out
    assert "not right yet" in out and "values differ" in out and "math.sqrt(D_K)" in out


def test_the_sinkhorn_update_of_05_matches_pot_and_exp_then_log_fails_at_small_eps(capsys):
    cells = notebook_code("05_")
    namespace = {"SEED": 0}
    exec(notebook_imports(cells), namespace)
    for cell in cells:  # the toy clouds and their cosine cost, as the notebook makes them
        if "def ring(" in cell.source or re.search(r"^C_toy = cosine_cost", cell.source, flags=re.M):
            exec(cell.source, namespace)
    solution = next(c for c in cells if SOLUTION_TAG in tags(c))
    spec = solution.metadata["exercise"]
    exec(solution.source, namespace)
    answer = namespace[spec["answer"]]
    assert check_function_answer(spec, namespace, answer)[0] is answer
    assert "exercise 05-a: correct!" in capsys.readouterr().out
    C, a, b = namespace["C_toy"], namespace["a_toy"], namespace["b_toy"]
    u, v = torch.zeros(6, dtype=C.dtype), torch.zeros(9, dtype=C.dtype)
    for _ in range(500):  # the update, applied to rows and to the transposed problem, converges to the plan
        u, v = answer(v, C, a, 0.1), answer(answer(v, C, a, 0.1), C.T, b, 0.1)
    plan = torch.exp(u[:, None] + v[None, :] - C / 0.1)
    torch.testing.assert_close(plan, sinkhorn_plans(C[None], a[None], b[None], 0.1, 10_000, 1e-12)[0],
                               atol=1e-9, rtol=1e-6)

    def exp_then_log(v, C, a, eps):
        return a.log() - torch.exp(-C / eps + v[None, :]).sum(dim=1).log()

    result, reference = check_function_answer(spec, namespace, exp_then_log)
    assert result is reference
    out = capsys.readouterr().out
    assert "not right yet" in out and "on input 4 of 4" in out and "NaN or inf value(s)" in out
    assert "torch.logsumexp" in out  # the hint


def test_the_angle_relation_of_06_matches_the_package_and_an_unclamped_one_fails(capsys):
    cells = notebook_code("06_")
    namespace = {"SEED": 0}
    exec(notebook_imports(cells), namespace)
    exec(next(c.source for c in cells if "f_teacher = torch.randn" in c.source), namespace)  # toy features
    solution = next(c for c in cells if SOLUTION_TAG in tags(c))
    spec = solution.metadata["exercise"]
    assert spec["id"] == "06-a"
    exec(solution.source, namespace)
    answer, reference = namespace["psi_a_teacher"], eval(spec["reference"], namespace)
    kwargs = dict(task=spec["task"], shapes=spec["shapes"], hint=spec["hint"], atol=spec["atol"],
                  rtol=spec["rtol"])
    assert check_exercise("06-a", answer, reference, **kwargs) is answer
    assert "exercise 06-a: correct!" in capsys.readouterr().out
    assert float((answer - reference).abs().max()) < 1e-9  # what the notebook asserts next
    diff, dist = namespace["diff"], namespace["dist"]
    unclamped = -diff / dist[..., None]  # 0 / 0 at j = i
    assert check_exercise("06-a", torch.einsum("ijd,ikd->ijk", unclamped, unclamped), reference,
                          **kwargs) is reference
    out = capsys.readouterr().out
    assert "not right yet" in out and "NaN or inf value(s) where the reference is finite" in out
    assert "clamp ||f_j - f_i||" in out


def test_paired_differences_of_07_pair_runs_by_seed(capsys):
    solution = next(c for c in notebook_code("07_") if SOLUTION_TAG in tags(c))
    spec = solution.metadata["exercise"]
    namespace = {"np": np}
    exec(solution.source, namespace)
    answer = namespace[spec["answer"]]
    np.testing.assert_allclose(answer(namespace["toy_runs"], "evl", "kd"), [0.03, -0.01], atol=1e-12)
    assert check_function_answer(spec, namespace, answer)[0] is answer
    assert "exercise 07-a: correct!" in capsys.readouterr().out

    def by_position(runs, method, against):  # pairs the i-th run of each method, whatever its seed
        x = [r["macro_auc"] for r in runs if r["method"] == method]
        y = [r["macro_auc"] for r in runs if r["method"] == against]
        n = min(len(x), len(y))
        return np.array(x[:n]) - np.array(y[:n])

    result, reference = check_function_answer(spec, namespace, by_position)
    assert result is reference
    out = capsys.readouterr().out
    assert "not right yet" in out and "on input 1 of 4" in out and "pair the runs by their seed" in out


def test_the_calibration_error_of_08_is_the_package_value_exactly(capsys):
    solution = next(c for c in notebook_code("08_") if SOLUTION_TAG in tags(c))
    spec = solution.metadata["exercise"]
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, (40, 5)), rng.uniform(size=(40, 5)).astype(np.float32)
    namespace = {"np": np, "data": SimpleNamespace(test=SimpleNamespace(y=y)), "probs": {"student": p}}
    exec(solution.source, namespace)
    answer = namespace[spec["answer"]]
    assert check_function_answer(spec, namespace, answer)[0] is answer
    assert "exercise 08-a: correct!" in capsys.readouterr().out
    # the notebook records the ECE computed with this function: it must be the package's, bit for bit
    assert [answer(y[:, c], p[:, c], 10) for c in range(5)] == list(ece_per_class(y, p, n_bins=10).values())

    def unweighted(y, p, n_bins):  # every non-empty bin counts the same, whatever its number of records
        bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
        gaps = [abs(np.mean(np.asarray(y)[bins == m]) - np.mean(np.asarray(p)[bins == m]))
                for m in range(n_bins) if (bins == m).any()]
        return float(np.mean(gaps))

    result, reference = check_function_answer(spec, namespace, unweighted)
    assert result is reference
    out = capsys.readouterr().out
    assert "not right yet" in out and "on input 1 of 4" in out and "(records in the bin) / N" in out


def test_answer_key_keeps_the_solutions_and_adds_the_checks(tmp_path):
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    ids = make_learner_copy(path, tmp_path / "key.ipynb", keep_solutions=True)
    key = nbformat.read(tmp_path / "key.ipynb", as_version=4).cells
    sols = solutions(path)
    assert ids == [c.metadata["exercise"]["id"] for c in sols]
    for solution in sols:
        i = next(k for k, c in enumerate(key) if c.source == solution.source)
        assert CHECK_TAG in tags(key[i + 1])


def course_notebook(path, solution_source: str, later: str, spec: dict | None = None) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("SMOKE = False")
    params.metadata["tags"] = ["parameters"]
    sol = nbformat.v4.new_code_cell(solution_source)
    sol.metadata["tags"] = [SOLUTION_TAG]
    if spec is not None:
        sol.metadata["exercise"] = spec
    nb.cells = [params, sol, nbformat.v4.new_code_cell(later)]
    nbformat.write(nb, path)


SPEC = {"id": "x-1", "task": "double x", "shapes": "y: float", "answer": "y", "reference": "2 * x"}


def test_a_solution_must_leave_the_names_later_cells_need(tmp_path):
    src = tmp_path / "01_demo.ipynb"
    course_notebook(src, "helper = 3\ny = 2 * x", "print(y + helper)", SPEC)
    with pytest.raises(ValueError, match=r"later cells use \['helper'\]"):
        make_learner_copy(src, tmp_path / "out.ipynb")
    course_notebook(src, "helper = 3\ny = 2 * x", "helper = 1\nprint(y + helper)", SPEC)  # rebound: fine
    assert make_learner_copy(src, tmp_path / "out.ipynb") == ["x-1"]
    course_notebook(src, "y = 2 * x", "print(y)", {k: v for k, v in SPEC.items() if k != "shapes"})
    with pytest.raises(ValueError, match=r"missing \['shapes'\]"):
        make_learner_copy(src, tmp_path / "out.ipynb")
    course_notebook(src, "z = 2 * x", "print(z)", SPEC)
    with pytest.raises(ValueError, match="does not bind 'y'"):
        make_learner_copy(src, tmp_path / "out.ipynb")


# ----------------------------------------------------------------------------- the check's verdicts

KW = dict(task="implement the thing", shapes="a float array of shape [3, 4]", using="evl_lite.thing(x)",
          hint="look at the axes")


@pytest.mark.parametrize("placeholder", [None, ...])
def test_unanswered_says_so_and_returns_the_reference(capsys, placeholder):
    reference = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert check_exercise("01-z", placeholder, reference, **KW) is reference
    out = capsys.readouterr().out
    assert out.startswith("exercise 01-z not answered yet: implement the thing; "
                          "expected a float array of shape [3, 4].")
    assert "evl_lite.thing(x)" in out and "rest of it runs" in out
    assert "hint" not in out


def test_a_function_stub_returning_none_counts_as_unanswered(capsys):
    def stub(a, b, tau):
        ...

    inputs = [(torch.zeros(2, 5), torch.ones(2, 5), 2.0)]
    assert check_exercise("03-z", stub, binary_kl_with_logits, inputs=inputs, **KW) is binary_kl_with_logits
    assert "exercise 03-z not answered yet" in capsys.readouterr().out


def test_wrong_shape_is_reported_with_the_shapes_and_the_hint(capsys):
    reference = np.arange(12.0).reshape(3, 4)
    assert check_exercise("01-z", reference.T.copy(), reference, **KW) is reference
    out = capsys.readouterr().out
    assert "exercise 01-z: not right yet" in out
    assert "shape [4, 3] instead of [3, 4] (the same number of values" in out
    assert "hint: look at the axes" in out and "goes on with evl_lite's answer" in out


def test_wrong_values_report_how_many_and_the_largest_error_and_where(capsys):
    reference = np.arange(12.0).reshape(3, 4)
    answer = reference.copy()
    answer[1, 2] += 0.5
    answer[0, 0] += 1e-9  # within tolerance
    assert check_exercise("01-z", answer, reference, **KW) is reference
    out = capsys.readouterr().out
    assert "1 of 12 values differ; the largest error, 0.5, is at index [1, 2] of [3, 4]" in out
    assert "(6.5 instead of 6; tolerance atol=1e-06, rtol=1e-05)" in out


def test_nan_wrong_kind_and_wrong_dtype_kind_are_reported():
    reference = np.ones((2, 3), dtype=np.float32)
    answer = reference.copy()
    answer[0, 1] = np.nan
    assert compare(answer, reference) == ["1 NaN or inf value(s) where the reference is finite"]
    assert compare(torch.ones(2, 3), reference) == [
        "got a torch.float32 tensor of shape [2, 3]; expected a float32 numpy array of shape [2, 3]"
    ]
    problems = compare(np.ones((2, 3), dtype=np.int64), reference)
    assert problems == ["dtype int64 instead of float32 (later cells rely on it)"]
    assert compare(np.array([True, False]), np.array([True, True])) == [
        "1 of 2 values differ, the first at index [1]"
    ]
    assert compare(70.0, 71.5) == ["70 instead of 71.5 (difference 1.5; tolerance atol=1e-06, rtol=1e-05)"]
    assert compare(None, 3.0) == ["got NoneType None; expected the number 3"]


def test_tolerance_is_atol_plus_rtol_times_the_reference():
    reference = np.array([100.0, 0.0])
    assert compare(reference + [0.05, 0.0], reference, atol=0.0, rtol=1e-3) == []
    assert len(compare(reference + [0.0, 0.05], reference, atol=0.0, rtol=1e-3)) == 1
    assert compare(reference + [0.0, 0.05], reference, atol=0.1, rtol=0.0) == []


def test_a_right_answer_is_returned_in_the_reference_float_dtype(capsys):
    reference = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    answer = reference.astype(np.float64)
    result = check_exercise("01-z", answer, reference, **KW)
    out = capsys.readouterr().out
    assert "exercise 01-z: correct!" in out and "converted from float64 to float32" in out
    assert result.dtype == np.float32 and np.array_equal(result, reference) and result is not reference
    rate = 71.25
    assert check_exercise("01-y", rate, 71.25, **KW) is rate
    out = capsys.readouterr().out
    assert "exercise 01-y: correct! Your answer matches evl_lite's (evl_lite.thing(x))" in out
    assert "(largest difference 0); the notebook goes on with yours." in out
    tensor = torch.arange(6.0).reshape(2, 3)
    assert check_exercise("02-y", tensor.clone(), tensor, **KW).equal(tensor)


def test_a_function_answer_that_raises_or_is_not_a_function_does_not_stop_the_notebook(capsys):
    inputs = [(torch.zeros(2, 5), torch.ones(2, 5), 2.0)]

    def broken(s, t, tau):
        return s / 0 + undefined_name  # noqa: F821

    assert check_exercise("03-z", broken, binary_kl_with_logits, inputs=inputs, **KW) is binary_kl_with_logits
    out = capsys.readouterr().out
    assert "on input 1 of 1 (arguments [2, 5], [2, 5], 2.0) it raised NameError" in out
    assert check_exercise("03-z", 3.0, binary_kl_with_logits, inputs=inputs, **KW) is binary_kl_with_logits
    assert "got the number 3; expected a function" in capsys.readouterr().out

    def mean_instead(s, t, tau):  # right formula, but reduced over the batch
        return binary_kl_with_logits(s, t, tau).mean()

    result = check_exercise("03-z", mean_instead, binary_kl_with_logits, inputs=inputs, **KW)
    assert result is binary_kl_with_logits
    out = capsys.readouterr().out
    assert "on input 1 of 1 (arguments [2, 5], [2, 5], 2.0): shape [] instead of [2, 5]" in out


# ----------------------------------------------------------------------------- command line


def test_the_exercises_command_writes_the_copies_and_prints_what_it_wrote(tmp_path, capsys):
    parser = build_parser()
    path = next(p for p in NOTEBOOKS if p.name.startswith("03_"))
    args = parser.parse_args(["exercises", "--out", str(tmp_path / "learner"), str(path)])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["notebooks"][path.name]["ids"] == ["03-a"] and report["exercises"] == 1
    assert (tmp_path / "learner" / path.name).is_file()


# ----------------------------------------------------------------------------- a learner's run


@pytest.mark.notebook
def test_learner_copy_of_01_runs_end_to_end_with_the_stubs_unanswered(tmp_path, monkeypatch):
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    copy = tmp_path / "learner" / path.name
    ids = make_learner_copy(path, copy)
    assert ids == ["01-a", "01-b"]
    monkeypatch.setenv("EVL_LITE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("EVL_LITE_SCALE", "workshop")
    entry = run_notebook(copy, tmp_path / "run",
                         {"SMOKE": True, "DATA_SOURCE": "synthetic", "DATA_DIR": "", "SEED": 0})
    assert entry["status"] == "ok", entry.get("error")
    executed = nbformat.read(entry["output"], as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    checks = {c.metadata["exercise"]["id"]: "".join(o.get("text", "") for o in c.outputs)
              for c in executed.cells if CHECK_TAG in tags(c)}
    assert set(checks) == {"01-a", "01-b"}
    assert checks["01-a"].startswith("exercise 01-a not answered yet: band-pass every lead")
    assert "expected band: a float numpy array of shape [12, 5000]" in checks["01-a"]
    assert checks["01-b"].startswith("exercise 01-b not answered yet: compute the heart rate")
    m = entry["metrics"]  # later cells ran on evl_lite's answers
    assert m["high_frequency_power_removed_fraction"] > 0.9
    assert 30 < m["example_heart_rate_bpm"] < 200
    assert m["n_beats_averaged"] >= 5 and "seconds" in m
