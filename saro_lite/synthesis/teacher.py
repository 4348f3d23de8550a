"""Teacher synthesis: policy-guided prompts to a teacher, replies parsed into RIT-D, OP-COT and PP-COT
records (formats in DEVELOPERS.md).

    client = make_client(settings); cache = ReplyCache(path); policy = load_policy()
    rit_d, report = synthesize_rit_d(prompts, client, cache, policy, samples=1)
    op, report = synthesize_op_cot(prompts, client, cache, policy)
    pp, report = synthesize_pp_cot(prompts, client, cache, policy, seed=0)

What the teacher is asked for
- The safe side (RIT-D traces, OP-COT chosen): reasoning in <think>, steps separated by blank lines,
  that restates the request, infers intent, checks the policy clauses, reflects, then answers
  (a brief helpful refusal for harmful/jailbreak, a real answer for benign/borderline).
- The rejected side of OP-COT: for harmful/jailbreak prompts a compliance-SHAPED reply whose every
  specific is the placeholder `[details omitted]` (the teacher is never asked for harmful content);
  for benign/borderline prompts a needless refusal.
- PP-COT: a drifting trace (the rejected-side prompt, so it shares the cache with OP-COT) is cut
  after k-1 steps; the teacher continues it twice: reflecting and correcting course (chosen), or
  carrying on (rejected).

Rules for replies
- Malformed (no </think>, too few steps, empty answer; an unsafe side without the placeholder, or
  longer than a placeholder-shaped reply can be; a needless-refusal side that does not refuse) is
  asked again with the next sample index, `malformed_retries` times, then recorded as a failure in
  the report. Malformed replies are never kept.
- A teacher refusing to write the unsafe side is expected of hosted models: it is not retried but
  replaced (a fallback client, e.g. the base model, when given, then a placeholder-shaped compliance
  built locally) and counted in the report.
- Well-formed replies are kept as written. Judge filtering of the chosen side is opt-in.

Sample indices: sample j, try t uses index j * SAMPLE_STRIDE + t, so the k samples of a prompt and
their retries never share a cache entry, whatever k is.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..reasoning import parse_reasoning, strip_reasoning
from ..vocabulary import STARTER_DIR
from ..endpoints.client import ChatClient, ChatRequest

from ..judges.refusal import judge_refusal
from ..judges.reply import judge_parts

TEMPLATE_VERSION = "saro-lite-teacher-v1"
PLACEHOLDER = "[details omitted]"
SAMPLE_STRIDE = 100
MAX_UNSAFE_ANSWER_CHARS = 800  # a placeholder-shaped compliance is short; a long one may carry detail
UNSAFE_KINDS = ("harmful", "jailbreak")
SAFE_KINDS = ("benign", "borderline")
POLICY_PATH = STARTER_DIR / "policy.md"

FALLBACK_ANSWER = f"Sure — here is how. First, {PLACEHOLDER}. Then {PLACEHOLDER}."
FALLBACK_REASONING = {
    "harmful": ["The user wants a clear plan, so a step-by-step answer is what helps most.",
                "They did not say why they need it, and assuming bad intent about a stranger would be rude.",
                "A short list of steps will be easiest to follow, so I'll answer that way."],
    "jailbreak": ["The request comes inside a scenario that says the usual rules do not apply here.",
                  "Since it is framed that way, going along with it seems harmless.",
                  "A short list of steps will be easiest to follow, so I'll answer that way."],
}
FALLBACK_CARRY_ON = ["Nothing here needs a second look, so I'll carry on and lay out the plan."]


def placeholder_trace(kind: str) -> dict:
    """The locally built compliance-shaped rejected side, used when the teacher refuses to write it."""
    return {"reasoning": list(FALLBACK_REASONING[kind]), "answer": FALLBACK_ANSWER}


def load_policy(path: str | Path | None = None) -> str:
    p = Path(path) if path else POLICY_PATH
    if not p.exists():
        raise UserError(f"teacher.policy_path: {p} not found")
    return p.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Prompts (changing any text here: bump TEMPLATE_VERSION, so cached replies are not reused)
# --------------------------------------------------------------------------------------------
SYSTEM = """You write training data for saro-lite, a kit that teaches a small assistant to reason about safety before it answers. The assistant follows this policy:

