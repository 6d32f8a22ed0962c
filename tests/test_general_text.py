"""The base model's unrelated text: seeded, well-formed, and tagged in the asked share."""

import pytest

from medrl_lib.data.general_text import FAMILIES, general_documents
from medrl_lib.rl.rewards import format_reward


@pytest.mark.parametrize("fraction, low, high", [
    pytest.param(0.0, 0, 0, id="prose-only"),  # never a tag: a report-and-prose base
    pytest.param(1.0, 300, 300, id="all-tagged"),  # every document is a tagged question
    pytest.param(0.3, 60, 120, id="share"),  # about 90 of 300 (seeded draw)
])
def test_tagged_share(fraction, low, high):
    docs = general_documents(300, seed=1, tagged_fraction=fraction)
    tagged = sum(d["completion"][0]["content"].startswith("<think>") for d in docs)
    assert low <= tagged <= high


def _gold_option(doc) -> tuple[str, list[str], str]:
    """(question, options, option named by the gold letter) of a tagged document."""
    lines = doc["prompt"][0]["content"].split(" Your task")[0].split("\n")
    options = [line[3:] for line in lines[1:]]
    letter = doc["completion"][0]["content"].split("<answer>")[1][0]
    return lines[0], options, options[ord(letter) - 65]


def test_tagged_documents_are_well_formed_and_their_letter_is_right():
    from medrl_lib.data.general_text import _WORDS

    docs = general_documents(90, seed=2, tagged_fraction=1.0)
    assert format_reward([d["completion"][0]["content"] for d in docs]) == [1.0] * 90
    for d in docs:
        question, options, gold = _gold_option(d)
        if "largest" in question:  # the largest number
            assert int(gold) == max(int(o) for o in options)
        elif "plus" in question:  # the sum
            a, b = (int(w) for w in question.rstrip("?").split()[2::2])
            assert int(gold) == a + b and options.count(gold) == 1
        else:  # the number's word
            assert gold == _WORDS[int(question.rstrip("?").split()[-1])]


def test_prose_documents_have_no_prompt_and_no_tags():
    docs = general_documents(30, seed=0, tagged_fraction=0.0)
    assert all(d["prompt"][0]["content"] == "" and "<" not in d["completion"][0]["content"] for d in docs)
    assert len({d["id"] for d in docs}) == 30 and len(FAMILIES) == 3


def test_seeded_and_checked():
    assert general_documents(20, seed=3, tagged_fraction=0.5) == general_documents(20, seed=3, tagged_fraction=0.5)
    with pytest.raises(ValueError, match="tagged_fraction"):
        general_documents(5, tagged_fraction=1.5)
