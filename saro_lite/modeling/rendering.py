"""The ONE rendering path from records to text, used by warmup, srpo, eval, the judges and the self path.

Why it lives in one place: chat-template/EOS mismatches are the most common silent bug in SFT -> DPO
pipelines.

    prompt text   = the model's chat template applied to [system?, user], with the generation prompt
    response text = "<think>\\n" + steps joined by blank lines + "\\n</think>\\n\\n" + answer + END_OF_TURN

END_OF_TURN is the token the template puts after an assistant message (`<|im_end|>` for ChatML,
`<|eot_id|>` for Llama 3, `<end_of_turn>` for Gemma, ...). The tokenizer's `eos_token` is set to it
(loading.load_tokenizer), so TRL appends nothing extra and generation stops at the end of the turn.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..errors import UserError
from ..reasoning import parse_reasoning
from ..recipe import Recipe


@dataclass(frozen=True)
class Renderer:
    """Turns records into the exact strings that are trained, scored and generated from."""

    tokenizer: object
    end_of_turn: str
    system_prompt: str | None = None
    open_tag: str = "<think>"
    close_tag: str = "</think>"
    content_prefix: str = ""  # what the template writes before assistant content (Mistral: a space)
    template_kwargs: tuple = ()  # extra chat-template variables, e.g. (("date_string", "26 Jul 2024"),)

    def prompt(self, user: str) -> str:
        messages = [{"role": "user", "content": user}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **dict(self.template_kwargs))
        return strip_auto_bos(self.tokenizer, text)

    def reasoning(self, steps: Iterable[str]) -> str:
        return "\n\n".join(s.strip() for s in steps)

    def response(self, steps: Iterable[str], answer: str) -> str:
        """A whole assistant turn, ending exactly at the end-of-turn token."""
        return (f"{self.content_prefix}{self.open_tag}\n{self.reasoning(steps)}\n{self.close_tag}\n\n"
                f"{answer.strip()}{self.end_of_turn}")

    def pp_prompt(self, user: str, prefix: list[str]) -> str:
        """Process-level pairs: the shared prefix goes into the prompt, after the generation prompt
        and the opening reasoning tag, so the two continuations differ from step k on."""
        return f"{self.prompt(user)}{self.content_prefix}{self.open_tag}\n{self.reasoning(prefix)}\n\n"

    def pp_continuation(self, steps: list[str], answer: str) -> str:
        return f"{self.reasoning(steps)}\n{self.close_tag}\n\n{answer.strip()}{self.end_of_turn}"

    def on_token_boundary(self, prompt: str, *completions: str) -> tuple[str, list[str]]:
        """`split_on_token_boundary` with this renderer's tokenizer."""
        return split_on_token_boundary(self.tokenizer, prompt, list(completions))

    def parse(self, text: str) -> tuple[list[str], str]:
        """Generated or teacher text -> (reasoning steps, final answer). Inverse of `response`."""
        text = text.replace(self.end_of_turn, "") if self.end_of_turn else text
        steps, answer = parse_reasoning(text, self.open_tag, self.close_tag)
        return steps, answer


def split_on_token_boundary(tokenizer, prompt: str, completions: list[str]) -> tuple[str, list[str]]:
    """Move the prompt/completion boundary back until the prompt's tokens are a prefix of every
    prompt+completion's tokens; the joined texts stay exactly the same.

    A real BPE merges across the boundary: a PP-COT prompt ends with the blank line after the last shared
    step, and in the full text that blank line tokenizes together with the next step's first word. TRL
    then scores from where the token lists diverge and warns that the end of the prompt is left out; the
    kit's tracking would score another split than TRL. Ending the prompt earlier (here: before the blank
    line) makes both see one tokenization, the one of the whole text. Tokenized as TRL does
    (add_special_tokens=False)."""
    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    fulls = [enc(prompt + c) for c in completions]

    def is_prefix(k: int) -> bool:
        ids = enc(prompt[:k])
        return all(f[:len(ids)] == ids for f in fulls)

    if not completions or is_prefix(len(prompt)):
        return prompt, list(completions)
    try:  # cut points: where tokens start in the whole text, latest first
        offsets = tokenizer(prompt + completions[0], add_special_tokens=False,
                            return_offsets_mapping=True)["offset_mapping"]
        cuts = sorted({start for start, _ in offsets if 0 < start < len(prompt)}, reverse=True)
    except (NotImplementedError, ValueError, KeyError, TypeError):  # a slow tokenizer: step back by characters
        cuts = range(len(prompt) - 1, max(0, len(prompt) - 64), -1)
    for k in cuts:
        if is_prefix(k):
            return prompt[:k], [prompt[k:] + c for c in completions]
    return prompt, list(completions)


