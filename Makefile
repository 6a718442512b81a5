# Set-up and the two commands of the README. `make demo` and `make test` build .venv when it is
# missing or when pyproject.toml / constraints.txt changed; otherwise they start at once.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.spikemod-installed
DEMO_ARGS ?=

.PHONY: demo test venv clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@py=""; for c in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; do \
	  if "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then py="$$c"; break; fi; \
	done; \
	if [ -z "$$py" ]; then \
	  echo "error: Python 3.10 not found (lava-nc 0.10.0 runs only on 3.10). Install it, e.g." >&2; \
	  echo "  pyenv install 3.10  or  apt-get install python3.10 python3.10-venv, then run make again." >&2; \
	  exit 1; \
	fi; \
	echo "Using $$py"; \
	[ -x $(PY) ] || "$$py" -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[lava,slurm,test,nir]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spikemod demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
