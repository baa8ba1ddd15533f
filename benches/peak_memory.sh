#!/bin/sh
# Peak memory (maximum resident set) of the network cases, seg against PyTorch + MONAI, each case in
# a fresh process. Usage: benches/peak_memory.sh [TORCH_BASELINE] (default ../shared/bench/torch_baseline.py);
# needs a release build of seg-bench (cargo build --release -p seg-bench), GNU time, torch and monai.
#
# torch_baseline.py builds the inputs of every case before filtering by --only and keeps them, so its
# run with a filter that matches nothing is the resident base of every run; "step" is a case's peak
# above that base (for seg the base is the bare process). Both columns are printed.
set -e
baseline=${1:-../shared/bench/torch_baseline.py}
bench=${CARGO_TARGET_DIR:-target}/release/seg-bench
peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
seg_base=$(peak "$bench" --only no-such-case)
torch_base=$(peak python3 "$baseline" --only no-such-case)
echo "| case | seg MiB (step) | PyTorch MiB (step) | step ratio |"
echo "| --- | ---: | ---: | ---: |"
for case in unet_train_step_64 unet_infer_64 swin_unetr_train_step_64 swin_unetr_infer_64; do
    s=$(peak "$bench" --only "$case")
    t=$(peak python3 "$baseline" --only "$case")
    awk -v c="$case" -v s="$s" -v sb="$seg_base" -v t="$t" -v tb="$torch_base" 'BEGIN {
        printf "| %s | %.0f (%.0f) | %.0f (%.0f) | %.2f |\n", c, s / 1024, (s - sb) / 1024, t / 1024, (t - tb) / 1024, (s - sb) / (t - tb)
    }'
done
