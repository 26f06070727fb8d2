# relvid: related-video pipeline. Each stage is a binary; each output a Parquet file.
#
#   make all                                   synthetic log, no download needed
#   make all DATA=kuairand RAW=../shared/data/kuairand-lh15
#   make all DATA=ml-100k  RAW=../shared/data/ml-100k
#   make test                                  unit and integration tests
#   make als DATA=kuairand                     one stage (here: every objective's ALS)
#
# A change to one objective's settings in data/$(DATA).toml re-runs only the stages that
# read those settings: relvid-config keeps one stamp file per stage and objective.

DATA     ?= synthetic
CONFIG   ?= data/$(DATA).toml
OUT      ?= data/$(DATA)
# RAW is remembered from the last run into this OUT folder (data/$(DATA) by default), so
# `make als DATA=kuairand` needs no RAW.
RAW      ?= $(shell sed -n 's/^RAW=//p' $(OUT)/config/source.txt 2>/dev/null)
ROWS     ?=
SEED     ?= 42
THREADS  ?= 0
SHARED   ?= ../shared/data
CARGO    ?= cargo
DEVICE   ?= cpu
BIN      := target/release

# DEVICE=cuda builds the two neural stages on candle's CUDA backend (needs the CUDA toolkit).
CARGO_FLAGS := --release --workspace --bins
ifeq ($(DEVICE),cuda)
CARGO_FLAGS += --features relvid-stage-coordinate/cuda,relvid-stage-twotower/cuda
endif

export RELVID_THREADS := $(THREADS)
ifneq ($(THREADS),0)
export POLARS_MAX_THREADS := $(THREADS)
endif

STAGES  := stage-ingest stage-candidates stage-coordinate stage-als stage-twotower stage-merge \
           stage-eval
FLAGS   := --config $(CONFIG) --dir $(OUT) --seed $(SEED)
# Recursive (=): RAW and ROWS may be set on the command line or remembered per dataset.
INGEST_FLAGS = $(if $(RAW),--raw $(RAW)) $(if $(ROWS),--rows $(ROWS))
STAMPS  := $(OUT)/config

.PHONY: all build ingest candidates coordinate als twotower merge eval test clean fetch help
.DELETE_ON_ERROR:

all: $(OUT)/eval.parquet
	@echo "related lists: $(OUT)/related.parquet  weights: $(OUT)/weights.parquet"
	@echo "evaluation on the test split: $(OUT)/report.md"
	@sed -n '/^## Engagement/,/^Dislike share/p' $(OUT)/report.md

help:
	@sed -n '1,12p' Makefile

# Cargo decides what to rebuild; a binary's mtime only moves when it was really relinked,
# so outputs re-run after a code change and not otherwise.
build:
	$(CARGO) build $(CARGO_FLAGS)

$(addprefix $(BIN)/,$(STAGES) relvid-config): build ;

# Stamps: one JSON file per stage with its effective settings, rewritten only on change.
# (`make -n` cannot refresh them, so it lists every stage; a real run re-runs only stale ones.)
ifeq ($(filter clean help fetch,$(MAKECMDGOALS)),)
-include $(STAMPS)/objectives.mk
endif

$(STAMPS)/objectives.mk: $(CONFIG) $(BIN)/relvid-config FORCE
	@$(BIN)/relvid-config stamps --config $(CONFIG) --out $(STAMPS)
	@printf 'RAW=%s\nROWS=%s\n' "$(RAW)" "$(ROWS)" > $(STAMPS)/source.new
	@cmp -s $(STAMPS)/source.new $(STAMPS)/source.txt && rm $(STAMPS)/source.new \
	  || mv $(STAMPS)/source.new $(STAMPS)/source.txt

$(STAMPS)/%.json: $(STAMPS)/objectives.mk ;
$(STAMPS)/source.txt: $(STAMPS)/objectives.mk ;

# Every stage checks its own section (and each objective's overrides) before the first stage
# reads any data, so a typo in [merge] fails in a second, not after the models have trained.
# Re-checked when a stamp or a binary changes; order-only for ingest, so it re-runs nothing.
STAGE_STAMPS := $(foreach s,ingest candidates coordinate merge eval,$(STAMPS)/$(s).json) \
                $(foreach o,$(OBJECTIVES),$(STAMPS)/als-$(o).json $(STAMPS)/twotower-$(o).json)
$(STAMPS)/checked: $(STAGE_STAMPS) $(STAMPS)/source.txt $(addprefix $(BIN)/,$(STAGES))
	@$(BIN)/stage-ingest $(FLAGS) $(INGEST_FLAGS) --check-config >/dev/null
	@for s in candidates merge eval; do \
	  $(BIN)/stage-$$s $(FLAGS) --check-config >/dev/null || exit 1; done
	@$(BIN)/stage-coordinate $(FLAGS) --device $(DEVICE) --check-config >/dev/null
	@for o in $(OBJECTIVES); do \
	  $(BIN)/stage-als $(FLAGS) --objective $$o --check-config >/dev/null || exit 1; \
	  $(BIN)/stage-twotower $(FLAGS) --objective $$o --device $(DEVICE) --check-config \
	    >/dev/null || exit 1; \
	done
	@echo "settings of every stage checked"
	@touch $@

FORCE:

# 1. Canonical tables. interactions.parquet is renamed into place last, so it marks all three.
$(OUT)/interactions.parquet: $(BIN)/stage-ingest $(STAMPS)/ingest.json $(STAMPS)/source.txt \
                             | $(STAMPS)/checked
	$(BIN)/stage-ingest $(FLAGS) $(INGEST_FLAGS)

