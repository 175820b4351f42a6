"""Monte Carlo step labels (Math-Shepherd): does a policy that continues from this step reach the answer?

Chapter 3 of the course. For each prefix ``steps[:i+1]`` a policy writes ``k``
continuations; the step's **soft** label is the fraction whose final answer is
the gold answer, its **hard** label is +1 if any of them is (Wang et al., 2023).
No human looks at a step. The price is noise: a wrong step can still lead to the
right answer (the policy recovers, or errors cancel) and a right step can fail to
(the policy errs later), and how often depends on the policy and on ``k``.

Two policies share one interface, ``complete(problem, prefix, k) -> k lists of steps``:

* ``SimulatedPolicy``: a noisy solver of the synthetic problems that errs with a
  set probability per step and sometimes notices a wrong value. Fast, and its
  ground truth is known, so chapter 3 can measure how MC labels agree with it.
* ``LMPolicy``: a real language model (SmolLM2-135M-Instruct by default) that
  samples continuations.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import torch

from .answers import extract_final_answer, normalize_answer
from .synthetic import DIRECT_INTRO, Problem, _op_step, _slip, parse_problem, wrong_step


END_OF_SOLUTION = "(end of solution)"  # what a step-by-step policy proposes when it has nothing more to write


class Policy(Protocol):
    def complete(self, problem: str, prefix: Sequence[str], k: int) -> list[list[str]]:
        """``k`` continuations (each a list of further steps) of a solution that starts with ``prefix``."""
        ...


_RESULT = re.compile(r"=\s*(-?\d+)\.?\s*$")
_RECOVERY = "Wait, that is wrong; recomputing from the start gives {value}."
# the policy's own fix, read back from a prefix (the same sentence, its number captured)
_RECOVERED = re.compile("^" + re.escape(_RECOVERY).replace(re.escape("{value}"), r"(-?\d+)") + "$")
_OPERATION_STEP = re.compile(r"^(After [^:]*: )?-?\d+ [+\-×÷/] \d+ = -?\d+\.$")  # not "Wait, ..." checks


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
    """

    step_error_rate: float = 0.15
    recover_rate: float = 0.1
    seed: int = 0
    misread_rate: float = 0.0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @staticmethod
    def state_after(problem: Problem, prefix: Sequence[str]) -> tuple[int, int, bool]:
        """(operations done, current value, answered) after the steps of ``prefix``."""
        done, value, answered = 0, problem.start, False
        for step in prefix:
            if _OPERATION_STEP.match(step):
                done += 1
            if step.startswith("The answer is"):
                answered = True
            m = _RESULT.search(step) or _RECOVERED.match(step)
            if m:
                value = int(m.group(1))
        return min(done, len(problem.ops)), value, answered

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
        return self.misread_rate * h.random(), h.randrange(len(p.ops)), h.choice(["wrong_operation", "wrong_number"]), h.randrange(2**31)

    def _continue(self, p: Problem, done: int, value: int) -> list[str]:
        rng, steps = self.rng, []
        true_values = p.values
        if value != true_values[done] and rng.random() < self.recover_rate:
            value = true_values[done]
            steps.append(_RECOVERY.format(value=value))
        misread_at = -1
        if self.misread_rate > 0:
            chance, at, kind, wrong_seed = self.misreading(p)
            if at >= done and rng.random() < chance:
                misread_at = at
        for k, op in enumerate(p.ops[done:], start=done):
            if k == misread_at:  # the same wrong step every time: its numbers come from the problem's own seed
                left, operand, result, shown_kind = wrong_step(op, value, k, kind, random.Random(wrong_seed))
                steps.append(_op_step(op, left, operand, result, shown_kind, direct=p.direct))
                value = result
                continue
            result = op.apply(value)
            if rng.random() < self.step_error_rate:
                result = _slip(rng, result)
            steps.append(_op_step(op, value, op.operand, result, direct=p.direct))
            value = result
        final = _slip(rng, value) if rng.random() < self.step_error_rate else value
        steps.append(f"The answer is {final}.")
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
            if p.direct:
                head = [DIRECT_INTRO[p.ops[0].kind].format(a=p.start, b=p.ops[0].operand)]
            else:
                head = [f"{p.name} starts with {p.start} {p.item}."] if self.rng.random() < 0.5 else []
            out.append(head + self._continue(p, 0, p.start))
        return out


class LMPolicy:
    """A causal LM that samples continuations, one step per line (SmolLM2-135M-Instruct by default)."""

    def __init__(self, model: Any, tokenizer: Any, temperature: float = 0.7, top_p: float = 0.95,
                 max_new_tokens: int = 96, seed: int = 0) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.temperature, self.top_p, self.max_new_tokens = temperature, top_p, max_new_tokens
        self.seed, self.calls = seed, 0
        self._newline_ids: torch.Tensor | None = None

    @classmethod
    def from_backbone(cls, name: str = "smollm2-135m", device: str | None = None, **kwargs: Any) -> "LMPolicy":
        from .backbones import load_backbone

        model, tokenizer = load_backbone(name, device=device)
        return cls(model, tokenizer, **kwargs)

    def prompt(self, problem: str, prefix: Sequence[str]) -> str:
        messages = [{"role": "user", "content": f"{problem}\nSolve it step by step, one short step per line. "
                                                 "End with a line 'The answer is N.'"}]
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text + "".join(step + "\n" for step in prefix)

    @torch.inference_mode()
    def complete(self, problem: str, prefix: Sequence[str], k: int) -> list[list[str]]:
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
            if re.search(r"answer is", line, re.IGNORECASE):
                break
    return steps


@dataclass
class MCLabels:
    """Monte Carlo labels of one solution's steps, and the rollouts' final answers behind them."""

    soft: list[float]  # fraction of rollouts from each step that reach the gold answer
    hard: list[int]  # +1 if any rollout from the step reaches it, else -1
    answers: list[list[str | None]]  # per step, the k rollouts' normalised final answers
    k: int


def monte_carlo_labels(problem: str, steps: Sequence[str], gold: str | int, policy: Policy, k: int) -> MCLabels:
    """Label each step by rolling out ``k`` continuations from it with ``policy``."""
    if k < 1:
        raise ValueError("k must be at least 1")
    target = normalize_answer(str(gold))
    soft, hard, answers = [], [], []
    for i in range(len(steps)):
        prefix = list(steps[: i + 1])
        finals = [extract_final_answer(prefix + cont) for cont in policy.complete(problem, prefix, k)]
        hits = sum(a == target for a in finals)
        soft.append(hits / k)
        hard.append(1 if hits else -1)
        answers.append(finals)
    return MCLabels(soft, hard, answers, k)

