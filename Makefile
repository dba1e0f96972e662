# The two commands (see README.md):
#   make run    install what is missing, build a release binary, run PostgreSQL-less core + nginx on :$(PORT)
#   make test   install what is missing, build, run every test (normal build, then ASan+UBSan),
#               then each fuzz target for 30 s
#   make fuzz   build the libFuzzer targets (tests/fuzz/) and run each for FUZZ_SECONDS (default 300)
# Plain `make` builds build/chatstream.
PORT ?= 8080
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 300

.PHONY: all build run test deps clean bench asan format image test-container quality fuzz

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCHATSTREAM_SANITIZE=ON >/dev/null
	cmake --build build-asan -j $(JOBS)

deps:
	bash scripts/deps.sh

run:
	PORT=$(PORT) bash scripts/run.sh

test:
	bash scripts/test.sh

# Containers (README "Deploy"): podman here, docker where a Docker engine answers.
image:
	bash scripts/image.sh

test-container:
	bash tests/container/run.sh

# The answer-quality score over the PostgreSQL manual (tests/quality/): prints the score and the failures.
quality: build
	bash scripts/deps.sh
	python3 tests/quality/quality.py --binary $(BUILD)/chatstream --source-dir .

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) bash scripts/fuzz.sh

bench: build
	bash bench/run.sh

format:
	clang-format -i $$(git ls-files 'worker/*.cpp' 'worker/*.hpp' 'bench/*.cpp' 'tests/*.cpp')

clean:
	rm -rf build build-asan build-fuzz
