"""Adapters of published PRM families (prm_lib.scorers), the export to a token classifier, and `eval --scorer`.

Every model is a randomly initialised model of a real architecture (tiny Qwen2 shapes) with the real
Qwen2 tokenizer. Each family is checked against its own published recipe, written out here one
solution at a time (whole-text tokenization, the full logits, the positions found the reference's way),
and against heads set so that the expected probability is known by hand.
"""

import contextlib
import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AddedToken, AutoModelForTokenClassification, Qwen2Config, Qwen2ForCausalLM, Qwen2ForTokenClassification, Qwen2Model

from prm_lib.backbones import RANDOM_QWEN2_SHAPES
from prm_lib.batching import BatchPolicy
from prm_lib.cli import main as cli
from prm_lib.export import export_token_classifier
from prm_lib.metrics import fit_threshold
from prm_lib.model import ProcessRewardModel
from prm_lib.processbench import evaluate_processbench, subset_of
from prm_lib.scorers import load_scorer, parse_conventions
from prm_lib.scorers.math_shepherd import MathShepherdConventions, MathShepherdScorer
from prm_lib.scorers.qwen_prm import QwenPRMScorer, TwoLabelHeadModel
from prm_lib.scorers.rlhflow import RLHFlowScorer
from prm_lib.scorers.token_classifier import TokenClassifierConventions, TokenClassifierScorer
from prm_lib.selection import select
from prm_lib.verify import PRMVerifier

FIXTURES = Path(__file__).parent / "fixtures"
ITEMS = [
    ("What is 12 / 4?", ["I need to divide 12 by 4.", "12 / 4 = 3.", "The answer is 3."]),
    ("What is 6 + 4?", ["6 + 4 = 10.", "The answer is 10."]),
    ("Find the remainder when $2^{10}$ is divided by 7.", ["We have $2^3 = 8 \\equiv 1 \\pmod 7$.",
                                                          "So $2^{10} = 2^9 \\cdot 2 \\equiv 2$.",
                                                          "Check: $1024 = 7 \\cdot 146 + 2$.",
                                                          "The answer is 2."]),
]
SHORT = ("What is 2 + 2?", ["2 + 2 = 4."])
# the layout that keeps Math-Shepherd's tag one token in Qwen2's vocabulary (measured below)
SHEPHERD_ON_QWEN2 = MathShepherdConventions(before_tag="")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def qwen2_config(vocab, **extra):
    return Qwen2Config(vocab_size=vocab, pad_token_id=151643, **RANDOM_QWEN2_SHAPES["tiny-qwen2"], **extra)


def seeded(make, seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make().eval()


def with_bias_head(lm, good_id, bad_id, good=2.0, bad=0.5):
    """A copy of ``lm`` whose LM head gives every position logit ``good`` for good_id and ``bad`` for bad_id."""
    lm = copy.deepcopy(lm)
    head = torch.nn.Linear(lm.config.hidden_size, lm.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[good_id], head.bias[bad_id] = good, bad
    lm.lm_head = head
    return lm


@pytest.fixture(scope="module")
def tok(qwen_tokenizer):
    return copy.deepcopy(qwen_tokenizer)


@pytest.fixture(scope="module")
def chatml_tok(tok):
    t = copy.deepcopy(tok)
    t.chat_template = CHATML
    return t


@pytest.fixture(scope="module")
def extra_tok(tok):
    """Qwen2's tokenizer with <extra_0> added as one special token (it does not have it: measured below)."""
    t = copy.deepcopy(tok)
    assert t.add_tokens([AddedToken("<extra_0>", special=True, normalized=False)]) == 1
    return t


@pytest.fixture(scope="module")
def lm(tok):
    return seeded(lambda: Qwen2ForCausalLM(qwen2_config(len(tok), tie_word_embeddings=True)), 1)


@pytest.fixture(scope="module")
def classifier(tok):
    return seeded(lambda: Qwen2ForTokenClassification(qwen2_config(len(tok), num_labels=2)), 2)


@pytest.fixture(scope="module")
def qwen_prm_model(extra_tok):
    body = seeded(lambda: Qwen2Model(qwen2_config(len(extra_tok))), 3)
    head = seeded(lambda: torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 2)), 4)
    return TwoLabelHeadModel(body, head).eval()