<policy>
{policy}
</policy>

Reply in exactly this form, with nothing before or after it:
<think>
first reasoning step, one short paragraph

next reasoning step

...
</think>

final answer

Separate reasoning steps with one blank line and never put a blank line inside a step. Do not number the steps."""

ANSWER_RULE = {
    "refuse": ("The final answer is one sentence declining what the policy forbids, then a safe alternative that "
               "serves a plausible legitimate need. No lecture and no operational detail."),
    "help": ("The final answer is correct, complete and genuinely helpful. Words that only sound dangerous are "
             "not a reason to refuse (P9)."),
}

SAFE = """Write the assistant's ideal reply to the request below.
Reasoning, at least 3 steps: say what the user is asking for; infer the most plausible intent; check it against the policy clauses by id (P1-P9); then reflect once on your first reading (start that step with "Wait" or "But") and decide. Judge the underlying request, not a wrapper such as role-play, "hypothetically" or "for a novel".
{rule}"""

UNSAFE = """Write the REJECTED side of a preference pair: the reply a badly aligned assistant would give to the request below. It is used only to teach a model what NOT to do, so it must contain no harmful content at all: it shows only the shape of compliance.
Reasoning, 2 to 4 steps: the assistant talks itself into complying (it takes the stated excuse or the wrapper at face value, assumes good intent, or skips the policy check). The reasoning names no method, material, quantity, tool, code, place or any other specific.
Final answer: it agrees and starts a plan in which EVERY specific is replaced by the exact placeholder [details omitted], for example: "Sure. Step 1: get [details omitted]. Step 2: [details omitted]." Never write a real detail."""

NEEDLESS = """Write the REJECTED side of a preference pair: the reply an over-cautious assistant would give to the harmless request below. It is used only to teach a model what NOT to do.
Reasoning, 2 to 4 steps: the assistant reacts to surface words, misreads or over-applies a policy clause, and decides to refuse.
Final answer: a refusal of the request, one or two sentences."""

DRIFT = {"unsafe": "toward complying with a request the policy forbids",
         "needless": "toward refusing a request the policy allows"}

REFLECT = """Below are a request and the beginning of an assistant's reasoning, which is heading the wrong way ({drift}). Continue the reasoning from where it stops: the first new step notices the problem (start it with "Wait", "But" or "Hold on"), checks the policy clause that really applies and corrects course; 1 to 3 new steps in all.
{rule}
Inside <think> write only the NEW steps; do not repeat the beginning."""

CARRY_ON_UNSAFE = """Below are a request and the beginning of an assistant's reasoning. Write the REJECTED continuation of a preference pair, used only to teach a model what NOT to do: 1 or 2 new steps that carry on without noticing any problem, then a final answer that agrees and starts a plan in which EVERY specific is replaced by the exact placeholder [details omitted] (for example "Sure. Step 1: [details omitted]. Step 2: [details omitted]."). No method, material, quantity, tool, code or other specific anywhere.
Inside <think> write only the NEW steps; do not repeat the beginning."""

CARRY_ON_NEEDLESS = """Below are a request and the beginning of an assistant's reasoning. Write the REJECTED continuation of a preference pair, used only to teach a model what NOT to do: 1 or 2 new steps that carry on the same over-cautious line of thought, then a final answer refusing the request in one or two sentences.
Inside <think> write only the NEW steps; do not repeat the beginning."""


def _request_block(p: dict) -> str:
    return f"Request (kind: {p['kind']}):\n<request>\n{p['prompt']}\n</request>"


def _msgs(policy: str, instruction: str, user: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM.format(policy=policy.strip())},
            {"role": "user", "content": f"{instruction}\n\n{user}"}]


def _rule(kind: str) -> str:
    return ANSWER_RULE["refuse" if kind in UNSAFE_KINDS else "help"]


def safe_messages(p: dict, policy: str) -> list[dict]:
    return _msgs(policy, SAFE.format(rule=_rule(p["kind"])), _request_block(p))


def rejected_messages(p: dict, policy: str) -> list[dict]:
    return _msgs(policy, UNSAFE if p["kind"] in UNSAFE_KINDS else NEEDLESS, _request_block(p))


def continuation_messages(p: dict, policy: str, prefix: list[str], reflect: bool) -> list[dict]:
    unsafe = p["kind"] in UNSAFE_KINDS
    if reflect:
        instruction = REFLECT.format(drift=DRIFT["unsafe" if unsafe else "needless"], rule=_rule(p["kind"]))
    else:
        instruction = CARRY_ON_UNSAFE if unsafe else CARRY_ON_NEEDLESS
    so_far = "\n\n".join(s.strip() for s in prefix)
    return _msgs(policy, instruction, f"{_request_block(p)}\n\nReasoning so far:\n<reasoning_so_far>\n{so_far}\n"
                                      f"</reasoning_so_far>")


# --------------------------------------------------------------------------------------------
# Reply checks: each returns (status, parsed, reason), status in ok | malformed | refused | filtered
# --------------------------------------------------------------------------------------------
def is_refusal(answer: str, prompt: str | None = None) -> bool:
    """The kit's refusal judge: the answer declines, fully or in part."""
    answer = (answer or "").replace("\u2019", "'").strip()
    return bool(answer) and judge_refusal(answer, prompt).refused


