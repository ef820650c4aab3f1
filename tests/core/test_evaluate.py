"""The evaluation pipeline on a tiny model and dataset (the numbers of the shipped model are in the README)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from collage_core import Generator, GeneratorConfig
from collage_core.training.evaluate import EvalReport, evaluate, frechet_distance


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, rng.normal(size=(4000, 3))) < 0.02
    shifted = rng.normal(size=(4000, 3)) + np.array([2.0, 0.0, 0.0])
    assert frechet_distance(a, shifted) == pytest.approx(4.0, abs=0.15)
    scaled = rng.normal(size=(4000, 3)) * 2  # tr(S1 + S2 - 2 (S1 S2)^1/2) = 3 (1 + 4 - 4) = 3
    assert frechet_distance(a, scaled) == pytest.approx(3.0, abs=0.25)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    colours = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220)}
    for split, n in (("train", 3), ("test_openmoji", 1)):
        for name, c in colours.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                a = np.full((64, 64, 3), 255, np.uint8)
                a[10 + 3 * i:50, 12:52 - 2 * i] = c
                Image.fromarray(a).save(d / f"{i}.png")
    (root / "manifest.json").write_text(json.dumps({"classes": list(colours)}))
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3), class_names=list(colours)).eval()
    return root, G.requires_grad_(False)


def test_evaluate_reports_every_metric(tiny, tmp_path):
    root, G = tiny
    rep = evaluate(G, root, tmp_path / "eval", samples_per_class=3, classifier_steps=40, classifier_batch=12,
                   progress=False)
    assert isinstance(rep, EvalReport)
    for v in (rep.class_accuracy, rep.translation_accuracy, rep.classifier_train_accuracy,
              rep.classifier_heldout_accuracy):
        assert 0.0 <= v <= 1.0
    assert rep.classifier_train_accuracy > 0.6  # three flat colours are easy
    assert np.isfinite([rep.locality_ratio, rep.diversity_pixel, rep.diversity_feature, rep.frechet_distance]).all()
    assert rep.locality_ratio > 1.0  # a half-image map changes the half it covers most
    assert set(rep.per_class_accuracy) == {"red", "green", "blue"}
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "class accuracy of samples" in md and "| >= 90% |" in md
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["samples_per_class"] == 3
    assert Image.open(tmp_path / "eval" / "samples_per_class.png").size == (3 * 64 + 4, 3 * 64 + 4)


def test_evaluate_refuses_mismatched_classes(tiny):
    root, _ = tiny
    G = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3), class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="differ from the generator's"):
        evaluate(G.eval(), root, classifier_steps=1, progress=False)


def test_one_judge_for_several_generators_gives_the_same_reports(tiny):
    """A judge trained once (make_judge) and reused gives exactly what evaluate trains for itself."""
    from collage_core.training.evaluate import make_judge

    root, G = tiny
    torch.manual_seed(1)
    G2 = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3), class_names=G.class_names).eval()
    kw = dict(samples_per_class=3, classifier_steps=20, classifier_batch=12, progress=False)
    judge = make_judge(root, 64, steps=20, batch=12, progress=False)
    for g in (G, G2):
        assert evaluate(g, root, judge=judge, **kw) == evaluate(g, root, **kw)
    assert evaluate(G, root, judge=judge, **kw) != evaluate(G2, root, judge=judge, **kw)


def test_eval_command_with_several_models_writes_a_curve(tiny, tmp_path, capsys):
    from collage_app.cli import main
    from collage_core import save_generator

    root, G = tiny
    paths = [save_generator(G, tmp_path / f"generator_{i:06d}.safetensors", provenance={"iterations": i})
             for i in (500, 1000)]
    out = tmp_path / "curve"
    assert main(["eval", *map(str, paths), "--data", str(root), "--out", str(out), "--samples-per-class", "2",
                 "--classifier-steps", "5"]) == 0
    rows = json.loads((out / "curve.json").read_text())
    assert [r["iterations"] for r in rows] == [500, 1000]
    assert rows[0]["class_accuracy"] == rows[1]["class_accuracy"]  # same weights, same judge, same samples
    assert (out / "generator_000500" / "report.json").is_file() and (out / "generator_001000" / "report.md").is_file()
    assert "| generator_000500" not in (out / "curve.md").read_text()  # the model column is the path as given
    assert "| 500 |" in (out / "curve.md").read_text() and "class accuracy" in capsys.readouterr().out
