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
# pattern), TEST_UNVERIFIED=1 (the devnet tests a second time with every
# gated path open: DISTILL_CUDA_UNVERIFIED=1, results named open:…), SKIP_KERNEL_TESTS, SKIP_KERNEL_BENCH, BENCH_RUN, BENCH_TIME,
# BENCH_TIMEOUT (the kernel benchmarks), DECODE_BENCH=shape (inference on
# the GPU: the general pass, fused, fused with graphs; DECODE_OFFLOAD=N adds
# each quant's default run with the first N layers on the CPU, as serve's
# --cpu-offload; DECODE_CONTEXT=N adds each quant's default run decoding
# after N cached positions: the cache mirrored in bf16, in f32, and its
# attention split into chunks, DISTILL_CUDA_DECODE_SPLIT),
# DISTILL_BENCH_STEP=shape:seq,…
# STEP_TIME, STEP_TIMEOUT (the training step), STEP_ATTN=gemm|simple (the
# step again with another attention), STEP_KEEP=0 (skip the step again with
# every layer's activations kept), STEP_VARIANTS="v1 heavy prefetch notrim
# noset noqkv unfused selective dropout graphs graphs-keep keepf32 dpo kd dpo-graphs kd-graphs" (the step again with each path turned on
# or off against the defaults: variant_env below), STEP_ALL=1 (the steps
# again, recomputing, keeping all and keeping the attention side, with
# every gated path open),
# SKIP_E2E, SANITIZE=1
# (compute-sanitizer), NCU=1 (NCU_SKIP, NCU_COUNT, NCU_TIMEOUT: per-kernel
# times; DISTILL_BENCH_KEEP=1 profiles the step that keeps its
# activations), CUDA_ARCH.
set -u -o pipefail  # a relabelled run's status is its test binary's, not sed's
OUT=${OUT:-.devbuild/out}
# The kernels are built apart from `make cuda`'s cuda/build (this build is
# for one architecture, the device's).
BUILD=/tmp/distill-devcheck-build
mkdir -p "$OUT" "$BUILD" && OUT=$(readlink -f "$OUT")
exec > >(tee "$OUT/devcheck.log") 2>&1
tee_pid=$!
trap 'exec 1>&- 2>&-; wait $tee_pid' EXIT  # the log's last lines reach the file
step() { echo "== $* ($(date +%T))"; }

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

