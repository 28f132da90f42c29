#!/usr/bin/env bash
# One pass over toysup's CUDA paths on a fresh GPU machine (issues #16 and #25), everything written to $OUT/.
#
#   bash benchmarks/gpu_check.sh                         # a GPU box: at most TOYSUP_GPU_CHECK_BUDGET_S (540 s)
#   TOYSUP_GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh # tiny sizes, a minute or two; runs on CPU without CUDA
#
# Assumes `python` (or $PYTHON) has torch, with CUDA on a GPU box. This checkout goes first on PYTHONPATH;
# missing small dependencies are installed with pip, from $TOYSUP_WHEELS (a folder of wheels, e.g. made with
# `pip download -d wheels typer rich tomli-w safetensors pytest`) and else from PyPI when the box reaches it;
# whatever stays missing is listed in $OUT/summary.txt. The engine needs numpy, tomli-w and safetensors
# besides torch; the CLI typer and rich; the tests pytest.
# In order of importance, each step under its own time limit and all within TOYSUP_GPU_CHECK_BUDGET_S (540 s,
# for a 10-minute loan; a step that would start later is skipped), none stopping the script when it fails:
#   1. the environment: torch, CUDA, the GPU, nvidia-smi, Triton;
#   2. the CUDA tests (tests/test_bench.py's test_cuda_*, skipped without CUDA) and the fused kernel's tests
#      (tests/test_triton_kernel.py: compiled on the GPU there, interpreted on a CPU-only box);
#   3. the bench ladder, engine against the tutorial trainer at equal threads from 30 to 100,000 instances, the
#      engine on the fused kernel (--compile kernel) with eager and inductor timed beside it (rung "paths") and
#      the final evaluation timed apart (bench_DEVICE.out is its JSON), and the README's table (bench_DEVICE.md);
#   3b. the issue's end-to-end sweep: 100,000 instances x 10,000 steps, n=20, m=5, batch 1024, on the kernel
#      (benchmarks/sweep_e2e.py; e2e_100k.json is rewritten at every progress event, so a sweep stopped by its
#      time limit still leaves its rate and projected training time);
#   4. `toysup run tms-intro` on the device, wall time end to end, and benchmarks/first_step.py: time to the
#      first progress event (set-up and any compilation) and to the end of the same sweep;
#   5. the benchmark's, gradient and random-number tests, on CPU as the suite runs them;
#   6. with two minutes of the budget left: the ladder on this box's CPU cores (30 to 3,000 instances).
# $OUT/summary.txt collects each step's exit code and time and the headline numbers.

set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
TINY=${TOYSUP_GPU_CHECK_TINY:-0}
BUDGET_S=${TOYSUP_GPU_CHECK_BUDGET_S:-540}
START=$(date +%s)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1 COLUMNS=200 PYTHONUNBUFFERED=1
# The checkout imports the engine as toysup.engine through the link toysup/engine -> ../engine: a copy that
# did not keep the link would fail every step, so say so once, first.
if [ ! -f toysup/engine/__init__.py ]; then
    echo "toysup/engine is not the link to ../engine in this copy (recreate it: ln -s ../engine toysup/engine)" | tee "$SUMMARY"
    exit 2
fi

note() { echo "[$(($(date +%s) - START))s] $*" | tee -a "$SUMMARY"; }
step() {  # step NAME LIMIT_S COMMAND...: stdout to $OUT/NAME.out, stderr to $OUT/NAME.log; exit code and time noted
    local name=$1 limit=$2 t0 rc left
    shift 2
    left=$((BUDGET_S - $(date +%s) + START))
    if [ $left -lt 20 ]; then note "$name: skipped, the ${BUDGET_S}s budget is spent"; return 0; fi
    [ $left -lt "$limit" ] && limit=$left
    t0=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.log"
    rc=$?
    note "$name: exit $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms$([ $rc -eq 124 ] && echo " (stopped at ${limit}s)")"
    return 0
}

# --- 1. the environment -----------------------------------------------------------------------------
$PY - > "$OUT/env.txt" 2>&1 <<'PYTHON'
import os, platform, sys
import torch
print("python", sys.version.split()[0], platform.platform())
print("torch", torch.__version__, "cuda build", torch.version.cuda, "cuda available", torch.cuda.is_available())
print("cpu cores", len(os.sched_getaffinity(0)), "torch threads", torch.get_num_threads())
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton not installed: no fused kernel, no inductor on CUDA")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.1f} GiB, {p.multi_processor_count} SMs, cc {p.major}.{p.minor}")
PYTHON
(command -v nvidia-smi > /dev/null && nvidia-smi >> "$OUT/env.txt" 2>&1) || echo "no nvidia-smi" >> "$OUT/env.txt"
head -5 "$OUT/env.txt" | while read -r line; do note "env: $line"; done
DEVICE=cpu
[ "$($PY -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null)" = 1 ] && DEVICE=cuda
note "device for the checks: $DEVICE"

