"""tools/probe.py end to end on the tiny model: training prompts from data.source, eval prompts from the
recipe's sets, one probe per layer, the table and the figure; a recipe without safe eval prompts stops in
one line."""
import json

from conftest import FAST


def _args(tmp_path, *extra):
    out = []
    for item in [*[x for x in FAST if x.startswith("model.")], "data.limit=48", "eval.limit_per_set=6", *extra]:
        out += ["--set", item]
    return out + ["--out", str(tmp_path / "probe")]


def test_probe_runs_on_the_tiny_model(tmp_path, cache_dir):
    from tools.probe import main

    assert main(_args(tmp_path)) == 0
    result = json.loads((tmp_path / "probe/probe.json").read_text())
    assert result["n_train"] == 48  # the RIT-D prompts RW would train on, 12 per kind
    assert result["n_test"] == 6 * 4  # harmful, jailbreak, benign, borderline (general is left out)
    assert len(result["layers"]) == 2 + 1  # embeddings + the tiny model's 2 layers
    for r in result["layers"]:
        t = r["test"]
        assert abs(t["separation"] - (1 - t["miss_rate"] - t["false_alarm_rate"])) < 1e-9
    assert (tmp_path / "probe/probe_layers.png").stat().st_size > 0
    assert "| layer |" in (tmp_path / "probe/probe.md").read_text()


def test_probe_without_safe_eval_prompts_is_one_line(tmp_path, cache_dir, capsys):
    from tools.probe import main

    assert main(_args(tmp_path, "eval.sets=[harmful, jailbreak]")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the probe needs harmful and safe prompts") and "Traceback" not in err