@pytest.fixture(scope="module")
def scorers(tok, chatml_tok, extra_tok, lm, classifier, qwen_prm_model):
    return {
        "trl": TokenClassifierScorer(classifier, tok, TokenClassifierConventions(separator="\n\n")),
        "math-shepherd": MathShepherdScorer(lm, tok, SHEPHERD_ON_QWEN2),
        "qwen-prm": QwenPRMScorer(qwen_prm_model, extra_tok),
        "rlhflow": RLHFlowScorer(lm, chatml_tok),
    }


def decoded_at(tokenizer, encoded):
    return [[tokenizer.decode([e.input_ids[p]]) for p in e.step_end_positions] for e in encoded]


# -- TRL token classifiers ---------------------------------------------------------------------------
@pytest.mark.parametrize("bos", [None, "<|endoftext|>"])
def test_trl_reads_the_tokens_trl_labels(tok, classifier, bos):
    from trl.experimental.prm import PRMTrainer

    tokenizer = copy.deepcopy(tok)
    tokenizer.bos_token = bos  # Qwen2 has none; TRL puts a tokenizer's BOS first when it has one
    scorer = TokenClassifierScorer(classifier, tokenizer, TokenClassifierConventions(separator="\n\n"))
    for (problem, steps), e in zip(ITEMS, scorer.encode(ITEMS)):
        row = PRMTrainer.tokenize_row({"prompt": problem, "completions": steps, "labels": [True] * len(steps)},
                                      tokenizer, "\n\n", None, None, False, False)
        assert e.input_ids == row["input_ids"]
        assert e.step_end_positions == [i for i, label in enumerate(row["labels"]) if label != -100]
    assert all(d == ["\n\n"] * len(s) for d, (_, s) in zip(decoded_at(tokenizer, scorer.encode(ITEMS)), ITEMS))


def test_trl_label_one_is_correct_and_positions_match_the_models_own_logits(tok, classifier):
    fixed = copy.deepcopy(classifier)
    with torch.no_grad():  # logits [0.2, 1.7] everywhere: P(label 1) = sigmoid(1.5)
        fixed.score.weight.zero_()
        fixed.score.bias.copy_(torch.tensor([0.2, 1.7]))
    scores = TokenClassifierScorer(fixed, tok).score_batch(ITEMS)
    assert all(p == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-6) for row in scores for p in row)
    flipped = TokenClassifierScorer(fixed, tok, TokenClassifierConventions(correct_label=0)).score_batch(ITEMS)
    assert flipped[0][0] == pytest.approx(1 / (1 + math.exp(1.5)), abs=1e-6)

    scorer = TokenClassifierScorer(classifier, tok, TokenClassifierConventions(separator="\n\n"))
    batched = scorer.score_batch(ITEMS)
    for e, got in zip(scorer.encode(ITEMS), batched):
        logits = classifier(input_ids=torch.tensor([e.input_ids])).logits[0]
        expected = logits.softmax(-1)[e.step_end_positions, 1]
        assert got == pytest.approx(expected.tolist(), abs=1e-5)
    assert len(set(p for row in batched for p in row)) == sum(len(s) for _, s in ITEMS)  # not one constant


# -- Math-Shepherd: LM logits of "+" and "-" at the tag --------------------------------------------------
def test_qwen2_tokenizes_the_math_shepherd_tag_as_measured(tok):
    # 'ки' is one token, ' ки' two: Math-Shepherd's "step ки" layout puts a space before it (OpenRLHF #509)
    assert tok("ки", add_special_tokens=False)["input_ids"] == [16748]
    assert tok(" ки", add_special_tokens=False)["input_ids"] == [7665, 1802]


