#!/usr/bin/env bash
# Wheels that the GPU acceptance check (benchmarks/gpu_acceptance.py) needs on a GPU machine whose image has CUDA's
# PyTorch, accelerate, peft, pandas, pyarrow, scipy, msgpack, ninja, py-cpuinfo and psutil but neither TRL, DeepSpeed
# nor datasets, and an older transformers: downloaded here for its Python (3.12 by default) into .whl/, at the
# versions of requirements/lock.txt. DeepSpeed has no wheel on the registry: its sdist is built into one here (pure
# Python; its ops compile on first use). Then, there:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_VERSION=${PY_VERSION:-3.12}
DEST=${DEST:-.whl}
PY=${PYTHON:-python3}
pin() { grep -i "^${1//-/[-_]}==" requirements/lock.txt | head -1 || true; }
mkdir -p "$DEST"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for name in trl datasets transformers huggingface-hub tokenizers safetensors dill multiprocess hjson pydantic \
            pydantic-core annotated-types typing-inspection filelock pyyaml tqdm; do
  spec=$(pin "$name"); spec=${spec:-$name}
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    "${platforms[@]}" -d "$DEST" "$spec"
done
"$PY" -m pip wheel -q --no-deps -w "$DEST" "$(pin deepspeed)"
du -ch "$DEST"/*.whl | tail -1
