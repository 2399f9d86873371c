"""benchmarks/gpu_table.py: the GPU check's table and target verdicts from its JSON (no GPU needed)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_table", ROOT / "benchmarks" / "gpu_table.py")
gpu_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_table)


def _rows(**sps):
    return [{"loop": k, "chain_steps_per_s": v, "est_50k_x_1000_s": 5e7 / v} for k, v in sps.items()]


DOC = {
    "env": {"device_name": "NVIDIA H200", "torch": "2.x"},
    "total_s": 100,
    "quick": False,
    "results": [
        {
            "model": "simplecnn",
            "chains": 1024,
            "rows": _rows(
                **{"plain": 100.0, "studiogan-style": 50.0, "latentflow": 120.0, "latentflow+compile": 250.0}
            ),
        },
        {
            "model": "studiogan",
            "chains": 8192,
            "rows": _rows(
                **{"plain": 100.0, "studiogan-style": 90.0, "latentflow": 110.0, "latentflow+cuda_graph": 150.0}
            ),
            "equal_to_eager": {"compile": {"max_abs_dx": 1e-6}},
        },
    ],
    "auto_50k": [{"model": "simplecnn", "chains": 50000, "ok": True, "s": 2.0, "auto_batch_size": {"grad": 9000}}],
    "skipped": [],
}


def test_table_names_the_device_and_judges_the_targets(tmp_path):
    text = gpu_table.table(DOC, {"passed": 6, "failures": 0, "errors": 0, "skipped": 0, "failed": []})
    assert "NVIDIA H200" in text and "6 passed" in text
    assert (
        "simplecnn @ 1024: latentflow+compile is 2.50x plain (target 2x), 5.00x StudioGAN-style (target 3x): **met**"
        in text
    )
    assert "studiogan @ 8192: latentflow+cuda_graph is 1.50x plain" in text and "**NOT met**" in text
    assert "50000 chains" in text and "no out-of-memory" in text


def test_render_replaces_only_the_marked_readme_section(tmp_path):
    (tmp_path / "tp.json").write_text(json.dumps(DOC))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{gpu_table.START}\nold table\n{gpu_table.END}\nafter\n")
    assert (
        gpu_table.main(
            [
                "render",
                str(tmp_path / "tp.json"),
                str(tmp_path / "none.json"),
                str(tmp_path / "out.md"),
                "--readme",
                str(readme),
            ]
        )
        == 0
    )
    doc = readme.read_text()
    assert (
        "old table" not in doc and "NVIDIA H200" in doc and doc.startswith("# x\nbefore\n") and doc.endswith("after\n")
    )
    assert (tmp_path / "out.md").read_text().startswith("# GPU check")
