# The two commands: `make run` (the bus, with a demo) and `make test` (the whole suite).
.PHONY: run test bench install

install:
	@./ops/bootstrap.sh

run: install
	.venv/bin/govbus run

test: install
	.venv/bin/ruff check .
	.venv/bin/python -m pytest $(PYTEST_ARGS)