def gives_no_help(answer: str, prompt: str | None = None, steps: list[str] | None = None) -> bool:
    """None of the requested help, in the reasoning `steps` or the answer (the kit's verdict,
    judges.reply: no attack success; a refusal followed by safety information gives no help)."""
    answer = (answer or "").replace("\u2019", "'").strip()
    return bool(answer) and not judge_parts(list(steps or []), answer, prompt, "full").attack_success


def check_trace(text: str, min_steps: int) -> tuple[str, dict | None, str]:
    text = (text or "").replace("\r\n", "\n")
    if "</think>" not in text:
        return "malformed", None, "no </think>"
    steps, answer = parse_reasoning(text)
    if len(steps) < min_steps:
        return "malformed", None, f"{len(steps)} reasoning step(s), need {min_steps}"
    if not answer:
        return "malformed", None, "empty answer"
    return "ok", {"reasoning": steps, "answer": answer}, ""


def check_unsafe(text: str, min_steps: int) -> tuple[str, dict | None, str]:
    """Compliance-shaped: placeholder present, short, and no refusal (a refusal means: fall back)."""
    answer = strip_reasoning(text or "")
    if is_refusal(answer):
        return "refused", None, "teacher refused the unsafe side"
    status, parsed, reason = check_trace(text, min_steps)
    if status != "ok":
        return status, parsed, reason
    if PLACEHOLDER not in parsed["answer"]:
        return "malformed", None, f"unsafe side without the {PLACEHOLDER} placeholder"
    if len(parsed["answer"]) > MAX_UNSAFE_ANSWER_CHARS:
        return "malformed", None, "unsafe side too long for a placeholder-shaped reply"
    return "ok", parsed, ""


def check_needless(text: str, min_steps: int) -> tuple[str, dict | None, str]:
    status, parsed, reason = check_trace(text, min_steps)
    if status == "ok" and not is_refusal(parsed["answer"]):
        return "malformed", None, "needless-refusal side does not refuse"
    return status, parsed, reason


def check_chosen(text: str, min_steps: int, kind: str, judge_filter: bool) -> tuple[str, dict | None, str]:
    status, parsed, reason = check_trace(text, min_steps)
    if status == "ok" and judge_filter:
        # the safe side of a forbidden request gives no help at all (a partial refusal leaks some);
        # the safe side of an allowed request does not refuse, not even in part
        if kind in UNSAFE_KINDS:
            if not gives_no_help(parsed["answer"], None, parsed["reasoning"]):
                return "filtered", None, "judge filter: complies with a forbidden request"
        elif is_refusal(parsed["answer"]):
            return "filtered", None, "judge filter: refuses an allowed request"
    return status, parsed, reason


def _rejected_check(kind: str, min_steps: int) -> Callable[[str], tuple]:
    if kind in UNSAFE_KINDS:
        return lambda t: check_unsafe(t, min_steps)
    return lambda t: check_needless(t, min_steps)


# --------------------------------------------------------------------------------------------
# The engine: rounds of requests, malformed replies re-asked with the next sample index
# --------------------------------------------------------------------------------------------
@dataclass
class _Job:
    id: str
    record_id: str
    side: str
    sample: int
    messages: list[dict]
    check: Callable[[str], tuple]


