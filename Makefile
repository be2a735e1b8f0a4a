# EVL-ECG Lite. `make test` and `make run` each create and fill .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODE ?= smoke
DATA ?= synthetic
OUT ?= runs/$(MODE)

.PHONY: setup test run lint clean

setup: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "EVL-ECG Lite needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The test command (CI runs exactly this through .ci/run): two pytest-xdist workers, one test
# file each at a time (a file's session fixtures, such as the smoke run of the notebooks, run once).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The main job: execute the notebook collection on the synthetic default; executed notebooks
# and summary.json land in $(OUT) (default runs/smoke).
run: $(STAMP)
	$(PY) -m evl_lite run --mode $(MODE) --data $(DATA) --out $(OUT)

lint: $(STAMP)
	$(PY) -m ruff check evl_lite tests notebooks

clean:
	rm -rf $(VENV) runs
