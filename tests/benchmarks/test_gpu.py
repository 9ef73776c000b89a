"""benchmarks/gpu.py: the real configurations hold the published parameter counts (built on torch's meta device,
no memory), and every path's code runs end to end on the same families at test sizes, so the script cannot rot.
The real-size run is a command (README), not a test."""
from __future__ import annotations

import json

import pytest

from benchmarks import gpu, gpu_models as M

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("family", sorted(M.FAMILIES))
def test_real_configs_hold_the_published_parameter_counts(family):
    counts = M.meta_sizes(family)
    M.check_sizes(family, counts)
    assert sum(counts.values()) > 8e8  # every family is at least SAM 3's 840M


def test_a_wrong_size_is_refused():
    counts = {**M.PUBLISHED["sd21"], "unet": M.PUBLISHED["sd21"]["unet"] - 1}
    with pytest.raises(AssertionError, match="sd21"):
        M.check_sizes("sd21", counts)


def test_the_semantic_path_brings_the_training_paths_it_samples_with():
    assert gpu.parse(["--paths", "sam3", "semantic"]).paths == ["ti", "lora", "semantic", "sam3"]
    assert gpu.parse(["--paths", "healthy"]).paths == ["healthy"]


def test_default_settings_are_the_papers():
    args = gpu.parse([])
    assert gpu.settings(args, "semantic") == (512, 100) and gpu.settings(args, "lora") == (256, 1)
    assert gpu.dtype_for(gpu.parse(["--device", "cuda"]), "sd21") == "float16"
    assert gpu.dtype_for(args, "kandinsky22") == "bfloat16" and gpu.dtype_for(args, "sd21") == "float32"
    cfg = gpu.semantic_config(args, "model", "float32")
    assert (cfg.strength, cfg.guidance, cfg.sample_steps, cfg.lora_batch, cfg.lora_rank) == (0.725, 8.75, 100, 16, 8)
    assert (cfg.ti_batch, cfg.ti_grad_accum, cfg.prior_weight) == (4, 4, 1.0)


@pytest.mark.slow  # every model family built and run (about a minute and a half on 2 cores)
def test_every_path_runs_through_the_toolkit_on_tiny_models(tmp_path, capsys):
    base = ["--size", "tiny", "--resolution", "64", "--steps", "2", "--batch-sizes", "1", "2"]
    args = gpu.parse(base)
    params, rows = {}, []
    for family in ("kandinsky22", "sd_inpaint", "sd21", "sam3"):
        params[family] = M.save_family(M.TINY[family], tmp_path / family)
        for path in (p for p in args.paths if gpu.FAMILY[p] == family):
            run = gpu.parse(base + ["--worker", "run", path, str(tmp_path / family), str(tmp_path / "adapters")])
            rows += gpu.worker(run)["rows"]
    assert [r["path"] for r in rows] == ["healthy"] * 2 + ["inpaint"] * 2 + ["ti", "lora"] + ["semantic"] * 2 + ["sam3"] * 2
    assert {r["batch"] for r in rows if r["path"] in ("healthy", "semantic")} == {1, 2}
    assert [r["batch"] for r in rows if r["unit"] == "steps/s"] == ["4x4", "16+16"]
    assert all(r["rate"] > 0 and r["peak_mib"] > 0 and r["dtype"] == "float32" for r in rows)
    assert (tmp_path / "adapters" / "lora" / "pytorch_lora_weights.safetensors").is_file()
    out = gpu.report(args, rows, params)
    table = capsys.readouterr().out
    assert "26.9 s/image" in table and "116.5 s/image" in table and "16+16" in table
    assert out["lora_batch16_plus_16_steps_per_s"] > 0 and out["paper_l4_semantic_s_per_image"] == 116.5
    assert out["paper_l4_healthy_s_per_image"] == 26.95 and out["sd21_params"] == sum(params["sd21"].values())
    json.dumps(out)  # the last line main() prints
