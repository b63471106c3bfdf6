"""The lowered-model cache key includes the lowering code: a change to it lowers the model again."""

from types import SimpleNamespace

from harness.pipeline import case


def test_lowered_model_key_changes_with_the_lowering_code(tmp_path, monkeypatch, hand_model):
    names = {p.name for p in case.LOWERING_SOURCES}
    assert {"phase.py", "zero_insert.py", "common.py", "convtranspose.py"} <= names
    assert all(p.is_file() for p in case.LOWERING_SOURCES)
    prep = SimpleNamespace(onnx_path=str(hand_model), conv_transpose_nodes=1)
    build = tmp_path / "build"
    first, _ = case.lowered_path(prep, "phase", build)
    assert case.lowered_path(prep, "phase", build)[0] == first  # reused

    edited = tmp_path / "phase.py"
    edited.write_text("# a changed lowering\n")
    monkeypatch.setattr(case, "LOWERING_SOURCES", (*case.LOWERING_SOURCES, edited))
    second, summary = case.lowered_path(prep, "phase", build)
    assert second != first and summary["lowered"] == 1
    assert len(list((build / "lowered").glob("*.onnx"))) == 2
