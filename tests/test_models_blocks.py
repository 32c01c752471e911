"""Building blocks and the six-candidate searchable block."""
import pytest
import torch
from torch import nn

from autonn_nas.models.activations import ACTIVATIONS, get_activation
from autonn_nas.models.choice import MBottleneckCSP2
from autonn_nas.models.common import BN_EPS, BN_MOMENTUM, BottleneckCSP2, Conv
from autonn_nas.models.search_space import BASE_CANDIDATE, CANDIDATE_OPS, CANDIDATES, ArchitectureError

ACT_TYPES = {"relu": nn.ReLU, "leaky": nn.LeakyReLU, "mish": nn.Mish}


def test_search_space_is_the_six_candidates():
    assert CANDIDATES == ("k3_relu", "k3_leaky", "k3_mish", "k5_relu", "k5_leaky", "k5_mish")
    assert BASE_CANDIDATE == "k3_mish"


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_by_name(name):
    act = get_activation(name)
    assert type(act) is ACT_TYPES[name]
    if name == "leaky":
        assert act.negative_slope == pytest.approx(0.1)


def test_unknown_activation_names_the_valid_ones():
    with pytest.raises(ValueError, match="relu, leaky, mish"):
        get_activation("swish")


def test_conv_batchnorm_settings_match_scaled_yolov4():
    conv = Conv(8, 16, 3, 2)
    assert conv.conv.bias is None and conv.conv.padding == (1, 1) and conv.conv.stride == (2, 2)
    assert conv.bn.eps == BN_EPS == 1e-3 and conv.bn.momentum == BN_MOMENTUM == 0.03
    assert isinstance(conv.act, nn.Mish)


# (c1, c2) of the four searchable blocks at full width, and one candidate's parameters at 3x3 / 5x5
FULL_SIZE_CANDIDATE_PARAMS = {
    "m_16": ((512, 256), 2_298_880, 5_444_608),
    "m_21": ((256, 128), 576_000, 1_362_432),
    "m_25": ((512, 256), 2_298_880, 5_444_608),
    "m_29": ((1024, 512), 9_185_280, 21_768_192),
}


@pytest.mark.parametrize("name", CANDIDATES)
@pytest.mark.parametrize("label", list(FULL_SIZE_CANDIDATE_PARAMS))
def test_candidate_param_counts_full_size(label, name):
    (c1, c2), p3, p5 = FULL_SIZE_CANDIDATE_PARAMS[label]
    op = CANDIDATE_OPS[name]
    with torch.device("meta"):  # full size: count only, nothing allocated
        block = BottleneckCSP2(c1, c2, 3, k=op.kernel, act=op.act)
    assert sum(p.numel() for p in block.parameters()) == (p3 if op.kernel == 3 else p5)


@pytest.mark.parametrize("name", CANDIDATES)
def test_candidate_kernel_and_activation_everywhere(name):
    op = CANDIDATE_OPS[name]
    block = BottleneckCSP2(16, 8, 2, k=op.kernel, act=op.act)
    for bottleneck in block.m:
        assert bottleneck.cv2.conv.kernel_size == (op.kernel, op.kernel)
        assert bottleneck.cv2.conv.padding == (op.kernel // 2, op.kernel // 2)
        assert bottleneck.cv1.conv.kernel_size == (1, 1)
    acts = [m for m in block.modules() if isinstance(m, tuple(ACT_TYPES.values()))]
    # cv1, cv3, the post-BN act and two per bottleneck
    assert len(acts) == 3 + 2 * 2
    assert all(type(a) is ACT_TYPES[op.act] for a in acts)


@pytest.mark.parametrize("name", CANDIDATES)
@pytest.mark.parametrize("hw", [(8, 8), (16, 12), (5, 7)])
def test_candidate_forward_shape(name, hw):
    block = MBottleneckCSP2(12, 8, 1)
    block.active = name
    y = block(torch.randn(2, 12, *hw))
    assert y.shape == (2, 8, *hw)


def test_choice_block_holds_six_candidates_and_no_own_parameters():
    block = MBottleneckCSP2(12, 8, 2)
    assert list(block.candidates) == list(CANDIDATES)
    assert block.active == BASE_CANDIDATE and block.mixture is None and block.gate is None
    assert sum(p.numel() for p in block.parameters()) == sum(
        p.numel() for c in block.candidates.values() for p in c.parameters()
    )
    ptrs = [c.cv1.conv.weight.data_ptr() for c in block.candidates.values()]
    assert len(set(ptrs)) == len(CANDIDATES)  # each candidate has its own weights


@pytest.fixture
def block_and_input():
    torch.manual_seed(0)
    block = MBottleneckCSP2(8, 8, 1).eval()
    return block, torch.randn(1, 8, 6, 6)


@pytest.mark.parametrize("index", range(len(CANDIDATES)))
def test_one_hot_mixture_equals_single_path(block_and_input, index):
    block, x = block_and_input
    block.active = CANDIDATES[index]
    single = block(x)
    block.mixture = torch.nn.functional.one_hot(torch.tensor(index), len(CANDIDATES)).float()
    assert torch.allclose(block(x), single, atol=1e-6)


def test_mixture_is_weighted_sum_and_differentiable(block_and_input):
    block, x = block_and_input
    alpha = nn.Parameter(torch.zeros(len(CANDIDATES)))
    block.mixture = alpha.softmax(0)
    y = block(x)
    expected = sum(op(x) for op in block.candidates.values()) / len(CANDIDATES)
    assert torch.allclose(y, expected, atol=1e-5)
    y.sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CANDIDATES)
def test_gate_scales_the_active_path(block_and_input, name):
    block, x = block_and_input
    block.active = name
    plain = block(x)
    gate = nn.Parameter(torch.tensor(0.25))
    block.gate = gate
    y = block(x)
    assert torch.allclose(y, 0.25 * plain, atol=1e-6)
    y.sum().backward()
    assert gate.grad is not None
    assert "gate" not in dict(block.named_parameters())  # strategy tensors never become model parameters


def test_mode_values_are_checked(block_and_input):
    block, _ = block_and_input
    with pytest.raises(ArchitectureError, match="k3_relu, k3_leaky"):
        block.active = "k7_relu"
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        block.mixture = torch.ones(5)
    with pytest.raises(ValueError, match="scalar"):
        block.gate = torch.ones(2)
    with pytest.raises(TypeError):
        block.gate = 0.5
    block.mixture = nn.Parameter(torch.ones(len(CANDIDATES)))
    assert len(list(block.parameters())) == len(list(MBottleneckCSP2(8, 8, 1).parameters()))


def test_copies_run_single_path(block_and_input):
    import copy

    block, x = block_and_input
    block.active = "k5_leaky"
    block.mixture = nn.Parameter(torch.zeros(len(CANDIDATES))).softmax(0)  # non-leaf: not deep-copyable itself
    clone = copy.deepcopy(block)
    assert clone.mixture is None and clone.gate is None and clone.active == "k5_leaky"
    assert block.mixture is not None
    assert torch.allclose(clone(x), block.candidates["k5_leaky"](x))
