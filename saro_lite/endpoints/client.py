"""The one chat client of the kit: an OpenAI-compatible endpoint, a local transformers model, or none.
The teacher (synthesis/), the API safety judge (judges/safety.py) and the served eval generator (eval.py)
all talk through it.

    settings = EndpointSettings(backend="openai", base_url="http://localhost:8000/v1",
                                model="Qwen/Qwen2.5-7B-Instruct", api_key_env="OPENAI_API_KEY")
    client = make_client(settings)
    results = client.complete([ChatRequest(messages, sample_index=0)], cache=cache, console=console)

Backends
- `openai`: any server speaking POST {base_url}/chat/completions (vLLM, Ollama, llama.cpp, a hosted
  API). Standard library only (urllib). Requests run `concurrency` at a time; 429/5xx replies,
  timeouts and dropped connections are retried with capped exponential backoff and full jitter,
  waiting at least what a Retry-After header asks; after `max_attempts` the item becomes a failed
  Result and the run goes on (or stops, with `stop_on_failure`).
- `hf`: a local transformers model, generated in batches with saro_lite.modeling.generate.
- `none`: no teacher; answers only what the cache already holds (rebuilds stay possible offline).

The API key: read from os.environ[api_key_env] at call time, sent only in the Authorization header
(never forwarded on a redirect), never written to a file, a log line or an error message.

Every reply that came back is cached (before any parsing), so a rebuild makes zero teacher calls and
gives the same data; failures are not cached, so a later run asks again.
"""
from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

from ..errors import UserError
from ..recipe import Teacher

log = logging.getLogger(__name__)

BACKENDS = ("none", "openai", "hf")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403})  # a wrong or missing key fails every item: stop at once
MAX_RETRY_AFTER = 600.0  # longer server-requested waits (a daily quota) fail the item instead


@dataclass
class EndpointSettings(Teacher):
    """The recipe's `teacher` section (recipe.Teacher: the same fields, names and defaults) plus what only
    code sets: extra fields of the request body (openai backend), e.g. {"chat_template_kwargs": {...}}
    for vLLM. synthesis reads samples, malformed_retries, refusal_fallback, judge_filter and policy_path."""

    extra_body: dict | None = None

    def sampling(self) -> dict:
        """The settings that change a reply (part of the cache key)."""
        out = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.extra_body:  # only when set: the cache keys of existing replies stay the same
            out["extra_body"] = self.extra_body
        return out


def settings_from(obj: Any) -> EndpointSettings:
    """EndpointSettings from a dict or a dataclass (e.g. recipe.teacher); unknown keys are ignored."""
    if isinstance(obj, EndpointSettings):
        return obj
    data = asdict(obj) if hasattr(obj, "__dataclass_fields__") else dict(obj or {})
    names = {f.name for f in fields(EndpointSettings)}
    return EndpointSettings(**{k: v for k, v in data.items() if k in names})


@dataclass
class ChatRequest:
    messages: list[dict]  # [{"role": "system"|"user"|"assistant", "content": str}, ...]
    sample_index: int = 0
    template_version: str = ""


@dataclass
class Result:
    key: str
    text: str | None
    tokens: int
    ok: bool
    error: str | None = None
    attempts: int = 0
    cached: bool = False


@dataclass
class Stats:
    requests: int = 0  # items sent to the teacher (cache misses)
    calls: int = 0  # HTTP calls / generations, retries included
    retries: int = 0
    cache_hits: int = 0
    tokens: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def snapshot(self) -> dict:
        with self.lock:
            return {k: getattr(self, k) for k in ("requests", "calls", "retries", "cache_hits", "tokens", "failed")}


