#!/usr/bin/env bash
# Every run behind the README's results table, with the exact commands.
#
#   DATA=path/to/tiny-imagenet-200.zip RUNS=runs bench/reproduce.sh [lane ...]
#
# Lanes (default: all, run side by side on one GPU; each lane's runs one after another):
#   scratch   resnet18 (18 epochs), then the from-scratch push, then its TTA/ensemble scores
#   transfer  effnet_lite0 linear probe (seed 004's "vanilla transfer"), then full fine-tuning
#   seeds     every seed family with the seed's own recipe, then with ours
#   bench     bench/train_speed.py (run it alone: it times the GPU)
# SMOKE=1 shrinks every run to a few images and one epoch, to check the commands on a CPU.
set -u
DATA=${DATA:?set DATA to the Tiny ImageNet zip or folder}
RUNS=${RUNS:-runs}
PY=${PY:-python3}
mkdir -p "$RUNS"
smoke=()
[ "${SMOKE:-0}" = 1 ] && smoke=(--epochs 1 --train-limit 400 --val-limit 200 --no-compile --quiet)

train() {  # train NAME ARGS...: one run folder RUNS/NAME, its log beside it
  local name=$1; shift
  grep -qs '"status": "done"' "$RUNS/$name/progress.json" && return 0
  echo "[$(date +%T)] start $name" >&2
  $PY -m tinyviz train --data "$DATA" --out "$RUNS/$name" "$@" "${smoke[@]}" \
    >"$RUNS/$name.out" 2>"$RUNS/$name.log"
  echo "[$(date +%T)] end $name rc=$? $(tail -c 300 "$RUNS/$name.out")" >&2
  evaluate "$name"
}

evaluate() {  # evaluate NAME ARGS...: append a score to RUNS/NAME/evals.json
  local name=$1; shift
  [ "${SMOKE:-0}" = 1 ] && set -- "$@" --limit 200
  $PY -m tinyviz evaluate "$RUNS/$name" --data "$DATA" "$@" >>"$RUNS/$name.evals" 2>>"$RUNS/$name.log"
}

# Seed 001's recipe (logreg, mlp, simple_cnn, vgg_like): plain SGD, lr 0.01, batch 100,
# 40 epochs (20 here, for time), L2 5e-4 (Keras' lambda: weight_decay 1e-3 here), rotation,
# shift, brightness and flip.
SEED001=(--optimizer sgd --momentum 0 --no-nesterov --lr 0.01 --schedule constant
         --batch-size 100 --weight-decay 1e-3 --label-smoothing 0 --epochs ${SEED001_EPOCHS:-20}
         --rotate 10 --translate 6 --brightness 0.1 --flip)
# Ours for models without batch norm: AdamW, one-cycle, label smoothing, flip and shift.
OURS_PLAIN=(--optimizer adamw --lr 2e-3 --weight-decay 0.05 --schedule onecycle --warmup 0.2
            --batch-size 512 --label-smoothing 0.1 --epochs 15 --flip --translate 4)
# Ours for batch-normalised networks: SGD with Nesterov momentum, one-cycle.
OURS_BN=(--optimizer sgd --lr 0.2 --weight-decay 5e-4 --schedule onecycle --batch-size 512
         --label-smoothing 0.1 --epochs 10 --flip --translate 4)

