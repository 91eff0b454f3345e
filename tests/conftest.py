"""Test set-up: 8 fake CPU devices (set before JAX starts), the data dir, float64 on demand."""

import os

os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

_DEFAULT_DATA_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "datasets"
_REPO = pathlib.Path(__file__).resolve().parents[1]

# Many tests build the same programs through fresh closures (and subprocess tests restart JAX);
# XLA's persistent cache turns those recompiles into cache reads. Ignored by git.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_REPO / ".pytest_cache" / "jax"))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture
def x64():
  """Runs a test with jax_enable_x64 on, restoring the previous setting afterwards."""
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  try:
    yield
  finally:
    jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  """The real datasets ($JTRANSFER_DATA_DIR, else ../shared/datasets); skips when absent."""
  path = pathlib.Path(os.environ.get("JTRANSFER_DATA_DIR") or _DEFAULT_DATA_DIR)
  if not (path / "mnist").is_dir():
    pytest.skip(f"real datasets not found at {path} (set JTRANSFER_DATA_DIR)")
  return path


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
  """Drops JAX's compiled executables after each test module. A pytest worker runs hundreds of
  modules; every jitted executable keeps its machine code mapped, and with the score tests'
  many shapes one worker came near the kernel's map limit (vm.max_map_count 65,530): LLVM's
  JIT then failed with "Failed to materialize symbols" and threads could not start."""
  yield
  jax.clear_caches()
