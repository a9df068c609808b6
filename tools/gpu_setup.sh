# Shared set-up of the GPU scripts (tools/gpu_check.sh, tools/gpu_verify.sh), sourced:
# $out for the logs, the suite installed, the environment written to $out/env.txt.
out=${OUT:-gpu-logs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# the suite as a user has it: installed (offline: no dependencies, no build isolation), so
# its pytest plugin is registered; the image's own torch, hypothesis and pytest are used
python3 -m pip install --quiet --no-deps --no-build-isolation . > "$out/install.txt" 2>&1 \
  || { echo "installing the suite failed:"; tail -n 20 "$out/install.txt"; exit 1; }
python3 - <<'PY' 2>&1 | tee "$out/env.txt"
import torch, hypothesis, pytest, numpy, platform
print("date", __import__("datetime").date.today())
print("python", platform.python_version(), "torch", torch.__version__, "hypothesis",
      hypothesis.__version__, "pytest", pytest.__version__, "numpy", numpy.__version__)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
import bn_invariants
print("bn_invariants", bn_invariants.__version__, "registry", bn_invariants.registry_hash())
PY
