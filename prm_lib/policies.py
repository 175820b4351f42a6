"""Policies: what writes solutions, for Monte Carlo labels (chapter 3), verification (chapter 7) and search (chapter 8).

One interface, ``Policy``: ``complete`` (whole continuations of a prefix, for Monte Carlo
rollouts), ``next_steps`` (one next step each, for step-level search) and ``sample`` (whole
solutions, for best-of-N). Two implementations:

* ``SimulatedPolicy``: a noisy solver of the synthetic problems that errs with a
  set probability per step and sometimes notices a wrong value. Fast, and its
  ground truth is known, so chapter 3 can measure how MC labels agree with it.
  It writes and reads solutions in ``prm_lib.synthetic``'s step language.
* ``LMPolicy``: a real language model (SmolLM2-135M-Instruct by default) that
  samples continuations.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from .answers import states_answer
from .synthetic import (Operation, Problem, answer_step, opening_step, operation_step, parse_problem,
                        recovery_step, slip, solve, state_after, wrong_step)


END_OF_SOLUTION = "(end of solution)"  # what a step-by-step policy proposes when it has nothing more to write


@runtime_checkable
class Policy(Protocol):
    """What Monte Carlo labelling (``complete``), beam search (``next_steps``) and best-of-N (``sample``) ask of a policy."""

    def complete(self, problem: str, prefix: Sequence[str], k: int) -> list[list[str]]:
        """``k`` continuations (each a list of further steps) of a solution that starts with ``prefix``."""
        ...

    def next_steps(self, problem: str, prefix: Sequence[str], k: int) -> list[str]:
        """``k`` sampled next steps of a solution that starts with ``prefix``."""
        ...

    def sample(self, problem: str, n: int) -> list[list[str]]:
        """``n`` whole solutions of ``problem``."""
        ...


@dataclass
class SimulatedPolicy:
    """A noisy solver for ``prm_lib.synthetic`` problems.

    Each remaining operation is slipped (off by 1, 2 or 10) with ``step_error_rate``, and so is
    the final answer. Continuing from a wrong value, it notices and recomputes with
    ``recover_rate`` (that is what makes wrong steps look right to Monte Carlo labels).

    Slips are random, so samples that slip rarely agree on a wrong answer and a majority vote
    outvotes them. Real models also err *systematically*: they misread the same problem the same
    way in sample after sample. ``misread_rate`` > 0 adds that: each problem gets one fixed
    misreading (a wrong operation or a wrong number at one step, drawn from the problem's text
    and ``seed``) and a difficulty, uniform in [0, ``misread_rate``], the chance that a sample
    falls for it. On a problem it is hard on, the wrong answer is the most common one.

    ``misread_kinds`` names the kinds a misreading is drawn from. Adding ``"arithmetic_slip"`` makes
    some problems' systematic error a slip, the same wrong result in every sample that falls for it
    (a model that believes 7 × 8 = 54): errors a verifier cannot outvote and must itself see.
    """

    step_error_rate: float = 0.15
    recover_rate: float = 0.1
    seed: int = 0
    misread_rate: float = 0.0
    misread_kinds: tuple[str, ...] = ("wrong_operation", "wrong_number")
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        known = ("wrong_operation", "wrong_number", "arithmetic_slip")
        unknown = [k for k in self.misread_kinds if k not in known]
        if unknown or not self.misread_kinds:
            raise ValueError(f"misread_kinds must be a non-empty choice from {known}, not {self.misread_kinds!r}")
        self.rng = random.Random(self.seed)

    @staticmethod
    def state_after(problem: Problem, prefix: Sequence[str]) -> tuple[int, int, bool]:
        """(operations done, current value, answered) after the steps of ``prefix`` (``synthetic.state_after``)."""
        return state_after(problem, prefix)

    def complete(self, problem: str, prefix: Sequence[str], k: int) -> list[list[str]]:
        p = parse_problem(problem)
        done, value, answered = self.state_after(p, prefix)
        if answered:
            return [[] for _ in range(k)]
        return [self._continue(p, done, value) for _ in range(k)]

    def misreading(self, p: Problem) -> tuple[float, int, str, int]:
        """This problem's systematic error: (chance a sample makes it, operation index, error kind,
        seed of the wrong numbers). A pure function of the problem's text and the policy's seed."""
        h = random.Random(f"misreading|{self.seed}|{p.text}")  # str seeds hash with SHA-512: stable
        return self.misread_rate * h.random(), h.randrange(len(p.ops)), h.choice(list(self.misread_kinds)), h.randrange(2**31)

    def _continue(self, p: Problem, done: int, value: int) -> list[str]:
        rng, steps = self.rng, []
        true_values = p.values
        if value != true_values[done] and rng.random() < self.recover_rate:
            value = true_values[done]
            steps.append(recovery_step(value))
        misread_at = -1
        if self.misread_rate > 0:
            chance, at, kind, wrong_seed = self.misreading(p)
            if at >= done and rng.random() < chance:
                misread_at = at
        for k, op in enumerate(p.ops[done:], start=done):
            if k == misread_at:  # the same wrong step every time: its numbers come from the problem's own seed
                left, operand, result, shown_kind = wrong_step(op, value, k, kind, random.Random(wrong_seed))
                steps.append(operation_step(op, left, operand, result, shown_kind, direct=p.direct))
                value = result
                continue
            result = op.apply(value)
            if rng.random() < self.step_error_rate:
                result = slip(rng, result)
            steps.append(operation_step(op, value, op.operand, result, direct=p.direct))
            value = result
        final = slip(rng, value) if rng.random() < self.step_error_rate else value
        steps.append(answer_step(final))
        return steps

    def next_steps(self, problem: str, prefix: Sequence[str], k: int) -> list[str]:
        """``k`` sampled next steps after ``prefix`` (for step-level search, ``prm_lib.search``)."""
        p = parse_problem(problem)
        done, value, answered = self.state_after(p, prefix)
        if answered:
            raise ValueError("the solution already states its answer; there is no next step")
        return [self._continue(p, done, value)[0] for _ in range(k)]

    def sample(self, problem: str, n: int) -> list[list[str]]:
        """``n`` whole solutions (for best-of-N), opening as ``prm_lib.synthetic.solve`` does: a direct
        problem with "I need to ...", a word problem restating the start half of the time."""
        p = parse_problem(problem)
        out = []
        for _ in range(n):
            head = [opening_step(p)] if p.direct or self.rng.random() < 0.5 else []
            out.append(head + self._continue(p, 0, p.start))
        return out


def _worked_examples() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The worked examples of ``LMPolicy``'s prompt, solved by ``synthetic.solve`` with no error: a one-operation
    problem ("What is 6 × 7?") and a two-operation word problem, both from the training split and neither one of
    the naive tutorial's test problems."""
    examples = (Problem("", "", 6, (Operation("mul", 7),), direct=True),
                Problem("Leo", "shells", 12, (Operation("add", 5), Operation("mul", 2))))
    return tuple((p.text, tuple(solve(p, random.Random(0), error=None, restate=True).steps)) for p in examples)


