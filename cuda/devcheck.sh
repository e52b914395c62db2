#!/bin/bash
# devcheck.sh: `make cuda-check` for a lent GPU machine that has CUDA's
# compiler and libraries but no Go. `make cuda-devpack` (on the build
# machine) leaves in .devbuild/ the cuda package's test binary as one
# relocatable object (Go's external-link input, OpenBLAS folded in); this
# script compiles the kernels with that machine's nvcc, links the object
# against its cudart and cuBLAS, runs every CUDA test (each launch
# synchronised and checked), then the GPU benchmarks, and prints the table.
# Logs go to $OUT (or .devbuild/out).
#
# Knobs (environment): TEST_RUN, TEST_TIMEOUT (the CUDA tests: a -run
# pattern; each suite's limit, default 240 s), TEST_UNVERIFIED=1 (the
# devnet tests a second time with every gated path open:
# DISTILL_CUDA_UNVERIFIED=1, results named open:…), TEST_SERIAL=1 (the
# suites one after another, not at once), SKIP_KERNEL_TESTS, SKIP_KERNEL_BENCH, BENCH_RUN, BENCH_TIME,
# BENCH_TIMEOUT (the kernel benchmarks), DECODE_BENCH=shape (inference on
# the GPU: the general pass, fused, fused with graphs; DECODE_OFFLOAD=N adds
# each quant's default run with the first N layers on the CPU, as serve's
# --cpu-offload; DECODE_CONTEXT=N adds each quant's default run decoding
# after N cached positions: the cache mirrored in bf16, in f32, and its
# attention split into chunks, DISTILL_CUDA_DECODE_SPLIT),
# DISTILL_BENCH_STEP=shape:seq,…
# STEP_TIME, STEP_TIMEOUT (the training step), STEP_ATTN=gemm|simple (the
# step again with another attention), STEP_KEEP=0 (skip the step again with
# every layer's activations kept), STEP_SEQS=k (the step and the kept step
# again with k sequences packed a step: DISTILL_BENCH_SEQS), STEP_VARIANTS="v1 heavy prefetch fuseddq splitkv splitkv-heavy splitkv-keep notrim
# occ3 occ3-keep stages3 stages3-keep nohalfdy nohalfdy-keep halfgu halfgu-keep swigluu swigluu-keep swigluda swigluda-keep swigluda-u swigluda-dropout rowsdb rowsdb-keep colda colda-dropout rowsums rowsums-dropout lorasums lorasums-keep lorasums-dropout noset noqkv nogroup nogroup-dropout nodropdx nodropreuse nonorm unfused selective dropout graphs graphs-keep keepf32 dpo kd dpo-graphs kd-graphs" (the step again with each path turned on
# or off against the defaults: variant_env below; in one process,
# BenchmarkStepSweep, STEP_ROUNDS rounds (default 2) of every variant in
# turn, each line beside its baseline's, with STEP_ALL's and STEP_SEQS's
# steps, the call's time less STEP_SWEEP_RESERVE seconds; STEP_SWEEP=0 a
# process a step as before), STEP_ALL=1 (the steps
# again, recomputing, keeping all and keeping the attention side, with
# every gated path open),
# SKIP_E2E, SANITIZE=1
# (compute-sanitizer), NCU=1 (NCU_SKIP, NCU_COUNT, NCU_TIMEOUT: per-kernel
# times; DISTILL_BENCH_KEEP=1 profiles the step that keeps its
# activations), NCU_DETAIL=1 (what limits the flash kernels and a sample
# of the step's largest: ncu_detail below), CUDA_ARCH, DEADLINE (seconds from the start: each part
# that would run past it is skipped, and every timeout is cut to end before
# it, so the logs and the table are written before the call's limit; set
# it ~30 s under the run's timeout_s), PLAN=1|2 (the next GPU session's
# plan, BENCHMARKS.md: knobs preset in priority order, each still
# overridable).
set -u -o pipefail  # a relabelled run's status is its test binary's, not sed's
OUT=${OUT:-.devbuild/out}
# The kernels are built apart from `make cuda`'s cuda/build (this build is
# for one architecture, the device's).
BUILD=/tmp/distill-devcheck-build
mkdir -p "$OUT" "$BUILD" && OUT=$(readlink -f "$OUT")
exec > >(tee "$OUT/devcheck.log") 2>&1
tee_pid=$!
trap 'exec 1>&- 2>&-; wait $tee_pid' EXIT  # the log's last lines reach the file
step() { echo "== $* ($(date +%T), $(left) s left)"; }
START=$(date +%s)
left() { echo $((${DEADLINE:-86400} - $(date +%s) + START)); }
# tmo N: N seconds, or what is left before DEADLINE less 20 s for the table.
tmo() {
  local l=$(($(left) - 20))
  if [ "$l" -lt "$1" ]; then echo $((l > 1 ? l : 1)); else echo "$1"; fi
}
# fits N WHAT: whether N seconds are left before DEADLINE; says what it
# skips (again at the end: skipped).
skipped=""
fits() {
  [ "$(left)" -ge "$1" ] && return 0
  echo "-- skipped for the deadline ($(left) s left, needs ~$1): $2"
  skipped+="  $2"$'\n'
  return 1
}

