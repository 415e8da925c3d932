# Convenience targets; the scripts they call work without make (see README).
.PHONY: install test run backtest bench lint fmt proto

install:
	bash scripts/install.sh dev

test:
	bash scripts/test.sh

run:
	bash scripts/run.sh

backtest: install
	.venv/bin/mm backtest --config configs/backtest.yaml

bench: install
	.venv/bin/python scripts/bench_core.py
	.venv/bin/python scripts/bench_backtest.py
	.venv/bin/python scripts/bench_ray.py
	.venv/bin/python scripts/bench_grpc.py
	.venv/bin/python scripts/bench_ccxt.py

lint: install
	.venv/bin/ruff format --check . && .venv/bin/ruff check .

fmt: install
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

proto: install
	.venv/bin/python scripts/gen_proto.py
