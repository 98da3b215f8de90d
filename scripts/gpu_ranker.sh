#!/usr/bin/env bash
# The LLM ranker's LoRA training at scale on a lent GPU (issue 16, item 4): the pre-run checks, then every
# training position of every user, validation and test on all users; the adapter and its card come back.
#
# The device machine gets the working tree only (64 MiB a call, no ../shared, no network), so the model weights,
# the data and the few Python packages its image lacks travel in pieces prepared here:
#
#   here:     scripts/gpu_ranker.sh pack [MODEL]      # .gpu/: data, wheels, retriever checkpoint, weights in groups
#   device:   scripts/gpu_ranker.sh stage K           # one run call per group: carry [".gpu/gK"]; copies to /tmp
#   device:   scripts/gpu_ranker.sh train [CONFIG...] # carry [".gpu/base"]; checks + one run per config (a sweep);
#                                                     # the best adapter on validation and every card into $OUT
#   here:     scripts/gpu_ranker.sh unpack DIR OUT    # join the returned pieces into an adapter folder
#
# MODEL defaults to qwen2.5-coder-0.5b-instruct (9 groups of weights); qwen2.5-coder-1.5b-instruct (config
# finetune/configs/gpu-1.5b.toml) is about 22 groups, more staging calls than one 15-minute lease allows.
# CONFIG defaults to finetune/configs/gpu.toml (about 6 minutes on an H200 with its checks); more configs make a
# sweep (learning rate, LoRA rank), each checked and validated. Under `set -e` a failed check stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${2:-qwen2.5-coder-0.5b-instruct}"
GPU=.gpu
STAGE=/tmp/llmrec-stage
PIECE=$((28 * 1024 * 1024))   # bytes per weight piece; two pieces make one carried group
PY=${PYTHON:-python3}

