"""Every figure type renders without text leaving the canvas or tick labels colliding; the report's
CSS parses and its figure index lists every figure file.

The synthetic store is built to provoke the defects seen on real runs: layer-free scores (LEEP,
NCE, parameter count at layer "-"), a score with huge values and a tiny spread (long tick
labels), log-spaced fine-tune steps that crowd at the end (28, 30), fourteen score panels.
"""

import pathlib
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import jtransfer.analysis as analysis
from jtransfer.analysis import figures, labels, pipeline, signs

SOURCES = ("mnist", "mnist_split_0_4", "mnist_noise")
STEPS = (0, 3, 30)
SEEDS = (0, 1)
TARGETS = ("mnist", "fashion_mnist_subset_100")
LAYERS = ("conv1", "pool1", "conv2", "pool2", "fc1")
FT_STEPS = (0, 1, 2, 3, 5, 8, 12, 18, 28, 30)
PER_LAYER = (
  "two_nn", "sum_of_squares", "rsa", "nc_score", "nc_score_eq2", "logme", "h_score",
  "h_score_shrinkage", "transrate", "gbc", "knn_accuracy",
)  # fmt: skip
LAYER_FREE = ("leep", "nce", "param_count")


def _score_value(score, q, depth, rng):
  """A value that tracks quality q in the score's declared direction, with score-like scales."""
  up = 1.0 if signs.higher_is_better(score) else -1.0
  scale = {"h_score_shrinkage": 1e-3, "two_nn": 5.0, "param_count": 0.0}.get(score, 1.0)
  offset = {"h_score_shrinkage": 12345.678, "two_nn": 20.0, "param_count": 1.2e6}.get(score, 0.0)
  return offset + scale * (up * q * (0.5 + depth) + 0.05 * rng.normal())


def synthetic_frames(rng):
  ck, sc, ft = [], [], []
  quality = {"mnist": 1.0, "mnist_split_0_4": 0.8, "mnist_noise": 0.05}
  for src in SOURCES:
    for seed in SEEDS:
      for k, step in enumerate(STEPS):
        key = dict(source=src, arch="cnn", seed=seed, step=step)
        ck.append(dict(key, epoch=step / 100, path=f"zoo/{src}/{seed}/{step}", train_acc=0.9,
                       test_acc=0.9, train_loss=0.3, test_loss=0.3))  # fmt: skip
        q = quality[src] * (k + 1) / len(STEPS) + 0.01 * rng.normal()
        for target in TARGETS:
          base = dict(key, target=target, probe="train")
          for i, layer in enumerate(LAYERS):
            depth = i / (len(LAYERS) - 1)
            for score in PER_LAYER:
              sc.append(dict(base, layer=layer, score=score,
                             value=_score_value(score, q, depth, rng)))  # fmt: skip
          for score in LAYER_FREE:
            sc.append(dict(base, layer="-", score=score, value=_score_value(score, q, 1.0, rng)))
          for frozen in (0, 1):
            for ft_step in FT_STEPS:
              rate = (0.05 + 0.3 * q) / (1 + frozen)
              acc = 0.1 + 0.85 * (1 - np.exp(-(ft_step + 1) * rate)) + 0.005 * rng.normal()
              ft.append(dict(key, target=target, mode="full" if frozen == 0 else "frozen",
                             frozen_layers=frozen, ft_seed=0, ft_step=ft_step, test_acc=acc,
                             test_loss=1.0))  # fmt: skip
  for target in TARGETS:
    for seed in SEEDS:
      for ft_step in FT_STEPS:
        acc = 0.1 + 0.85 * (1 - np.exp(-(ft_step + 1) * 0.05)) + 0.005 * rng.normal()
        key = dict(source="scratch", arch="cnn", seed=seed, step=0, target=target, mode="full")
        ft.append(dict(key, frozen_layers=0, ft_seed=0, ft_step=ft_step, test_acc=acc,
                       test_loss=1.0))  # fmt: skip
  return pd.DataFrame(ck), pd.DataFrame(sc), pd.DataFrame(ft)


def write_store(workdir):
  from jtransfer.store import results  # noqa: PLC0415

  ck, sc, ft = synthetic_frames(np.random.default_rng(0))
  with results.Store(workdir) as s:
    s.add_rows("checkpoints", ck.to_dict("records"))
    s.add_rows("scores", sc.to_dict("records"))
    s.add_rows("finetune", ft.to_dict("records"))
  return workdir


