"""The closing paragraphs of the book: what each chapter's result says, and the caveats it rests on, as text
computed from the scorecard rows (:func:`medrl_lib.scoring.claims.evaluate_claim`), the calibration rows
(:func:`medrl_lib.scoring.calibration.calibration_rows`) and the settings that made the runs. No figure is typed here: an
effect the miniature does not show is reported as not shown, and a caveat appears only when the numbers raise it.
:func:`chapter_paragraph` closes a chapter, :func:`study_paragraph` the summary; :func:`calibration_for` is the one
way both get the calibration rows; :func:`arm_settings` and :func:`format_shares` give what the paragraphs read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from medrl_lib.common.files import read_json, write_json
from medrl_lib.config import Profile, load_profile, resolve_path
from medrl_lib.experiments import study
from medrl_lib.experiments.reference import MEDVLM_R1_TABLE1, ZHU_TABLE1
from medrl_lib.scoring.calibration import RESTS_ON, calibration_rows
from medrl_lib.scoring.claims import CLAIMS, VERDICTS, Claim

#: A share of well-formed answers below this (percent) is named beside the verdict: accuracy then measures the
#: format as much as the answer.
FORMAT_FLOOR = 50.0

#: The paper each results group reproduces.
PAPERS = {"zhu": "Zhu et al.", "ood": "MedVLM-R1"}

#: The start model counts as answering the plain prompt when its zero-shot accuracy there is at least this share of
#: its accuracy with the reasoning prompt (Qwen2-VL-2B-Instruct answers both); below it, the chapters say that the
#: plain-prompt arms learn the bare-letter answer as well as the task.
PLAIN_START_SHARE = 0.5

#: Each paper's zero-shot accuracy of its start model with the plain prompt (its Table 1).
PAPER_ZERO_SHOT = {"zhu": ZHU_TABLE1[study.ZHU_ROWS["zero-shot"]]["accuracy"],
                   "ood": MEDVLM_R1_TABLE1[study.OOD_ROWS["zero-shot"]]["average"]}

_VERDICT_WORDS = {
    "holds": "the claim holds here (the interval lies entirely on the side the paper claims)",
    "reversed": "not shown, and reversed (the interval lies entirely on the other side of 0)",
    "smaller than the paper's": "not shown (the interval contains 0 and excludes an effect as large as the "
                                "paper's in the claimed direction)",
    "no effect of the paper's size": "not shown (the interval contains 0 and excludes an effect of the paper's "
                                     "size either way)",
    "inconclusive": "not shown, and inconclusive (the interval contains both 0 and the paper's effect)",
}


#: The verdicts whose interval excludes the paper's effect in the claimed direction, though it contains 0.
_EXCLUDES = ("smaller than the paper's", "no effect of the paper's size")


def _outcomes(rows: Sequence[dict]) -> dict[str, list[str]]:
    """Claim ids by what their interval says: 'holds', 'reversed', 'excludes' (contains 0, excludes the paper's
    effect) or 'open' (inconclusive, or nothing to test)."""
    out: dict[str, list[str]] = {"holds": [], "reversed": [], "excludes": [], "open": []}
    for r in rows:
        v = r["verdict"]
        key = v if v == "holds" else "open" if _flat(r) or v == "inconclusive" else \
            "excludes" if v in _EXCLUDES else "reversed"
        out[key].append(r["id"])
    return out


def _claim(row: dict) -> Claim:
    return next(c for c in CLAIMS if c.id == row["id"])


def _label(arm: str) -> str:
    return study.LABELS.get(arm, arm)


def _means(row: dict) -> tuple[float, float]:
    """The two arms' means (``a_mean``/``b_mean`` if the row has them, else the figures of ``ours``)."""
    if "a_mean" in row and "b_mean" in row:
        return float(row["a_mean"]), float(row["b_mean"])
    parts = str(row["ours"]).split(" vs ")
    return (float(parts[0]), float(parts[1])) if len(parts) == 2 else (math.nan, math.nan)


def _n(x: float, unit: str, sign: bool = True) -> str:
    return f"{x:{'+' if sign else ''}.1f} {unit}"


