"""The seeds' published figures: well-formed, mapped to real model families."""

from __future__ import annotations

from tinyviz import models
from tinyviz.runs import reference


def test_every_family_is_a_model_or_transfer():
    known = set(models.names()) | {reference.TRANSFER}
    assert {r.family for r in reference.REFERENCES} <= known


def test_numbers_are_fractions():
    for r in reference.REFERENCES:
        for value in (r.val_top1, r.val_top5):
            assert value is None or 0 <= value <= 1, r
        if r.val_top1 is not None and r.val_top5 is not None:
            assert r.val_top5 >= r.val_top1


def test_every_seed_is_present_with_its_best_figures():
    assert {r.seed for r in reference.REFERENCES} == {"000", "001", "002", "003", "004"}
    best = {}
    for r in reference.REFERENCES:
        if r.val_top1 is not None:
            best[r.family] = max(best.get(r.family, 0), r.val_top1)
    # the seeds' best from scratch (004's ensemble) and with transfer (004's 10-crop)
    assert best["inception_v3_like"] == 0.522 and best["transfer"] == 0.767
    assert best["logreg"] == 0.062


def test_seed_002_says_no_figure_was_given():
    (row,) = [r for r in reference.REFERENCES if r.family == "googlenet_like"]
    assert row.seed == "002" and row.val_top1 is None and "no accuracy" in row.notes


# ---------------------------------------------- the reports, named as they name themselves


def test_every_report_is_cited_by_its_title_and_author():
    from tinyviz import literature

    assert literature.cite("004") == "The Power of Inception (Milani)"
    assert literature.cite("001", "004") == (
        "Tiny Imagenet: Image Classification (Matejovicova) and The Power of Inception (Milani)"
    )
    assert literature.cite("002") == "Scaling of Inception Layers for Reduced Scale Classification"
    assert {r.seed for r in reference.REFERENCES} == set(literature.REPORTS)
    assert literature.shown_source("000, 004").endswith(
        "(Bastidas) and The Power of Inception (Milani)"
    )
    assert literature.shown_source("ImageNet-pretrained (torchvision)") == (
        "ImageNet-pretrained (torchvision)"
    )
    assert literature.shown_source("999") == "999"  # not a report: shown as it is


def test_no_shown_text_says_seed():
    """What a visitor reads names the reports, never "seed 004" or "from: 001"."""
    import dataclasses
    import re

    from tinyviz import config
    from tinyviz.runs import leaderboard

    pattern = re.compile(r"\bseeds?\b.{0,4}\d{3}|\bseed paper|\bseeds'", re.IGNORECASE)
    shown = [models.spec(n).description for n in models.names()]
    shown += [literature_source(n) for n in models.names()]
    for cls in (config.TrainConfig, config.AugmentConfig):
        shown += [config.help_of(f) for f in dataclasses.fields(cls)]
    shown += [str(v) for r in leaderboard.seed_rows() for v in r.values()]
    assert not [s for s in shown if pattern.search(s)]
    assert not [s for s in shown if re.fullmatch(r"\d{3}(, \d{3})*", s)]


def literature_source(name: str) -> str:
    from tinyviz import literature

    return literature.shown_source(models.spec(name).source)


def test_no_page_or_command_help_names_a_report_by_its_number():
    """The pages' and the command line's string literals (docstrings aside) say no "seed 004"
    nor "seeds 002 and 004"."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\bseeds?('s)?\s+\d{3}", re.IGNORECASE)
    found = []
    for path in [*sorted((root / "pages").glob("*.py")), root / "tinyviz" / "cli.py"]:
        tree = ast.parse(path.read_text())
        docs = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        found += [
            f"{path.name}: {node.value}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and pattern.search(node.value)
        ]
    assert not found


def test_no_string_on_a_page_or_the_command_line_says_seed():
    """Every string literal of the pages (all their modules, charts too), app.py and the
    command line, docstrings aside: none names a report as "seed 00N"."""
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"\bseeds?\b.{0,4}\d{3}|\bseed paper|\bseeds'", re.IGNORECASE)
    files = [*root.glob("pages/**/*.py"), root / "app.py", root / "tinyviz" / "cli.py"]
    found = []
    for path in files:
        tree = ast.parse(path.read_text())
        docs = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found += [
            f"{path.relative_to(root)}:{node.lineno}: {node.value[:60]}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docs
            and pattern.search(node.value)
        ]
    assert len(files) > 20 and not found
