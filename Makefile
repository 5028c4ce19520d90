# lambdadb: the two commands a new user runs are `make run` and `make test`.
# Everything they need is installed by integration/setup.sh (apt, pip).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
BIN := $(TARGET_DIR)/debug/lambdadb
DEMO_DATA := $(CURDIR)/target/demo-data

.PHONY: run test faults build build-test unit integration integration-s3 bench fmt clippy setup-build setup-test

## Build and start the server with the embedded broker and the demo clickstream.
run: setup-build build
	LAMBDADB_DATA_DIR=$(DEMO_DATA) $(BIN) serve

## Everything: unit tests, then integration tests against a real broker and clients,
## then the batch-layer tests again with the master dataset in S3 (moto).
test: setup-test build-test unit integration integration-s3

## The benchmark suite against DuckDB, DataFusion and PostgreSQL (release build):
## writes bench/RESULTS.md and bench/charts/, prints the summary table last.
bench: setup-test
	$(CARGO) build --release -p lambdadb
	.venv/bin/python bench/run.py --bin $(TARGET_DIR)/release/lambdadb
	.venv/bin/python bench/age.py --bin $(TARGET_DIR)/release/lambdadb
	.venv/bin/python bench/replicas.py --bin $(TARGET_DIR)/release/lambdadb

## The fault-injection suite at full size: kill -9 at 20 random instants over
## 1,000,000 events, a crash at every failpoint, a full disk, a 30 s broker
## outage, retention, malformed messages. Prints a table; `make test` runs it
## reduced (integration/test_fault_suite.py).
faults: setup-test build-test
	LAMBDADB_TEST_BIN=$(BIN) .venv/bin/python integration/faults.py

setup-build:
	bash integration/setup.sh build

setup-test:
	bash integration/setup.sh test

build:
	$(CARGO) build -p lambdadb -p lambdadb-slt

# Tests run a build with the fault points compiled in (lambdadb_common::failpoint);
# unit tests use the same features so that both share one build of each crate.
# They also build the Ballista batch engine (integration/test_ballista.py).
TEST_FEATURES := --features lambdadb-common/failpoints,lambdadb/ballista

build-test:
	$(CARGO) build -p lambdadb -p lambdadb-slt $(TEST_FEATURES)

unit:
	$(CARGO) test --workspace $(TEST_FEATURES)

integration: build-test
	LAMBDADB_TEST_BIN=$(BIN) .venv/bin/python -m pytest -v integration

# The tests that touch the batch layer (archive, scans, views, imports, retention,
# compaction, the catalog, names, the data_dir lock), with every server's master
# dataset in an S3-compatible store (a moto server per test, see
# integration/conftest.py). The protocol, client and catalog-compatibility tests
# run on local disk only: they exercise the frontend, not the store.
S3_TESTS := test_delta_table.py test_compaction.py test_retention.py test_pipeline.py test_view_oracle.py test_view_versions.py test_import.py \
	test_catalog_persist.py test_fault_holes.py test_cache.py test_copy.py test_extreme_values.py test_plain_views.py test_limits.py \
	test_names_are_not_paths.py test_data_dir_lock.py test_ballista.py

integration-s3: build-test
	LAMBDADB_TEST_STORE=s3 LAMBDADB_TEST_BIN=$(BIN) .venv/bin/python -m pytest -v \
		$(addprefix integration/,$(S3_TESTS))

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets $(TEST_FEATURES) -- -D warnings
	$(CARGO) clippy --workspace --all-targets -- -D warnings
