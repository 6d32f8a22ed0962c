"""The scoring protocol: MedVLM-R1's evaluation rules, its option layout, the format rule behind every
"well-formed" figure, and the judge-signal benchmark (Zhu et al. 3.2) on small local stand-ins."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from medrl_lib.rl.oracle import OracleJudge
from medrl_lib.rl.prompts import OPTION_FORMAT, format_question, prompt_text
from medrl_lib.training.evaluate import LETTER_RULES, score_completion

ROOT = Path(__file__).resolve().parent.parent
OPTS = ["Cyst", "Pulmonary nodule", "Pneumothorax", "Normal"]  # gold "B" throughout


def wrap(answer: str, think: str = "A round opacity.") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


# ---------------------------------------------------------------------------------------------
# Evaluation correctness (MedVLM-R1 section 4 and its evaluation script)
# ---------------------------------------------------------------------------------------------

REASONING_CASES = [
    # completion, (correct, extracted) for: strict+format (default), strict without format, lenient+format
    pytest.param(wrap("B"), (True, "B"), (True, "B"), (True, "B"), id="exact-letter"),
    pytest.param(wrap(" \nB\t"), (True, "B"), (True, "B"), (True, "B"), id="letter-whitespace"),  # \s* both sides
    pytest.param(wrap("(B)"), (False, None), (False, None), (True, "B"), id="parenthesised"),  # not the regex
    pytest.param(wrap("B."), (False, None), (False, None), (True, "B"), id="trailing-dot"),  # not the regex
    pytest.param(wrap("B) Pulmonary nodule"), (False, None), (False, None), (False, "B"), id="letter-text"),  # 0.5 reward
    pytest.param(wrap("Pulmonary nodule"), (False, None), (False, None), (False, None), id="option-text"),  # 0.5 reward
    pytest.param(wrap("C"), (False, "C"), (False, "C"), (False, "C"), id="wrong-letter"),
    pytest.param(wrap("Z"), (False, "Z"), (False, "Z"), (False, None), id="letter-not-an-option"),  # read, wrong
    pytest.param(wrap("b"), (False, None), (False, None), (False, None), id="lowercase"),
    pytest.param("A round opacity. <answer>B</answer>", (False, "B"), (True, "B"), (False, "B"), id="no-think"),
    pytest.param(wrap("B") + " Hope this helps.", (False, "B"), (True, "B"), (False, "B"), id="text-after"),
    pytest.param("<think>x</think><answer>A</answer><answer>B</answer>", (False, "A"), (False, "A"), (False, None),
                 id="repeated-answer-first-match"),  # re.search takes the first block
    pytest.param("<think>x</think><answer>B", (False, None), (False, None), (False, None), id="truncated"),
    pytest.param("B", (False, None), (False, None), (False, None), id="bare-letter"),  # no answer block
]


@pytest.mark.parametrize(("completion", "strict", "strict_no_format", "lenient"), REASONING_CASES)
def test_reasoning_prompt_scoring(completion: str, strict: tuple, strict_no_format: tuple, lenient: tuple) -> None:
    assert score_completion(completion, "B", OPTS) == strict  # defaults: MedVLM-R1's text and regex
    assert score_completion(completion, "B", OPTS, "reasoning", require_format=True, letter_rule="strict") == strict
    assert score_completion(completion, "B", OPTS, require_format=False) == strict_no_format  # its released script
    assert score_completion(completion, "B", OPTS, letter_rule="lenient") == lenient


PLAIN_CASES = [
    # completion, strict (whole output == letter), lenient (extract_choice)
    pytest.param("B", (True, "B"), (True, "B"), id="letter"),
    pytest.param("  B\n", (True, "B"), (True, "B"), id="letter-whitespace"),  # stripped
    pytest.param("B.", (False, None), (True, "B"), id="dot"),
    pytest.param("(B)", (False, None), (True, "B"), id="parenthesised"),
    pytest.param("The answer is B", (False, None), (True, "B"), id="sentence"),
    pytest.param("B) Pulmonary nodule", (False, None), (True, "B"), id="letter-text"),
    pytest.param("C", (False, "C"), (False, "C"), id="wrong-letter"),
    pytest.param("b", (False, None), (False, None), id="lowercase"),
    pytest.param("A or B", (False, None), (False, None), id="two-letters"),
    pytest.param("<think>x</think><answer>B</answer>", (False, None), (True, "B"), id="tagged"),
    pytest.param("", (False, None), (False, None), id="empty"),
]


@pytest.mark.parametrize(("completion", "strict", "lenient"), PLAIN_CASES)
def test_plain_prompt_scoring(completion: str, strict: tuple, lenient: tuple) -> None:
    assert score_completion(completion, "B", OPTS, "plain") == strict
    assert score_completion(completion, "B", OPTS, "plain", require_format=False) == strict  # no format here
    assert score_completion(completion, "B", OPTS, "plain", letter_rule="lenient") == lenient


def test_scoring_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="letter_rule"):
        score_completion("B", "B", OPTS, "plain", letter_rule="loose")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt mode"):
        score_completion("B", "B", OPTS, "free")


def test_letter_rules_are_the_profile_choices() -> None:
    from medrl_lib.config import CHOICES

    assert CHOICES["eval.letter_rule"] == LETTER_RULES  # the profile setting offers what the scorer knows


# ---------------------------------------------------------------------------------------------
# The option layout (MedVLM-R1's ``problem``: question, then "A) text" lines)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "options", "expected"),
    [
        pytest.param("Which side?", ["left", "right"], "Which side?\nA) left\nB) right", id="two"),
        pytest.param("What is apparent in this image?", ["Hemorrhage", "Acute infarct", "Abscess formation",
                                                         "Chronic infarct"],
                     "What is apparent in this image?\nA) Hemorrhage\nB) Acute infarct\nC) Abscess formation\n"
                     "D) Chronic infarct", id="medvlm-r1-released-item"),  # the first item of its released file
        pytest.param("Q?", ["a", "b", "c", "d", "e", "f"], "Q?\nA) a\nB) b\nC) c\nD) d\nE) e\nF) f", id="six"),
    ],
)
def test_option_layout_is_medvlm_r1s(question: str, options: list[str], expected: str) -> None:
    assert OPTION_FORMAT == "{letter}) {text}"
    assert format_question(question, options) == expected
    assert prompt_text(question, options, "plain") == (
        expected + " Your task: provide the correct single-letter choice (A, B, C, D, ...)")
    assert prompt_text(question, options).startswith(expected + " Your task: 1. Think through the question")


# ---------------------------------------------------------------------------------------------
# Well-formed everywhere: the report's sentence uses the format rule, not a <think> block
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completions", "stored_metric", "expected"),
    [
        pytest.param([wrap("B")] * 4, 0.0, "**arm**: 100% of test completions well-formed", id="records-win"),
        pytest.param(["<think>x</think> B"] * 4, 100.0, "**arm**: 0% of test completions well-formed", id="think-only"),
        pytest.param([wrap("B"), "<think>x</think> B"], 100.0, "**arm**: 50% of test completions well-formed", id="half"),
        pytest.param([], 25.0, "**arm**: 25% of test completions well-formed", id="no-records-metric"),  # fallback
    ],
)
def test_format_summary_counts_well_formed(completions: list[str], stored_metric: float, expected: str) -> None:
    from medrl_lib.experiments.report import format_summary
    from medrl_lib.experiments.results import Run

    records = [{"id": f"i{k}", "completion": c, "reasoning": "x"} for k, c in enumerate(completions)]
    run = Run(path=None, config={"kind": "grpo"}, metrics={"eval/format/all": stored_metric,
                                                           "eval/accuracy/all": 50.0}, records=records)
    assert expected in format_summary({"arm": [run]})


# ---------------------------------------------------------------------------------------------
# The judge-signal benchmark
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def judge_signal():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import judge_signal as module

    yield module
    sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.parametrize(
    ("positive", "negative", "expected"),
    [
        pytest.param([3, 2], [1, 0], 1.0, id="separated"),
        pytest.param([1, 0], [3, 2], 0.0, id="reversed"),
        pytest.param([1, 1], [1, 1], 0.5, id="all-tied"),
        pytest.param([2, 0], [1, 1], 0.5, id="half"),
        pytest.param([2, 1], [1, 0], 0.875, id="one-tie"),  # (1 + 1 + 0.5 + 1) / 4
        pytest.param([], [1], float("nan"), id="empty"),
    ],
)
def test_auc(judge_signal: Any, positive: list[float], negative: list[float], expected: float) -> None:
    value = judge_signal.auc(positive, negative)
    assert value == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize("corruption", ["swapped-findings", "other-image", "shuffled"])
def test_pairs_are_balanced_and_corrupted(judge_signal: Any, corruption: str) -> None:
    pairs = judge_signal.make_pairs(12, 0, corruption)
    assert {len(v) for v in pairs.values()} == {12}
    assert all(g != c for g, c in zip(pairs["grounded"], pairs["corrupted"]))
    oracle = OracleJudge()
    assert oracle(pairs["questions"], pairs["grounded"], pairs["facts"]) == [True] * 12  # describe() is grounded
    if corruption != "shuffled":  # a wrong modality: a false fact in every corrupted report
        assert oracle(pairs["questions"], pairs["corrupted"], pairs["facts"]) == [False] * 12
    else:
        assert all(sorted(g.split()) == sorted(c.split()) for g, c in zip(pairs["grounded"], pairs["corrupted"]))


@pytest.mark.parametrize(
    ("corruption", "yes_grounded", "yes_corrupted", "auc"),
    [
        pytest.param("swapped-findings", 100.0, 0.0, 1.0, id="swapped"),  # the oracle separates them
        pytest.param("other-image", 100.0, 0.0, 1.0, id="other-image"),
    ],
)
def test_judge_signal_oracle_values(judge_signal: Any, capsys: pytest.CaptureFixture, corruption: str,
                                    yes_grounded: float, yes_corrupted: float, auc: float) -> None:
    result = judge_signal.main(["--judge", "oracle", "--items", "9", "--n-boot", "50", "--corruption", corruption])
    assert result["yes_rate_grounded"][0] == yes_grounded and result["yes_rate_corrupted"][0] == yes_corrupted
    assert result["difference"][0] == yes_grounded - yes_corrupted and result["auc"][0] == auc
    assert f"AUC of the Yes-minus-No score (grounded vs corrupted): {auc:.3f}" in capsys.readouterr().out


FIGURES = [
    r"Yes-rate, grounded reasonings: +\d+\.\d% \[\d+\.\d, \d+\.\d\]",
    r"Yes-rate, corrupted reasonings: +\d+\.\d% \[\d+\.\d, \d+\.\d\]",
    r"difference \(grounded - corrupted\): [+-]\d+\.\d points \[[+-]\d+\.\d, [+-]\d+\.\d\]",
    r"mean Yes-minus-No score: grounded [+-]\d+\.\d{3}, corrupted [+-]\d+\.\d{3}",
    r"AUC of the Yes-minus-No score \(grounded vs corrupted\): \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]",
]


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from medrl_lib.models.hub_standins import build_hub_standins

    return build_hub_standins(tmp_path_factory.mktemp("standins"))


@pytest.mark.parametrize(
    ("hub_id", "form"),
    [
        pytest.param("microsoft/biogpt", "plain prompt", id="biogpt-plain"),  # not instruction-tuned: no template
        pytest.param("mistralai/Mistral-7B-Instruct-v0.2", "chat template", id="mistral-chat"),  # as BioMistral
    ],
)
def test_judge_signal_runs_on_local_causal_lms(judge_signal: Any, standins: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture, hub_id: str, form: str) -> None:
    out = tmp_path / "signal.json"
    result = judge_signal.main(["--judge", str(standins[hub_id]), "--items", "6", "--n-boot", "50", "--batch-size",
                                "4", "--device", "cpu", "--json", str(out)])
    printed = capsys.readouterr().out
    assert f"({form};" in printed
    for figure in FIGURES:
        assert re.search(figure, printed), (figure, printed)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert 0.0 <= result["auc"][1] <= result["auc"][0] <= result["auc"][2] <= 1.0


def test_llm_judge_prompt_forms_on_standins(standins: dict[str, Path]) -> None:
    """BioGPT gets the plain fenced prompt; the Mistral-architecture chat model its [INST] template."""
    from medrl_lib.rl.judges import JUDGE_QUESTION, LLMJudge

    biogpt = LLMJudge(str(standins["microsoft/biogpt"]), device="cpu")
    plain = biogpt.prompt_texts(["Where is the lesion?"], ["Upper left. Answer: Yes"])[0]
    assert not biogpt.uses_chat_template and plain.endswith(JUDGE_QUESTION)
    mistral = LLMJudge(str(standins["mistralai/Mistral-7B-Instruct-v0.2"]), device="cpu")
    chat = mistral.prompt_texts(["Where is the lesion?"], ["Upper left. Answer: Yes"])[0]
    assert mistral.uses_chat_template and chat.startswith("<s>[INST] ") and chat.endswith(JUDGE_QUESTION + " [/INST]")
    yes, no = mistral._answer_ids
    assert yes and no and not set(yes) & set(no)