def _list(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return items[0] if items else "none"
    return ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _flat(row: dict) -> bool:
    """Nothing to test: the arms score alike on every item (no difference, none detectable) or share none."""
    return not row["mde"] > 0 and (row["diff"] == 0 or math.isnan(row["diff"]))


def _detectable(row: dict) -> bool:
    return not _flat(row) and row["mde"] <= abs(row["paper_effect"])


def _measured(row: dict, c: Claim) -> str:
    """The two means, the difference with its interval, the verdict in words, the paper's effect and whether the
    miniature could have detected it."""
    unit, group = row["unit"], study.ARMS[c.a][1]
    head = f"**{c.id}** *{c.text.rstrip('.')}.*"
    if row["diff"] != row["diff"]:  # no item has a reasoning in every run of both arms
        return (f"{head} Not shown: no test item has a reasoning in every run of {_label(c.a)} and {_label(c.b)}, "
                "so there is nothing to compare.")
    a, b = _means(row)
    ours = (f"{_cap(_label(c.a))} reasons {a:.1f} tokens against {b:.1f} for {_label(c.b)}"
            if row["quantity"] == "thinking_length" else
            f"{_cap(_label(c.a))} is {a:.1f}% accurate against {b:.1f}% for {_label(c.b)}")
    text = (f"{head} {ours}, a difference of {_n(row['diff'], unit)} (95% CI {row['low']:+.1f} to {row['high']:+.1f}; "
            f"{row['seeds']} seed{'s' if row['seeds'] != 1 else ''} × {row['items']} test items): "
            f"{_VERDICT_WORDS[row['verdict']]}.")
    effect = row["paper_effect"]
    notes = ([f"its {c.paper_a:g} / {c.paper_b:g} tokens as a ratio, applied to our {_label(c.b)} arm"]
             if row["quantity"] == "thinking_length" else []) + \
        (["the paper's own figures point the other way"] if effect * c.direction < 0 else [])
    text += f" {PAPERS[group]}'s effect is {_n(effect, unit)}{' (' + '; '.join(notes) + ')' if notes else ''}; "
    if _flat(row):
        text += ("the two arms score alike on every test item, so the interval has no width and the miniature says "
                 "nothing about an effect of the paper's size.")
    elif _detectable(row):
        text += (f"the miniature could have shown an effect of the paper's size (it detects "
                 f"{_n(row['mde'], unit, False)} at 80% power).")
    else:
        text += (f"the miniature could not have shown an effect of the paper's size: the smallest effect it detects "
                 f"at 80% power is {_n(row['mde'], unit, False)}, the paper's is {_n(abs(effect), unit, False)}.")
        if row["verdict"] in _EXCLUDES:
            text += " The interval excludes an effect of that size all the same."
    return text + _held_size(row, c)


def _held_size(row: dict, c: Claim) -> str:
    """For a claim that holds: whether its interval also lies wholly below or above the paper's effect (the direction
    holds, the size does not)."""
    size = row["paper_effect"] * c.direction
    if row["verdict"] != "holds" or _flat(row) or not size > 0:
        return ""
    low, high = sorted((row["low"] * c.direction, row["high"] * c.direction))
    unit = row["unit"]
    if high < size:
        return (f" What holds is the direction, not the size: the interval lies wholly below the paper's "
                f"{_n(size, unit, False)}.")
    if low > size:
        return (f" What holds is an effect larger than the paper's: the interval lies wholly above its "
                f"{_n(size, unit, False)}.")
    return ""


def _length_room(row: dict, c: Claim, p: Profile) -> str:
    """Whether the reasoning had room to move as the paper's did: completion cap, length target, start length."""
    g, start = p.grpo, _means(row)[1]
    cap = min(g.max_completion_length, p.eval.max_new_tokens)
    cut = (f" (test completions are cut at {p.eval.max_new_tokens})"
           if p.eval.max_new_tokens < g.max_completion_length else "")
    where = (f"the completion cap is {g.max_completion_length} tokens{cut}, the {_label(c.b)} arm reasons "
             f"{start:.1f} tokens")
    if any(k in g.reward_weights for k in ("ecr_reward", "cwr_reward")):
        target = g.length_target_tokens
        where += f" and the length target is {target}"
        if cap > target > start:
            return f"There was room for {c.id}: {where} (cap > target > start length)."
        why = ("the cap does not exceed the target, so the length reward cannot be earned in full" if cap <= target
               else "the start arm already reasons as long as the target, so the reward pays nothing for more")
        return f"No room for {c.id}: {where}; {why}."
    need = row["paper_effect"]
    room = cap - start if need > 0 else start
    if not math.isnan(need) and room < abs(need):
        return (f"No room for {c.id} at the paper's size: {where}, {room:.1f} tokens of room against the paper's "
                f"{abs(need):.1f}.")
    return f"For {c.id}, {where}: room for a change of the paper's size (no length reward is involved)."


def _sft_budget(claims: Sequence[Claim], settings: Mapping[str, Profile], profile: Profile) -> list[str]:
    """A sentence on the supervised arms' budget against GRPO's, for the claims that compare with one."""
    from medrl_lib.training.budget import (
        SUPERVISED_METHODS,
        grpo_prompts_per_step,
        supervised_items_per_step,
        supervised_steps,
    )

    pairs = list(dict.fromkeys((c.a, c.b) for c in claims if study.ARMS[c.b][0] in SUPERVISED_METHODS))
    out = []
    for a in dict.fromkeys(a for a, _ in pairs):
        q = settings.get(a, profile)
        arms = [b for x, b in pairs if x == a]
        budgets = {settings.get(b, profile).sft.budget for b in arms}
        how = ("matched to" if budgets == {"grpo"} else "set by hand (`sft.budget: steps`), not matched to" if
               budgets == {"steps"} else "partly matched to")
        steps = {b: supervised_steps(settings.get(b, profile), study.ARMS[b][0]) for b in arms}
        each = [f"{_label(b)} {n:,} steps on {n * supervised_items_per_step(settings.get(b, profile)):,} items"
                for b, n in steps.items()]
        out.append(f"The supervised arms trained on a budget {how} the {q.grpo.max_steps * grpo_prompts_per_step(q):,} "
                   f"prompts of {_label(a)} ({q.grpo.num_generations} completions each): {_list(each)}.")
    return out


def _failed_checks(ids: Sequence[str], calibration: Sequence[dict] | None) -> dict[str, list[dict]]:
    """Check -> its rows not met, for the checks that any of the claims ``ids`` rests on (``RESTS_ON``)."""
    out: dict[str, list[dict]] = {}
    for r in calibration or ():
        if r["verdict"] != "met" and set(ids) & set(RESTS_ON.get(r["check"], ())):
            out.setdefault(r["check"], []).append(r)
    return dict(sorted(out.items()))


def _check_caveats(ids: Sequence[str], calibration: Sequence[dict] | None) -> list[str]:
    """A sentence per set of claims (of ``ids``) resting on calibration checks that are not met."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for check, bad in _failed_checks(ids, calibration).items():
        what = "; ".join(f"{r['what']}: not met, {r['ours']}" for r in bad)
        groups.setdefault(tuple(i for i in ids if i in RESTS_ON[check]), []).append(f"{check} ({what})")
    out = []
    for resting, checks in groups.items():
        many = len(checks) > 1
        whose = "every claim here rests" if len(resting) == len(ids) > 1 else \
            f"{_list(resting)} rest{'s' if len(resting) == 1 else ''}"
        verdicts = "its verdict" if len(resting) == 1 else "their verdicts"
        out.append(f"Calibration check{'s' if many else ''} {_list(checks)} {'are' if many else 'is'} not met; "
                   f"{whose} on {'them' if many else 'it'}, so {verdicts} cannot be read as the paper's effect on "
                   "this profile.")
    return out


def _start_draw(profile: Profile) -> str:
    if profile.model.kind == "hub":
        return ("The start models are the published checkpoints, the same for every seed: the intervals speak for "
                "these checkpoints.")
    if getattr(profile.standins, "per_seed", False):
        return "Each seed starts from its own draw of the start models, so the intervals include their variance."
    return ("The start models are one draw shared by every seed, so the intervals cover training seeds and test "
            "items but not the variance of building the start models: a difference may belong to this draw.")


def _sample(rows: Sequence[dict], profile: Profile) -> str:
    seeds, items = sorted({r["seeds"] for r in rows}), sorted({r["items"] for r in rows if r["items"]})
    return (f"The intervals rest on {'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''} and "
            f"{'/'.join(map(str, items)) or 'no'} test items. " + _start_draw(profile))


def _steps(rows: Sequence[dict], settings: Mapping[str, Profile], profile: Profile) -> str:
    """GRPO's training (steps, prompts seen) against the paper's, a sentence per paper of the rows."""
    from medrl_lib.training.budget import grpo_prompts_per_step

    out = []
    for group in dict.fromkeys(study.ARMS[_claim(r).a][1] for r in rows):
        arm = next(_claim(r).a for r in rows if study.ARMS[_claim(r).a][1] == group)
        ours, theirs = settings.get(arm, profile), study.arm_profile("paper", arm)
        seen = [p.grpo.max_steps * grpo_prompts_per_step(p) for p in (ours, theirs)]
        out.append(f"GRPO trained {ours.grpo.max_steps} steps ({seen[0]:,} prompts) against {PAPERS[group]}'s "
                   f"{theirs.grpo.max_steps:,} ({seen[1]:,} prompts)"
                   + (f": {100 * seen[0] / seen[1]:.2g}% of the paper's training." if seen[0] < seen[1] else "."))
    return " ".join(out)


def _formats(rows: Sequence[dict], formats: Mapping[str, float] | None) -> list[str]:
    low = {arm: formats[arm] for r in rows for arm in (_claim(r).a, _claim(r).b)
           if formats and arm in formats and formats[arm] == formats[arm] and formats[arm] < FORMAT_FLOOR}
    if not low:
        return []
    shares = _list([f"{v:.0f}% of {_label(a)}'s" for a, v in low.items()])
    return [(f"Only {shares} test completions are well-formed (under {FORMAT_FLOOR:.0f}%), so accuracy there "
             "measures the format as much as the answer.")]


def plain_start(runs: Mapping[str, Sequence], group: str) -> dict | None:
    """What the plain-prompt caveat reads: the start model's accuracy asked with the plain prompt
    (``runs['zero-shot']``, the papers' zero-shot row) and with the reasoning prompt (``runs['start']``), and the
    mean accuracy of each arm of ``group`` in ``runs`` that is asked with the plain prompt. None without both rows."""
    from medrl_lib.experiments.report import asked_plain, mean_accuracy

    if not runs.get("zero-shot") or not runs.get("start"):
        return None
    arms = {a: mean_accuracy(rs) for a, rs in runs.items()
            if a in study.ARMS and study.ARMS[a][1] == group and rs and asked_plain(rs)}
    return {"group": group, "zero_shot": mean_accuracy(runs["zero-shot"]), "start": mean_accuracy(runs["start"]),
            "arms": arms}


def _plain_caveat(rows: Sequence[dict], plain: Sequence[Mapping]) -> list[str]:
    """When the start model cannot answer the plain prompt, the plain-prompt arms of the claims learn the bare-letter
    answer as well as the task; an arm that stays below the start model's reasoning-prompt accuracy is named."""
    out = []
    claimed = {a for r in rows for a in (_claim(r).a, _claim(r).b)}
    for p in plain:
        if not p:
            continue
        arms = {a: v for a, v in p["arms"].items() if a in claimed}
        if not arms or not p["zero_shot"] < PLAIN_START_SHARE * p["start"]:
            continue
        low = [f"{_label(a)} ({v:.1f}%)" for a, v in arms.items() if v < p["start"]]
        out.append(f"Asked with the plain prompt, the start model answers {p['zero_shot']:.1f}% of the test items "
                   f"correctly, against {p['start']:.1f}% with the reasoning prompt ({PAPERS[p['group']]}'s start "
                   f"model: {PAPER_ZERO_SHOT[p['group']]:g}% with the plain prompt): it has not learned to answer "
                   f"with a bare letter, so {_list([_label(a) for a in arms])} learn{'s' if len(arms) == 1 else ''} "
                   "that answer as well as the task"
                   + (f", and {_list(low)} stay{'s' if len(low) == 1 else ''} below the start model asked with the "
                      "reasoning prompt: a verdict against "
                      f"{'it' if len(low) == 1 else 'them'} measures the bare-letter answer as much as the method."
                      if low else "."))
    return out


def _lead(rows: Sequence[dict], calibration: Sequence[dict] | None) -> str:
    """The chapter's answer: which claims the miniature shows, what it says about the others, and whether a
    calibration check they rest on is not met."""
    failed = list(_failed_checks([r["id"] for r in rows], calibration))
    if failed:
        return _lead(rows, None)[:-2] + (f" But calibration check{'s' if len(failed) > 1 else ''} {_list(failed)}, "
                                         f"on which this rests, {'is' if len(failed) == 1 else 'are'} not met.**")
    ids = _outcomes(rows)
    held, excluded, n = ids["holds"], ids["excludes"], len(rows)
    if n == 1:
        head = ("The miniature shows the paper's claim" if held else "The miniature does not show the paper's claim"
                + (": it finds the opposite" if ids["reversed"] else
                   ", and excludes an effect as large as the paper's" if excluded else
                   ", and cannot tell whether an effect of the paper's size is there"))
        return f"**{head}.**"
    head = (f"The miniature shows all {n} claims of this chapter" if len(held) == n else
            f"The miniature shows {len(held)} of the {n} claims of this chapter ({_list(held)})" if held else
            f"The miniature shows none of the {n} claims of this chapter")
    rest = ([f"{_list(excluded)} it excludes an effect as large as the paper's"] if excluded else []) + \
        ([f"{_list(ids['reversed'])} it finds the opposite"] if ids["reversed"] else []) + \
        ([f"{_list(ids['open'])} it cannot tell"] if ids["open"] else [])
    return f"**{head}{': for ' + '; for '.join(rest) if rest else ''}.**"


def chapter_paragraph(rows: Sequence[dict], *, calibration: Sequence[dict] | None, profile: Profile,
                      formats: Mapping[str, float] | None = None,
                      settings: Mapping[str, Profile] | None = None, plain: Sequence[Mapping | None] = ()) -> str:
    """Markdown: a chapter's answer, then per claim row its difference, verdict and detectability, then the caveats
    computed from ``calibration`` (checks not met that a claim rests on), the settings (``settings``: arm -> its
    resolved profile, :func:`arm_settings`; ``profile`` for arms not in it), seeds, items, the start-model draw,
    ``formats`` (arm -> percent of well-formed test answers, :func:`format_shares`) and ``plain`` (per results
    group, the start model with the plain prompt, :func:`plain_start`)."""
    if not rows:
        return "No claim of the papers is tested in this chapter."
    settings = settings or {}
    claims = [_claim(r) for r in rows]
    body = " ".join(_measured(r, c) for r, c in zip(rows, claims))
    caveats = _check_caveats([c.id for c in claims], calibration)
    for r, c in zip(rows, claims):
        if r["quantity"] == "thinking_length" and r["diff"] == r["diff"]:
            caveats.append(_length_room(r, c, settings.get(c.a, profile)))
    caveats += _sft_budget(claims, settings, profile)
    caveats += _formats(rows, formats) + _plain_caveat(rows, plain)
    caveats += [_steps(rows, settings, profile), _sample(rows, profile)]
    return f"{_lead(rows, calibration)} {body}\n\n*What this rests on.* " + " ".join(caveats)


#: Verdict -> (singular, plural) predicate, for counting; 'excludes': either verdict of ``_EXCLUDES``.
_COUNTED = {"holds": ("holds", "hold"), "reversed": ("is reversed", "are reversed"),
            "smaller than the paper's": ("is smaller than the paper's", "are smaller than the paper's"),
            "no effect of the paper's size": ("shows no effect of the paper's size",
                                              "show no effect of the paper's size"),
            "inconclusive": ("is inconclusive", "are inconclusive"),
            "excludes": ("excludes an effect of the paper's size", "exclude an effect of the paper's size")}


def study_paragraph(rows: Sequence[dict], *, calibration: Sequence[dict] | None, profile: Profile,
                    formats: Mapping[str, float] | None = None,
                    settings: Mapping[str, Profile] | None = None, plain: Sequence[Mapping | None] = ()) -> str:
    """Markdown over every claim row: counts per verdict, which claims the miniature could have shown at the
    paper's size and what became of them, and the caveats shared by all (calibration, steps, start models, the
    start model with the plain prompt: ``plain`` as in :func:`chapter_paragraph`)."""
    if not rows:
        return "No claim was tested."
    settings = settings or {}
    n = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    counts = [f"{n[v]} {_COUNTED[v][n[v] != 1]}" for v in VERDICTS if n[v]]
    text = f"**Of the {len(rows)} claims tested, {_list(counts)}.**"
    for able in (True, False):  # the claims the miniature could have shown at the paper's size, then the others
        group = [r for r in rows if _detectable(r) == able]
        if not group:
            continue
        ids = _outcomes(group)
        said = [f"{_list(i)} {_COUNTED[k][len(i) > 1]}" + (" all the same" if not able else "" if k == "holds" else
                                                           ", evidence against the paper's effect at this scale")
                for k, i in ids.items() if i and k != "open"]
        if ids["open"]:
            said.append(f"for {_list(ids['open'])} " + ("the data cannot tell" if able else "a verdict short of "
                                                         "*holds* says nothing about the paper's effect"))
        text += (f" The miniature {'could' if able else 'could not'} have shown an effect of the paper's size for "
                 f"{_list([r['id'] for r in group])}" + ("" if able else " (the smallest effect it detects exceeds the "
                                                         "paper's, or the arms differ on no item)")
                 + ": " + "; ".join(said) + ".")
    caveats = _check_caveats([r["id"] for r in rows], calibration)
    caveats += _formats(rows, formats) + _plain_caveat(rows, plain)
    caveats += [_steps(rows, settings, profile), _sample(rows, profile)]
    return text + "\n\n*What this rests on.* " + " ".join(caveats)


def chapter_closing(profile_name: str, rows: Sequence[dict], runs: Mapping[str, Sequence], arms: Sequence[str],
                    overrides: dict | None = None, seeds: Sequence[int] | None = None) -> str:
    """A chapter's closing paragraph in one call: :func:`chapter_paragraph` of its scorecard ``rows``, with the
    calibration rows (:func:`calibration_for`), the shares of well-formed answers of its ``runs``
    (:func:`format_shares`), the settings of its ``arms`` (:func:`arm_settings`) and, where ``runs`` holds the
    start model's rows 'zero-shot' and 'start', its answers to the plain prompt (:func:`plain_start`)."""
    groups = dict.fromkeys(study.ARMS[a][1] for a in arms if a in study.ARMS)
    return chapter_paragraph(rows, calibration=calibration_for(profile_name, overrides, seeds=seeds),
                             profile=load_profile(profile_name, overrides), formats=format_shares(runs),
                             settings=arm_settings(profile_name, arms, overrides),
                             plain=[plain_start(runs, g) for g in groups])


def study_closing(profile_name: str, rows: Sequence[dict], runs: Mapping[str, Sequence],
                  starts: Mapping[str, tuple], calibration: Sequence[dict] | None,
                  overrides: dict | None = None) -> str:
    """The summary's closing paragraph in one call: :func:`study_paragraph` of every claim row, with the shares of
    well-formed answers of ``runs``, their settings and, per results group of ``starts`` (group -> the start
    model's zero-shot run with the plain prompt and its run with the reasoning prompt), :func:`plain_start`."""
    return study_paragraph(rows, calibration=calibration, profile=load_profile(profile_name, overrides),
                           formats=format_shares(runs), settings=arm_settings(profile_name, list(runs), overrides),
                           plain=[plain_start({"zero-shot": [zero], "start": [start], **runs}, group)
                                  for group, (zero, start) in starts.items()])


def arm_settings(profile_name: str, arms: Sequence[str], overrides: dict | None = None) -> dict[str, Profile]:
    """Arm -> the resolved profile it trains with (:func:`medrl_lib.experiments.study.arm_profile` of the arm it reads)."""
    return {a: study.arm_profile(profile_name, study.stored_arm(profile_name, a, overrides), overrides)
            for a in arms}


def format_shares(runs: Mapping[str, Sequence]) -> dict[str, float]:
    """Arm -> percent of well-formed test completions (:func:`medrl_lib.experiments.report.format_rates`), for the arms asked
    with the reasoning prompt (a plain-prompt arm answers a bare letter by design)."""
    from medrl_lib.experiments.report import asked_plain, format_rates

    return {arm: rate for arm, rate in format_rates(runs).items() if not asked_plain(runs[arm])}


def calibration_for(profile_name: str, overrides: dict | None = None, force: bool = False,
                    seeds: Sequence[int] | None = None) -> list[dict]:
    """The calibration rows (C1-C4) of a profile from its runs: GRPO from each start, the MRI-trained arms and
    the zero-shot starts, loaded from the results store (trained where missing, or with ``force``).

    Every chapter closes with them, so they are computed once and kept in ``<results>/<profile>/calibration.json``
    with what made them: the resolved profile, the seeds, the code of the checks and a digest of each run's
    ``metrics.json``. A later call with the same settings, code and runs reads them back (a no-change rebuild of the
    book loads no run for them); anything else recomputes them."""
    p = load_profile(profile_name, overrides)
    seeds = list(seeds or p.seeds)
    cache = resolve_path(p.results_dir) / p.name / "calibration.json"
    stamp = _calibration_stamp(p, seeds)
    if not force:
        rows = _stored_calibration(cache, stamp)
        if rows is not None:
            return rows
    rows, runs = _calibration_rows(profile_name, overrides, force, seeds)
    write_json(cache, {"stamp": stamp, "runs": {str(r.path): _digest(Path(r.path) / "metrics.json") for r in runs},
                       "rows": rows})
    return json.loads(json.dumps(rows, default=float))  # as read back: the same types on every call


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _calibration_stamp(p: Profile, seeds: Sequence[int]) -> str:
    """What the calibration rows depend on besides the runs: the profile, the seeds, the code that checks them."""
    from medrl_lib.scoring import calibration, stats

    code = "".join(Path(m.__file__).read_text() for m in (calibration, stats))
    blob = json.dumps({"profile": p.to_dict(), "seeds": list(seeds)}, sort_keys=True, default=str) + code
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stored_calibration(cache: Path, stamp: str) -> list[dict] | None:
    """The rows stored at ``cache`` if they were made with ``stamp`` from runs whose metrics are unchanged."""
    try:
        stored = read_json(cache)
        if stored["stamp"] != stamp:
            return None
        if any(_digest(Path(path) / "metrics.json") != digest for path, digest in stored["runs"].items()):
            return None
        return stored["rows"]
    except (OSError, ValueError, KeyError, TypeError):  # absent, torn or of an older layout: recompute
        return None


def _calibration_rows(profile_name: str, overrides: dict | None, force: bool, seeds: list[int]):
    """(rows, the runs they were computed from)."""
    from medrl_lib.training.evaluate import random_guess_accuracy

    p = load_profile(profile_name, overrides)
    ood_arms = ["ood-grpo", "ood-sft"]
    runs = study.run_arms(profile_name, ["grpo-instruct", "grpo-base", *ood_arms], seeds, overrides, force)
    has_base = "grpo-base" in runs  # not applicable where the profile has no base model: C4 left out
    starts = {(which, group): study.zero_shot(profile_name, which, group, overrides, force)
              for which, group in (("instruct", "ood"), ("instruct", "zhu"), ("base", "zhu"))
              if which == "instruct" or has_base}
    rows = calibration_rows(
        ood_start=starts["instruct", "ood"], instruct_start=starts["instruct", "zhu"],
        base_start=starts.get(("base", "zhu")), grpo_instruct=runs["grpo-instruct"], grpo_base=runs.get("grpo-base"),
        mri_trained={study.LABELS[a]: runs[a] for a in ood_arms},
        chance=random_guess_accuracy(study.test_split(profile_name, "ood", overrides)),
        in_domain=p.data.train_modalities, n_boot=p.eval.n_boot, seed=p.eval.bootstrap_seed)
    return rows, [*starts.values(), *(r for arm_runs in runs.values() for r in arm_runs)]