# --------------------------------------------------------------------------------------------
# The shared front: cache lookup, de-duplication, progress bar; backends fill in `_run`.
# --------------------------------------------------------------------------------------------
class ChatClient:
    backend = "none"

    def __init__(self, settings: EndpointSettings):
        self.settings = settings
        self.stats = Stats()
        self._stop = threading.Event()
        self._bar = None

    @property
    def model_name(self) -> str | None:
        return self.settings.model

    def cache_key(self, req: ChatRequest, cache) -> str:
        from .cache import ReplyCache

        return (cache or ReplyCache).key(backend=self.backend, model=self.model_name,
                                         template_version=req.template_version, messages=req.messages,
                                         sampling=self.settings.sampling(), sample_index=req.sample_index)

    def complete(self, requests: list[ChatRequest], cache=None, console=None,
                 description: str = "teacher") -> list[Result]:
        """One Result per request, in order. Cached replies cost nothing; identical requests are sent once."""
        self._stop.clear()
        keys = [self.cache_key(r, cache) for r in requests]
        results: dict[str, Result] = {}
        todo: dict[str, ChatRequest] = {}
        for k, r in zip(keys, requests):
            if k in results or k in todo:
                continue
            hit = cache.get(k) if cache is not None else None
            if hit is not None:
                results[k] = Result(k, hit.get("text"), int(hit.get("tokens") or 0), True, None, 0, True)
            else:
                todo[k] = r
        self.stats.add(cache_hits=len(results), requests=len(todo))
        if todo:
            with _ProgressBar(console, description, len(todo), self.settings.price_per_1k_tokens) as bar:
                def done(res: Result) -> None:
                    if res.ok and cache is not None:
                        cache.put(res.key, {"backend": self.backend, "model": self.model_name,
                                            "template_version": todo[res.key].template_version,
                                            "sample_index": todo[res.key].sample_index,
                                            "text": res.text, "tokens": res.tokens, "time": round(time.time(), 3)})
                    self.stats.add(tokens=res.tokens, failed=0 if res.ok else 1)
                    results[res.key] = res
                    bar.advance(res)

                self._bar = bar
                self._preflight()
                self._run(list(todo.items()), done)
        out = [results[k] for k in keys]
        failed = [r for r in results.values() if not r.ok]
        if failed and self.settings.stop_on_failure:
            raise UserError(f"teacher: {len(failed)} request(s) failed (first: {failed[0].error}); "
                            f"stopping because teacher.stop_on_failure is true. Replies so far are cached.")
        return out

    def _preflight(self) -> None:
        """Checks needed only when something must really be asked (a rebuild from the cache needs none)."""

    def _run(self, items: list[tuple[str, ChatRequest]], done: Callable[[Result], None]) -> None:
        for key, _ in items:
            done(Result(key, None, 0, False, "not in the teacher cache and teacher.backend is none", 0, False))


class CacheOnlyClient(ChatClient):
    """backend none: replays the cache, everything else is a failure."""

    backend = "none"


# --------------------------------------------------------------------------------------------
# OpenAI-compatible chat endpoint
# --------------------------------------------------------------------------------------------
class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class _Permanent(Exception):
    pass