# 2. Co-visitation candidates.
$(OUT)/candidates.parquet: $(OUT)/interactions.parquet $(BIN)/stage-candidates $(STAMPS)/candidates.json
	$(BIN)/stage-candidates $(FLAGS)

# 3. Coordinating Network: per-row objective probabilities and routing.
$(OUT)/routing.parquet: $(OUT)/interactions.parquet $(BIN)/stage-coordinate $(STAMPS)/coordinate.json
	$(BIN)/stage-coordinate $(FLAGS) --device $(DEVICE)

# 4. Per objective: ALS (linear) and two-tower (non-linear) similarity of every candidate pair.
$(OUT)/als_%.parquet: $(OUT)/routing.parquet $(OUT)/candidates.parquet $(BIN)/stage-als $(STAMPS)/als-%.json
	$(BIN)/stage-als $(FLAGS) --objective $*

$(OUT)/twotower_%.parquet: $(OUT)/routing.parquet $(OUT)/candidates.parquet $(BIN)/stage-twotower $(STAMPS)/twotower-%.json
	$(BIN)/stage-twotower $(FLAGS) --objective $* --device $(DEVICE)

ALS_OUT      := $(foreach o,$(OBJECTIVES),$(OUT)/als_$(o).parquet)
TWOTOWER_OUT := $(foreach o,$(OBJECTIVES),$(OUT)/twotower_$(o).parquet)

# 5. Merge and rank. related.parquet is renamed into place after weights.parquet.
$(OUT)/related.parquet: $(ALS_OUT) $(TWOTOWER_OUT) $(BIN)/stage-merge $(STAMPS)/merge.json
	$(BIN)/stage-merge $(FLAGS)

# 6. Offline evaluation of every ranking: first on the valid split (the figures settings are
# tuned on), then on the test split, whose report quotes both. report.md is written before
# eval.parquet, which marks them all.
$(OUT)/eval.parquet: $(OUT)/related.parquet $(BIN)/stage-eval $(STAMPS)/eval.json
	$(BIN)/stage-eval $(FLAGS) --split valid
	$(BIN)/stage-eval $(FLAGS)

ingest: $(OUT)/interactions.parquet
candidates: $(OUT)/candidates.parquet
coordinate: $(OUT)/routing.parquet
als: $(ALS_OUT)
twotower: $(TWOTOWER_OUT)
merge: $(OUT)/related.parquet
eval: $(OUT)/eval.parquet

# Unit tests of every crate and the integration tests, which run the stages on slices of
# the real logs in $(SHARED).
test:
	@test -f $(SHARED)/kuairand-lh15/log.tsv -a -f $(SHARED)/ml-100k/u.data || { \
	  echo "make test: no real logs under SHARED=$(SHARED); set SHARED to the folder that holds kuairand-lh15/ and ml-100k/"; \
	  exit 1; }
	RELVID_SHARED_DATA=$(abspath $(SHARED)) $(CARGO) test --release --workspace

clean:
	rm -rf $(OUT)

# Downloads the public originals (needs internet access) into data/raw/.
fetch:
ifeq ($(DATA),ml-100k)
	mkdir -p data/raw
	curl -fL -o data/raw/ml-100k.zip https://files.grouplens.org/datasets/movielens/ml-100k.zip
	cd data/raw && unzip -o ml-100k.zip
	@echo "now run: make all DATA=ml-100k RAW=data/raw/ml-100k"
else ifeq ($(DATA),kuairand)
	mkdir -p data/raw
	curl -fL -o data/raw/KuaiRand-Pure.tar.gz https://zenodo.org/records/10439422/files/KuaiRand-Pure.tar.gz
	cd data/raw && tar xzf KuaiRand-Pure.tar.gz
	@echo "now run: make all DATA=kuairand RAW=data/raw/KuaiRand-Pure/data"
else
	@echo "DATA=$(DATA) needs no download"
endif

# Benchmark (scripts/bench/run.sh): `make all ROWS=N` for each of BENCH_ROWS with every stage
# timed, then relvid next to the anchor tools of shared/bench. BENCH_ANCHORS=0 skips the
# anchors; BENCH_ROWS="" skips the sizes. The report goes to bench/results/ (the committed
# figures) only for the full default run; any smaller run writes bench/work/results/, so a
# quick check never replaces them. BENCH_OUT=DIR chooses the folder.
BENCH_DEFAULT_ROWS := 1000000 5000000 20000000
BENCH_ROWS    ?= $(BENCH_DEFAULT_ROWS)
BENCH_ANCHORS ?= 1
BENCH_PY      ?= /tmp/benchvenv/bin/python
BENCH_WORK    ?= /tmp/relvid-bench
BENCH_OUT     ?= $(if $(and $(filter 1,$(BENCH_ANCHORS)),$(filter "$(BENCH_DEFAULT_ROWS)","$(strip $(BENCH_ROWS))")),bench/results,bench/work/results)
.PHONY: bench
bench: build
	BENCH_ROWS="$(BENCH_ROWS)" BENCH_ANCHORS=$(BENCH_ANCHORS) BENCH_PY=$(BENCH_PY) \
	  BENCH_WORK=$(BENCH_WORK) BENCH_OUT=$(BENCH_OUT) \
	  THREADS=$(if $(filter 0,$(THREADS)),2,$(THREADS)) SHARED=$(SHARED) \
	  bash scripts/bench/run.sh