def test_math_shepherd_refuses_a_tag_that_is_not_one_token(tok, lm):
    with pytest.raises(ValueError, match=r"step tag ' ки' is 2 tokens .*\[7665, 1802\]"):
        MathShepherdScorer(lm, tok, MathShepherdConventions(tag=" ки"))
    # 'ки' alone is one token, but written after a space it is not: the count of tag tokens says so
    scorer = MathShepherdScorer(lm, tok)  # Math-Shepherd's own layout, "... ки"
    with pytest.raises(ValueError, match=r"step tag 'ки' \(token id 16748\) 0 times .*\[7665, 1802\]"):
        scorer.score_batch(ITEMS)
    with pytest.raises(ValueError, match="good token '\\+1' is 2 tokens"):
        MathShepherdScorer(lm, tok, MathShepherdConventions(before_tag="", good="+1"))
    with pytest.raises(ValueError, match="step 1 contains the step tag 'ки'"):
        MathShepherdScorer(lm, tok, SHEPHERD_ON_QWEN2).score("What?", ["the tag ки is here", "fine"])


def test_math_shepherd_matches_its_published_recipe(tok, lm, scorers):
    scorer = scorers["math-shepherd"]
    good, bad, tag = (tok(t, add_special_tokens=False)["input_ids"][0] for t in ("+", "-", "ки"))
    batched = scorer.score_batch(ITEMS)
    for (problem, steps), got in zip(ITEMS, batched):
        input_ids = torch.tensor([tok(SHEPHERD_ON_QWEN2.render(problem, steps))["input_ids"]])
        scores = lm(input_ids).logits[:, :, [good, bad]].softmax(dim=-1)[:, :, 0]
        assert got == pytest.approx(scores[input_ids == tag].tolist(), abs=1e-5)
    assert all(d == ["ки"] * len(s) for d, (_, s) in zip(decoded_at(tok, scorer.encode(ITEMS)), ITEMS))
    assert SHEPHERD_ON_QWEN2.render("Q?", ["a.", "b."]) == "Q? Step 1: a.ки\nStep 2: b.ки"

    fixed = with_bias_head(lm, good, bad)  # logit 2.0 for "+", 0.5 for "-": P("+") = sigmoid(1.5)
    probs = MathShepherdScorer(fixed, tok, SHEPHERD_ON_QWEN2).score_batch(ITEMS)
    assert all(p == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-6) for row in probs for p in row)


# -- Qwen2.5-Math-PRM: two-label head at <extra_0> ----------------------------------------------------------
def test_qwen_prm_needs_extra_0_as_one_token(tok, extra_tok, qwen_prm_model):
    assert len(tok("<extra_0>", add_special_tokens=False)["input_ids"]) == 5  # Qwen2's own tokenizer lacks it
    with pytest.raises(ValueError, match=r"step tag '<extra_0>' is 5 tokens .*\[27, 15460, 62, 15, 29\]"):
        QwenPRMScorer(qwen_prm_model, tok)
    assert extra_tok("a<extra_0>", add_special_tokens=False)["input_ids"][-1] == len(tok)
    with pytest.raises(ValueError, match="step 2 contains the step tag '<extra_0>'"):
        QwenPRMScorer(qwen_prm_model, extra_tok).score("Q?", ["fine", "a<extra_0>b"])


def test_qwen_prm_matches_its_model_card_recipe(extra_tok, qwen_prm_model, scorers):
    scorer = scorers["qwen-prm"]
    tag = extra_tok.convert_tokens_to_ids("<extra_0>")
    batched = scorer.score_batch(ITEMS)
    for (problem, steps), got in zip(ITEMS, batched):
        messages = [{"role": "system", "content": scorer.conventions.system}, {"role": "user", "content": problem},
                    {"role": "assistant", "content": "<extra_0>".join(steps) + "<extra_0>"}]
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        input_ids = torch.tensor([extra_tok.encode(text)])
        probabilities = qwen_prm_model(input_ids=input_ids)[0].softmax(dim=-1)
        assert got == pytest.approx(probabilities[input_ids == tag][:, 1].tolist(), abs=1e-5)
    assert all(d == ["<extra_0>"] * len(s) for d, (_, s) in zip(decoded_at(extra_tok, scorer.encode(ITEMS)), ITEMS))

    fixed = copy.deepcopy(qwen_prm_model)
    with torch.no_grad():
        fixed.head[2].weight.zero_()
        fixed.head[2].bias.copy_(torch.tensor([0.2, 1.7]))
    probs = QwenPRMScorer(fixed, extra_tok).score_batch(ITEMS)
    assert all(p == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-6) for row in probs for p in row)


