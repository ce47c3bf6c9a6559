# The seed's targets. Docker targets need a Docker engine; the others run locally.
.PHONY: gateway gateway-build gateway-start gateway-stop gateway-test gateway-demo test bench lint setup

PORT ?= 9000

setup:
	scripts/setup.sh --dev

test:
	scripts/test.sh

lint:
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/lint-imports
	.venv/bin/mypy

gateway-start:
	scripts/gateway-ctl.sh start $(PORT)

gateway-stop:
	scripts/gateway-ctl.sh stop

gateway-test:
	.venv/bin/python -m pytest tests/e2e -q
