#!/usr/bin/env bash
# The GPU check: one command on a fresh machine with one GPU, done within GPU_CHECK_BUDGET_S (600) seconds of
# wall time, set-up included.
#
#   benchmarks/gpu/gpu_check.sh [DATA_DIR] [PRETRAINED_FILE]
#
# DATA_DIR holds fer2013/fer2013.csv(.gz) (default: $SEMIFER_DATA, else shared/data or ../shared/data);
# PRETRAINED_FILE is optional backbone weights for the Ada-CM run (else it trains from scratch).
#   1. set-up: the Python that is there ($PYTHON, default python3) with this checkout on PYTHONPATH; pip
#      installs the package only if it cannot be imported, and a failed pip (no index) is logged, not fatal
#   2. the step-speed table on the GPU (benchmarks/speed/step_speed.py): supervised, FixMatch, Ada-CM at the
#      paper's scale (ResNet-18, 224 px, 16 + 16) and the CPU tables' scale, fp32 and bf16, eager; then
#      Ada-CM at the paper's scale compiled (train.compile=true), fp32 and bf16; at most 45 % of the budget
#   3. one Ada-CM run on FER2013 (benchmarks/gpu/gpu_check.py): ResNet-18, 224 px, the paper's 20 x 800 steps of
#      16 + 16, or fewer iterations per epoch when the time left cannot hold them (the result says so)
# Everything goes to $OUT (default benchmarks/out/gpu_check): step_speed.json and step_speed.md (the format of
# BENCHMARKS.md's step-speed table), gpu_adacm_fer2013.json (an SSL-table row), gpu_check.json (phase
# times), nvidia-smi.txt and the logs. GPU_CHECK_TOY=1 runs all of it at toy size on the CPU (synthetic
# faces, tiny steps; tests/test_gpu_check.py does, so CI shows the script runs).
set -euo pipefail
start=$(date +%s)
cd "$(dirname "$0")/../.."
budget=${GPU_CHECK_BUDGET_S:-600}
toy=${GPU_CHECK_TOY:-0}
out=${OUT:-benchmarks/out/gpu_check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
data=${1:-${SEMIFER_DATA:-}}
if [ -z "$data" ]; then
  for d in shared/data ../shared/data; do [ -d "$d" ] && data=$d && break; done
fi
pretrained=${2:-}
py=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log() { echo "[gpu_check $(($(date +%s) - start)) s] $*" | tee -a "$out/gpu_check.log"; }
elapsed() { echo $(($(date +%s) - start)); }

# 1. set-up
if ! "$py" -c "import semifer.cli, torch, torchvision" >"$out/setup.log" 2>&1; then
  log "semifer does not import; pip install -e . (at most 180 s)"
  timeout 180 "$py" -m pip install -q -e . >>"$out/setup.log" 2>&1 || log "pip failed (no index?): see setup.log"
  "$py" -c "import semifer.cli, torch, torchvision" >>"$out/setup.log" 2>&1 \
    || { log "semifer still does not import: see $out/setup.log"; exit 1; }
fi
if [ "$toy" = 1 ]; then
  export CUDA_VISIBLE_DEVICES="" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  eager=(--scales toy --cases adacm --precisions fp32 bf16 --compile off --reps 2 --warmup 1)
  compiled=()
  run_args=(--toy)
else
  "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { log "no CUDA device visible to torch"; exit 1; }
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
  eager=(--scales paper cpu --cases supervised fixmatch adacm --precisions fp32 bf16 --compile off --reps 20
         --warmup 5)
  compiled=(--scales paper --cases adacm --precisions fp32 bf16 --compile on --reps 20 --warmup 3)
  run_args=(--data "$data" ${pretrained:+--pretrained "$pretrained"})
fi
setup_s=$(elapsed)
log "set-up done; python $("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__)')"

# 2. the step-speed table (rows are saved as they finish, so a cut-off phase keeps what it measured)
speed_end=$((budget * 45 / 100))
log "step-speed table, eager"
timeout $((speed_end - $(elapsed) > 10 ? speed_end - $(elapsed) : 10)) \
  "$py" -m benchmarks.speed.step_speed "${eager[@]}" --out "$out" --markdown "$out/step_speed.md" \
  2>&1 | tee -a "$out/step_speed.log" || log "eager table stopped at the phase's time limit"
if [ ${#compiled[@]} -gt 0 ] && [ $((speed_end - $(elapsed))) -gt 60 ]; then
  log "step-speed table, compiled"
  timeout $((speed_end - $(elapsed))) \
    "$py" -m benchmarks.speed.step_speed "${compiled[@]}" --out "$out" --markdown "$out/step_speed.md" \
    2>&1 | tee -a "$out/step_speed.log" || log "compiled table stopped at the phase's time limit"
fi
speed_s=$(elapsed)

# 3. the Ada-CM run, sized to the time left (20 s kept for writing the results)
deadline=$((start + budget - 20))
log "Ada-CM run (deadline in $((deadline - $(date +%s))) s)"
timeout $((deadline - $(date +%s) + 10)) \
  "$py" -m benchmarks.gpu.gpu_check --out "$out" --deadline "$deadline" "${run_args[@]}" \
  2>&1 | tee -a "$out/adacm.log"
total_s=$(elapsed)
cat >"$out/gpu_check.json" <<EOF
{"budget_s": $budget, "setup_s": $setup_s, "speed_table_s": $((speed_s - setup_s)),
 "adacm_s": $((total_s - speed_s)), "total_s": $total_s, "toy": $([ "$toy" = 1 ] && echo true || echo false),
 "data": "$data", "pretrained": "$pretrained"}
EOF
log "done in ${total_s} s: $out"