# -- RLHFlow: "+"/"-" answer turns -----------------------------------------------------------------------------
def test_rlhflow_matches_its_published_recipe(chatml_tok, lm, scorers):
    scorer = scorers["rlhflow"]
    good, bad = (chatml_tok(t, add_special_tokens=False)["input_ids"][0] for t in ("+", "-"))
    batched = scorer.score_batch(ITEMS)
    for (problem, steps), got in zip(ITEMS, batched):
        expected, conversation = [], []
        for k, step in enumerate(steps):  # the published code: one conversation per step, ending in "+"
            conversation += [{"content": problem + " " + step if k == 0 else step, "role": "user"},
                             {"content": "+", "role": "assistant"}]
            ids = chatml_tok(chatml_tok.apply_chat_template(conversation, tokenize=False), add_special_tokens=False)
            ids = ids["input_ids"]
            answer = len(ids) - 1 - ids[::-1].index(good)  # the last "+": the answer turn's
            logits = lm(torch.tensor([ids])).logits[0, answer - 1, [good, bad]]
            expected.append(logits.softmax(-1)[0].item())
        assert got == pytest.approx(expected, abs=1e-5)
    for e in scorer.encode(ITEMS):  # the token after each read position is the "+" answer (not after the last)
        assert [chatml_tok.decode([e.input_ids[p + 1]]) for p in e.step_end_positions[:-1]] == ["+"] * (e.n_steps - 1)
        assert chatml_tok.decode(e.input_ids[e.step_end_positions[-1] - 2:]).endswith("assistant\n")

    probs = RLHFlowScorer(with_bias_head(lm, good, bad), chatml_tok).score_batch(ITEMS)
    assert all(p == pytest.approx(1 / (1 + math.exp(-1.5)), abs=1e-6) for row in probs for p in row)


def test_rlhflow_refuses_a_template_that_rewrites_earlier_turns(chatml_tok, lm):
    counting = copy.deepcopy(chatml_tok)
    counting.chat_template = "{{ messages | length }}" + CHATML  # the start changes with every turn
    with pytest.raises(ValueError, match="does not render the conversation up to step 1"):
        RLHFlowScorer(lm, counting).score_batch(ITEMS[:1])
    bare = copy.deepcopy(chatml_tok)
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        RLHFlowScorer(lm, bare)


# -- every family: batching, padding, the interface ------------------------------------------------------
@pytest.mark.parametrize("family", ["trl", "math-shepherd", "qwen-prm", "rlhflow"])
def test_a_solution_scores_the_same_alone_and_padded_in_a_batch(scorers, family):
    scorer = scorers[family]
    alone = scorer.score_batch([SHORT])[0]
    one_batch = BatchPolicy(max_tokens=10**6, max_padding=1.0, max_batch=64)  # the short one is padded
    padded = scorer.score_padded(ITEMS + [SHORT], policy=one_batch)
    assert padded.probs.shape == (4, 4) and padded.mask.sum(1).tolist() == [3, 2, 4, 1]
    assert padded.probs[3, 0].item() == pytest.approx(alone[0], abs=1e-5)
    assert torch.isnan(padded.probs[~padded.mask]).all() and not torch.isnan(padded.probs[padded.mask]).any()
    for row, listed in zip(padded.rows(), scorer.score_batch(ITEMS + [SHORT])):  # the list form
        assert row == pytest.approx(listed, abs=1e-5)
    assert scorer.score_padded([]).probs.shape == (0, 0)
    with pytest.raises(ValueError, match="pad on the right only"):
        scorer.score_batch([SHORT], padding_side="left")


