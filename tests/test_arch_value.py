"""Architectures as values: JSON round trip, validation, enumeration."""
import json

import pytest

from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATES
from autonn_nas.search.arch import Architecture, ArchitectureError, base_architecture, enumerate_space

LABELS = ["m_16", "m_21", "m_25", "m_29"]


def test_base_architecture_and_str():
    base = base_architecture(LABELS)
    assert dict(base) == {label: BASE_CANDIDATE for label in LABELS}
    assert str(base) == "m_16=k3_mish m_21=k3_mish m_25=k3_mish m_29=k3_mish"


def test_ordered_by_layer_index_frozen_and_hashable():
    arch = Architecture({"m_29": "k5_mish", "m_100": "k3_relu", "m_16": "k3_leaky"})
    assert list(arch) == ["m_16", "m_29", "m_100"] and arch.labels == ("m_16", "m_29", "m_100")
    same = Architecture([("m_16", "k3_leaky"), ("m_100", "k3_relu"), ("m_29", "k5_mish")])
    assert arch == same and hash(arch) == hash(same) and len({arch, same}) == 1
    assert arch == {"m_16": "k3_leaky", "m_29": "k5_mish", "m_100": "k3_relu"}
    with pytest.raises(AttributeError):
        arch._items = ()
    changed = arch.replace(m_16="k5_relu")
    assert changed["m_16"] == "k5_relu" and arch["m_16"] == "k3_leaky"


@pytest.mark.parametrize("name", CANDIDATES)
def test_json_round_trip(tmp_path, name):
    arch = base_architecture(LABELS).replace(m_21=name)
    assert Architecture.from_json(arch.to_json()) == arch
    path = arch.save(tmp_path / "sub" / "arch.json")
    assert json.loads(path.read_text()) == arch.to_dict()
    assert Architecture.load(path) == arch
    assert not list((tmp_path / "sub").glob(".*.tmp"))  # written atomically, no leftovers


def test_from_json_accepts_a_report_with_an_architecture_key():
    text = json.dumps({"strategy": "darts", "architecture": {"m_16": "k5_leaky"}})
    assert Architecture.from_json(text) == {"m_16": "k5_leaky"}


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"m_16": 3}', "candidate names"),
    ],
)
def test_bad_json_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(ArchitectureError, match=message) as info:
        Architecture.load(path)
    assert str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArchitectureError, match="cannot read architecture file"):
        Architecture.load(tmp_path / "none.json")


def test_validation_names_valid_labels_and_candidates():
    base = base_architecture(LABELS)
    assert base.validate(LABELS) is base
    with pytest.raises(ArchitectureError, match="unknown block label.*m_17.*searchable blocks: m_16, m_21, m_25, m_29"):
        base.replace(m_17="k3_mish").validate(LABELS)
    with pytest.raises(ArchitectureError, match="no candidate chosen for block.*m_29"):
        Architecture({"m_16": "k3_mish", "m_21": "k3_mish", "m_25": "k3_mish"}).validate(LABELS)
    with pytest.raises(ArchitectureError, match="m_21: unknown candidate 'k7_mish'; valid candidates: k3_relu, k3_leaky, k3_mish, k5_relu, k5_leaky, k5_mish"):
        base.replace(m_21="k7_mish").validate(LABELS)


def test_enumerate_space():
    space = list(enumerate_space(LABELS))
    assert len(space) == 1296 == len(set(space))
    assert space[0] == Architecture({label: CANDIDATES[0] for label in LABELS})
    assert base_architecture(LABELS) in space
    assert all(a.labels == tuple(LABELS) for a in space)
    assert len(list(enumerate_space(["m_16"]))) == len(CANDIDATES)


def test_indices_round_trip():
    arch = Architecture({"m_16": "k5_mish", "m_21": "k3_relu"})
    assert arch.indices() == (5, 0)
    assert Architecture.from_indices(arch.labels, arch.indices()) == arch
    with pytest.raises(ArchitectureError, match="out of range 0..5"):
        Architecture.from_indices(["m_16"], [6])
