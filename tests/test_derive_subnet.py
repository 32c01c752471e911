"""Derivation: searchable rows -> concrete rows, and supernet weights -> derived model."""
import json

import pytest
import torch
import yaml

from autonn_nas.cli import main
from autonn_nas.models.choice import searchable_blocks, set_architecture
from autonn_nas.models.search_space import CANDIDATE_OPS, CANDIDATES
from autonn_nas.models.yolo import build_model, load_cfg
from autonn_nas.search.arch import Architecture, ArchitectureError, base_architecture
from autonn_nas.search.derive import derive_yaml, subnet_state_dict

SEARCH = "yolov4-p5-search.yaml"
LABELS = ["m_16", "m_21", "m_25", "m_29"]
HEAD_ROW = {"m_16": 5, "m_21": 10, "m_25": 14, "m_29": 18}  # head row of each searchable layer

ARCHITECTURES = {
    "base": base_architecture(LABELS),
    "all_5x5": Architecture({label: "k5_mish" for label in LABELS}),
    "mixed": Architecture({"m_16": "k5_leaky", "m_21": "k3_relu", "m_25": "k3_leaky", "m_29": "k5_relu"}),
    "mixed2": Architecture({"m_16": "k3_relu", "m_21": "k5_mish", "m_25": "k5_relu", "m_29": "k3_mish"}),
}


def test_base_architecture_derives_the_scaled_yolov4_model():
    derived = derive_yaml(SEARCH, ARCHITECTURES["base"])
    assert derived == load_cfg("yolov4-p5.yaml")
    assert derived["head"][5] == [-1, 3, "BottleneckCSP2", [256]]


@pytest.mark.parametrize("name", CANDIDATES)
def test_each_candidate_is_visible_in_its_row(name):
    derived = derive_yaml(SEARCH, ARCHITECTURES["base"].replace(m_21=name))
    op = CANDIDATE_OPS[name]
    row = derived["head"][HEAD_ROW["m_21"]]
    expected_args = [128] if name == "k3_mish" else [128, False, 1, 0.5, op.kernel, op.act]
    assert row == [-1, 3, "BottleneckCSP2", expected_args]
    assert derived["head"][HEAD_ROW["m_16"]] == [-1, 3, "BottleneckCSP2", [256]]


def test_derive_is_pure():
    search = load_cfg(SEARCH)
    before = yaml.safe_dump(search)
    derive_yaml(search, ARCHITECTURES["mixed"])
    assert yaml.safe_dump(search) == before


def test_derive_rejects_architectures_that_do_not_fit():
    with pytest.raises(ArchitectureError, match="searchable blocks: m_16, m_21, m_25, m_29"):
        derive_yaml(SEARCH, {"m_17": "k3_mish"})
    with pytest.raises(ArchitectureError, match="no MBottleneckCSP2 rows"):
        derive_yaml("yolov4-p5.yaml", ARCHITECTURES["base"])


@pytest.fixture(scope="module")
def small_supernet():
    torch.manual_seed(0)
    model = build_model(SEARCH, nc=3, width=0.125, depth=0.33)
    # non-trivial BN statistics, so that a wrongly mapped running_mean/var would show
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("arch_name", list(ARCHITECTURES))
@pytest.mark.parametrize("hw", [(64, 64), (32, 96)])
def test_derived_model_equals_supernet_running_the_architecture(small_supernet, arch_name, hw):
    arch = ARCHITECTURES[arch_name]
    derived_cfg = derive_yaml(small_supernet.yaml, arch)
    derived = build_model(derived_cfg).eval()
    derived.load_state_dict(subnet_state_dict(small_supernet, arch), strict=True)
    set_architecture(small_supernet, arch)
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        expected, _ = small_supernet(x)
        got, _ = derived(x)
    assert torch.allclose(got, expected, atol=1e-5)
    assert derived.yaml == derived_cfg  # YAML -> model -> YAML
    assert build_model(derived.yaml).yaml == derived_cfg
    set_architecture(small_supernet, ARCHITECTURES["base"])


