#!/usr/bin/env bash
# AWD-LSTM's full PTB configuration through `rnnlab train`, for a GPU.
#
#   bench/gpu_awd.sh PTB_DIR OUT [more rnnlab train flags]
#   bench/gpu_awd.sh ~/data/ptb ptb-awd                   # 500 epochs + 500 fine-tuning, cuda
#   bench/gpu_awd.sh ~/data/ptb ptb-awd --epochs 3        # a first look: the curve of 3 epochs
#   bench/gpu_awd.sh ~/data/ptb ptb-awd --resume          # go on after a stop
#
# PTB_DIR holds ptb.train.txt (or .gz), ptb.valid.txt and ptb.test.txt (`rnnlab data get ptb`).
# The configuration is Merity et al.'s (salesforce/awd-lstm-lm, PTB): 3 LSTM layers of 1150
# units, 400-dimensional embeddings tied to the decoder, and --recipe awd (the regularisers,
# lr 30 on a per-token loss, clip 0.25, variable BPTT around 70, NT-ASGD with nonmono 5) at
# batch 20, 500 epochs and then 500 of fine-tuning, as their README's PTB
# commands (their fine-tuning stops itself once the averaged validation stalls; rnnlab's runs
# its count: stop it with Ctrl-C, which checkpoints, or --patience). One difference: rnnlab's
# layers are all 1150 wide and a 1150 -> 400 projection feeds the tied decoder, where AWD-LSTM
# narrows its last layer to 400; so 32.8M parameters, not 24M.
# Flags after OUT override any of these (e.g. --device cpu --max-steps 3 to try it here).
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
data="$1" out="$2"
shift 2
resume=false
for flag in "$@"; do [ "$flag" = --resume ] && resume=true; done
if $resume; then  # a resumed run keeps its settings; only what follows OUT applies
    exec rnnlab train -o "$out" "$@"
fi
train="$data/ptb.train.txt"
[ -e "$train" ] || train="$train.gz"
exec rnnlab train "$train" --valid "$data/ptb.valid.txt" --test "$data/ptb.test.txt" -o "$out" \
    --recipe awd --layers 3 --hidden-size 1150 --embed-size 400 \
    --batch-size 20 --epochs 500 --finetune 500 --device cuda --checkpoint-every 10m "$@"
