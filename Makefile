.PHONY: run test simulate db lint bench

run:        ## run the service (embedded SecantusDB unless MONGO_URI is set)
	scripts/run

test:       ## run the test suite
	scripts/test

simulate:   ## run the service offline against the simulated exchange
	SIMULATE_EXCHANGE=1 scripts/run

db:         ## only the embedded SecantusDB, for manage.py and daphne run by hand
	DB_ONLY=1 scripts/run

bench:      ## run the benchmarks (ARGS="--quick" for a short run); see bench/README.md
	scripts/bootstrap requirements-dev.txt && .venv/bin/python -m bench $(ARGS)

lint:
	scripts/bootstrap requirements-dev.txt && .venv/bin/ruff check . && .venv/bin/ruff format --check .
