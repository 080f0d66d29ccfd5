"""Model FLOP counts against torch's own FLOP counter, and peak rates for MFU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from nmt.config import config_from_dict
from nmt.data.loader import LengthSums
from nmt.flops import FlopCounter, peak_flops
from nmt.models import build_model


def transformer(**options: object):
    section = {"d_model": 128, "heads": 4, "ff_size": 256, "encoder_layers": 2}
    section |= {"decoder_layers": 2, "dropout": 0.0, **options}
    config = config_from_dict({"model": {"type": "transformer", "transformer": section}})
    return build_model(config.model, 500, 400)


def measured_flops(model, batch: int, src_len: int, tgt_len: int) -> float:
    """torch's count of forward + backward matrix products, attention included (its math
    kernel, which computes the whole causal square)."""
    src = torch.randint(4, 500, (batch, src_len))
    tgt = torch.randint(4, 400, (batch, tgt_len))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        logits = model(src, torch.full((batch,), src_len), tgt)
        F.cross_entropy(logits.flatten(0, 1), tgt.flatten()).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(("src_len", "tgt_len"), [(20, 5), (5, 20)])
def test_transformer_flops_match_torchs_count(src_len: int, tgt_len: int) -> None:
    """Weights applied per source token and per target token, the output projection and
    attention's pairs: each on the right side. The 1 % left is biases and LayerNorms,
    which the formula counts and torch's counter (matrix products only) does not."""
    batch, model = 4, transformer()
    sums = LengthSums(
        src_tokens=batch * src_len,
        tgt_tokens=batch * tgt_len,
        src_pairs=batch * src_len**2,
        tgt_causal_pairs=batch * tgt_len**2,  # what the math kernel computes
        cross_pairs=batch * src_len * tgt_len,
    )
    counted = FlopCounter.of(model)(sums)
    assert counted == pytest.approx(measured_flops(model, batch, src_len, tgt_len), rel=0.02)


def test_random_feature_attention_is_counted_per_token() -> None:
    model = transformer(decoder_attention="rfa", cross_attention="rfa")
    counter = FlopCounter.of(model)
    assert counter.per_tgt_causal_pair == counter.per_cross_pair == 0
    sums = LengthSums(80, 20, 1600, 100, 400)  # 4 sentences, 20 source and 5 target tokens
    # Approximate: the chunked causal form does a little more than the recurrence counted.
    assert counter(sums) == pytest.approx(measured_flops(model, 4, 20, 5), rel=0.1)


def test_gru_flops_grow_with_tokens_and_pairs() -> None:
    config = config_from_dict({"model": {"type": "gru"}})
    counter = FlopCounter.of(build_model(config.model, 500, 400))
    assert counter.per_src_token > 0 and counter.per_tgt_token > 0 and counter.per_cross_pair > 0


def test_peak_flops_from_the_config_or_a_known_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert peak_flops(torch.device("cpu"), "fp32") is None  # no MFU on a CPU by default
    assert peak_flops(torch.device("cpu"), "fp32", configured_tflops=2.5) == 2.5e12
    names = {"NVIDIA H200": 989e12, "NVIDIA H100 PCIe": 756e12, "NVIDIA A100-SXM4-80GB": 312e12}
    names |= {"NVIDIA L40S": 362e12, "NVIDIA L4": 121e12, "Tesla T4": None}
    for name, peak in names.items():
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device, name=name: name)
        assert peak_flops(torch.device("cuda"), "bf16") == peak, name
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    assert peak_flops(torch.device("cuda"), "fp32") == 989e12 / 2  # TF32 tensor cores