INSTRUCTION = "Solve it step by step, one short step per line, and end with the line that states the answer."
WORKED_EXAMPLES = _worked_examples()


class LMPolicy:
    """A causal LM that samples continuations, one step per line (SmolLM2-135M-Instruct by default).

    Its prompt shows ``examples`` (problem, steps) solved in the step language it should write, each asked
    with ``instruction``; by default the course's synthetic language (``WORKED_EXAMPLES``, ``INSTRUCTION``).
    """

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 0.7, top_p: float = 0.95,
                 max_new_tokens: int = 96, seed: int = 0,
                 examples: Sequence[tuple[str, Sequence[str]]] = WORKED_EXAMPLES,
                 instruction: str = INSTRUCTION) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.examples, self.instruction = tuple(examples), instruction
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.seed, self.calls = seed, 0
        self._newline_ids: torch.Tensor | None = None

    @classmethod
    def from_backbone(cls, name: str = "smollm2-135m", device: str | None = None, **kwargs: Any) -> "LMPolicy":
        from .backbones import load_backbone

        model, tokenizer = load_backbone(name, device=device)
        return cls(model, tokenizer, **kwargs)

    def prompt(self, problem: str, prefix: Sequence[str]) -> str:
        """A few-shot chat: the example problems solved in the step language (by default two, in the
        generator's own format), then ``problem``.

        An instruction that spells the last line out as a template ("End with 'The answer is N.'") gets
        copied: SmolLM2-135M wrote "The answer is N." into its samples. Worked examples show the format
        instead, with real numbers in their answer lines.
        """
        messages = []
        for question, steps in self.examples + ((problem, None),):
            messages.append({"role": "user", "content": f"{question}\n{self.instruction}"})
            if steps is not None:
                messages.append({"role": "assistant", "content": "\n".join(steps)})
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text + "".join(step + "\n" for step in prefix)

    @torch.inference_mode()
    def complete(self, problem: str, prefix: Sequence[str], k: int) -> list[list[str]]:
        """``k`` sampled continuations of ``prefix``, one step per line; none after a prefix that already
        states its answer (as ``SimulatedPolicy``): a model asked to go on would write a second answer line,
        and a rollout's answer would then be that, not the prefix's."""
        if prefix and states_answer(prefix[-1], boxed=False):
            return [[] for _ in range(k)]
        enc = self.tokenizer(self.prompt(problem, prefix), return_tensors="pt", add_special_tokens=False)
        enc = {key: v.to(self.model.device) for key, v in enc.items()}
        torch.manual_seed(self.seed * 1_000_003 + self.calls)  # reproducible, but each call samples afresh
        self.calls += 1
        out = self.model.generate(
            **enc, do_sample=True, temperature=self.temperature, top_p=self.top_p,
            max_new_tokens=self.max_new_tokens, num_return_sequences=k,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return [split_lines(t) for t in texts]

    def sample(self, problem: str, n: int) -> list[list[str]]:
        return self.complete(problem, [], n)

    @torch.inference_mode()
    def next_steps(self, problem: str, prefix: Sequence[str], k: int) -> list[str]:
        """``k`` sampled next steps, one line each; each sample stops at its first line break
        (for step-level search, ``prm_lib.search``). A sample that writes nothing more becomes
        ``END_OF_SOLUTION``, so search sees the solution end rather than lose the sample."""
        from transformers import StoppingCriteria, StoppingCriteriaList

        if self._newline_ids is None:  # every token whose text holds a line break, found once
            vocab = range(len(self.tokenizer))
            texts = self.tokenizer.convert_ids_to_tokens(list(vocab))
            decoded = [self.tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in texts]
            self._newline_ids = torch.tensor([i for i, t in zip(vocab, decoded) if "\n" in t])
        newline_ids = self._newline_ids.to(self.model.device)

        class StopAtLineBreak(StoppingCriteria):
            def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
                return torch.isin(input_ids[:, -1], newline_ids)

        enc = self.tokenizer(self.prompt(problem, prefix), return_tensors="pt", add_special_tokens=False)
        enc = {key: v.to(self.model.device) for key, v in enc.items()}
        torch.manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        out = self.model.generate(
            **enc, do_sample=True, temperature=self.temperature, top_p=self.top_p,
            max_new_tokens=self.max_new_tokens, num_return_sequences=k,
            pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=StoppingCriteriaList([StopAtLineBreak()]),
        )
        texts = self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        return [next((line.strip() for line in t.split("\n") if line.strip()), END_OF_SOLUTION) for t in texts]


def split_lines(text: str) -> list[str]:
    """Generated text to steps: one per non-empty line, up to and including an 'answer is' line."""
    steps = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            steps.append(line)
            if states_answer(line, boxed=False):
                break
    return steps