# --- dependencies -----------------------------------------------------------------------------------
missing() {
    $PY - <<'PYTHON'
import importlib.util
wanted = {"numpy": "numpy", "typer": "typer", "rich": "rich", "plotext": "plotext<6", "textual": "textual",
          "textual_plotext": "textual-plotext", "safetensors": "safetensors", "tomli_w": "tomli-w", "scipy": "scipy",
          "platformdirs": "platformdirs", "pytest": "pytest"}
print(" ".join(pip for mod, pip in wanted.items() if importlib.util.find_spec(mod) is None))
PYTHON
}
read -r -a NEED <<< "$(missing)"
if [ ${#NEED[@]} -gt 0 ] && [ -d "${TOYSUP_WHEELS:-}" ]; then  # wheels brought along, for a box without PyPI
    note "installing missing packages from $TOYSUP_WHEELS: ${NEED[*]}"
    timeout 90 $PY -m pip install -q --disable-pip-version-check --no-index --find-links "$TOYSUP_WHEELS" \
        "${NEED[@]}" >> "$OUT/pip.log" 2>&1 || note "some were not in $TOYSUP_WHEELS: see pip.log"
    read -r -a NEED <<< "$(missing)"
fi
if [ ${#NEED[@]} -gt 0 ]; then
    note "installing missing packages from PyPI: ${NEED[*]}"
    timeout 90 $PY -m pip install -q --disable-pip-version-check --retries 1 --timeout 10 "${NEED[@]}" >> "$OUT/pip.log" 2>&1 \
        || note "pip install failed (no network?): see pip.log"
fi
# No `pip install -e .`: it needs hatchling (a download) and would repoint an existing install; PYTHONPATH
# above puts this checkout first, and every step runs `python -m toysup_tui.cli`, not the `toysup` script.
note "still missing: $(missing)"

# --- 2. the CUDA tests -----------------------------------------------------------------------------
# -o addopts= : the project's addopts need pytest-xdist, which the box may lack.
step tests_cuda 90 $PY -m pytest -o addopts= -p no:cacheprovider -q -rs tests/test_bench.py -k cuda
note "  tests_cuda: $(grep -E "passed|failed|error|skipped|deselected|no tests ran" "$OUT/tests_cuda.out" 2> /dev/null | tail -1)"
step tests_kernel 90 $PY -m pytest -o addopts= -p no:cacheprovider -q -rs tests/test_triton_kernel.py
note "  tests_kernel: $(grep -E "passed|failed|error|skipped|deselected|no tests ran" "$OUT/tests_kernel.out" 2> /dev/null | tail -1)"

# --- 3. the bench ladder ----------------------------------------------------------------------------
if [ "$TINY" = 1 ]; then
    LADDER=(--instances 3,30 --n-features 6 --n-hidden 2 --batch-size 32 --repeats 2)
else
    LADDER=(--instances 30,300,3000,30000,100000 --repeats 2)
fi
KERNEL=(--compile kernel)
[ "$DEVICE" = cuda ] || KERNEL=(--compile auto)
step "bench_$DEVICE" 200 $PY -m toysup_tui.cli bench --device "$DEVICE" "${LADDER[@]}" "${KERNEL[@]}" --json
[ -s "$OUT/bench_$DEVICE.out" ] && $PY benchmarks/ladder.py "$OUT/bench_$DEVICE.out" > "$OUT/bench_$DEVICE.md" 2>> "$OUT/bench_$DEVICE.log" \
    && tee -a "$SUMMARY" < "$OUT/bench_$DEVICE.md"
grep -E "instances:" "$OUT/bench_$DEVICE.log" 2> /dev/null | while read -r line; do note "  $line"; done

# --- 3b. the issue's sweep end to end ---------------------------------------------------------------
if [ "$TINY" = 1 ]; then
    E2E=(--instances 30 --steps 50 --n-features 6 --n-hidden 2 --batch-size 32)
else
    E2E=(--instances 100000 --steps 10000)
fi
step e2e_100k 200 $PY benchmarks/sweep_e2e.py "${E2E[@]}" --device "$DEVICE" "${KERNEL[@]}" --out "$OUT/e2e_100k.json"
note "  e2e_100k: $(cat "$OUT/e2e_100k.json" 2> /dev/null | tr -d '\n ' | head -c 600)"

# --- 4. a real sweep end to end ---------------------------------------------------------------------
SETS=()
[ "$TINY" = 1 ] && SETS=(-s steps=200)
RUNS=$(mktemp -d)
step tms_intro 100 $PY -m toysup_tui.cli run tms-intro --device "$DEVICE" --runs-dir "$RUNS" "${SETS[@]}" --quiet
rm -rf "$RUNS"
step first_step 100 $PY benchmarks/first_step.py tms-intro --device "$DEVICE" "${SETS[@]}"
note "  first_step: $(cat "$OUT/first_step.out" 2> /dev/null)"

# --- 5. the benchmark's, gradient and random-number tests (on CPU, as the suite runs them) --------------
step tests_bench 90 $PY -m pytest -o addopts= -p no:cacheprovider -q -rs tests/test_bench.py \
    tests/test_gradients.py tests/test_rng.py
note "  tests_bench: $(grep -E "passed|failed|error|skipped|deselected|no tests ran" "$OUT/tests_bench.out" 2> /dev/null | tail -1)"

# --- 6. the CPU ladder, if time is left -------------------------------------------------------------
ELAPSED=$(($(date +%s) - START))
if [ "$DEVICE" = cuda ] && [ "$TINY" != 1 ] && [ $ELAPSED -lt $((BUDGET_S - 120)) ]; then
    step bench_cpu 110 $PY -m toysup_tui.cli bench --device cpu --instances 30,300,3000 --repeats 2 --json
    [ -s "$OUT/bench_cpu.out" ] && $PY benchmarks/ladder.py "$OUT/bench_cpu.out" > "$OUT/bench_cpu.md" 2>> "$OUT/bench_cpu.log" \
        && tee -a "$SUMMARY" < "$OUT/bench_cpu.md"
else
    note "CPU ladder skipped (device $DEVICE, tiny $TINY, ${ELAPSED}s elapsed)"
fi
note "done; files in $OUT"
