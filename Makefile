.PHONY: run test test-fast simulate db lint bench

run:        ## run the service (embedded SecantusDB unless MONGO_URI is set)
	scripts/run

test:       ## run the test suite (the README's test command; CI runs it)
	scripts/test

test-fast:  ## the quick loop: pure, store and consumer tests (no subprocess end-to-end, no browser)
	scripts/test -m "not e2e and not browser"

simulate:   ## run the service offline against the simulated exchange
	SIMULATE_EXCHANGE=1 scripts/run

db:         ## only the embedded SecantusDB, for manage.py and daphne run by hand
	DB_ONLY=1 scripts/run

bench:      ## run the benchmarks (ARGS="--quick" for a short run); see bench/README.md
	scripts/bootstrap requirements-dev.txt && .venv/bin/python -m bench $(ARGS)

lint:
	scripts/bootstrap requirements-dev.txt && .venv/bin/ruff check . && .venv/bin/ruff format --check .
