# The seed's targets. `gateway` and `gateway-build` need a Docker engine; the others run
# locally (`make setup` first, or let `make gateway-start` set up on its first run).
.PHONY: gateway gateway-build gateway-start gateway-stop gateway-test gateway-demo \
        gateway-postman test bench lint setup env-example api-docs

PORT ?= 9000
GATEWAY_URL ?= http://localhost:$(PORT)
# gpu: MAX Serve + the production image; cpu: the demo image with its embedded model.
COMPOSE_PROFILE ?= gpu
# production (no local model) or demo (embedded model) stage of Dockerfile.gateway.
TARGET ?= production
IMAGE ?= ai-gateway:$(if $(filter demo,$(TARGET)),demo,latest)
PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
PY_SOURCES = src tests bench examples scripts test_gateway.py
NEWMAN = .cache/newman/node_modules/.bin/newman

setup:
	scripts/setup.sh --dev

test:
	scripts/test.sh

bench:  # the gateway against direct and LiteLLM, then /v1/chat on the embedded defaults
	$(PYTHON) -m bench.run
	$(PYTHON) -m bench.chat_overhead

lint:
	.venv/bin/ruff check $(PY_SOURCES)
	.venv/bin/ruff format --check $(PY_SOURCES)
	.venv/bin/lint-imports
	.venv/bin/mypy

# Regenerates .env.gateway.example from the settings (a test fails when they differ).
env-example:
	$(PYTHON) scripts/gen-env-example.py --write

# Regenerates docs/api.md from the OpenAPI schema (a test fails when they differ).
api-docs:
	$(PYTHON) scripts/gen-api-docs.py --write

# --- Docker ------------------------------------------------------------------------------
gateway:
	docker compose --profile $(COMPOSE_PROFILE) up -d --build

gateway-build:
	docker build -f Dockerfile.gateway --target $(TARGET) -t $(IMAGE) .

# --- a local gateway process (pid file .gateway.pid, log .gateway.log) -------------------
gateway-start:
	scripts/gateway-ctl.sh start $(PORT)

gateway-stop:
	scripts/gateway-ctl.sh stop

# End-to-end check of a running gateway (GATEWAY_URL, GATEWAY_API_KEY).
gateway-test:
	GATEWAY_URL=$(GATEWAY_URL) $(PYTHON) test_gateway.py

gateway-demo:
	GATEWAY_URL=$(GATEWAY_URL) $(PYTHON) examples/gateway_demo.py

# The Postman collection against a running gateway, by newman (installed on first use).
gateway-postman:
	@[ -x $(NEWMAN) ] || npm install --prefix .cache/newman newman@6 --no-audit --no-fund --loglevel=error
	$(NEWMAN) run postman_collection.json --env-var base_url=$(GATEWAY_URL)