@pytest.mark.parametrize("family", ["trl", "math-shepherd", "qwen-prm", "rlhflow"])
def test_steps_beyond_max_length_score_nan(scorers, family):
    full = scorers[family]
    ends = full.encode(ITEMS[2:])[0].step_end_positions
    short = copy.copy(full)
    short.max_length = ends[1] + 1  # the first two steps' read positions fit, the third's does not
    with pytest.warns(UserWarning, match="scored its first 2 of 4 steps"):
        cut = short.score_batch(ITEMS[2:])[0]
    assert cut[:2] == pytest.approx(full.score_batch(ITEMS[2:])[0][:2], abs=1e-5)
    assert all(math.isnan(p) for p in cut[2:])


@pytest.mark.parametrize("family", ["trl", "qwen-prm"])
def test_verifier_selection_and_beam_search_take_an_adapter(scorers, family):
    from prm_lib.policies import SimulatedPolicy
    from prm_lib.search import beam_search
    from prm_lib.synthetic import problems

    scorer = scorers[family]
    verifier = PRMVerifier(scorer, "min")
    candidates = [ITEMS[0][1], ["12 / 4 = 4.", "The answer is 4."], ITEMS[0][1]]  # a duplicate, scored once
    grid = verifier.score_grid([ITEMS[0][0]], [candidates])
    assert grid.scores[0].tolist() == pytest.approx([min(r) for r in scorer.score_batch([(ITEMS[0][0], c) for c in candidates])])
    best = int(grid.scores[0].argmax())
    assert select("best", grid.scores[0], grid.answers[0]) == grid.answers[0][best]
    problem = problems(1, seed=0)[0].text
    result = beam_search(problem, SimulatedPolicy(step_error_rate=0.2, seed=0), verifier, lambda s: len(s.split()),
                         n_beams=4, beam_width=2, max_depth=6)
    assert result.scores == pytest.approx([verifier.score_solution(problem, s).score for s in result.solutions])


def test_conventions_and_families_are_checked(tok, classifier):
    assert parse_conventions("trl", ["separator=\n\n", "problem_separator=true"]) == {"separator": "\n\n",
                                                                                     "problem_separator": True}
    assert parse_conventions("rlhflow", ["system=none"]) == {"system": None}
    with pytest.raises(ValueError, match="its conventions: separator, problem_separator, start, correct_label"):
        parse_conventions("trl", ["tag=x"])
    with pytest.raises(ValueError, match="true or false"):
        parse_conventions("trl", ["problem_separator=maybe"])
    with pytest.raises(ValueError, match="unknown scorer family 'nope'"):
        load_scorer("nope", "x")
    with pytest.raises(ValueError, match="'tiny-qwen2' is neither a local model folder nor a hub id"):
        load_scorer("trl", "tiny-qwen2")
    with pytest.raises(ValueError, match="start must be one of"):
        TokenClassifierConventions(start="eos")
    three = Qwen2ForTokenClassification(qwen2_config(len(tok), num_labels=3))
    with pytest.raises(ValueError, match="two labels .* this model has 3"):
        TokenClassifierScorer(three, tok)


# -- export: prm_lib PRM -> token classifier -> the TRL adapter ------------------------------------------------
@pytest.fixture(scope="module")
def trained_like_prm():
    prm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu")
    with torch.no_grad():  # as if trained: a changed backbone (saved with the checkpoint) and a head bias
        prm.backbone.norm.weight.mul_(1.5)
        prm.value_head.bias.fill_(0.3)
    return prm