# ----- independent checks of a drawn figure -----


def _drawn_ticklabels(axis):
  """Tick labels drawn on `axis`: visible, non-empty, and at a location inside the view."""
  lo, hi = sorted(axis.get_view_interval())
  pairs = zip(axis.get_majorticklocs(), axis.get_ticklabels(), strict=False)
  return [t for loc, t in pairs if lo <= loc <= hi and t.get_visible() and t.get_text()]


def layout_problems(fig) -> list[str]:
  """Text outside the canvas (matplotlib's tight bbox vs the figure) and colliding tick labels."""
  fig.canvas.draw()
  renderer = fig.canvas.get_renderer()
  problems = []
  tight = fig.get_tightbbox(renderer)  # inches
  w, h = fig.get_size_inches()
  tol = 0.02
  if tight.x0 < -tol or tight.y0 < -tol or tight.x1 > w + tol or tight.y1 > h + tol:
    problems.append(f"content {tight.bounds} leaves the {w:.2f}x{h:.2f} in canvas")
  for k, ax in enumerate(fig.axes):
    if not ax.get_visible() or not ax.axison:  # a legend slot draws no axis
      continue
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
      texts = _drawn_ticklabels(axis)
      boxes = [t.get_window_extent(renderer) for t in texts]
      for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
          if boxes[i].overlaps(boxes[j]):
            problems.append(
              f"axes {k} {name}: tick labels {texts[i].get_text()!r} and "
              f"{texts[j].get_text()!r} overlap"
            )
  return problems


def _texts(fig) -> list[str]:
  from matplotlib.text import Text  # noqa: PLC0415

  return [t.get_text() for t in fig.findobj(Text) if t.get_visible() and t.get_text()]


def test_checker_catches_clipped_titles_and_crowded_ticks():
  fig, ax = plt.subplots(figsize=(3, 2), constrained_layout=True)
  ax.set_xticks(range(40), [f"{1000 * i}" for i in range(40)])
  fig.suptitle("a suptitle far longer than a three-inch figure can ever hold on one line " * 2)
  problems = layout_problems(fig)
  assert any("leaves" in p for p in problems) and any("overlap" in p for p in problems)
  # The figures module's own treatment fixes both.
  fig2, ax2 = plt.subplots(figsize=(3, 2), constrained_layout=True)
  ax2.set_xticks(range(40), [f"{1000 * i}" for i in range(40)])
  figures._titles(fig2, "a suptitle far longer than a three-inch figure can ever hold " * 2)
  figures._tidy(fig2)
  assert layout_problems(fig2) == []
  kept = [t.get_text() for t in _drawn_ticklabels(ax2.xaxis)]
  assert kept[-1] == "39000" and 2 <= len(kept) < 40  # thinned, the axis end kept
  plt.close(fig)
  plt.close(fig2)


def test_offset_in_words():
  assert figures._offset_words("1e−3+1.234567e4") == "value = tick × 1e−3 + 1.234567e4"
  assert figures._offset_words("1e6") == "value = tick × 1e6"
  assert figures._offset_words("−2.5e3") == "value = tick − 2.5e3"


def test_labels_names_and_directions():
  assert labels.display_name("nc_score_eq2") == "NC score (eq. 2)"
  assert labels.axis_label("nc_score") == "NC score (↓ better)"
  assert labels.axis_label("logme") == "LogME (↑ better)"
  assert labels.axis_label("param_count") == "parameter count (↑ better)"
  assert labels.axis_label("two_nn", {"two_nn": True}) == "TWO-NN intrinsic dimension (↑ better)"
  assert labels.display_name("rsa-pc0.5") == "RSA − 0.5·params"
  assert labels.axis_label("my_score") == "my_score"  # unknown sign: no arrow, stored name
  from jtransfer.scores import REGISTRY  # noqa: PLC0415

  for name, spec in REGISTRY.items():
    assert name in labels.DISPLAY_NAMES, name
    assert labels.arrow(name) == ("↑" if spec.higher_is_better else "↓")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
  """analyse + every figure on the synthetic store; each figure checked just before saving."""
  pytest.importorskip("jtransfer.store.results")
  workdir = write_store(tmp_path_factory.mktemp("figs"))
  tables = analysis.load_tables(workdir)
  a = analysis.analyse(tables["scores"], tables["finetune"], tables["checkpoints"], n_boot=0)
  seen = {}

  def checked_save(fig, out_dir, name):
    figures._tidy(fig)
    seen[name] = dict(
      problems=layout_problems(fig),
      texts=_texts(fig),
      axes=[
        dict(
          title=ax.get_title(),
          xlabel=ax.get_xlabel(),
          xticks=[t.get_text() for t in _drawn_ticklabels(ax.xaxis)],
        )  # fmt: skip
        for ax in fig.axes
        if ax.get_visible() and ax.axison
      ],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"{name}.png", dpi=figures.DPI)  # PNG only: _save is tested elsewhere
    plt.close(fig)
    return out_dir / f"{name}.png"

  mp = pytest.MonkeyPatch()
  mp.setattr(figures, "_save", checked_save)
  try:
    analysis.write_outputs(a, workdir, figure_workers=1)  # the patched _save is here only
  finally:
    mp.undo()
  return workdir, a, seen


