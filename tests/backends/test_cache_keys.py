"""The TVM library cache key includes the harness code that builds libraries: a change to it is a new key."""

from harness.backends import ModelArtifact
from harness.backends.tvm import common
from harness.core import cache


def test_library_key_changes_with_the_code_that_builds_it(tmp_path, monkeypatch):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"not parsed: only hashed")
    art = ModelArtifact(str(onnx_file), {"X": (1, 4, 5, 5)}, {"X": "float32"}, cache_dir=str(tmp_path / "c"))
    target = {"kind": "llvm", "mcpu": "x"}
    assert all(p.is_file() for p in common.LIBRARY_SOURCES)
    assert {p.name for p in common.LIBRARY_SOURCES} == {
        "common.py",
        "llvm.py",
        "cuda.py",
        "tuning.py",
        "schedule.py",  # the default CPU schedule
        "defaults.py",  # and the build that applies it
        "fastmath.py",  # exp/tanh/sigmoid made vectorisable before legalisation
    }
    real = common.cache_path(art, target, "0.0")
    assert real == common.cache_path(art, target, "0.0")  # stable within a process

    keys = []
    for i, text in enumerate(["def build(): return 1\n", "def build(): return 2\n"]):
        src = tmp_path / f"v{i}" / "llvm.py"  # the same file name, edited
        src.parent.mkdir()
        src.write_text(text)
        monkeypatch.setattr(common, "LIBRARY_SOURCES", (*common.LIBRARY_SOURCES[:1], src))
        keys.append(common.cache_path(art, target, "0.0"))
    assert len({real, *keys}) == 3
    assert cache.source_digest((src,)) != cache.source_digest((tmp_path / "v0" / "llvm.py",))