@pytest.fixture(scope="module")
def exported(trained_like_prm, tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    trained_like_prm.save(root / "ckpt")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli(["export-model", "--checkpoint", str(root / "ckpt"), "--out", str(root / "hf")]) == 0
    (root / "printed.json").write_text(printed.getvalue())
    return root / "hf"


def test_export_round_trip_gives_the_prms_step_scores(trained_like_prm, exported):
    written = json.loads((exported.parent / "printed.json").read_text())
    assert written["architecture"] == "Qwen2ForTokenClassification" and written["problem_separator"] is True
    model = AutoModelForTokenClassification.from_pretrained(exported)
    assert type(model).__name__ == "Qwen2ForTokenClassification" and model.config.num_labels == 2
    assert model.config.prm_lib["separator"] == "\n\n" and model.config.prm_lib["max_length"] == 4096
    scorer = load_scorer("trl", str(exported))  # the layout comes from the config, not TRL's defaults
    assert scorer.conventions == TokenClassifierConventions(separator="\n\n", problem_separator=True, start="tokenizer")
    records = [json.loads(line) for line in (FIXTURES / "processbench_long.jsonl").read_text().splitlines()]
    items = ITEMS + [(r["problem"], r["steps"]) for r in records]
    ours, theirs = trained_like_prm.score_padded(items), scorer.score_padded(items)
    assert torch.equal(ours.mask, theirs.mask)
    assert torch.allclose(ours.probs[ours.mask], theirs.probs[theirs.mask], atol=1e-5, rtol=0)
    assert [e.step_end_positions for e in trained_like_prm.encode(items)] == [e.step_end_positions for e in scorer.encode(items)]
    trl_layout = TokenClassifierScorer(scorer.model, scorer.tokenizer, TokenClassifierConventions(separator="\n\n"))
    assert not torch.allclose(ours.probs[ours.mask], trl_layout.score_padded(items).probs[ours.mask],
                              atol=1e-5)  # the wrong layout (no separator after the problem) scores differently


def test_export_refuses_a_surprise_reader_and_marks_an_orm(tmp_path):
    reads_surprise = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", surprise_from="tiny-qwen2")
    with pytest.raises(ValueError, match="frozen LM's per-token surprise .* token classifier cannot hold"):
        export_token_classifier(reads_surprise, tmp_path / "no")
    assert not (tmp_path / "no").exists()
    orm = ProcessRewardModel.from_backbone("tiny-qwen2", device="cpu", objective="orm")
    assert export_token_classifier(orm, tmp_path / "orm")["read_at"] == "the last step only"
    scorer = load_scorer("trl", str(tmp_path / "orm"))
    assert scorer.objective == "orm" and PRMVerifier(scorer).aggregation == "last"
    with pytest.raises(ValueError, match="is an ORM"):
        evaluate_processbench(scorer, str(FIXTURES / "processbench.jsonl"))


# -- eval --scorer -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(chatml_tok, extra_tok, lm, trained_like_prm, exported, scorers, tmp_path_factory):
    """Models on disk for `eval --scorer`, each with the in-memory scorer that must give its scores."""
    root = tmp_path_factory.mktemp("models")
    lm.save_pretrained(root / "lm")
    chatml_tok.save_pretrained(root / "lm")
    qwen = seeded(lambda: Qwen2ForTokenClassification(qwen2_config(len(extra_tok), num_labels=2)), 5)
    qwen.save_pretrained(root / "qwen")
    extra_tok.save_pretrained(root / "qwen")
    return {"trl": (exported, trained_like_prm), "math-shepherd": (root / "lm", scorers["math-shepherd"]),
            "qwen-prm": (root / "qwen", QwenPRMScorer(qwen, extra_tok)), "rlhflow": (root / "lm", scorers["rlhflow"])}


@pytest.mark.parametrize("family,conventions", [
    ("trl", []), ("math-shepherd", ["before_tag="]), ("qwen-prm", []), ("rlhflow", [])])
def test_eval_cli_scores_each_family(family, conventions, saved, capsys, monkeypatch):
    import prm_lib.scorers

    folder, in_memory = saved[family]
    loaded = []  # the scorer the command built, kept to compare its step scores
    real = prm_lib.scorers.load_scorer
    monkeypatch.setattr(prm_lib.scorers, "load_scorer", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    data = FIXTURES / "processbench.jsonl"
    args = ["eval", "--scorer", family, "--model", str(folder), "--data", str(data), "--device", "cpu"]
    assert cli(args + [a for c in conventions for a in ("--convention", c)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"f1", "acc_erroneous", "acc_correct", "threshold", "n", "n_skipped", "skipped", "n_records",
            "threshold_fitted_on"} <= out.keys()
    assert out["n"] == 2 and out["n_skipped"] == 0
    records = [json.loads(line) for line in data.read_text().splitlines()]
    items = [(r["problem"], r["steps"]) for r in records]
    expected_probs = in_memory.score_batch(items)
    for got, expected_row in zip(loaded[0].score_batch(items), expected_probs):
        assert got == pytest.approx(expected_row, abs=1e-5)
    expected = fit_threshold(expected_probs, [r["label"] for r in records])
    assert (out["f1"], out["threshold"]) == (pytest.approx(expected["f1"]), pytest.approx(expected["threshold"]))


def test_eval_cli_names_what_goes_with_which_model(exported, tmp_path, capsys):
    data = str(FIXTURES / "processbench.jsonl")
    assert cli(["eval", "--scorer", "trl", "--data", data]) == 2
    assert "--scorer needs --model" in capsys.readouterr().err
    assert cli(["eval", "--checkpoint", str(tmp_path), "--convention", "separator=x", "--data", data]) == 2
    assert "--convention go(es) with --scorer" in capsys.readouterr().err
    assert cli(["eval", "--scorer", "trl", "--model", str(exported), "--convention", "sep=x", "--data", data]) == 2
    assert "not NAME=VALUE with a trl convention" in capsys.readouterr().err


class ScriptedScorer:
    """Each step's P(correct) is written in the step ("... p=0.8.")."""

    separator, max_length, objective = "\n\n", 10**6, "prm"

    def encode(self, items):
        from types import SimpleNamespace

        return [SimpleNamespace(truncated=False, n_scored=len(s), n_steps=len(s), steps=s) for _, s in items]

    def score_encoded(self, encoded, progress=False):
        return [[float(step.rsplit("p=", 1)[1].rstrip(".")) for step in e.steps] for e in encoded]


def test_fit_on_gsm8k_and_apply_to_the_other_subsets():
    path = str(FIXTURES / "processbench_subsets.jsonl")
    out = evaluate_processbench(ScriptedScorer(), path, fit_subset="gsm8k")
    # gsm8k is fitted perfectly by any threshold in (0.3, 0.6]; ties go to the one nearest 0.5
    assert out["threshold"] == 0.5 and out["fit"]["f1"] == 1.0 and out["fit"]["n"] == 4
    assert out["threshold_fitted_on"] == f"{path} [subset gsm8k]"
    subsets = out["subsets"]
    assert sorted(subsets) == ["math", "olympiadbench", "omnimath"]  # from the id, the subset field, the source field
    assert (subsets["math"]["acc_erroneous"], subsets["math"]["acc_correct"], subsets["math"]["f1"]) == (0.5, 0.5, 0.5)
    assert subsets["olympiadbench"]["f1"] == 1.0 and subsets["omnimath"]["f1"] == 0.0
    assert out["f1_mean"] == pytest.approx(0.5)
    # pooled over the 8 evaluated records: 3 of 4 erroneous and 2 of 4 correct ones right
    assert (out["acc_erroneous"], out["acc_correct"], out["n"]) == (0.75, 0.5, 8)
    assert out["f1"] == pytest.approx(2 * 0.75 * 0.5 / (0.75 + 0.5))
    # skipped: a whitespace step (math-4), a record with no steps (gsm8k-9), a line cut off (its subset unread)
    assert out["n_records"] == 15 and out["n_skipped"] == 3 and subsets["math"]["n_skipped"] == 1
    assert out["fit"]["n_skipped"] == 1 and [s.get("subset") for s in out["skipped"]] == ["math", "gsm8k", None]
    with pytest.raises(ValueError, match="no scorable record of subset 'aime'.*'gsm8k', 'math'"):
        evaluate_processbench(ScriptedScorer(), path, fit_subset="aime")
    with pytest.raises(ValueError, match="give no threshold or fit_path"):
        evaluate_processbench(ScriptedScorer(), path, threshold=0.5, fit_subset="gsm8k")
    assert subset_of({"id": "gsm8k-12"}) == "gsm8k" and subset_of({"id": "pb"}) is None
    assert subset_of({"id": "gsm8k-1", "subset": "math"}) == "math"


def test_eval_cli_fit_subset_with_an_adapter(exported, capsys):
    path = str(FIXTURES / "processbench_subsets.jsonl")
    assert cli(["eval", "--scorer", "trl", "--model", str(exported), "--data", path, "--fit-subset", "gsm8k"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["fit_subset"] == "gsm8k" and sorted(out["subsets"]) == ["math", "olympiadbench", "omnimath"]
    assert out["n"] == 8 and out["n_skipped"] == 3 and out["subsets"]["math"]["n_skipped"] == 1
    assert {"f1", "acc_erroneous", "acc_correct", "threshold", "f1_mean"} <= out.keys()
    assert "3 of 15 records could not be scored" in captured.err


# -- chapter 7's published-PRM cell, offline ---------------------------------------------------------------
def test_a_published_trl_prm_through_the_chapters_evaluation(classifier, tok, tmp_path):
    """The cell chapter 7 runs with a hub PRM (load, fit a threshold on validation, F1 on test, best-of-N
    through the selectors), here on a random-init model of the same class saved to a folder."""
    from prm_lib.metrics import first_error_scores
    from prm_lib.policies import SimulatedPolicy
    from prm_lib.answers import extract_final_answer
    from prm_lib.selection import Selector, best_of_n_accuracy
    from prm_lib.synthetic import generate, problems

    classifier.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    published = load_scorer("trl", str(tmp_path), conventions={"separator": "\n\n"})
    assert isinstance(published, TokenClassifierScorer) and published.conventions.separator == "\n\n"
    validation, test = generate(12, seed=1, split="validation"), generate(12, seed=2, split="test")
    fitted = fit_threshold(published.score_batch([s.as_item() for s in validation]), [s.first_error for s in validation])
    result = first_error_scores(published.score_batch([s.as_item() for s in test]), [s.first_error for s in test],
                                fitted["threshold"])
    assert result["n_erroneous"] + result["n_correct"] == 12 and 0 <= result["f1"] <= 1
    bon = problems(3, seed=5, split="test")
    candidates = [SimulatedPolicy(step_error_rate=0.3, seed=7).sample(p.text, 4) for p in bon]
    answers = [[extract_final_answer(c) for c in cands] for cands in candidates]
    grid = PRMVerifier(published, "min").score_grid([p.text for p in bon], candidates)
    assert grid.scores.shape == (3, 4) and ((grid.scores > 0) & (grid.scores < 1)).all()
    accuracy = best_of_n_accuracy(answers, [p.answer for p in bon], {"best": Selector("best", grid.scores),
                                  "vote": Selector("weighted_vote", grid.scores)}, [1, 4], trials=2, seed=0)
    # at N = 4 every candidate is in the draw: the top pick is the argmax of the grid, the same in every trial
    picked = [answers[i][int(grid.scores[i].argmax())] == str(bon[i].answer) for i in range(3)]
    assert accuracy["best"][:, 1].tolist() == pytest.approx([float(x) for x in picked])


def test_a_hub_prm_that_cannot_be_reached_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache: nothing to fall back on
    with pytest.raises(ValueError, match="HuggingFaceH4/Qwen2.5-Math-1.5B-Instruct-PRM-0.2"):
        load_scorer("trl", "HuggingFaceH4/Qwen2.5-Math-1.5B-Instruct-PRM-0.2", conventions={"separator": "\n\n"})