def strip_auto_bos(tokenizer, text: str) -> str:
    """Templates that write BOS into the text (Llama 3, Gemma) would get a second one when TRL and
    generation tokenize with special tokens; drop the written one and let the tokenizer add it."""
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos):
        ids = tokenizer("x")["input_ids"]
        if ids and ids[0] == tokenizer.bos_token_id:
            return text[len(bos):]
    return text


def detect_assistant_prefix(tokenizer, **template_kwargs) -> str:
    """Whitespace the template writes between the generation prompt and the assistant content
    (Mistral v0.3 writes "[/INST] " + content); "" for most templates."""
    marker = "QZXJ"
    user = [{"role": "user", "content": "hi"}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True, **template_kwargs)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": marker}], tokenize=False,
                                         **template_kwargs)
    if full.startswith(prompt):
        between = full[len(prompt):full.find(marker, len(prompt))]
        if between and not between.strip():
            return between
    return ""


def detect_end_of_turn(tokenizer, **template_kwargs) -> str:
    """The special token the chat template writes right after an assistant message."""
    marker = "QZXJ"
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": marker}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, **template_kwargs)
    tail = text[text.rindex(marker) + len(marker):]
    specials = set(getattr(tokenizer, "all_special_tokens", [])) | set(tokenizer.get_added_vocab())
    for tok in sorted(specials, key=len, reverse=True):
        if tok and tail.startswith(tok):
            return tok
    eos = f" (this tokenizer's EOS is {tokenizer.eos_token!r})" if tokenizer.eos_token else ""
    raise UserError(f"model.end_of_turn: the chat template writes no special token after an assistant reply (it "
                    f"writes {tail[:24]!r}); set model.end_of_turn to the token a reply should end with{eos}")


def check_template_keeps_reply(tokenizer, open_tag: str, close_tag: str, **template_kwargs) -> None:
    """The kit trains on prompt + reply exactly as the chat template renders them; a template that rewrites
    the assistant's reply (DeepSeek-R1-style templates drop the reasoning block) would make that text
    something the template never writes. One line says what to set instead."""
    reply = f"{open_tag}\nQZXJ step\n{close_tag}\n\nQZXJ answer"
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}, {"role": "assistant", "content": reply}],
                                         tokenize=False, **template_kwargs)
    if reply not in text:
        raise UserError(f"model.chat_template: the model's chat template rewrites the assistant reply (it drops or "
                        f"changes the {open_tag} reasoning block), so training text would differ from what the "
                        f"template renders; set model.chat_template to a template (file or string) that keeps the "
                        f"reply as written")


def make_renderer(recipe: Recipe, tokenizer) -> Renderer:
    kwargs = dict(recipe.model.chat_template_kwargs)
    check_template_keeps_reply(tokenizer, recipe.model.reasoning_open, recipe.model.reasoning_close, **kwargs)
    return Renderer(
        tokenizer=tokenizer,
        end_of_turn=tokenizer.eos_token,  # load_tokenizer sets eos_token to the end-of-turn token
        system_prompt=recipe.model.system_prompt,
        open_tag=recipe.model.reasoning_open,
        close_tag=recipe.model.reasoning_close,
        content_prefix=detect_assistant_prefix(tokenizer, **kwargs),
        template_kwargs=tuple(sorted(kwargs.items())),
    )
