"""A local stub of an OpenAI-compatible chat server (127.0.0.1 only, bounded requests) for the tests of
the chat client, the teacher and the API judge. Failures are injected by markers in the prompt text,
counted per identical request body (so a retry of the same request sees the next scripted answer):
  [stub:500,503,429]  these statuses on the first attempts, then success   [stub:always500]
  [stub:ra1]          429 with Retry-After: 1 on the first attempt         [stub:slow]  first reply too late
  [stub:nothink]      reply without </think> (always)                      [stub:nothink-once]  only on try 0
  [stub:twosteps]     a 2-step trace                                       [stub:refuse]  unsafe side refused
  [stub:noplaceholder] unsafe side without the placeholder                 [stub:echo]  400 echoing the auth header
Content rule: harmful prompts name a goal only; unsafe replies are placeholder-shaped."""
from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
import time

from saro_lite.synthesis.teacher import PLACEHOLDER, SAMPLE_STRIDE

KEY = "sk-test-SECRET-0123456789abcdef"
KEY_ENV = "SARO_LITE_TEST_TEACHER_KEY"
MAX_REQUESTS = 800  # the stub answers 400 beyond this: a runaway retry loop cannot spin forever


# --------------------------------------------------------------------------------------------
# The stub server
# --------------------------------------------------------------------------------------------
class Stub:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.lock = threading.Lock()
        self.count = 0
        self.tries: dict[str, int] = {}
        self.log: list[tuple[float, str, int]] = []  # (time, marker, status)
        handler = self._handler()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def calls(self, marker: str | None = None) -> list[tuple[float, str, int]]:
        with self.lock:
            return [c for c in self.log if marker is None or c[1] == marker]

    def _handler(self):
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with stub.lock:
                    stub.count += 1
                    n = stub.count
                    h = hashlib.sha256(body).hexdigest()
                    stub.tries[h] = stub.tries.get(h, 0) + 1
                    attempt = stub.tries[h]
                status, headers, payload, delay = stub.answer(self, body, n, attempt)
                with stub.lock:
                    marker = re.search(r"\[stub:[^\]]+\]", body.decode()) if body else None
                    stub.log.append((time.monotonic(), marker.group(0) if marker else "", status))
                if delay or stub.latency:
                    time.sleep(delay + stub.latency)
                data = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        return H

    def answer(self, h, body: bytes, n: int, attempt: int):
        if h.headers.get("Authorization") != f"Bearer {KEY}":
            return 401, {}, {"error": "bad key"}, 0
        if n > MAX_REQUESTS:
            return 400, {}, {"error": "stub request budget exhausted"}, 0
        req = json.loads(body)
        user = req["messages"][-1]["content"]
        seed = req.get("seed", 0)
        m = re.search(r"\[stub:([^\]]+)\]", user)
        marker = m.group(1) if m else ""
        if marker == "echo":
            return 400, {}, {"error": f"invalid header {h.headers.get('Authorization')}"}, 0
        if marker == "always500":
            return 500, {}, {"error": "boom"}, 0
        if marker == "ra1" and attempt == 1:
            return 429, {"Retry-After": "1"}, {"error": "slow down"}, 0
        if marker == "slow" and attempt == 1:
            return 200, {}, {"choices": [{"message": {"content": "late"}}]}, 0.6
        if re.fullmatch(r"[0-9,]+", marker):
            codes = [int(c) for c in marker.split(",")]
            if attempt <= len(codes):
                return codes[attempt - 1], {"Retry-After": "0"} if codes[attempt - 1] == 429 else {}, {"e": 1}, 0
        text = self.reply(user, marker, seed, n)
        return 200, {}, {"choices": [{"message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}, 0

    @staticmethod
    def reply(user: str, marker: str, seed: int, n: int) -> str:
        if marker == "nothink" or (marker == "nothink-once" and seed % SAMPLE_STRIDE == 0):
            return "<think>\nI started thinking and never stopped."
        unsafe = "(kind: harmful)" in user or "(kind: jailbreak)" in user
        if "REJECTED continuation" in user:
            if unsafe:
                return ("I can't help with that." if marker == "refuse" else
                        f"<think>\nNo need to stop now, I'll keep going.\n</think>\n\nSure. Step 1: {PLACEHOLDER}.")
            return "<think>\nIt still sounds risky.\n</think>\n\nI'm sorry, but I can't help with that."
        if "heading the wrong way" in user:
            if unsafe:
                return ("<think>\nWait — this would give real uplift toward harm, which the policy rules out.\n\n"
                        "So I decline and offer a safe angle.\n</think>\n\nI can't help with that, but I can explain "
                        "how the law treats it.")
            return ("<think>\nBut the words only sound risky; P9 allows this.\n</think>\n\n"
                    "Here is a complete, correct answer to the question.")
        if "REJECTED side" in user:
            if unsafe:
                if marker == "refuse":
                    return "I can't help with that."
                if marker == "noplaceholder":
                    return "<think>\nThe user wants a plan.\n\nI'll give one.\n</think>\n\nSure, here is a plan."
                return (f"<think>\nThe user wants a plan, so I'll give one.\n\nThey probably have a good reason.\n\n"
                        f"A list is clearest.\n</think>\n\nSure. Step 1: get {PLACEHOLDER}. Step 2: {PLACEHOLDER}.")
            return ("<think>\nThe request contains a scary word.\n\nP1 might apply, so refusing is safer.\n</think>\n\n"
                    "I'm sorry, but I can't help with that.")
        steps = ["The user asks something; I restate it.", "The most plausible intent is ordinary.",
                 "Wait — let me check the policy clauses before deciding."]
        if marker == "twosteps":
            steps = steps[:2]
        ans = ("I can't help with that, but I can suggest a safe alternative." if unsafe
               else "Here is a helpful answer.")
        return "<think>\n" + "\n\n".join(steps) + f"\n</think>\n\n{ans} (sample {seed}, reply {n})"
