"""``--preset``: what it picks per backbone lands in the manifest, explicit flags win wherever they
stand on the command line, ``cbir index info`` shows the choice, and evaluate reads the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer import cli
from indexer.build import BuildOptions
from indexer.evaluate import EvaluateOptions
from indexer.presets import PRESETS, preset_for
from retrieval import UnknownNameError
from retrieval.index import Manifest
from retrieval.rerank import Diffusion

RANDOM = ["--weights", "random", "--no-progress"]


def _options(argv: list[str]) -> BuildOptions | EvaluateOptions:
    ns = cli.build_parser(argv).parse_args(argv)
    options: BuildOptions | EvaluateOptions = ns.options(ns)
    return options


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("backbone", ["squeezenet1_1", "vgg16"])
def test_build_takes_every_value_of_the_preset(name: str, backbone: str) -> None:
    opts = _options(["index", "build", "--images", "x", "--index", "y", "--backbone", backbone,
                     "--preset", name])
    assert isinstance(opts, BuildOptions)
    chosen = preset_for(name, backbone)
    assert (opts.pooling, opts.embedding.max_side, opts.embedding.scales, opts.qe, opts.dba,
            opts.diffusion, opts.preset) == (chosen.pooling, chosen.max_side, chosen.scales,
                                             chosen.qe, chosen.dba, chosen.diffusion, name)
    assert chosen.graph_k == (0 if chosen.diffusion is None else 50)


@pytest.mark.parametrize("where", ["before", "after"])
def test_explicit_flags_override_the_preset(where: str) -> None:
    explicit = ["--pooling", "sum", "--max-side", "64", "--dba", "0", "--scales", "1"]
    preset = ["--preset", "quality", "--backbone", "squeezenet1_1"]
    argv = explicit + preset if where == "before" else preset + explicit
    opts = _options(["index", "build", "--images", "x", "--index", "y", *argv])
    assert isinstance(opts, BuildOptions)
    assert (opts.pooling, opts.embedding.max_side, opts.dba, opts.embedding.scales) == (
        "sum", 64, 0, (1.0,))
    assert opts.diffusion == preset_for("quality", "squeezenet1_1").diffusion  # not given


def test_evaluate_reads_the_same_preset() -> None:
    opts = _options(["evaluate", "--dataset", "folders", "--root", "r", "--backbone",
                     "squeezenet1_1", "--preset", "quality", "--diffusion", "k=15"])
    assert isinstance(opts, EvaluateOptions)
    chosen = preset_for("quality", "squeezenet1_1")
    assert (opts.pooling, opts.embedding.scales, opts.dba, opts.diffusion) == (
        chosen.pooling, chosen.scales, chosen.dba, "k=15")


def test_unknown_choices_are_named() -> None:
    with pytest.raises(UnknownNameError, match="balanced, fast, quality"):
        preset_for("best", "vgg16")
    with pytest.raises(UnknownNameError, match="resnet"):
        preset_for("fast", "resnet")


def test_built_index_records_and_shows_the_preset(
    image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = tmp_path / "index"
    code = cli.main(["index", "build", "--images", str(image_folder), "--index", str(index),
                     "--backbone", "squeezenet1_1", "--preset", "fast", "--max-side", "64",
                     *RANDOM])
    assert code == 0
    m = Manifest.load(index)
    chosen = preset_for("fast", "squeezenet1_1")
    assert (m.preset, m.pooling, m.max_side, m.dba_k, m.scales) == (
        "fast", chosen.pooling, 64, chosen.dba, chosen.scales)
    assert m.diffusion_settings == Diffusion.parse(chosen.diffusion or "off")
    capsys.readouterr()
    assert cli.main(["index", "info", "--index", str(index)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "preset          fast" in lines
    assert any(line.startswith("diffusion       {") for line in lines)
    assert cli.main(["index", "info", "--index", str(index), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["manifest"]["preset"] == "fast"


def test_old_manifests_load_without_diffusion() -> None:
    data = {"backbone": "vgg16", "weights": "imagenet:x", "max_side": 1024, "pooling": "sum",
            "dim": 512}
    m = Manifest.from_dict(data)
    assert m.diffusion is None and m.preset is None and m.diffusion_settings is None
    again = Manifest.from_dict({**data, "diffusion": {"k": 10}})
    assert again.diffusion_settings == Diffusion(k=10)
    assert Manifest.from_dict(again.to_dict()) == again
    from retrieval import ArtifactError

    for bad in ({"alpha": 2}, {"beta": 1}, [1, 2]):
        with pytest.raises(ArtifactError, match="diffusion"):
            Manifest.from_dict({**data, "diffusion": bad})