# The next GPU session's two calls (BENCHMARKS.md, "Next GPU session"),
# most needed first: 1 — every test with the defaults (paths turned on
# without a GPU since session 9 among them), again with every gate open,
# the end-to-end runs, then the headline steps; 2 — the gated and
# alternative paths' steps and the decode benchmarks.
case "${PLAN:-}" in
  1)
    : "${TEST_UNVERIFIED:=1}" "${BENCH_RUN:=AttentionGemm|DecodeAttention|NF4MatVec|SwiGLUU|SwiGLUDA|RowsDB|ColSums|RowSums}" "${BENCH_TIME:=10x}"
    : "${DISTILL_BENCH_STEP:=qwen2.5-1.5b:2048}" "${STEP_TIME:=3x}" "${STEP_ALL:=1}" "${DEADLINE:=540}"
    : "${STEP_SEQS:=4}" "${STEP_SWEEP_RESERVE:=210}" "${NCU_DETAIL:=1}"
    ;;
  2)
    : "${SKIP_KERNEL_TESTS:=1}" "${TEST_RUN:=^(TestKVMirrorBF16|TestMirrorKindIsPlanned|TestDecodeSplit)$}" "${SKIP_KERNEL_BENCH:=1}"
    : "${SKIP_E2E:=1}" "${STEP_KEEP:=0}" "${STEP_TIME:=3x}" "${DEADLINE:=540}"
    : "${DISTILL_BENCH_STEP:=qwen2.5-0.5b:1024,qwen2.5-1.5b:2048}"
    : "${STEP_VARIANTS:=nohalfdy nohalfdy-keep lorasums lorasums-keep lorasums-dropout splitkv splitkv-heavy splitkv-keep occ3 occ3-keep stages3 stages3-keep swigluu swigluu-keep swigluda swigluda-keep rowsdb rowsdb-keep colda rowsums halfgu halfgu-keep swigluda-u swigluda-dropout colda-dropout rowsums-dropout graphs graphs-keep fuseddq nogroup dropout nogroup-dropout nodropdx nodropreuse heavy prefetch selective dpo kd dpo-graphs kd-graphs notrim noset noqkv keepf32 nonorm}"
    : "${STEP_ALL:=1}" "${STEP_SEQS:=4}"  # in the sweep beside the variants (PLAN=1's tests may leave them no time)
    : "${DECODE_BENCH:=qwen2.5-0.5b}" "${DECODE_CONTEXT:=8192}" "${DECODE_OFFLOAD:=4}" "${STEP_SWEEP_RESERVE:=120}"
    ;;
  "") ;;
  *) echo "PLAN=$PLAN: 1 or 2"; exit 2 ;;
esac
export DISTILL_BENCH_STEP

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
NVCC=$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)
[ -n "$NVCC" ] || { echo "no nvcc"; exit 2; }
"$NVCC" --version | tail -2
CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
echo "CUDA_HOME=$CUDA_HOME"

step libraries
mkdir -p /tmp/cl
LIBPATH=""
for l in cublas cublasLt cudart; do
  # nvcc's own toolkit first (its version must match the objects nvcc
  # makes), then anywhere else; the newest version within each.
  f=$(find "$CUDA_HOME" -name "lib$l.so.[0-9]*" 2>/dev/null | sort -V | tail -1)
  [ -n "$f" ] || f=$(find /usr/local /usr/lib /opt -name "lib$l.so.[0-9]*" 2>/dev/null | sort -V | tail -1)
  [ -n "$f" ] || { echo "no lib$l.so"; exit 2; }
  echo "lib$l: $f"
  ln -sf "$f" /tmp/cl/lib$l.so
  LIBPATH="$LIBPATH:$(dirname "$f")"
done
export LD_LIBRARY_PATH="${LIBPATH#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

