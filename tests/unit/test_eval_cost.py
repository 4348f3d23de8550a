"""tools/eval_cost.py: where a stop-on-repetition rule would have cut a reply (the replay behind the README's
"cheaper evals" figures)."""
from tools.eval_cost import repeat_stop


def test_a_loop_is_stopped_once_its_span_has_repeated_and_not_before():
    prose = list(range(100, 140))           # 40 distinct tokens: no repetition
    loop = [7, 8, 9] * 20                    # a 3-token loop
    ids = prose + loop
    t = repeat_stop(ids, max_period=16, reps=3)
    # the first point where the last 32 tokens (>= 3 periods of 3) are one span repeated
    assert t == len(prose) + 32
    assert all(ids[t - 32 + i] == ids[t - 32 + i + 3] for i in range(29))


def test_prose_and_a_period_longer_than_allowed_are_never_stopped():
    assert repeat_stop(list(range(300)), max_period=16, reps=3) is None
    long_period = list(range(20)) * 4        # period 20 > 16
    assert repeat_stop(long_period, max_period=16, reps=3) is None
    assert repeat_stop(long_period, max_period=20, reps=2) == 40