pack() {  # here: everything the device needs, under .gpu/ (ignored by git)
    local venv=.venv/bin/python
    grep -qx "/$GPU/" "$(git rev-parse --git-dir)/info/exclude" 2>/dev/null || echo "/$GPU/" >>"$(git rev-parse --git-dir)/info/exclude"
    rm -rf "$GPU" && mkdir -p "$GPU/base/data" "$GPU/base/whl" "$GPU/base/cache" "$GPU/pieces"
    cp -r ../shared/data/ml-latest-small "$GPU/base/data/"
    mkdir -p "$GPU/base/data/ml-25m-keywords" && cp ../shared/data/ml-25m-keywords/movies_w_keywords.csv "$GPU/base/data/ml-25m-keywords/"
    # the retriever trained here on the training items (same candidates as the CPU runs), when it exists
    [ -d ~/.cache/llmrec/finetune ] && cp -r ~/.cache/llmrec/finetune "$GPU/base/cache/" || true
    # packages the device image lacks (Python 3.12 wheels, no dependencies resolved there)
    $venv -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$GPU/base/whl" pydantic pydantic-core annotated-types typing-inspection platformdirs gguf rapidfuzz
    # the packaged GGUF parts, cut into pieces with their checksums
    $venv - "$MODEL" "$GPU/pieces" "$PIECE" <<'EOF'
import hashlib, json, sys
from pathlib import Path
from llmrec.llm.registry import get_spec, locate_parts
spec, out, size = get_spec(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
pieces = []
with_index = 0
for part in locate_parts(spec):
    data = part.read_bytes()
    for start in range(0, len(data), size):
        name = f"piece{with_index:03d}"
        (out / name).write_bytes(data[start : start + size])
        pieces.append({"name": name, "sha256": hashlib.sha256(data[start : start + size]).hexdigest()})
        with_index += 1
manifest = {"model": spec.name, "gguf_file": spec.gguf_file, "sha256": spec.sha256, "size": spec.size, "pieces": pieces}
(out.parent / "base" / "manifest.json").write_text(json.dumps(manifest, indent=1))
print(f"{len(pieces)} pieces")
EOF
    local n=0 group=1
    for f in "$GPU"/pieces/piece*; do
        mkdir -p "$GPU/g$group" && mv "$f" "$GPU/g$group/"
        n=$((n + 1)); if [ $((n % 2)) -eq 0 ]; then group=$((group + 1)); fi
    done
    rmdir "$GPU/pieces"
    du -sh "$GPU"/base "$GPU"/g*
    echo "then, on the device: one run per group with carry [\"$GPU/gK\"] and command 'scripts/gpu_ranker.sh stage K',"
    echo "then carry [\"$GPU/base\"] and command 'PYTHONUNBUFFERED=1 scripts/gpu_ranker.sh train' (timeout 600)"
}

stage() {  # device: copy one carried group of weight pieces to the machine's disk (kept while it stays warm)
    mkdir -p "$STAGE" && cp "$GPU/g$1"/piece* "$STAGE/" && ls "$STAGE" | wc -l
}

train() {  # device: environment, model, checks, one run per config; the best on validation comes back in $OUT
    local configs=("${@:-finetune/configs/gpu.toml}")
    export LLMREC_CACHE_DIR=/tmp/llmrec-cache PYTHONPATH="/tmp/site:$PWD" TOKENIZERS_PARALLELISM=false
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$GPU"/base/whl/*.whl
    mkdir -p "$LLMREC_CACHE_DIR" && cp -r "$GPU"/base/cache/. "$LLMREC_CACHE_DIR/"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    $PY - "$GPU/base/manifest.json" "$STAGE" <<'PY'
import hashlib, json, sys, tempfile
from pathlib import Path
from llmrec.llm import gguf_convert, resolve
from llmrec.llm.registry import get_spec
manifest, stage = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
spec = get_spec(manifest["model"])
target = resolve.models_dir() / spec.name
if not resolve._marker_is_current(spec, target):
    work = Path(tempfile.mkdtemp(dir="/tmp"))
    gguf = work / manifest["gguf_file"]
    with open(gguf, "wb") as out:
        for piece in manifest["pieces"]:
            data = (stage / piece["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != piece["sha256"]:
                sys.exit(f"error: {piece['name']} is damaged or missing; stage its group again")
            out.write(data)
    gguf_convert.join_parts([gguf], work, gguf_name=gguf.name, sha256=spec.sha256, size=spec.size,
                            what=spec.name, fix="stage the pieces again")
    target.mkdir(parents=True, exist_ok=True)
    gguf_convert.convert_gguf(gguf, target)
    resolve._write_marker(target, spec, converted=True)
print("model ready:", target)
PY
    local n=0
    for config in "${configs[@]}"; do  # e.g. gpu.toml, then a copy with another learning_rate or r
        n=$((n + 1))
        $PY -m finetune "$config" --out "/tmp/adapter-$n" --data-dir "$GPU/base/data" 2>&1 | tee -a "$OUT/train.log"
    done
    # the run whose kept adapter ranks the validation items best; every card comes back (card-N.json)
    local best
    best=$($PY -c 'import json, sys
n = int(sys.argv[1])
scores = {i: json.load(open(f"/tmp/adapter-{i}/adapter_card.json"))["validation"]["lora"]["ndcg@10"] for i in range(1, n + 1)}
print(max(scores, key=scores.get))' "$n")
    for i in $(seq 1 "$n"); do cp "/tmp/adapter-$i/adapter_card.json" "$OUT/card-$i.json"; done
    cp "/tmp/adapter-$best/adapter_card.json" "/tmp/adapter-$best/adapter_config.json" "$OUT/"
    # $OUT returns at most 8 files of 16 MiB: the weights travel in pieces
    split -b 15M -d "/tmp/adapter-$best/adapter_model.safetensors" "$OUT/weights.part"
    sha256sum "/tmp/adapter-$best/adapter_model.safetensors" | cut -d' ' -f1 >"$OUT/weights.sha256"
    ls -la "$OUT"
}

unpack() {  # here: the returned files -> an adapter folder
    local from="$1" to="$2"
    mkdir -p "$to" && cp "$from/adapter_card.json" "$from/adapter_config.json" "$to/"
    cat "$from"/weights.part* >"$to/adapter_model.safetensors"
    [ "$(sha256sum "$to/adapter_model.safetensors" | cut -d' ' -f1)" = "$(cat "$from/weights.sha256")" ] \
        || { echo "error: the joined adapter weights do not match their checksum" >&2; exit 2; }
    echo "adapter in $to"
}

case "${1:-}" in
    pack) pack ;;
    stage) stage "${2:?which group}" ;;
    train) shift; train "$@" ;;
    unpack) unpack "${2:?returned folder}" "${3:?adapter folder}" ;;
    *) echo "usage: $0 pack [MODEL] | stage K | train [CONFIG...] | unpack DIR OUT" >&2; exit 2 ;;
esac