def test_every_figure_fits_its_canvas(rendered):
  workdir, _, seen = rendered
  kinds = {k for k in figures.CAPTIONS if any(n.startswith(k) for n in seen)}
  assert kinds == set(figures.CAPTIONS), kinds
  assert {f.stem for f in (workdir / "figures").glob("*.png")} == set(seen)
  for name, info in seen.items():
    assert info["problems"] == [], (name, info["problems"])


def test_no_internal_names_and_no_layer_free_slot(rendered):
  _, _, seen = rendered
  internal = [n for n in labels.DISPLAY_NAMES if "_" in n]
  for name, info in seen.items():
    for text in info["texts"]:
      for n in internal:
        assert not re.search(rf"\b{n}\b", text), (name, n, text)
    for ax in info["axes"]:
      assert "-" not in ax["xticks"], (name, ax)  # no empty layer-free slot on a layer axis
  free = seen["score_layer_free_train"]["axes"]
  assert [ax["title"] for ax in free] == ["LEEP", "NCE"]  # param_count is a baseline
  assert not any(n.startswith("score_vs_layer_leep") for n in seen)
  rho = seen["rho_per_layer_all_mnist_full_train"]["axes"]
  # The checkpoint-index baseline is copied to every layer by the tables, so it has a ρ and
  # stands beside LEEP and NCE; the constant parameter count has none.
  assert rho[-1]["title"] == "layer-free scores"
  assert rho[-1]["xticks"] == ["checkpoint index ↑", "LEEP ↑", "NCE ↑"]


def test_scatter_uses_the_tables_sign_convention(rendered):
  """Panel r and ρ are the report table's (oriented score), so NC score (↓) shows r > 0."""
  workdir, a, seen = rendered
  corr = pd.read_csv(workdir / "analysis_correlations.csv")
  corr = corr[(corr["breakdown"] == "all") & (corr["target"] == "mnist")
              & (corr["setting"] == "full") & (corr["probe"] == "train")]  # fmt: skip
  panels = {ax["title"].split("\n")[0]: ax for ax in seen["scatter_mnist_full_pool2_train"]["axes"]}
  checked = 0
  for score in ("nc_score", "two_nn", "rsa", "leep"):
    # LEEP is stored at "-" and the tables copy it onto every layer.
    row = corr[(corr["score"] == score) & (corr["layer"] == "pool2")].iloc[0]
    title = labels.display_name(score) + (" (no layer)" if score == "leep" else "")
    ax = panels[title]
    r, rho = map(float, re.findall(r"[+-]\d\.\d\d", ax["title"]))
    assert r == pytest.approx(row["pearson"], abs=0.006) and r > 0
    assert rho == pytest.approx(row["spearman"], abs=0.006)
    assert ax["xlabel"].startswith(labels.axis_label(score))
    checked += 1
  assert checked == 4
  notes = " ".join(seen["scatter_mnist_full_pool2_train"]["texts"])
  assert "positive = the score agrees with transfer in its declared direction" in notes


def _css(html: str) -> str:
  m = re.search(r"<style>(.*?)</style>", html, re.S)
  assert m, "no <style> block"
  return m.group(1)