class _Fatal(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A POST with a key is never replayed to another URL: a redirect is an error to report."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds ("30", also "0.5") or an HTTP date. None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full jitter (AWS architecture blog): uniform(0, min(cap, base * 2**(attempt-1)))."""
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(0.0, ceiling)


def _is_loopback(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class OpenAIClient(ChatClient):
    backend = "openai"

    def __init__(self, settings: EndpointSettings):
        super().__init__(settings)
        if not settings.base_url:
            raise UserError("teacher.base_url: required for teacher.backend openai "
                            "(e.g. http://localhost:8000/v1 for vLLM, http://localhost:11434/v1 for Ollama)")
        if not settings.model:
            raise UserError("teacher.model: required for teacher.backend openai (the served model name)")
        if settings.concurrency < 1 or settings.max_attempts < 1:
            raise UserError("teacher.concurrency and teacher.max_attempts: must be at least 1")
        if urllib.parse.urlsplit(settings.base_url).scheme not in ("http", "https"):
            raise UserError(f"teacher.base_url: expected an http(s) URL such as http://localhost:8000/v1, "
                            f"got {settings.base_url!r}")
        base = settings.base_url.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else base + "/chat/completions"
        handlers: list = [_NoRedirect()]
        if _is_loopback(self.url):  # a local server is never reached through a proxy
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._key_for_redaction = ""

    # -- the key: read when needed, redacted everywhere --------------------------------------
    def _api_key(self) -> str | None:
        name = self.settings.api_key_env
        if not name:
            return None
        key = os.environ.get(name)
        if not key:
            raise UserError(f"teacher.api_key_env: the environment variable {name} is not set "
                            f"(export {name}=... before the run; the key is never stored)")
        self._key_for_redaction = key
        return key

    def _preflight(self) -> None:
        self._api_key()  # a missing key is one clear error, not N failed requests

    def _redact(self, text: str) -> str:
        text = str(text)
        key = self._key_for_redaction or (os.environ.get(self.settings.api_key_env or "") or "")
        if key:
            text = text.replace(key, "[redacted]")
        return re.sub(r"(?i)(bearer\s+)\S+", r"\1[redacted]", text)

    # -- one HTTP call ------------------------------------------------------------------------
    def _post(self, req: ChatRequest) -> tuple[str, int]:
        s = self.settings
        payload = {"model": s.model, "messages": req.messages, "temperature": s.temperature,
                   "max_tokens": s.max_tokens, "seed": req.sample_index, **(s.extra_body or {})}
        http_req = urllib.request.Request(self.url, data=json.dumps(payload).encode("utf-8"), method="POST",
                                          headers={"Content-Type": "application/json", "Accept": "application/json",
                                                   "User-Agent": "saro-lite"})
        key = self._api_key()
        if key:
            http_req.add_unredirected_header("Authorization", f"Bearer {key}")
        try:
            with self._opener.open(http_req, timeout=s.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as e:
            try:
                detail = e.read(300).decode("utf-8", errors="replace")
            except Exception:  # noqa: BLE001 - the body is only a hint for the error text
                detail = ""
            finally:
                e.close()
            msg = f"HTTP {e.code}: {' '.join(detail.split())[:200]}".strip()
            if e.code in RETRY_STATUS:
                raise _Retryable(msg, parse_retry_after(e.headers.get("Retry-After") if e.headers else None)) from None
            if e.code in FATAL_STATUS:
                raise _Fatal(msg) from None
            if 300 <= e.code < 400:
                raise _Permanent(f"{msg} (redirected; set teacher.base_url to the final URL)") from None
            raise _Permanent(msg) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise _Retryable(f"{type(e).__name__}: {reason}") from None
        except Exception as e:  # http.client.IncompleteRead, RemoteDisconnected, ...
            raise _Retryable(f"{type(e).__name__}: {e}") from None
        return self._parse_body(body)

    @staticmethod
    def _parse_body(body: bytes) -> tuple[str, int]:
        try:
            data = json.loads(body.decode("utf-8"))
            msg = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"unreadable response body: {body[:120]!r}") from None
        content = msg.get("content")
        if content is None and isinstance(msg.get("refusal"), str):
            content = msg["refusal"]  # OpenAI's structured refusal: the text a refusal check will see
        content = content or ""
        # Servers that split reasoning out (vLLM --reasoning-parser, DeepSeek): put it back in tags.
        thinking = msg.get("reasoning_content") or msg.get("reasoning")
        if isinstance(thinking, str) and thinking.strip() and "</think>" not in content:
            content = f"<think>\n{thinking.strip()}\n</think>\n\n{content.strip()}"
        usage = data.get("usage") or {}
        tokens = usage.get("total_tokens") or (usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
        return content, int(tokens or max(1, len(content) // 4))

    def _call(self, key: str, req: ChatRequest, bar) -> Result:
        s = self.settings
        last = "not attempted"
        attempt = 0
        while attempt < s.max_attempts:
            if self._stop.is_set():
                return Result(key, None, 0, False, f"stopped ({last})" if attempt else "stopped", attempt, False)
            attempt += 1
            self.stats.add(calls=1)
            try:
                text, tokens = self._post(req)
                return Result(key, text, tokens, True, None, attempt, False)
            except _Retryable as e:
                last = self._redact(str(e))
                if attempt >= s.max_attempts:
                    break
                if e.retry_after is not None and e.retry_after > MAX_RETRY_AFTER:
                    last += f" (Retry-After {e.retry_after:.0f}s is longer than {MAX_RETRY_AFTER:.0f}s)"
                    break
                with self._rng_lock:
                    delay = backoff_delay(attempt, s.backoff_base, s.backoff_cap, self._rng)
                    if e.retry_after is not None:  # at least what the server asks, plus a little spread
                        delay = max(delay, e.retry_after * (1.0 + 0.1 * self._rng.random()))
                self.stats.add(retries=1)
                bar.note_retry()
                log.debug("teacher retry %d/%d in %.2fs: %s", attempt, s.max_attempts, delay, last)
                self._stop.wait(delay)
            except _Permanent as e:
                return Result(key, None, 0, False, self._redact(str(e)), attempt, False)
            except _Fatal as e:
                self._stop.set()
                raise UserError(f"teacher: {self.url} refused the request ({self._redact(str(e))}); check the key "
                                f"in the variable named by teacher.api_key_env ({s.api_key_env})") from None
        log.debug("teacher gave up after %d attempts: %s", attempt, last)
        return Result(key, None, 0, False, f"gave up after {attempt} attempt(s): {last}", attempt, False)

    def _run(self, items, done) -> None:
        bar = self._bar
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="teacher")
        try:
            futures = {pool.submit(self._call, key, req, bar): key for key, req in items}
            for fut in as_completed(futures):
                res = fut.result()
                done(res)
                if not res.ok and self.settings.stop_on_failure:
                    self._stop.set()
        except BaseException:
            self._stop.set()  # wake sleeping retries; requests in flight end within teacher.timeout
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


# --------------------------------------------------------------------------------------------
# Local transformers model
# --------------------------------------------------------------------------------------------
class HFClient(ChatClient):
    """`source`: a loaded (model, tokenizer) pair, or a callable returning one (called on the first
    cache miss only, so a rebuild from the cache never loads the model)."""

    backend = "hf"

    def __init__(self, settings: EndpointSettings, source, batch_size: int = 8, seed: int = 0):
        super().__init__(settings)
        self._source = source
        self._pair = source if isinstance(source, tuple) else None
        self.batch_size = batch_size
        self.seed = seed

    @property
    def model_name(self) -> str | None:
        if self.settings.model:
            return self.settings.model
        if self._pair is not None:
            return getattr(getattr(self._pair[0], "config", None), "_name_or_path", None) or "hf-local"
        return "hf-local"

    def _loaded(self):
        if self._pair is None:
            self._pair = tuple(self._source())
        return self._pair

    @staticmethod
    def render(tokenizer, messages: list[dict]) -> str:
        from ..modeling.rendering import strip_auto_bos

        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001 - templates without a system role (Gemma): fold it into the user turn
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
            rest = [dict(m) for m in messages if m["role"] != "system"]
            if system and rest:
                rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
            text = tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)
        return strip_auto_bos(tokenizer, text)

    def _run(self, items, done) -> None:
        from ..modeling import generate as gen

        model, tok = self._loaded()
        s = self.settings
        by_index: dict[int, list[tuple[str, ChatRequest]]] = {}
        for key, req in items:
            by_index.setdefault(req.sample_index, []).append((key, req))
        for index in sorted(by_index):  # one seed per sample index: sample k is reproducible
            group = by_index[index]
            prompts = [self.render(tok, req.messages) for _, req in group]
            self.stats.add(calls=len(group))
            outs = gen.generate(model, tok, prompts, max_new_tokens=s.max_tokens, batch_size=self.batch_size,
                                do_sample=s.temperature > 0, temperature=max(s.temperature, 1e-5),
                                seed=self.seed + index)
            for (key, _), g in zip(group, outs):
                done(Result(key, g.text, g.tokens, True, None, 1, False))


def make_client(settings: EndpointSettings | dict, hf_source=None, seed: int = 0, batch_size: int = 8) -> ChatClient:
    """The client for `settings.backend`. `hf_source`: (model, tokenizer) or a callable returning it."""
    settings = settings_from(settings)
    if settings.backend == "openai":
        return OpenAIClient(settings)
    if settings.backend == "hf":
        if hf_source is None:
            raise UserError("teacher.model: the hf backend needs a local model (a hub id or folder)")
        return HFClient(settings, hf_source, batch_size=batch_size, seed=seed)
    if settings.backend == "none":
        return CacheOnlyClient(settings)
    raise UserError(f"teacher.backend: expected one of {', '.join(BACKENDS)}, got {settings.backend!r}")


# --------------------------------------------------------------------------------------------
# Progress bar (rich): done/total, ETA, tokens, retries, failures, cost estimate
# --------------------------------------------------------------------------------------------
class _ProgressBar:
    def __init__(self, console, description: str, total: int, price_per_1k: float | None):
        self.console, self.description, self.total, self.price = console, description, total, price_per_1k
        self.tokens = self.retries = self.failed = 0
        self._lock = threading.Lock()
        self._progress = self._task = None

    def info(self) -> str:
        parts = [f"{self.tokens:,} tok"]
        if self.price is not None:
            parts.append(f"~${self.tokens / 1000 * self.price:.4f}")
        if self.retries:
            parts.append(f"{self.retries} retries")
        if self.failed:
            parts.append(f"[red]{self.failed} failed[/]")
        return " · ".join(parts)

    def __enter__(self):
        if self.console is not None:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                      TextColumn("{task.fields[info]}"), console=self.console)
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, info=self.info())
        return self

    def advance(self, res: Result) -> None:
        with self._lock:
            self.tokens += res.tokens
            self.failed += 0 if res.ok else 1
            if self._progress is not None:
                self._progress.update(self._task, advance=1, info=self.info())

    def note_retry(self) -> None:
        with self._lock:
            self.retries += 1
            if self._progress is not None:
                self._progress.update(self._task, info=self.info())

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
            if self.console is not None:
                self.console.print(f"{self.description}: {self.total} request(s), {self.info()}")
        return False
