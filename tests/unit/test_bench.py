"""`python -m tools.bench`'s table: values in the order of their labels, and every target said met or not."""
from rich.console import Console

from tools.bench import bench_rows, print_bench

RESULTS = {"eval": {"batch1_s": 17.0, "batched_s": 5.5, "speedup": 3.09},
           "tracking": {"track_on_s": 20.0, "track_off_s": 18.5, "ratio": 1.081},
           "precompute_ref": {"step_s_reference_forward": 0.5, "step_s_precomputed": 0.4, "ratio": 0.8},
           "overhead": {"kit_warmup_train_s": 10.0, "plain_trl_peft_train_s": 9.9, "ratio": 1.01, "steps": 30}}


def test_bench_table_orders_values_like_labels_and_says_whether_targets_are_met():
    rows = {r["key"]: r for r in bench_rows(RESULTS)}
    assert rows["eval"]["measure"] == "eval: batch 1 / batched" and rows["eval"]["values"] == "17.0 s / 5.5 s"
    assert rows["eval"]["met"] is False and rows["tracking"]["met"] is True and rows["overhead"]["met"] is True
    assert rows["precompute_ref"]["met"] is None
    console = Console(record=True, width=200)
    print_bench(list(rows.values()), "bench", console)
    out = console.export_text()
    assert "NO" in out and "targets met: 2 of 3; missed: eval: batch 1 / batched (3.09x faster batched, target >= 4x)" in out
