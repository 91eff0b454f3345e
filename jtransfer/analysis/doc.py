"""The report's document model: a list of blocks (heading, text, table, list, image) that
renders to Markdown and to HTML."""

import html

import numpy as np
import pandas as pd


def cell(x, digits=3) -> str:
  if x is None or x is pd.NA:
    return "–"
  if isinstance(x, bool | np.bool_):
    return "✓" if x else "✗"
  if isinstance(x, float | np.floating):
    return "–" if not np.isfinite(x) else f"{x:.{digits}f}"
  return str(x)


# Plain string (not an f-string): a doubled brace here would be a stray "}}" in the page.
CSS = (
  "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:0 1em;line-height:1.4}"
  "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
  "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
  "th{background:#f2f2f2}tr:nth-child(even) td{background:#fafafa}"
  "img{max-width:100%}figure{margin:1.5em 0}figcaption{font-size:13px;color:#444}"
  "code{background:#f4f4f4;padding:0 3px}"
)


class Doc:
  def __init__(self):
    self.blocks = []

  def h(self, level, text):
    self.blocks.append(("h", level, text))

  def p(self, text):
    self.blocks.append(("p", text))

  def ul(self, items):
    if items:
      self.blocks.append(("ul", list(items)))

  def table(self, df: pd.DataFrame, digits=3):
    if df is not None and not df.empty:
      self.blocks.append(("table", df, digits))
    else:
      self.p("(no data)")

  def img(self, path, caption):
    self.blocks.append(("img", path, caption))

  def toc(self):
    """A table of contents of the level-2 headings that follow (links to their anchors)."""
    self.blocks.append(("toc",))

  def _sections(self, start: int) -> list[str]:
    return [b[2] for b in self.blocks[start:] if b[0] == "h" and b[1] == 2]

  def markdown(self) -> str:
    out = []
    for i, b in enumerate(self.blocks):
      if b[0] == "toc":
        out.append("\n".join(f"- [{t}](#{anchor(t)})" for t in self._sections(i)))
      elif b[0] == "h":
        out.append("#" * b[1] + " " + b[2])
      elif b[0] == "p":
        out.append(b[1])
      elif b[0] == "ul":
        out.append("\n".join(f"- {x}" for x in b[1]))
      elif b[0] == "table":
        df, digits = b[1], b[2]
        head = "| " + " | ".join(str(c) for c in df.columns) + " |"
        sep = "|" + "|".join("---" for _ in df.columns) + "|"
        body = [
          "| " + " | ".join(cell(v, digits).replace("|", "\\|") for v in row) + " |"
          for row in df.itertuples(index=False)
        ]
        out.append("\n".join([head, sep, *body]))
      elif b[0] == "img":
        out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
    return "\n\n".join(out) + "\n"

  def html(self, title) -> str:
    e = html.escape
    out = [
      "<!doctype html><html><head><meta charset='utf-8'>",
      f"<title>{e(title)}</title><style>{CSS}</style></head><body>",
    ]
    for i, b in enumerate(self.blocks):
      if b[0] == "toc":
        links = "".join(f"<li><a href='#{anchor(t)}'>{e(t)}</a></li>" for t in self._sections(i))
        out.append(f"<nav><b>Contents</b><ul>{links}</ul></nav>")
      elif b[0] == "h":
        out.append(f"<h{b[1]} id='{anchor(b[2])}'>{e(b[2])}</h{b[1]}>")
      elif b[0] == "p":
        out.append(f"<p>{_inline(b[1])}</p>")
      elif b[0] == "ul":
        out.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in b[1]) + "</ul>")
      elif b[0] == "table":
        df, digits = b[1], b[2]
        head = "".join(f"<th>{e(str(c))}</th>" for c in df.columns)
        body = "".join(
          "<tr>" + "".join(f"<td>{e(cell(v, digits))}</td>" for v in row) + "</tr>"
          for row in df.itertuples(index=False)
        )
        table = f"<table><tr>{head}</tr>{body}</table>"
        if len(df) > COLLAPSE_ROWS:  # long tables fold away; the page stays readable
          table = f"<details><summary>{len(df)} rows</summary>{table}</details>"
        out.append(table)
      elif b[0] == "img":
        out.append(f"<figure><img src='{e(b[1])}'><figcaption>{e(b[2])}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


COLLAPSE_ROWS = 15


def anchor(title: str) -> str:
  """The heading's anchor as GitHub's Markdown makes it: lower case, punctuation dropped,
  spaces as hyphens (the HTML uses the same ids, so both links work)."""
  kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
  return kept.strip().replace(" ", "-")


def _inline(text: str) -> str:
  """Escapes text and renders **bold** and `code` (the only inline markup the report uses)."""
  parts = html.escape(text).split("**")
  text = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
  parts = text.split("`")
  return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