def test_subnet_state_dict_takes_the_chosen_candidates_weights(small_supernet):
    arch = ARCHITECTURES["mixed"]
    sd = subnet_state_dict(small_supernet, arch)
    blocks = searchable_blocks(small_supernet)
    chosen = blocks["m_16"].candidates["k5_leaky"].cv1.conv.weight
    assert sd["model.16.cv1.conv.weight"].data_ptr() == chosen.data_ptr()
    assert sd["model.29.m.0.cv2.conv.weight"].shape[-1] == 5
    assert not any("candidates" in key for key in sd)
    with pytest.raises(ArchitectureError):
        subnet_state_dict(small_supernet, {"m_16": "k3_mish"})


def test_derive_cli(tmp_path, capsys):
    arch_path = ARCHITECTURES["mixed"].save(tmp_path / "arch.json")
    out = tmp_path / "derived.yaml"
    assert main(["derive", SEARCH, str(arch_path), "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == derive_yaml(SEARCH, ARCHITECTURES["mixed"])
    assert "m_16=k5_leaky" in capsys.readouterr().out
    assert build_model(out).model[16].args[-2:] == [5, "leaky"]
    bad = tmp_path / "bad.json"
    bad.write_text(ARCHITECTURES["base"].replace(m_16="k9_relu").to_json())
    assert main(["derive", SEARCH, str(bad), "-o", str(tmp_path / "x.yaml")]) == 2
    assert "valid candidates" in capsys.readouterr().err and not (tmp_path / "x.yaml").exists()


def test_derive_takes_the_sizes_from_a_search_record_or_the_options(tmp_path, capsys):
    arch = ARCHITECTURES["mixed"]
    plain = arch.save(tmp_path / "plain.json")
    assert main(["derive", SEARCH, str(plain), "-o", str(tmp_path / "options.yaml"), "--nc", "3", "--width", "0.25", "--depth", "0.33"]) == 0
    cfg = yaml.safe_load((tmp_path / "options.yaml").read_text())
    assert (cfg["nc"], cfg["width_multiple"], cfg["depth_multiple"]) == (3, 0.25, 0.33)
    run = tmp_path / "run"  # a search's folder: arch.json records the sizes the search built with
    run.mkdir()
    (run / "arch.json").write_text(json.dumps({"architecture": arch.to_dict(), "model": {"nc": 5, "width_multiple": 0.5, "depth_multiple": 0.67}}))
    assert main(["derive", SEARCH, str(run), "-o", str(tmp_path / "record.yaml")]) == 0
    cfg = yaml.safe_load((tmp_path / "record.yaml").read_text())
    assert (cfg["nc"], cfg["width_multiple"], cfg["depth_multiple"]) == (5, 0.5, 0.67)
    assert f"from {run / 'arch.json'}" in capsys.readouterr().out
    assert main(["derive", SEARCH, str(run / "arch.json"), "-o", str(tmp_path / "wider.yaml"), "--width", "1.0"]) == 0  # options win
    assert yaml.safe_load((tmp_path / "wider.yaml").read_text())["width_multiple"] == 1.0
    assert main(["derive", SEARCH, str(run), "-o", str(tmp_path / "bad.yaml"), "--nc", "0"]) == 2


def test_inherit_base_weights_warm_starts_every_candidate():
    from autonn_nas.search.derive import inherit_base_weights

    torch.manual_seed(1)
    base = build_model("yolov4-p5.yaml", nc=3, width=0.125, depth=0.33).eval()
    supernet = build_model(SEARCH, nc=3, width=0.125, depth=0.33).eval()
    inherit_base_weights(supernet, base.state_dict())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected, _ = base(x)
        for name in ("k3_mish", "k5_mish"):  # a centred 3x3 kernel in a 5x5 conv computes the same
            set_architecture(supernet, {label: name for label in LABELS})
            assert torch.allclose(supernet(x)[0], expected, atol=1e-5), name
    k3 = supernet.model[21].candidates["k3_relu"].m[0].cv2.conv.weight
    k5 = supernet.model[21].candidates["k5_relu"].m[0].cv2.conv.weight
    assert torch.equal(k5[..., 1:4, 1:4], k3) and k5[..., 0, :].abs().sum() == 0
    with pytest.raises(ValueError, match="check nc, width and depth"):
        inherit_base_weights(supernet, build_model("yolov4-p5.yaml", nc=4, width=0.125, depth=0.33).state_dict())
