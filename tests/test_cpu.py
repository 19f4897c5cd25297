"""inference.cpu: where a model's int8 graph computes as it was measured."""

from __future__ import annotations

import pytest

from audience.inference.cpu import cpu_flags, int8_saturates

EIGHT_BIT = {"quantization": {"method": "static int8 (ONNX Runtime QDQ): int8 weights per "
                                        "output channel, uint8 activations"}}
SEVEN_BIT = {"quantization": {"method": "static int8 (ONNX Runtime QDQ): 7-bit int8 weights "
                                        "per output channel (reduce_range, ...)"}}
FLOAT = {"file": "audience-mt-2.1.0.onnx"}


@pytest.mark.parametrize(("manifest", "flags", "machine", "saturates"), [
    (EIGHT_BIT, {"sse4_2", "avx2", "fma"}, "x86_64", True),
    (EIGHT_BIT, {"avx2", "avx512f", "avx512_vnni"}, "x86_64", False),
    (EIGHT_BIT, {"avx2", "avx_vnni"}, "x86_64", False),
    (EIGHT_BIT, {"sse4_2"}, "x86_64", False),  # no AVX2 kernels: not the saturating path
    (EIGHT_BIT, {"asimd", "asimddp"}, "aarch64", False),
    (SEVEN_BIT, {"avx2"}, "x86_64", False),
    (FLOAT, {"avx2"}, "x86_64", False),
])
def test_only_eight_bit_weights_on_avx2_without_vnni_saturate(manifest, flags, machine,
                                                              saturates):
    assert int8_saturates(manifest, flags, machine) is saturates


def test_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx2", "avx512_vnni"}
    assert cpu_flags(tmp_path / "absent") is None
    info.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")  # ARM: no x86 flags
    assert cpu_flags(info) == set()


def test_the_analyzer_warns_once_where_the_shipped_int8_saturates(monkeypatch, caplog):
    from audience.inference import analyzer

    monkeypatch.setattr(analyzer, "int8_saturates", lambda manifest: True)
    with caplog.at_level("WARNING"):
        analyzer.FaceAnalyzer()
    said = [r.getMessage() for r in caplog.records if "VNNI" in r.getMessage()]
    assert len(said) == 1 and "differ from the model card" in said[0]
