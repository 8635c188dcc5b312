.PHONY: run test simulate lint bench

run:        ## run the service (embedded SecantusDB unless MONGO_URI is set)
	scripts/run

test:       ## run the test suite
	scripts/test

simulate:   ## run the service offline against the simulated exchange
	SIMULATE_EXCHANGE=1 scripts/run

lint:
	scripts/bootstrap requirements-dev.txt && .venv/bin/ruff check . && .venv/bin/ruff format --check .