def test_report_css_parses_and_index_lists_every_figure(rendered):
  workdir, _, _ = rendered
  html = (workdir / "report.html").read_text()
  css = _css(html)
  assert "}}" not in css and "{{" not in css
  depth = 0
  for ch in css:
    depth += {"{": 1, "}": -1}.get(ch, 0)
    assert 0 <= depth <= 1, css
  assert depth == 0
  rules = [r for r in css.split("}") if r.strip()]
  for rule in rules:
    selector, _, body = rule.partition("{")
    assert re.fullmatch(r"[a-z0-9,:()\-\s]+", selector.strip()), rule
    for decl in filter(None, body.split(";")):
      prop, colon, value = decl.partition(":")
      assert colon and re.fullmatch(r"[a-z-]+", prop.strip()) and value.strip(), decl
  assert {r.partition("{")[0] for r in rules} >= {"body", "table", "td,th"}

  md = (workdir / "report.md").read_text()
  index = md.split("## Figure index", 1)[1].split("\n## ", 1)[0]
  listed = re.findall(r"`(figures/[^`]+\.png)` — (.+)", index)
  pngs = sorted(f"figures/{p.name}" for p in (workdir / "figures").glob("*.png"))
  assert sorted(p for p, _ in listed) == pngs and len(pngs) >= 20
  for path, cap in listed:
    assert cap == figures.caption(path) and not cap.startswith(path.split("/")[1][:8]), cap
  assert "<h2 id='figure-index'>Figure index</h2>" in html


@pytest.mark.slow
def test_render_report_script_in_headless_chromium(tmp_path):
  """scripts/render_report.sh draws a report with a styled table; skipped without Chromium."""
  import shutil  # noqa: PLC0415
  import subprocess  # noqa: PLC0415

  from PIL import Image  # noqa: PLC0415

  from jtransfer.analysis import report  # noqa: PLC0415

  if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
    pytest.skip("no Chromium installed (apt-get install -y chromium)")
  d = report.Doc()
  d.h(1, "report")
  d.table(pd.DataFrame({"score": ["rsa", "nc_score"], "rho": [0.9, -0.5]}))
  (tmp_path / "report.html").write_text(d.html("t"), encoding="utf-8")
  script = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "render_report.sh"
  out = subprocess.run(
    ["bash", str(script), str(tmp_path), str(tmp_path / "shot.png"), "400x300"],
    capture_output=True, text=True, timeout=120, check=True,
  )  # fmt: skip
  assert out.stdout.strip() == str(tmp_path / "shot.png")
  px = np.asarray(Image.open(tmp_path / "shot.png").convert("RGB"))
  assert px.shape == (300, 400, 3)
  # The header row's #f2f2f2 background is drawn only when the CSS parses.
  assert (np.abs(px.astype(int) - 0xF2).max(axis=2) <= 2).sum() > 200


def test_single_target_figures_fit(rendered, monkeypatch, tmp_path):
  """One target makes the narrowest score-vs-layer figure (one 4.4 in panel): its title still
  fits (on real one-target runs the old suptitle ran off both sides)."""
  _, a, _ = rendered
  problems = {}

  def checked_save(fig, out_dir, name):
    figures._tidy(fig)
    problems[name] = layout_problems(fig)
    plt.close(fig)
    return out_dir / f"{name}.png"

  monkeypatch.setattr(figures, "_save", checked_save)
  one = a.scores[a.scores["target"] == "mnist"]
  figures.score_vs_layer(one, tmp_path, layers=a.layers, probe="train")
  assert len(problems) == len(PER_LAYER) - 1 + 1  # knn_accuracy is a baseline; + layer-free
  assert all(p == [] for p in problems.values()), problems


def test_figures_drawn_in_two_processes_equal_those_drawn_here(rendered, tmp_path):
  """The worker pool changes who draws, not what: the same files, byte for byte (PNG), in the
  same order, as drawing every figure in this process."""
  _, a, _ = rendered
  here = pipeline.make_figures(a, tmp_path / "here", workers=1)
  pooled = pipeline.make_figures(a, tmp_path / "pooled", workers=2)
  assert list(here) == list(pooled)
  for kind in here:
    assert [p.name for p in here[kind]] == [p.name for p in pooled[kind]], kind
    for p, q in zip(here[kind], pooled[kind], strict=True):
      assert p.read_bytes() == q.read_bytes(), p.name
  assert sum(len(v) for v in here.values()) >= 10
  assert sorted(f.name for f in (tmp_path / "here").iterdir()) == sorted(
    f.name for f in (tmp_path / "pooled").iterdir()
  )