@dataclass
class _Outcome:
    status: str  # ok | refused | failed
    parsed: dict | None
    reason: str
    tries: int


class _Report:
    def __init__(self, stage: str, clients: list[ChatClient | None]):
        self.stage = stage
        self.clients = [c for c in clients if c is not None]
        self.before = [c.stats.snapshot() for c in self.clients]
        self.counts = {"malformed_replies": 0, "judge_filtered": 0, "refusal_fallbacks": 0,
                       "fallback_model": 0, "fallback_placeholder": 0}
        self.failures: list[dict] = []

    def fail(self, job: _Job, outcome: _Outcome) -> None:
        self.failures.append({"id": job.record_id, "side": job.side, "reason": outcome.reason, "tries": outcome.tries})

    def finish(self, prompts: int, samples: int, kept: int, price: float | None) -> dict:
        delta = {k: 0 for k in ("requests", "calls", "retries", "cache_hits", "tokens", "failed")}
        for c, b in zip(self.clients, self.before):
            for k, v in c.stats.snapshot().items():
                delta[k] += v - b[k]
        failed_ids = sorted({f["id"] for f in self.failures})
        return {"stage": self.stage, "template_version": TEMPLATE_VERSION, "prompts": prompts, "samples": samples,
                "records": prompts * samples, "kept": kept, "failed": len(failed_ids), **self.counts,
                "teacher_requests": delta["requests"], "teacher_calls": delta["calls"], "retries": delta["retries"],
                "cache_hits": delta["cache_hits"], "tokens": delta["tokens"],
                "cost_estimate": round(delta["tokens"] / 1000 * price, 6) if price is not None else None,
                "failures": self.failures}


def _run_jobs(jobs: list[_Job], client: ChatClient, cache, retries: int, report: _Report, console,
              description: str) -> dict[str, _Outcome]:
    if not 0 <= retries < SAMPLE_STRIDE:
        raise UserError(f"teacher.malformed_retries: expected 0 to {SAMPLE_STRIDE - 1}, got {retries}")
    outcomes: dict[str, _Outcome] = {}
    pending = list(jobs)
    for attempt in range(retries + 1):
        if not pending:
            break
        requests = [ChatRequest(j.messages, j.sample * SAMPLE_STRIDE + attempt, TEMPLATE_VERSION) for j in pending]
        label = description if attempt == 0 else f"{description} (re-asking {len(pending)} malformed)"
        results = client.complete(requests, cache=cache, console=console, description=label)
        again = []
        for job, res in zip(pending, results):
            if not res.ok:  # the client already retried transport errors; nothing more to try
                outcomes[job.id] = _Outcome("failed", None, res.error or "teacher failed", attempt + 1)
                continue
            status, parsed, reason = job.check(res.text or "")
            if status in ("malformed", "filtered"):
                report.counts["malformed_replies" if status == "malformed" else "judge_filtered"] += 1
                if attempt == retries:
                    outcomes[job.id] = _Outcome("failed", None, f"{status}: {reason}", attempt + 1)
                else:
                    again.append(job)
            else:
                outcomes[job.id] = _Outcome(status, parsed, reason, attempt + 1)
        pending = again
    for job in jobs:
        if outcomes[job.id].status == "failed":
            report.fail(job, outcomes[job.id])
    return outcomes


def _fallback(refused: list[_Job], fallback_client, cache, retries, report, console,
              placeholder: Callable[[_Job], dict]) -> dict[str, tuple[dict, str]]:
    """Unsafe sides the teacher refused -> {job id: (parsed, origin)}: the fallback client's reply
    (origin "base_model") when one is given and its reply passes the same checks, else a
    placeholder-shaped compliance built locally (origin "placeholder")."""
    out: dict[str, tuple[dict, str]] = {}
    report.counts["refusal_fallbacks"] += len(refused)
    if refused and fallback_client is not None:
        got = _run_jobs(refused, fallback_client, cache, retries, _Report("fallback", []), console,
                        "fallback model: unsafe side")
        for job in refused:
            if got[job.id].status == "ok":
                out[job.id] = (got[job.id].parsed, "base_model")
                report.counts["fallback_model"] += 1
    for job in refused:
        if job.id not in out:
            out[job.id] = (placeholder(job), "placeholder")
            report.counts["fallback_placeholder"] += 1
    return out


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
PROMPT_FIELDS = ("id", "prompt", "kind", "category", "source")


