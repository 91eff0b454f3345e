"""The import graph of `jtransfer`, read with `ast`: no cycle, and no import runs back up the
layers (README "Architecture"). Lazy imports inside functions count: they are dependencies too."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Bottom first. A module imports modules of its own layer and of the layers below, never above;
# the layer of a module is that of its package under jtransfer/ (`jtransfer.store.zoo`: "store"),
# "" is the package root `jtransfer/__init__.py`.
LAYERS = (
  ("", "errors", "metrics", "audio"),
  ("scores", "models", "data"),
  ("runtime",),
  ("store",),
  ("train",),
  ("analysis",),
  ("studies",),
  ("jobs", "importers"),
  ("cli", "__main__"),
)
# Folders of the repository that are not the library: the library never imports them.
OUTSIDE = ("configs", "launch", "scripts", "benchmarks", "tests")
# Upward imports still in the tree, each to be removed by the change that names it; an entry
# that no longer holds fails the test, so the list only shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def modules(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """{dotted name: file} of every module of the package under `root/jtransfer`."""
  out = {}
  for path in sorted((root / "jtransfer").rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts.pop()
    out[".".join(parts)] = path
  return out


def _imported(node: ast.AST, name: str, path: pathlib.Path) -> list[str]:
  """The dotted names an import statement of module `name` (file `path`) asks for."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names]
  if not isinstance(node, ast.ImportFrom):
    return []
  if node.level:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".")
  else:
    base = node.module or ""
  return [f"{base}.{a.name}" for a in node.names]


def import_graph(root: pathlib.Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
  """({module: the jtransfer modules it imports}, {module: the outside folders it imports})."""
  mods = modules(root)
  graph, outside = {}, {}
  for name, path in mods.items():
    deps, out = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
      wanted = _imported(node, name, path)
      # `from a.b import c`: the module a.b.c when there is one, else a.b (c is a name in it).
      for dotted in wanted:
        top = dotted.split(".")[0]
        if top in OUTSIDE:
          out.add(top)
          continue
        while dotted and dotted not in mods:
          dotted = dotted.rpartition(".")[0]
        if dotted and dotted != name:
          deps.add(dotted)
    graph[name], outside[name] = deps, out
  return graph, outside


def layer_of(module: str) -> str:
  return (module.split(".") + [""])[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of `graph` as [a, b, ..., a], or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for dep in sorted(graph.get(node, ())):
      if state.get(dep) == "open":
        return stack[stack.index(dep) :] + [dep]
      if dep not in state:
        found = visit(dep)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def upward(graph: dict[str, set[str]], layers=LAYERS) -> set[tuple[str, str]]:
  """The imports (importer, imported) whose imported module sits in a higher layer."""
  rank = {name: i for i, layer in enumerate(layers) for name in layer}
  return {
    (a, b) for a, deps in graph.items() for b in deps if rank[layer_of(b)] > rank[layer_of(a)]
  }


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
  """The graph between layers' packages (jtransfer.store, ...): imports inside one left out."""
  out = {}
  for a, deps in graph.items():
    out.setdefault(layer_of(a), set()).update(
      layer_of(b) for b in deps if layer_of(b) != layer_of(a)
    )
  return out


@pytest.fixture(scope="module")
def graphs():
  return import_graph(ROOT)


def test_the_graph_covers_the_package(graphs):
  graph, _ = graphs
  files = list((ROOT / "jtransfer").rglob("*.py"))
  assert len(graph) == len(files) > 100
  assert sum(map(len, graph.values())) > 200  # arrows were found, not an empty graph


def test_every_package_has_a_layer(graphs):
  placed = {name for layer in LAYERS for name in layer}
  assert {layer_of(m) for m in graphs[0]} - placed == set()


def test_no_cycle_among_modules(graphs):
  assert find_cycle(graphs[0]) is None


def test_no_cycle_among_packages(graphs):
  graph = {a: {b for b in deps if (a, b) not in KNOWN_UPWARD} for a, deps in graphs[0].items()}
  assert find_cycle(package_graph(graph)) is None


def test_no_import_runs_up_the_layers(graphs):
  found = upward(graphs[0])
  assert found - KNOWN_UPWARD == set(), "imports that run up the layers"
  assert KNOWN_UPWARD - found == set(), "fixed: delete these from KNOWN_UPWARD"


def test_the_library_never_imports_configs_launch_scripts_or_tests(graphs):
  assert {m: sorted(o) for m, o in graphs[1].items() if o} == {}


# -- the checks themselves, on graphs where the answer is known --------------------------------


def test_a_planted_upward_import_is_found():
  graph = {
    "jtransfer.scores.logme": {"jtransfer.errors"},
    "jtransfer.store.zoo": {"jtransfer.train.schedule", "jtransfer.runtime.sharding"},
    "jtransfer.train.schedule": set(),
    "jtransfer.runtime.sharding": set(),
    "jtransfer.analysis.pipeline": {"jtransfer.studies", "jtransfer.store.zoo"},
    "jtransfer.studies": set(),
    "jtransfer.errors": set(),
  }
  assert upward(graph) == {
    ("jtransfer.store.zoo", "jtransfer.train.schedule"),
    ("jtransfer.analysis.pipeline", "jtransfer.studies"),
  }
  assert find_cycle(graph) is None


def test_a_planted_cycle_is_found():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
  assert find_cycle(graph) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  # a package cycle made only of one-way module imports
  modules_ = {
    "jtransfer.store.a": {"jtransfer.train.x"},
    "jtransfer.train.y": {"jtransfer.store.b"},
  }
  assert find_cycle(modules_) is None
  assert find_cycle(package_graph(modules_)) == ["store", "train", "store"]


def test_the_parser_reads_every_import_form(tmp_path):
  files = {
    "jtransfer/__init__.py": "",
    "jtransfer/errors.py": "",
    "jtransfer/data/__init__.py": "from jtransfer.data import batches\n",
    "jtransfer/data/batches.py": "import numpy as np\n",
    "jtransfer/data/pipeline.py": (
      "from . import batches\n"
      "from .. import errors\n"
      "def f():\n"
      "  from jtransfer.train import schedule  # lazy, still an arrow\n"
      "  import configs.thesis_cnn\n"
    ),
    "jtransfer/train/__init__.py": "",
    "jtransfer/train/schedule.py": (
      "import jtransfer.data.batches as b\nfrom jtransfer.data import NAME\n"
    ),
  }
  for rel, text in files.items():
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(text)
  graph, outside = import_graph(tmp_path)
  assert graph == {
    "jtransfer": set(),
    "jtransfer.errors": set(),
    "jtransfer.data": {"jtransfer.data.batches"},
    "jtransfer.data.batches": set(),
    "jtransfer.data.pipeline": {
      "jtransfer.data.batches",
      "jtransfer.errors",
      "jtransfer.train.schedule",
    },
    "jtransfer.train": set(),
    "jtransfer.train.schedule": {"jtransfer.data.batches", "jtransfer.data"},
  }
  assert outside["jtransfer.data.pipeline"] == {"configs"}
  assert upward(graph) == {("jtransfer.data.pipeline", "jtransfer.train.schedule")}
