"""oneDNN-packed linear layers give nn.Linear's results, and are used where they help."""

import pytest
import torch
from torch import nn

from fasttts.backends.torch_llm.cpu_linear import PackedLinear, pack_linears


@pytest.mark.parametrize("rows", [1, 3, 8, 33])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_matches_nn_linear(rows, bias):
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    torch.manual_seed(rows)
    lin = nn.Linear(64, 96, bias=bias)
    x = torch.randn(rows, 64)
    with torch.no_grad():
        torch.testing.assert_close(PackedLinear(lin)(x), lin(x), atol=1e-5, rtol=1e-5)


def test_pack_linears_replaces_only_where_it_applies():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 4)))
    assert pack_linears(model, torch.device("cpu"), torch.bfloat16) == 0  # float32 only
    assert pack_linears(model, torch.device("meta"), torch.float32) == 0  # CPU only
    if torch.backends.mkldnn.is_available():
        x = torch.randn(2, 8)
        with torch.no_grad():
            before = model(x)
            assert pack_linears(model, torch.device("cpu"), torch.float32) == 2
            torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
        assert not any(type(m) is nn.Linear for m in model.modules())
