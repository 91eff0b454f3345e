#!/usr/bin/env bash
# GPU check (issue 16, item 4): on a machine with one NVIDIA GPU, install the CUDA jaxlib, run the
# tests that matter there, and print in about 11 minutes:
#   1. zoo training img/s, 10 seeds vmapped vs one seed (goal >= 5x the one-seed rate, summed)
#   2. the score job vs its floor at the thesis scale (goal <= 2x)
#   3. the quick thesis CNN study's stage times
#   4. the score core (issue 27): the Gram, covariance and randomized routes' tests, all feature
#      scores ÷ the floor at N = 1000 and 4000, the cost growth with N on both exact routes, and
#      the randomized route against the exact floor
#
#   bash benchmarks/device_check.sh [OUT_DIR]        # OUT_DIR default: $OUT or /tmp/device_check
#   DRY_RUN_CPU=1 bash benchmarks/device_check.sh    # no install, JAX on CPU, tiny sizes: checks
#                                                    # that every step runs (numbers meaningless)
#
# Wheels: with network, pip installs jax[cuda12]; without (the device machine here), put the CUDA
# jaxlib/plugin wheels and jtransfer's dependencies in ./.whl (see the device tool's README) and
# they are installed from there. Data: $JTRANSFER_DATA_DIR (MNIST and Fashion-MNIST are enough).
# Not yet run on a GPU: no device was lent to the tasks that wrote it. Each step has its own
# timeout (they add up to 10.5 min after the install) so one slow step cannot eat the others'.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-/tmp/device_check}}
mkdir -p "$out"
py=${PYTHON:-python3}
dry=${DRY_RUN_CPU:-0}
export PYTHONUNBUFFERED=1 JTRANSFER_QUIET=1 JAX_PLATFORMS=cuda
export JTRANSFER_DATA_DIR=${JTRANSFER_DATA_DIR:-$PWD/shared/datasets}
# Full sizes on the GPU; tiny ones for the CPU dry run.
zoo_seeds=1,10 zoo_steps=20 ckpts=48 study=quick tm=1
floor_args="--reps 3 --n_large 4000 --max_n 32000 --max_seconds 20"
if [ "$dry" = 1 ]; then
  export JAX_PLATFORMS=cpu PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  zoo_seeds=1,2 zoo_steps=2 ckpts=4 study=tiny tm=4  # a loaded CPU: longer limits
  floor_args="--reps 1 --n_large 0 --max_n 1000 --max_seconds 5"
fi

step() { echo; echo "== $1 ($(date +%T))"; }

step "install"
jax_version=$($py -c "import jax; print(jax.__version__)" 2>/dev/null || echo "")
if [ "$dry" = 1 ]; then
  echo "dry run on CPU: no install"
elif compgen -G ".whl/*.whl" >/dev/null; then
  $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  # The CUDA plugin of the jax the project pins (a newer jax could change the numbers).
  $py -m pip install -q "jax[cuda12]${jax_version:+==$jax_version}" -e ".[test]" || exit 1
fi
[ "$dry" = 1 ] || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$py -c "import jax; print('jax', jax.__version__, jax.devices())" || exit 1

step "tests that matter on a GPU (vmapped models, batched scores, sharding)"
# (pooling: the custom-gradient max pool; pretrain: batched seeds = separate seeds, vmapped.)
timeout $((120 * tm)) $py -m pytest -q -x -p no:cacheprovider \
  tests/models_functional_test.py tests/models_pooling_test.py \
  tests/scores_batch_invariance_test.py tests/scores_compute_test.py tests/train_step_test.py \
  tests/sharding_test.py \
  "tests/train_pretrain_test.py::test_batched_seeds_equal_separate_seeds_and_sharded_equals_single_device" \
  2>&1 | tee "$out/tests.log" | tail -n 5
[ "${PIPESTATUS[0]}" = 124 ] && echo "(tests: stopped at the $((120 * tm)) s limit; the log has how far they got)"

step "1. zoo training: one seed vs 10 seeds vmapped (img/s summed over seeds)"
timeout $((75 * tm)) $py benchmarks/zoo_throughput.py --seeds $zoo_seeds --steps $zoo_steps --repeats 3 \
  --cpu_devices 1 --modes loop,vmap 2>&1 | tee "$out/zoo_throughput.log" | tail -n 12

step "2. score job vs its floor, thesis CNN scale (48 checkpoints, 6 taps, N=500)"
timeout $((90 * tm)) $py benchmarks/score_job.py --num_checkpoints $ckpts --loop_checkpoints 2 \
  --io_checkpoints 2 --memory_budget_gb 16 2>&1 | tee "$out/score_job.log" | tail -n 15

step "3. $study thesis CNN study: stage times"
rm -rf "$out/study"
timeout $((165 * tm)) $py launch/sweep.py --config configs/thesis_cnn.py:$study --workdir "$out/study" \
  2>&1 | tee "$out/study.log" | grep -E "^\[sweep\].*done in"

step "4. score core: Gram, covariance and randomized routes, the floor, cost growth (issue 27)"
timeout $((60 * tm)) $py -m pytest -q -x -p no:cacheprovider tests/scores_routes_test.py \
  tests/scores_randomized_test.py tests/scores_sfda_saturation_test.py 2>&1 \
  | tee "$out/score_routes_tests.log" | tail -n 3
timeout $((120 * tm)) $py benchmarks/score_floor.py --what table,growth,randomized $floor_args 2>&1 \
  | tee "$out/score_floor.log" | tail -n 30
step "done"