ARCH=${CUDA_ARCH:-90}
step "kernels (nvcc, sm_$ARCH)"
# A second call on the still-warm machine (PLAN=2 after PLAN=1) reuses the
# library its first built from the same sources with the same nvcc: the
# key is their hash (the kernels, this script's flags, nvcc's version).
NVCCFLAGS="-O3 -std=c++17 -Xcompiler -fPIC --expt-relaxed-constexpr"
key=$({ cat cuda/kernels/*; "$NVCC" --version; echo "$ARCH $NVCCFLAGS"; } | sha256sum | cut -c1-16)
if [ -f "$BUILD/libdistillcuda.a" ] && [ "$(cat "$BUILD/key" 2>/dev/null)" = "$key" ]; then
  echo "the kernels as built by an earlier call (key $key)"
else
  rm -f "$BUILD"/*.o "$BUILD"/libdistillcuda.a "$BUILD/key"  # nothing stale from an earlier call
  pids=()
  for f in cuda/kernels/*.cu; do
    # shellcheck disable=SC2086 # NVCCFLAGS is words
    "$NVCC" $NVCCFLAGS -gencode arch=compute_$ARCH,code=sm_$ARCH \
      -c "$f" -o "$BUILD/$(basename "$f" .cu).o" & pids+=($!)
  done
  fail=0
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  if [ $fail = 1 ]; then
    echo "nvcc failed: falling back to the carried library (built with the build machine's nvcc)"
    cp .devbuild/libdistillcuda.a "$BUILD"/libdistillcuda.a
  else
    ar rcs "$BUILD"/libdistillcuda.a "$BUILD"/*.o && echo "$key" > "$BUILD/key"
  fi
fi

link() { # link NAME [flags]: .devbuild/NAME.o.xz → /tmp/NAME
  n=$1; shift
  xz -dc .devbuild/$n.o.xz > /tmp/$n.o &&
  gcc -m64 -o /tmp/$n -Wl,--export-dynamic-symbol=_cgo_panic -Wl,--export-dynamic-symbol=_cgo_topofstack \
    -Wl,--export-dynamic-symbol=crosscall2 "$@" /tmp/$n.o -L"$BUILD" -ldistillcuda -L/tmp/cl -lcublas -lcublasLt \
    -lcudart -lstdc++ -lm -lpthread -ldl -lrt -no-pie
}
step link
link cuda.test || exit 3
link devnet.test || exit 3
# go-nvml resolves its symbols at run time (dlopen), sqlite exports callbacks.
link distill -Wl,--export-dynamic -Wl,--unresolved-symbols=ignore-in-object-files -lresolv || exit 3
ldd /tmp/cuda.test | grep -E "cu|blas"

# Each launch synchronised and checked, so an asynchronous fault names its op.
export DISTILL_CUDA_REQUIRE=1
: > "$OUT/tests.log"
: > "$OUT/bench.log"

# The parts below, run in the order at the end: correctness first (the
# defaults and every gate open, at once), then the headline step, then the
# gated and packed steps.

# The cuda tests, the devnet tests and (TEST_UNVERIFIED=1) the devnet tests
# again with every gated path open (each gate's own variable still rules;
# results named open:…) — three processes at once: each is one test at a
# time, most of it the host's reference sums or the synchronised launches'
# round trips, so together they take about the longest one's time where one
# after another took the sum (TEST_SERIAL=1: one after another). No
# benchmark runs beside them. Their logs go into tests.log in that order.
tests_all() {
  step tests
  local logs=() pids=() t=${TEST_TIMEOUT:-240}
  run_tests() { # run_tests NAME LOG DIR BINARY [VAR=value ...]: one suite, its log apart
    local name=$1 log=$2 dir=$3 bin=$4; shift 4
    fits 60 "$name" || return 0
    logs+=("$log")
    if [ "${TEST_SERIAL:-0}" = 1 ]; then
      suite "$name" "$log" "$dir" "$bin" "$@"
    else
      suite "$name" "$log" "$dir" "$bin" "$@" &
      pids+=($!)
    fi
  }
  suite() {
    local name=$1 log=$2 dir=$3 bin=$4; shift 4
    (cd "$dir" && env DISTILL_CUDA_SYNC=1 "$@" timeout "$(tmo "$t")" "$bin" -test.v -test.count=1 \
      -test.run "${TEST_RUN:-.}") > "$log" 2>&1
    echo "$name exit $?"
  }
  [ -n "${SKIP_KERNEL_TESTS:-}" ] || run_tests "cuda tests" /tmp/tests-cuda.log cuda /tmp/cuda.test
  run_tests "devnet tests" /tmp/tests-devnet.log cuda/devnet /tmp/devnet.test
  if [ "${TEST_UNVERIFIED:-0}" = 1 ]; then
    run_tests "devnet tests, every gate open" /tmp/tests-open.log cuda/devnet /tmp/devnet.test DISTILL_CUDA_UNVERIFIED=1
  fi
  for p in "${pids[@]}"; do wait "$p"; done
  for l in "${logs[@]}"; do
    if [ "$l" = /tmp/tests-open.log ]; then
      sed -E "s/^(\s*)--- (PASS|FAIL|SKIP): /\1--- \2: open:/" "$l"
    else
      cat "$l"
    fi
  done >> "$OUT/tests.log"
}

tests_summary() {
  grep -E "^(--- |ok|FAIL|PASS)|^\s+\S+_test.go|panic" "$OUT/tests.log" | head -150
  failed=$(grep -E "^--- FAIL" "$OUT/tests.log" | awk '{sub(/^open:/, "", $3); print $3}' | sort -u | paste -sd'|')
  # A failure with every gate open reruns with them open.
  open=$(grep -qE "^--- FAIL: open:" "$OUT/tests.log" && echo 1 || echo "${DISTILL_CUDA_UNVERIFIED:-}")
  if [ -n "$failed" ] && [ -n "${SANITIZE:-}" ] && command -v compute-sanitizer >/dev/null && fits 60 "compute-sanitizer"; then
    step "compute-sanitizer on $failed"
    (cd cuda && DISTILL_CUDA_UNVERIFIED=$open timeout "$(tmo 120)" compute-sanitizer --print-limit 20 /tmp/cuda.test -test.count=1 \
      -test.run "^($failed)\$") > "$OUT/sanitizer.log" 2>&1
    (cd cuda/devnet && DISTILL_CUDA_UNVERIFIED=$open timeout "$(tmo 120)" compute-sanitizer --print-limit 20 /tmp/devnet.test \
      -test.count=1 -test.run "^($failed)\$") >> "$OUT/sanitizer.log" 2>&1
    grep -vE "^=== RUN" "$OUT/sanitizer.log" | tail -60
  fi
}

kernel_bench() {
  [ -z "${SKIP_KERNEL_BENCH:-}" ] || return 0
  step "kernel benchmarks"
  if fits 40 "kernel benchmarks"; then
    (cd cuda && timeout "$(tmo ${BENCH_TIMEOUT:-150})" /tmp/cuda.test -test.run '^$' -test.bench "${BENCH_RUN:-.}" \
      -test.benchtime ${BENCH_TIME:-20x}) >> "$OUT/bench.log" 2>&1
    echo "kernel benchmarks exit $?"
  fi
}

e2e() {
  [ -z "${SKIP_E2E:-}" ] || return 0
  fits 120 "end-to-end runs" || return 0
  step "distill train sft: cuda then cpu, the same run"
  mkdir -p /tmp/e2e/tok && tar -C /tmp/e2e/tok -xJf .devbuild/qwen3-tokenizer.tar.xz
  /tmp/distill demo-model --force --out /tmp/e2e/base --tokenizer /tmp/e2e/tok
  for dev in cuda cpu; do
    echo "-- --device $dev"
    timeout "$(tmo 120)" /tmp/distill train sft --model /tmp/e2e/base --data examples/tickets/train.jsonl --steps 40 --lr 0.003 \
      --device $dev --db /tmp/e2e/$dev.db --out /tmp/e2e/run-$dev --checkpoint-every 0 > /tmp/e2e/sft-$dev.log 2>&1
    echo "exit $?"; grep -vE "^\s+(adapter|gradients|optimizer|activations|workspace|runtime|total) " /tmp/e2e/sft-$dev.log | tail -12
  done
  step "distill train dpo and kd: cuda then cpu"
  for m in dpo kd; do
    args="--data examples/preferences/train.jsonl"
    [ $m = kd ] && args="--data examples/tickets/train.jsonl --teacher /tmp/e2e/base"
    for dev in cuda cpu; do
      fits 30 "$m --device $dev" || continue
      echo "-- $m --device $dev"
      timeout "$(tmo 120)" /tmp/distill train $m --model /tmp/e2e/base $args --steps 20 --lr 0.003 \
        --device $dev --db /tmp/e2e/$m-$dev.db --out /tmp/e2e/$m-$dev --checkpoint-every 0 > /tmp/e2e/$m-$dev.log 2>&1
      echo "exit $?"; grep -E "^step (1|20)/|val_|Error|error" /tmp/e2e/$m-$dev.log | tail -6
    done
  done
  step "distill eval classify, the cuda run's adapter: cuda then cpu"
  for dev in cuda cpu; do  # label likelihoods: branched passes (device-resident on cuda)
    fits 30 "eval classify --device $dev" || continue
    echo "-- --device $dev"
    timeout "$(tmo 120)" /tmp/distill eval classify --model /tmp/e2e/base --adapter /tmp/e2e/run-cuda/adapter \
      --data examples/tickets/val.jsonl --device $dev --db /tmp/e2e/eval-$dev.db > /tmp/e2e/eval-$dev.log 2>&1
    echo "exit $?"; grep -E "accuracy|macro-F1|op by op|rror" /tmp/e2e/eval-$dev.log | head -6
  done
}

# bench_decode WHAT [env…] -- [flags…]: one `distill bench --device cuda` run.
bench_decode() {
  local what=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  fits 25 "decode: $what" || return 0
  echo "$what"
  env "${envs[@]}" timeout "$(tmo 180)" /tmp/distill bench --device cuda --shape "$DECODE_BENCH" --prefill 512 --decode 128 \
    --cache /tmp/distill-bench "$@" 2>&1 | grep -vE "^machine"
}

decode() {
  # Inference on the GPU, bf16 and NF4 weights, through the device-resident
  # decoder (cuda/devnet: weights and KV cache on the device).
  [ -n "${DECODE_BENCH:-}" ] || return 0
  step "distill bench --device cuda: $DECODE_BENCH"
  for q in none nf4; do
    # A decoded token by the general pass (a prompt's GEMMs,
    # DISTILL_CUDA_FUSED=0), by the fused kernels, and by their recording
    # replayed as a CUDA graph (the default).
    bench_decode "quant $q, general pass" DISTILL_CUDA_FUSED=0 DISTILL_CUDA_GRAPHS=0 -- --quant $q
    bench_decode "quant $q, fused decode, graphs 0" DISTILL_CUDA_FUSED=1 DISTILL_CUDA_GRAPHS=0 -- --quant $q
    bench_decode "quant $q, fused decode, graphs 1" DISTILL_CUDA_FUSED=1 DISTILL_CUDA_GRAPHS=1 -- --quant $q
    if [ -n "${DECODE_CONTEXT:-}" ]; then  # attention over a long cache: the defaults (a bf16 mirror), an f32 mirror, split decoding
      for v in DISTILL_CUDA_KV_BF16=1 DISTILL_CUDA_KV_BF16=0 DISTILL_CUDA_DECODE_SPLIT=1; do
        bench_decode "quant $q, after $DECODE_CONTEXT positions, $v" "$v" -- --quant $q --decode-context "$DECODE_CONTEXT"
      done
    fi
    if [ -n "${DECODE_OFFLOAD:-}" ]; then  # the hybrid: the first N layers on the host, each pass handing the device their output
      bench_decode "quant $q, --cpu-offload $DECODE_OFFLOAD" -- --quant $q --cpu-offload "$DECODE_OFFLOAD"
    fi
  done
}

# bench_step LABEL [env…]: BenchmarkStep once more, its lines labelled
# BenchmarkStep[LABEL] (none for the plain run).
bench_step() {
  local label=$1; shift
  fits 45 "step${label:+ [$label]}" || return 0
  (cd cuda/devnet && env "$@" timeout "$(tmo ${STEP_TIMEOUT:-240})" /tmp/devnet.test -test.run '^$' -test.bench Step \
    -test.benchtime ${STEP_TIME:-5x} | sed "s/^BenchmarkStep/BenchmarkStep${label:+[$label]}/") >> "$OUT/bench.log" 2>&1
  echo "training step${label:+ ($label: $*)} exit $?"
}

step_main() {
  step "training step ${DISTILL_BENCH_STEP:-}"
  bench_step ""
  if [ -n "${STEP_ATTN:-}" ]; then  # the step again with another attention (simple, gemm)
    bench_step "$STEP_ATTN" DISTILL_BENCH_KEEP=0 DISTILL_BENCH_ATTN=$STEP_ATTN
  fi
  if [ "${STEP_KEEP:-1}" = 1 ]; then  # the step again keeping every layer's activations (no recomputed forward)
    bench_step keep DISTILL_BENCH_KEEP=1
  fi
}

step_seqs() {  # k sequences a step: what of the step is fixed (launches, the weights' staging)
  [ -n "${STEP_SEQS:-}" ] || return 0
  bench_step "seqs=$STEP_SEQS" DISTILL_BENCH_KEEP=0 DISTILL_BENCH_SEQS="$STEP_SEQS"
  bench_step "keep,seqs=$STEP_SEQS" DISTILL_BENCH_KEEP=1 DISTILL_BENCH_SEQS="$STEP_SEQS"
}

# The step again for each variant named in STEP_VARIANTS, each one path
# turned on or off against the defaults (the gates in cuda/devnet/net.go).
variant_env() {
  case $1 in
    v1) echo DISTILL_CUDA_FLASH_ASYNC=0 ;;            # the flash kernels' synchronous tiles
    heavy) echo DISTILL_CUDA_FLASH_HEAVY=1 ;;         # flash blocks heaviest first (gated)
    prefetch) echo DISTILL_CUDA_FLASH_PREFETCH=1 ;;   # dk/dv's row statistics by cp.async (gated)
    fuseddq) echo DISTILL_CUDA_FLASH_FUSED_DQ=1 ;;    # dq added up by the dk/dv kernel, no dq kernel (gated)
    splitkv) echo DISTILL_CUDA_FLASH_SPLIT=1 ;;       # each key block's dk/dv work split between two blocks (gated)
    splitkv-heavy) echo DISTILL_CUDA_FLASH_SPLIT=1 DISTILL_CUDA_FLASH_HEAVY=1 ;;  # the same, heaviest blocks first
    splitkv-keep) echo DISTILL_CUDA_FLASH_SPLIT=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    occ3) echo DISTILL_CUDA_FLASH_OCC3=1 ;;           # dk/dv built for three blocks an SM, registers spilled (gated)
    occ3-keep) echo DISTILL_CUDA_FLASH_OCC3=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    stages3) echo DISTILL_CUDA_FLASH_STAGES3=1 ;;     # the flash kernels with three buffers of tiles, one barrier a tile (gated)
    stages3-keep) echo DISTILL_CUDA_FLASH_STAGES3=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    notrim) echo DISTILL_CUDA_RECOMPUTE_TRIM=0 ;;     # the whole forward recomputed
    nohalfdy) echo DISTILL_CUDA_HALF_DY=0 ;;          # gate's and up's dy in f32, staged apart, the adapter's du and dB in TF32 (session 29's default off)
    nohalfdy-keep) echo DISTILL_CUDA_HALF_DY=0 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    halfgu) echo DISTILL_CUDA_HALF_GU=1 ;;            # gate's and up's GEMMs write g and up in bf16 (gated)
    halfgu-keep) echo DISTILL_CUDA_HALF_GU=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    swigluu) echo DISTILL_CUDA_SWIGLU_U=1 ;;          # the down adapter's u summed by the SwiGLU forward, no TF32 GEMM over a (gated)
    swigluu-keep) echo DISTILL_CUDA_SWIGLU_U=1 DISTILL_BENCH_KEEP=1 ;;  # the same kept compact: no f32 a written at all (against [keep])
    swigluda) echo DISTILL_CUDA_SWIGLU_DA=1 ;;        # the down adapter's dA summed by the SwiGLU backward, no TF32 GEMM over a (gated)
    swigluda-keep) echo DISTILL_CUDA_SWIGLU_DA=1 DISTILL_BENCH_KEEP=1 ;;  # the same kept compact: the backward writes no f32 a (against [keep])
    swigluda-u) echo DISTILL_CUDA_SWIGLU_DA=1 DISTILL_CUDA_SWIGLU_U=1 ;;  # with the fused u: the recomputation writes no f32 a either
    swigluda-dropout) echo DISTILL_CUDA_SWIGLU_DA=1 DISTILL_BENCH_DROPOUT=0.05 ;;  # under LoRA dropout, the mask made in the kernel (against [dropout])
    rowsdb) echo DISTILL_CUDA_ROWS_DB=1 ;;            # q's, k's, v's, o's and down's dB summed as their dy is rounded to bf16, no TF32 GEMM (gated)
    rowsdb-keep) echo DISTILL_CUDA_ROWS_DB=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept (against [keep])
    colda) echo DISTILL_CUDA_COL_DA=1 ;;              # every adapter's dA by one pass over its input, no TF32 GEMM (gated)
    colda-dropout) echo DISTILL_CUDA_COL_DA=1 DISTILL_BENCH_DROPOUT=0.05 ;;  # the same under LoRA dropout: no masked copies (against [dropout])
    rowsums) echo DISTILL_CUDA_ROW_SUMS=1 ;;          # every adapter's u and du by one pass over its input, no TF32 GEMM (gated)
    rowsums-dropout) echo DISTILL_CUDA_ROW_SUMS=1 DISTILL_BENCH_DROPOUT=0.05 ;;  # the same under LoRA dropout: no masked copies (against [dropout])
    lorasums) echo DISTILL_CUDA_SWIGLU_U=1 DISTILL_CUDA_SWIGLU_DA=1 DISTILL_CUDA_ROWS_DB=1 DISTILL_CUDA_COL_DA=1 DISTILL_CUDA_ROW_SUMS=1 ;;  # sessions 29-30's adapter sums together: no TF32 reduction left
    lorasums-keep) echo DISTILL_CUDA_SWIGLU_U=1 DISTILL_CUDA_SWIGLU_DA=1 DISTILL_CUDA_ROWS_DB=1 DISTILL_CUDA_COL_DA=1 DISTILL_CUDA_ROW_SUMS=1 DISTILL_BENCH_KEEP=1 ;;
    lorasums-dropout) echo DISTILL_CUDA_SWIGLU_U=1 DISTILL_CUDA_SWIGLU_DA=1 DISTILL_CUDA_ROWS_DB=1 DISTILL_CUDA_COL_DA=1 DISTILL_CUDA_ROW_SUMS=1 DISTILL_BENCH_DROPOUT=0.05 ;;
    noset) echo DISTILL_CUDA_BWD_SET=0 ;;             # gradient buffers zeroed, then added to
    noqkv) echo DISTILL_CUDA_QKV_STACK=0 ;;           # q, k, v's backward as three GEMMs
    nogroup) echo DISTILL_CUDA_LORA_GROUP=0 ;;        # the adapter's products one module at a time (not batched per shared input)
    nogroup-dropout) echo DISTILL_CUDA_LORA_GROUP=0 DISTILL_BENCH_DROPOUT=0.05 ;;  # the same under LoRA dropout (against [dropout])
    nodropdx) echo DISTILL_CUDA_DROPOUT_DX=0 DISTILL_BENCH_DROPOUT=0.05 ;;  # under LoRA dropout the adapter's dx term by a GEMM and dropout_add (against [dropout])
    nodropreuse) echo DISTILL_CUDA_DROPOUT_REUSE=0 DISTILL_BENCH_DROPOUT=0.05 ;;  # under LoRA dropout down's dA masks its input again (against [dropout])
    nonorm) echo DISTILL_CUDA_NORM_BF16=0 ;;          # the norms' bf16 operands by a conversion apart
    unfused) echo DISTILL_CUDA_LORA_FUSED=0 ;;        # the adapter's products apart from the base's GEMMs
    selective) echo DISTILL_BENCH_KEEP=attn ;;        # each layer's attention side kept
    dropout) echo DISTILL_BENCH_DROPOUT=0.05 ;;       # LoRA dropout at distill's default (the adapter's backward apart)
    graphs) echo DISTILL_CUDA_STEP_GRAPHS=1 ;;        # each step replayed from its recording (gated)
    graphs-keep) echo DISTILL_CUDA_STEP_GRAPHS=1 DISTILL_BENCH_KEEP=1 ;;  # the same, every layer's activations kept
    keepf32) echo DISTILL_CUDA_KEEP_COMPACT=0 DISTILL_BENCH_KEEP=1 ;;  # every layer's activations kept in full, f32 (against [keep], compact)
    dpo) echo DISTILL_BENCH_METHOD=dpo ;;             # a DPO step as a run takes it (reference log-probs, then the policy's step)
    kd) echo DISTILL_BENCH_METHOD=kd ;;               # a logit-KD step (a same-shape teacher's forward, then the student's)
    dpo-graphs) echo DISTILL_BENCH_METHOD=dpo DISTILL_CUDA_STEP_GRAPHS=1 ;;  # the DPO step replayed (four recordings; its reference on the kept pass)
    kd-graphs) echo DISTILL_BENCH_METHOD=kd DISTILL_CUDA_STEP_GRAPHS=1 ;;    # the KD step replayed (the teacher's pass eager)
    *) return 1 ;;
  esac
}

step_all() {  # the step again with every gated path open, recomputing and keeping
  [ "${STEP_ALL:-0}" = 1 ] || return 0
  for keep in 0 1 attn; do  # recomputing, keeping all, keeping the attention side (Net.KeepAttention)
    bench_step "all,keep=$keep" DISTILL_CUDA_UNVERIFIED=1 DISTILL_BENCH_KEEP=$keep
  done
}

step_variants() {
  local v e
  for v in ${STEP_VARIANTS:-}; do
    e=$(variant_env "$v") || { echo "STEP_VARIANTS: no variant $v"; continue; }
    # Recomputing unless the variant says otherwise, whatever DISTILL_BENCH_KEEP the caller exported.
    # shellcheck disable=SC2086 # e is words of VAR=value
    bench_step "$v" DISTILL_BENCH_KEEP=0 $e
  done
}

# The steps STEP_ALL, STEP_SEQS and STEP_VARIANTS ask for, in one process
# (BenchmarkStepSweep): one model a shape, each variant's step made, warmed
# up and timed in turn, round after round, and compared with its
# baseline's (the default step, or the one with the same DISTILL_BENCH_*
# knobs: [dropout], [dpo], ..., or one the sweep adds: [base,keep=1]) —
# where a process a step paid the start, the model's load and quantisation
# each time. Recomputing unless the variant says otherwise. Its deadline
# is the call's less STEP_SWEEP_RESERVE seconds for what follows (decode,
# kernel benchmarks, end-to-end runs). STEP_SWEEP=0: a process a step.
step_sweeps() {
  if [ "${STEP_SWEEP:-1}" != 1 ]; then
    step_all
    step_seqs
    step_variants
    return
  fi
  local v e spec="" n=${STEP_TIME%x} k=${STEP_SEQS:-}
  if [ "${STEP_ALL:-0}" = 1 ]; then  # every gated path open: recomputing, keeping all, keeping the attention side
    spec+="all:DISTILL_CUDA_UNVERIFIED=1;all,keep=1:DISTILL_CUDA_UNVERIFIED=1 DISTILL_BENCH_KEEP=1;"
    spec+="all,keep=attn:DISTILL_CUDA_UNVERIFIED=1 DISTILL_BENCH_KEEP=attn;"
  fi
  if [ -n "$k" ]; then  # k sequences a step: what of the step is fixed (launches, the weights' staging)
    spec+="seqs=$k:DISTILL_BENCH_SEQS=$k;keep,seqs=$k:DISTILL_BENCH_KEEP=1 DISTILL_BENCH_SEQS=$k;"
  fi
  for v in ${STEP_VARIANTS:-}; do
    e=$(variant_env "$v") || { echo "STEP_VARIANTS: no variant $v"; continue; }
    spec+="$v:$e;"
  done
  [ -n "$spec" ] || return 0
  [[ $n =~ ^[0-9]+$ ]] || n=3
  local secs=$(($(left) - 45 - ${STEP_SWEEP_RESERVE:-0}))
  if [ "$secs" -lt 30 ]; then
    echo "-- skipped for the deadline ($(left) s left, ${STEP_SWEEP_RESERVE:-0} kept for what follows): step sweep"
    skipped+="  step sweep"$'\n'
    return 0
  fi
  step "step sweep (${DISTILL_BENCH_STEP:-default}, ${STEP_ROUNDS:-2} rounds, ${secs} s)"
  # shellcheck disable=SC2097,SC2098 # the variables are the test binary's
  (cd cuda/devnet && DISTILL_BENCH_KEEP=0 DISTILL_BENCH_VARIANTS="$spec" DISTILL_BENCH_ROUNDS=${STEP_ROUNDS:-2} \
    DISTILL_BENCH_SWEEP_STEPS=$n DISTILL_BENCH_SWEEP_SECONDS=$secs timeout "$(tmo $((secs + 25)))" \
    /tmp/devnet.test -test.run '^$' -test.bench StepSweep -test.benchtime 1x) >> "$OUT/bench.log" 2>&1
  echo "step sweep exit $?"
  grep -E "^BenchmarkSweep" "$OUT/bench.log" | tail -120
}

ncu_profile() {
  [ -n "${NCU:-}" ] && command -v ncu >/dev/null || return 0
  fits 60 "ncu" || return 0
  # Each kernel's own time over one step (ncu serialises launches, so the
  # gap to the unprofiled step's time is the host's launch overhead).
  # ncu costs ~10 ms a kernel: NCU_SKIP/NCU_COUNT take a sample (e.g. part
  # of the timed step's backward) instead of all of both steps.
  step "ncu: kernel times (${DISTILL_BENCH_STEP:-default}, skip ${NCU_SKIP:-0}, count ${NCU_COUNT:-all})"
  (cd cuda/devnet && DISTILL_BENCH_PROFILE= timeout "$(tmo ${NCU_TIMEOUT:-180})" ncu --clock-control none \
    --launch-skip ${NCU_SKIP:-0} ${NCU_COUNT:+--launch-count $NCU_COUNT} \
    --metrics gpu__time_duration.sum --csv /tmp/devnet.test -test.run '^$' -test.bench Step -test.benchtime 1x) \
    > /tmp/ncu.csv 2>&1
  echo "ncu exit $?"
  python3 - /tmp/ncu.csv <<'PY' | tee "$OUT/ncu.txt"
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1], errors="replace")) if len(r) > 14]
hdr = rows[0]; k = hdr.index("Kernel Name"); v = hdr.index("Metric Value"); u = hdr.index("Metric Unit")
t = collections.defaultdict(float); n = collections.Counter()
for r in rows[1:]:
    scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1, "us": 1, "msecond": 1e3, "ms": 1e3}[r[u]]
    name = r[k].split("(")[0][:70]
    t[name] += float(r[v].replace(",", "")) * scale; n[name] += 1
tot = sum(t.values())
print(f"kernels {sum(n.values())}, GPU time {tot/1e3:.1f} ms")
for name, us in sorted(t.items(), key=lambda x: -x[1])[:40]:
    print(f"{us/1e3:9.2f} ms {n[name]:6d}x {us/n[name]:8.1f} us  {name}")
PY
}

# What limits the flash kernels and the step's largest (NCU_DETAIL=1):
# each profiled once by ncu (hardware counters; kernel replay, caches
# flushed before each pass, clocks as found) with the sections that say it
# — speed of light, launch and occupancy with each limit, issue rate, pipe
# utilisation, warp stalls per issued instruction — and shared memory's
# wavefronts and bank conflicts; tools/ncureport prints a few lines a
# kernel. First the flash kernels at Qwen2.5-1.5B's heads over 2,048
# tokens (BenchmarkAttentionGemm's flash_async: forward, dq, dk/dv, the
# fused dk/dv, dk/dv built for three blocks an SM, and the three kernels
# with three buffers of tiles; the parent's warm-up calls add the v1 and
# three-buffer forwards), then
# NCU_DETAIL_COUNT (24) of the step's cuBLAS GEMMs, NF4 staging and
# SwiGLU kernels after the first NCU_DETAIL_SKIP (350) such launches (the
# last layers' forward and the first backward's, the step keeping its
# activations), then decode's NF4 matrix-vector kernel at the tall shape
# (BenchmarkNF4MatVec/tall: 31 % of the copy rate in session 5, where its
# comment in matvec.cu predicts 60–75 %). A profiled kernel takes ~1 s.
ncu_detail() {
  [ "${NCU_DETAIL:-0}" = 1 ] || return 0
  command -v ncu >/dev/null || { echo "-- no ncu: ncu detail skipped"; return 0; }
  fits 60 "ncu detail" || return 0
  step "ncu: what limits the flash kernels and the step's largest"
  local what=(--clock-control none --kernel-name-base demangled --csv --page raw --section SpeedOfLight
    --section LaunchStats --section Occupancy --section ComputeWorkloadAnalysis --section WarpStateStats
    --metrics l1tex__data_pipe_lsu_wavefronts_mem_shared.sum,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum)
  (cd cuda && timeout "$(tmo 60)" ncu "${what[@]}" --kernel-name 'regex:k_fa_(fwd|bwd_dq|bwd_dkv)<128' \
    /tmp/cuda.test -test.run '^$' -test.bench 'AttentionGemm/L2048_h12_kv2_hd128/flash_async_(fwd|bwd|fuseddq_bwd|occ3_bwd|stages3_fwd|stages3_bwd)$' \
    -test.benchtime 1x) > /tmp/ncu-attn.csv 2>&1
  echo "ncu (flash kernels) exit $?"
  if fits 40 "ncu detail: the step's kernels"; then
    (cd cuda/devnet && DISTILL_BENCH_PROFILE= DISTILL_BENCH_KEEP=1 timeout "$(tmo 90)" ncu "${what[@]}" \
      --kernel-name 'regex:nvjet|gemm|cutlass|splitK|k_nf4_stage|k_swiglu' --launch-skip "${NCU_DETAIL_SKIP:-350}" \
      --launch-count "${NCU_DETAIL_COUNT:-24}" /tmp/devnet.test -test.run '^$' -test.bench '^BenchmarkStep$' \
      -test.benchtime 1x) > /tmp/ncu-step.csv 2>&1
    echo "ncu (step kernels) exit $?"
  fi
  if fits 25 "ncu detail: decode's NF4 matvec"; then
    (cd cuda && timeout "$(tmo 30)" ncu "${what[@]}" --kernel-name 'regex:k_nf4_matvec<' --launch-count 2 \
      /tmp/cuda.test -test.run '^$' -test.bench 'NF4MatVec/tall$' -test.benchtime 1x) > /tmp/ncu-matvec.csv 2>&1
    echo "ncu (NF4 matvec) exit $?"
  fi
  local csv=() f
  for f in /tmp/ncu-attn.csv /tmp/ncu-step.csv /tmp/ncu-matvec.csv; do [ -f "$f" ] && csv+=("$f"); done
  .devbuild/ncureport "${csv[@]}" 2>&1 | tee "$OUT/ncu-detail.txt"
  # ncu's own complaints, if it profiled nothing
  grep -hE "^==(ERROR|WARNING)==" "${csv[@]}" 2>/dev/null | sort -u | head -10
}

tests_all
tests_summary
step_main
step_sweeps
decode
kernel_bench
ncu_detail
e2e
ncu_profile
grep -E "^Benchmark|FAIL|panic|_test.go" "$OUT/bench.log" | tail -60
for f in /tmp/e2e/*.log; do echo "==== $f"; cat "$f"; done > "$OUT/e2e.log" 2>/dev/null  # one file: $OUT returns at most 8
step table
cat "$OUT/tests.log" "$OUT/bench.log" | .devbuild/cudatable | tee "$OUT/table.txt"
[ -n "$skipped" ] && printf 'skipped for the deadline:\n%s' "$skipped"
nvidia-smi --query-gpu=memory.used,temperature.gpu,clocks.sm --format=csv