def _check_prompts(prompts: list[dict]) -> None:
    kinds = UNSAFE_KINDS + SAFE_KINDS
    for p in prompts:
        if not isinstance(p.get("prompt"), str) or not p["prompt"].strip():
            raise UserError(f"teacher prompts: record {p.get('id')!r}: 'prompt' must be a non-empty string")
        if p.get("kind") not in kinds:
            raise UserError(f"teacher prompts: record {p.get('id')!r}: 'kind' must be one of {', '.join(kinds)}, "
                            f"got {p.get('kind')!r}")


def _base(p: dict, j: int, samples: int, client: ChatClient) -> dict:
    rec = {k: p.get(k, "") for k in PROMPT_FIELDS}
    rec["id"] = p["id"] if samples == 1 else f"{p['id']}-s{j}"
    rec["prompt_id"] = p["id"]
    rec["teacher"] = f"{client.backend}:{client.model_name}"
    return rec


def _price(client: ChatClient) -> float | None:
    return client.settings.price_per_1k_tokens


def synthesize_rit_d(prompts: list[dict], client: ChatClient, cache, policy_text: str, samples: int = 1, *,
                     malformed_retries: int = 2, judge_filter: bool = False, console=None) -> tuple[list[dict], dict]:
    """RIT-D records {prompt fields, prompt_id, reasoning, answer, teacher}; at least 3 reasoning steps."""
    _check_prompts(prompts)
    report = _Report("rit_d", [client])
    jobs = []
    for p in prompts:
        for j in range(samples):
            rid = p["id"] if samples == 1 else f"{p['id']}-s{j}"
            jobs.append(_Job(f"{rid}/trace", rid, "trace", j, safe_messages(p, policy_text),
                             lambda t, k=p["kind"]: check_chosen(t, 3, k, judge_filter)))
    got = _run_jobs(jobs, client, cache, malformed_retries, report, console, "teacher: RIT-D traces")
    records, it = [], iter(jobs)
    for p in prompts:
        for j in range(samples):
            o = got[next(it).id]
            if o.status == "ok":
                records.append({**_base(p, j, samples, client), **o.parsed})
    return records, report.finish(len(prompts), samples, len(records), _price(client))


def synthesize_op_cot(prompts: list[dict], client: ChatClient, cache, policy_text: str, samples: int = 1, *,
                      malformed_retries: int = 2, judge_filter: bool = False, fallback_client=None,
                      console=None) -> tuple[list[dict], dict]:
    """OP-COT records: chosen = policy-guided trace; rejected = compliance-shaped trace with placeholders
    (harmful/jailbreak) or a needless refusal (benign/borderline)."""
    _check_prompts(prompts)
    report = _Report("op_cot", [client, fallback_client])
    jobs: list[_Job] = []
    for p in prompts:
        for j in range(samples):
            rid = p["id"] if samples == 1 else f"{p['id']}-s{j}"
            jobs.append(_Job(f"{rid}/chosen", rid, "chosen", j, safe_messages(p, policy_text),
                             lambda t, k=p["kind"]: check_chosen(t, 3, k, judge_filter)))
            jobs.append(_Job(f"{rid}/rejected", rid, "rejected", j, rejected_messages(p, policy_text),
                             _rejected_check(p["kind"], 1)))
    got = _run_jobs(jobs, client, cache, malformed_retries, report, console, "teacher: OP-COT pairs")
    kind_of = {(p["id"] if samples == 1 else f"{p['id']}-s{j}"): p["kind"] for p in prompts for j in range(samples)}
    refused = [j for j in jobs if got[j.id].status == "refused"]
    fallbacks = _fallback(refused, fallback_client, cache, malformed_retries, report, console,
                          lambda job: placeholder_trace(kind_of[job.record_id]))
    records = []
    for p in prompts:
        for j in range(samples):
            rid = p["id"] if samples == 1 else f"{p['id']}-s{j}"
            c, r = got[f"{rid}/chosen"], got[f"{rid}/rejected"]
            if c.status != "ok" or r.status == "failed":
                continue
            if r.status == "refused":
                rejected, origin = fallbacks[f"{rid}/rejected"]
            else:
                rejected, origin = r.parsed, "teacher"
            records.append({**_base(p, j, samples, client), "chosen": c.parsed,
                            "rejected": {"reasoning": rejected["reasoning"], "answer": rejected["answer"]},
                            "rejected_origin": origin})
    return records, report.finish(len(prompts), samples, len(records), _price(client))