step "kernels (nvcc, sm_90)"
ARCH=${CUDA_ARCH:-90}
rm -f "$BUILD"/*.o "$BUILD"/libdistillcuda.a  # nothing stale from an earlier call
pids=()
for f in cuda/kernels/*.cu; do
  "$NVCC" -O3 -std=c++17 -Xcompiler -fPIC --expt-relaxed-constexpr -gencode arch=compute_$ARCH,code=sm_$ARCH \
    -c "$f" -o "$BUILD/$(basename "$f" .cu).o" & pids+=($!)
done
fail=0
for p in "${pids[@]}"; do wait "$p" || fail=1; done
if [ $fail = 1 ]; then
  echo "nvcc failed: falling back to the carried library (built with the build machine's nvcc)"
  cp .devbuild/libdistillcuda.a "$BUILD"/libdistillcuda.a
else
  ar rcs "$BUILD"/libdistillcuda.a "$BUILD"/*.o
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

step tests
# Each launch synchronised and checked, so an asynchronous fault names its op.
export DISTILL_CUDA_REQUIRE=1
: > "$OUT/tests.log"
if [ -z "${SKIP_KERNEL_TESTS:-}" ]; then
  (cd cuda && DISTILL_CUDA_SYNC=1 timeout ${TEST_TIMEOUT:-180} /tmp/cuda.test -test.v -test.count=1 \
    -test.run "${TEST_RUN:-.}") > "$OUT/tests.log" 2>&1
  echo "cuda tests exit $?"
fi
(cd cuda/devnet && DISTILL_CUDA_SYNC=1 timeout ${TEST_TIMEOUT:-180} /tmp/devnet.test -test.v -test.count=1 \
  -test.run "${TEST_RUN:-.}") >> "$OUT/tests.log" 2>&1
echo "devnet tests exit $?"
if [ "${TEST_UNVERIFIED:-0}" = 1 ]; then  # again with every gated path open (each gate's own variable still rules)
  (cd cuda/devnet && DISTILL_CUDA_UNVERIFIED=1 DISTILL_CUDA_SYNC=1 timeout ${TEST_TIMEOUT:-180} /tmp/devnet.test -test.v \
    -test.count=1 -test.run "${TEST_RUN:-.}" 2>&1 | sed -E "s/^(\s*)--- (PASS|FAIL|SKIP): /\1--- \2: open:/") >> "$OUT/tests.log" 2>&1
  echo "devnet tests, every gate open, exit $?"
fi
grep -E "^(--- |ok|FAIL|PASS)|^\s+\S+_test.go|panic" "$OUT/tests.log" | head -150
failed=$(grep -E "^--- FAIL" "$OUT/tests.log" | awk '{sub(/^open:/, "", $3); print $3}' | sort -u | paste -sd'|')
# A failure with every gate open reruns with them open.
open=$(grep -qE "^--- FAIL: open:" "$OUT/tests.log" && echo 1 || echo "${DISTILL_CUDA_UNVERIFIED:-}")
if [ -n "$failed" ] && [ -n "${SANITIZE:-}" ] && command -v compute-sanitizer >/dev/null; then
  step "compute-sanitizer on $failed"
  (cd cuda && DISTILL_CUDA_UNVERIFIED=$open timeout 120 compute-sanitizer --print-limit 20 /tmp/cuda.test -test.count=1 \
    -test.run "^($failed)\$") > "$OUT/sanitizer.log" 2>&1
  (cd cuda/devnet && DISTILL_CUDA_UNVERIFIED=$open timeout 120 compute-sanitizer --print-limit 20 /tmp/devnet.test \
    -test.count=1 -test.run "^($failed)\$") >> "$OUT/sanitizer.log" 2>&1
  grep -vE "^=== RUN" "$OUT/sanitizer.log" | tail -60
fi

step benchmarks
: > "$OUT/bench.log"
if [ -z "${SKIP_KERNEL_BENCH:-}" ]; then
  (cd cuda && timeout ${BENCH_TIMEOUT:-150} /tmp/cuda.test -test.run '^$' -test.bench "${BENCH_RUN:-.}" \
    -test.benchtime ${BENCH_TIME:-20x}) > "$OUT/bench.log" 2>&1
  echo "kernel benchmarks exit $?"
fi
if [ -z "${SKIP_E2E:-}" ]; then
step "distill train sft: cuda then cpu, the same run"
mkdir -p /tmp/e2e/tok && tar -C /tmp/e2e/tok -xJf .devbuild/qwen3-tokenizer.tar.xz
/tmp/distill demo-model --force --out /tmp/e2e/base --tokenizer /tmp/e2e/tok
for dev in cuda cpu; do
  echo "-- --device $dev"
  timeout 120 /tmp/distill train sft --model /tmp/e2e/base --data examples/tickets/train.jsonl --steps 40 --lr 0.003 \
    --device $dev --db /tmp/e2e/$dev.db --out /tmp/e2e/run-$dev --checkpoint-every 0 > /tmp/e2e/sft-$dev.log 2>&1
  echo "exit $?"; grep -vE "^\s+(adapter|gradients|optimizer|activations|workspace|runtime|total) " /tmp/e2e/sft-$dev.log | tail -12
done
step "distill train dpo and kd: cuda then cpu"
for m in dpo kd; do
  args="--data examples/preferences/train.jsonl"
  [ $m = kd ] && args="--data examples/tickets/train.jsonl --teacher /tmp/e2e/base"
  for dev in cuda cpu; do
    echo "-- $m --device $dev"
    timeout 120 /tmp/distill train $m --model /tmp/e2e/base $args --steps 20 --lr 0.003 \
      --device $dev --db /tmp/e2e/$m-$dev.db --out /tmp/e2e/$m-$dev --checkpoint-every 0 > /tmp/e2e/$m-$dev.log 2>&1
    echo "exit $?"; grep -E "^step (1|20)/|val_|Error|error" /tmp/e2e/$m-$dev.log | tail -6
  done
done
fi
if [ -z "${SKIP_E2E:-}" ]; then
step "distill eval classify, the cuda run's adapter: cuda then cpu"
for dev in cuda cpu; do  # label likelihoods: branched passes (device-resident on cuda)
  echo "-- --device $dev"
  timeout 120 /tmp/distill eval classify --model /tmp/e2e/base --adapter /tmp/e2e/run-cuda/adapter \
    --data examples/tickets/val.jsonl --device $dev --db /tmp/e2e/eval-$dev.db > /tmp/e2e/eval-$dev.log 2>&1
  echo "exit $?"; grep -E "accuracy|macro-F1|op by op|rror" /tmp/e2e/eval-$dev.log | head -6
done
fi
if [ -n "${DECODE_BENCH:-}" ]; then
  # Inference on the GPU, bf16 and NF4 weights, through the device-resident
  # decoder (cuda/devnet: weights and KV cache on the device).
  step "distill bench --device cuda: $DECODE_BENCH"
  # Each three times: a decoded token by the general pass (a prompt's
  # GEMMs, DISTILL_CUDA_FUSED=0), by the fused kernels, and by their
  # recording replayed as a CUDA graph (the default).
  for q in none nf4; do
    for mode in ":0" "1:0" "1:1"; do
      IFS=: read -r fused graphs <<< "$mode"
      if [ -n "$fused" ]; then echo "quant $q, fused decode, graphs $graphs"; else echo "quant $q, general pass"; fi
      DISTILL_CUDA_FUSED=${fused:-0} DISTILL_CUDA_GRAPHS=$graphs timeout 120 /tmp/distill bench --device cuda \
        --shape "$DECODE_BENCH" --quant $q --prefill 512 --decode 128 --cache /tmp/distill-bench 2>&1 | grep -vE "^machine"
    done
    if [ -n "${DECODE_CONTEXT:-}" ]; then  # attention over a long cache: the defaults (a bf16 mirror), an f32 mirror, split decoding
      for v in DISTILL_CUDA_KV_BF16=1 DISTILL_CUDA_KV_BF16=0 DISTILL_CUDA_DECODE_SPLIT=1; do
        echo "quant $q, after $DECODE_CONTEXT positions, $v"
        env "$v" timeout 180 /tmp/distill bench --device cuda --decode-context "$DECODE_CONTEXT" \
          --shape "$DECODE_BENCH" --quant $q --prefill 512 --decode 128 --cache /tmp/distill-bench 2>&1 | grep -vE "^machine"
      done
    fi
    if [ -n "${DECODE_OFFLOAD:-}" ]; then  # the hybrid: the first N layers on the host, each pass handing the device their output
      echo "quant $q, --cpu-offload $DECODE_OFFLOAD"
      timeout 180 /tmp/distill bench --device cuda --cpu-offload "$DECODE_OFFLOAD" \
        --shape "$DECODE_BENCH" --quant $q --prefill 512 --decode 128 --cache /tmp/distill-bench 2>&1 | grep -vE "^machine"
    fi
  done
fi
step "training step ${DISTILL_BENCH_STEP:-}"
(cd cuda/devnet && timeout ${STEP_TIMEOUT:-240} /tmp/devnet.test -test.run '^$' -test.bench Step \
  -test.benchtime ${STEP_TIME:-5x}) >> "$OUT/bench.log" 2>&1
echo "training step exit $?"
if [ -n "${STEP_ATTN:-}" ]; then  # the step again with another attention (simple, gemm)
  (cd cuda/devnet && DISTILL_BENCH_ATTN=$STEP_ATTN timeout ${STEP_TIMEOUT:-240} /tmp/devnet.test -test.run '^$' \
    -test.bench Step -test.benchtime ${STEP_TIME:-5x} | sed "s/^BenchmarkStep/BenchmarkStep[$STEP_ATTN]/") >> "$OUT/bench.log" 2>&1
  echo "training step ($STEP_ATTN attention) exit $?"
fi
if [ "${STEP_KEEP:-1}" = 1 ]; then  # the step again keeping every layer's activations (no recomputed forward)
  (cd cuda/devnet && DISTILL_BENCH_KEEP=1 timeout ${STEP_TIMEOUT:-240} /tmp/devnet.test -test.run '^$' \
    -test.bench Step -test.benchtime ${STEP_TIME:-5x} | sed "s/^BenchmarkStep/BenchmarkStep[keep]/") >> "$OUT/bench.log" 2>&1
  echo "training step (activations kept) exit $?"
fi
# The step again for each variant named in STEP_VARIANTS, each one path
# turned on or off against the defaults (the gates in cuda/devnet/net.go).
variant_env() {
  case $1 in
    v1) echo DISTILL_CUDA_FLASH_ASYNC=0 ;;            # the flash kernels' synchronous tiles
    heavy) echo DISTILL_CUDA_FLASH_HEAVY=1 ;;         # flash blocks heaviest first (gated)
    prefetch) echo DISTILL_CUDA_FLASH_PREFETCH=1 ;;   # dk/dv's row statistics by cp.async (gated)
    notrim) echo DISTILL_CUDA_RECOMPUTE_TRIM=0 ;;     # the whole forward recomputed
    noset) echo DISTILL_CUDA_BWD_SET=0 ;;             # gradient buffers zeroed, then added to
    noqkv) echo DISTILL_CUDA_QKV_STACK=0 ;;           # q, k, v's backward as three GEMMs
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
for v in ${STEP_VARIANTS:-}; do
  e=$(variant_env "$v") || { echo "STEP_VARIANTS: no variant $v"; continue; }
  # Recomputing unless the variant says otherwise, whatever DISTILL_BENCH_KEEP the caller exported.
  (cd cuda/devnet && env DISTILL_BENCH_KEEP=0 $e timeout ${STEP_TIMEOUT:-240} /tmp/devnet.test -test.run '^$' -test.bench Step \
    -test.benchtime ${STEP_TIME:-5x} | sed "s/^BenchmarkStep/BenchmarkStep[$v]/") >> "$OUT/bench.log" 2>&1
  echo "training step ($v: $e) exit $?"
done
if [ "${STEP_ALL:-0}" = 1 ]; then  # the step again with every gated path open, recomputing and keeping
  for keep in 0 1 attn; do  # recomputing, keeping all, keeping the attention side (Net.KeepAttention)
    (cd cuda/devnet && DISTILL_CUDA_UNVERIFIED=1 DISTILL_BENCH_KEEP=$keep timeout ${STEP_TIMEOUT:-240} /tmp/devnet.test \
      -test.run '^$' -test.bench Step -test.benchtime ${STEP_TIME:-5x} |
      sed "s/^BenchmarkStep/BenchmarkStep[all,keep=$keep]/") >> "$OUT/bench.log" 2>&1
    echo "training step (every gate open, keep $keep) exit $?"
  done
fi
grep -E "^Benchmark|FAIL|panic|_test.go" "$OUT/bench.log" | tail -40
if [ -n "${NCU:-}" ] && command -v ncu >/dev/null; then
  # Each kernel's own time over one step (ncu serialises launches, so the
  # gap to the unprofiled step's time is the host's launch overhead).
  # ncu costs ~10 ms a kernel: NCU_SKIP/NCU_COUNT take a sample (e.g. part
  # of the timed step's backward) instead of all of both steps.
  step "ncu: kernel times (${DISTILL_BENCH_STEP:-default}, skip ${NCU_SKIP:-0}, count ${NCU_COUNT:-all})"
  (cd cuda/devnet && DISTILL_BENCH_PROFILE= timeout ${NCU_TIMEOUT:-180} ncu --clock-control none \
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
fi
for f in /tmp/e2e/*.log; do echo "==== $f"; cat "$f"; done > "$OUT/e2e.log" 2>/dev/null  # one file: $OUT returns at most 8
step table
cat "$OUT/tests.log" "$OUT/bench.log" | .devbuild/cudatable | tee "$OUT/table.txt"
nvidia-smi --query-gpu=memory.used,temperature.gpu,clocks.sm --format=csv
