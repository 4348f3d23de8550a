"""tools/probe.py: the linear probe finds a planted direction, reports chance on shuffled labels, and its
miss / false-alarm / separation arithmetic is the report's (separation = 1 - miss - false alarm)."""
from tools.probe import best_layer, fit_logistic, labelled, pick_l2, probe, score


def _planted(n: int, dims: int, shift: float, seed: int):
    import torch

    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, dims, generator=g)
    x[:, 3] += shift * (2 * y - 1)  # one informative direction among noise
    return x, y


def test_the_probe_finds_a_planted_direction_and_generalizes():
    xtr, ytr = _planted(200, 64, 1.5, 0)
    xte, yte = _planted(200, 64, 1.5, 1)
    l2, cv = pick_l2(xtr, ytr)
    acc = float(((fit_logistic(xtr, ytr, l2)(xte) > 0.5) == yte.bool()).float().mean())
    assert cv > 0.8 and acc > 0.8  # the Bayes rate at this shift is 0.93


def test_shuffled_labels_give_chance_not_a_fitted_artifact():
    import torch

    x, _ = _planted(200, 64, 0.0, 2)
    y = torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(3))
    _, cv = pick_l2(x, y)
    assert cv < 0.65  # 64 noise dimensions, 200 points: a probe that overfits would report ~1.0 in-sample


def test_score_is_the_reports_arithmetic():
    pred = [True, True, False, True, False, False, True, False]
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    kinds = ["harmful", "harmful", "jailbreak", "jailbreak", "benign", "benign", "borderline", "borderline"]
    s = score(pred, y, kinds)
    assert s["miss_rate"] == 0.25 and s["false_alarm_rate"] == 0.25 and s["separation"] == 0.5
    assert s["separation_ci"][0] < 0.5 < s["separation_ci"][1]
    assert s["by_kind"]["jailbreak"] == {"n": 2, "flagged": 0.5} and s["by_kind"]["borderline"]["flagged"] == 0.5


def test_layers_are_picked_on_training_folds_only():
    import torch

    # layer 1 carries the signal on the training prompts, layer 0 does not: the pick must be layer 1
    # whatever the test prompts say
    x0, y = _planted(120, 16, 0.0, 4)
    x1, _ = _planted(120, 16, 2.0, 4)
    feats = torch.stack([x0, x1], dim=1)
    layers = probe(feats, y, feats, 1 - y, ["harmful"] * 120)  # test labels inverted on purpose
    assert best_layer(layers)["layer"] == 1 and layers[1]["test"]["separation"] < 0


def test_only_the_four_kinds_are_labelled():
    rows = [{"prompt": "a", "kind": "harmful"}, {"prompt": "b", "kind": "benign"},
            {"prompt": "c", "kind": "general"}, {"prompt": "d", "kind": "jailbreak"}]
    assert labelled(rows) == [("a", 1, "harmful"), ("b", 0, "benign"), ("d", 1, "jailbreak")]