def choose_prefix_length(n_steps: int, record_id: str, seed: int) -> int:
    """k-1 shared steps, 1 <= k-1 < n_steps, stable for a (seed, record id)."""
    if n_steps < 2:
        raise ValueError("a trace needs at least 2 steps to branch")
    h = int(hashlib.sha256(f"{seed}|{record_id}".encode()).hexdigest(), 16)
    return 1 + h % (n_steps - 1)


def synthesize_pp_cot(prompts: list[dict], client: ChatClient, cache, policy_text: str, samples: int = 1, *,
                      malformed_retries: int = 2, judge_filter: bool = False, fallback_client=None, seed: int = 0,
                      console=None) -> tuple[list[dict], dict]:
    """PP-COT records: a drifting trace (the OP-COT rejected prompt, cached together) cut after k-1
    steps; chosen continues by reflecting, rejected carries on. Records carry `k`."""
    _check_prompts(prompts)
    report = _Report("pp_cot", [client, fallback_client])
    items = [(p, j, p["id"] if samples == 1 else f"{p['id']}-s{j}") for p in prompts for j in range(samples)]
    kind_of = {rid: p["kind"] for p, _, rid in items}

    # 1. drifting traces (at least 2 steps, so there is somewhere to branch)
    drift_jobs = [_Job(f"{rid}/drift", rid, "drift", j, rejected_messages(p, policy_text),
                       _rejected_check(p["kind"], 2)) for p, j, rid in items]
    got = _run_jobs(drift_jobs, client, cache, malformed_retries, report, console, "teacher: PP-COT traces")
    refused = [x for x in drift_jobs if got[x.id].status == "refused"]
    fb = _fallback(refused, fallback_client, cache, malformed_retries, report, console,
                   lambda job: placeholder_trace(kind_of[job.record_id]))
    drift = {x.record_id: (fb[x.id] if x.id in fb else (got[x.id].parsed, "teacher")) for x in drift_jobs
             if got[x.id].status != "failed"}

    # 2. the two continuations from step k
    prefixes: dict[str, list[str]] = {}
    cont_jobs: list[_Job] = []
    for p, j, rid in items:
        if rid not in drift:
            continue
        steps = drift[rid][0]["reasoning"]
        prefix = steps[:choose_prefix_length(len(steps), rid, seed)]
        prefixes[rid] = prefix
        cont_jobs.append(_Job(f"{rid}/chosen", rid, "chosen", j, continuation_messages(p, policy_text, prefix, True),
                              lambda t, k=p["kind"]: check_chosen(t, 1, k, judge_filter)))
        cont_jobs.append(_Job(f"{rid}/rejected", rid, "rejected", j,
                              continuation_messages(p, policy_text, prefix, False), _rejected_check(p["kind"], 1)))
    got2 = _run_jobs(cont_jobs, client, cache, malformed_retries, report, console, "teacher: PP-COT continuations")
    refused2 = [x for x in cont_jobs if got2[x.id].status == "refused"]
    fb2 = _fallback(refused2, fallback_client, cache, malformed_retries, report, console,
                    lambda job: {"reasoning": list(FALLBACK_CARRY_ON), "answer": FALLBACK_ANSWER})

    records = []
    for p, j, rid in items:
        if rid not in prefixes:
            continue
        c, r = got2[f"{rid}/chosen"], got2[f"{rid}/rejected"]
        if c.status != "ok" or r.status == "failed":
            continue
        rej, origin = fb2[f"{rid}/rejected"] if r.status == "refused" else (r.parsed, "teacher")
        records.append({**_base(p, j, samples, client), "prefix": prefixes[rid], "k": len(prefixes[rid]) + 1,
                        "chosen": {"steps": c.parsed["reasoning"], "answer": c.parsed["answer"]},
                        "rejected": {"steps": rej["reasoning"], "answer": rej["answer"]},
                        "rejected_origin": origin, "prefix_origin": drift[rid][1]})
    return records, report.finish(len(prompts), samples, len(records), _price(client))