lane_seeds() {
  # seed 004's baseline: Adam 1e-3 decayed 0.9 per epoch, label smoothing 0.1, no augmentation
  train inception_v3_like-seed004 --model inception_v3_like --optimizer adam --lr 1e-3 \
    --schedule step --lr-decay 0.9 --weight-decay 0 --label-smoothing 0.1 --batch-size 100 \
    --epochs 6 --no-flip --translate 0 --opt dropout=0 &
  train vgg_like-seed001 --model vgg_like "${SEED001[@]}" &
  wait
  train inception_v3_like-ours --model inception_v3_like "${OURS_BN[@]}" --epochs 8 &
  train vgg_like-ours --model vgg_like "${OURS_PLAIN[@]}" &
  wait
  # seed 003 (model 4): Adam 1e-4, horizontal flip only
  train vgg_bn-seed003 --model vgg_bn --optimizer adam --lr 1e-4 --schedule constant \
    --weight-decay 0 --label-smoothing 0 --batch-size 128 --epochs 10 --flip --translate 0 &
  # seed 002: dropout, flips and small rotations; Adam here (002 tuned lr/wd by random search)
  train googlenet_like-seed002 --model googlenet_like --optimizer adam --lr 1e-3 \
    --schedule step --lr-decay 0.9 --weight-decay 0 --label-smoothing 0 --batch-size 128 \
    --epochs 8 --flip --translate 0 --rotate 10 &
  train logreg-seed001 --model logreg "${SEED001[@]}" &
  train mlp-seed001 --model mlp "${SEED001[@]}" &
  wait
  train simple_cnn-seed001 --model simple_cnn "${SEED001[@]}" &
  train vgg_bn-ours --model vgg_bn "${OURS_BN[@]}" &
  train googlenet_like-ours --model googlenet_like "${OURS_BN[@]}" &
  wait
  train logreg-ours --model logreg "${OURS_PLAIN[@]}" --lr 1e-3 &
  train mlp-ours --model mlp "${OURS_PLAIN[@]}" --lr 1e-3 &
  train simple_cnn-ours --model simple_cnn "${OURS_PLAIN[@]}" &
  wait
}

lane_scratch() {
  # the classic fast recipe: 18 epochs, one-cycle SGD, label smoothing, flip and shift
  train resnet18-e18 --model resnet18 --epochs 18 --compile --optimizer sgd --lr 0.2 \
    --weight-decay 5e-4 --schedule onecycle --batch-size 512 --label-smoothing 0.1
  # pushed: more epochs with mixup/cutmix, keep 8 snapshots for the ensemble
  train resnet18-push --model resnet18 --epochs ${PUSH_EPOCHS:-30} --compile --optimizer sgd \
    --lr 0.2 --weight-decay 5e-4 --schedule onecycle --batch-size 512 --label-smoothing 0.1 --mixup 0.2 \
    --cutmix 1.0 --mix-prob 0.5 --snapshots 8
  for r in resnet18-e18 resnet18-push; do
    evaluate $r --tta flip; evaluate $r --tta 10crop
  done
  evaluate resnet18-push --ensemble 8; evaluate resnet18-push --ensemble 8 --tta flip
}

lane_transfer() {
  # seed 004's vanilla transfer: frozen ImageNet features, a new linear head, Adam 6.5e-4
  # decayed 0.713 per epoch, label smoothing 0.1, no augmentation, 10 epochs
  train effnet_lite0-probe --model effnet_lite0 --opt freeze=true --opt resolution=224 \
    --optimizer adam --lr 6.5e-4 --schedule step --lr-decay 0.713 --weight-decay 0 \
    --label-smoothing 0.1 --batch-size 250 --epochs 6 --no-flip --translate 0 --snapshots 3
  # full fine-tuning at 192 px
  train effnet_lite0-finetune --model effnet_lite0 --opt resolution=192 --opt drop_connect=0.1 \
    --optimizer sgd --lr 0.05 --weight-decay 5e-5 --warmup 0.2 --batch-size 256 --epochs 6 \
    --label-smoothing 0.1 --flip --translate 4 --snapshots 4
  for r in effnet_lite0-probe effnet_lite0-finetune; do
    evaluate $r --tta flip; evaluate $r --tta 10crop
  done
  evaluate effnet_lite0-finetune --ensemble 4 --tta flip
}

lane_bench() {
  $PY bench/train_speed.py --data "$DATA" --model resnet18 --epochs 2 --train-limit 40000
}

lanes=("$@")
[ ${#lanes[@]} -eq 0 ] && lanes=(scratch transfer seeds)
for lane in "${lanes[@]}"; do
  "lane_$lane" &
done
wait
echo "[$(date +%T)] all lanes done" >&2
