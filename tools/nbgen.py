"""Write notebooks/*.ipynb from the cell lists below (stored without outputs). Run: python tools/nbgen.py.

Notebooks are the product; this file is only a convenient way to keep their source reviewable as Python.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from medrl_lib import study  # noqa: E402  (which arms are GRPO)

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

KERNEL = {"display_name": "Python 3", "language": "python", "name": "python3"}


def notebook(cells):
    nb = new_notebook(metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    for kind, src, *tags in cells:
        cell = new_markdown_cell(src.strip()) if kind == "md" else new_code_cell(src.strip())
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


PARAMS = ("code", """
profile = "cpu"   # smoke | cpu | rehearsal | paper
seeds = None      # seeds to run; None: the profile's seeds
overrides = {}    # dotted-key settings for every run, e.g. {"grpo.max_steps": 50}
force = False     # retrain even when the results store holds a run
""", "parameters")

IMPORTS = """
%matplotlib inline
from IPython.display import Markdown, display

from medrl_lib.config import load_profile
from medrl_lib import plots, study
from medrl_lib.claims import CLAIMS, evaluate_claim
from medrl_lib.evaluate import random_guess_accuracy
from medrl_lib.reference import MEDVLM_R1_TABLE1, ZHU_TABLE1
"""

DERIVED = """
P = load_profile(profile, overrides)
seeds = list(seeds or P.seeds)
print(f"profile {P.name}, seeds {seeds}, {P.grpo.max_steps} GRPO steps per run")
"""


def experiment(title, intro, arms, extra_md="", figures=(), claims_for=None, zero_shot=False, experiment="zhu"):
    cells = [("md", f"# {title}\n\n{intro}"), ("code", IMPORTS), PARAMS, ("code", DERIVED + f"arms = {arms!r}\n")]
    cells.append(("md", "## Runs\nEach run is loaded from the results store when it exists for this exact configuration."))
    run_src = "runs = study.run_arms(profile, arms, seeds, overrides, force)\n"
    if zero_shot:
        run_src += ("baseline = study.baseline(profile, 'instruct', experiment=%r, overrides=overrides, force=force)\n"
                    "start = study.zero_shot(profile, 'instruct', experiment=%r, overrides=overrides, force=force)\n"
                    "runs_with_start = {'zero-shot': [baseline], 'start': [start], **runs}\n" % (experiment, experiment))
    cells.append(("code", run_src))
    cells.append(("md", "## Training\nReward components over training (mean of the sampled completions; band: 95% "
                        "interval over seeds)."))
    grpo_arms = [a for a in arms if study.ARMS[a][0] == "grpo"]
    if grpo_arms:
        cells.append(("code", f"plots.plot_rewards({{a: runs[a] for a in {grpo_arms!r}}}, labels=study.LABELS, "
                              "keys=plots.training_keys(runs))"))
    cells.append(("md", "## Results\nHeld-out accuracy per arm: dots are seeds, bars the mean with a 95% interval."))
    cells.append(("code", "test = study.test_split(profile, %r, overrides)\n"
                          "plots.plot_accuracy(runs, study.LABELS, chance=random_guess_accuracy(test)['all'])" % experiment))
    for fig in figures:
        cells.append(("code", fig))
    cells.append(("code", "display(Markdown(plots.format_summary(runs, study.LABELS)))"))
    table_runs = "runs_with_start" if zero_shot else "runs"
    cells.append(("md", "Every metric of Zhu et al. (Appendix B), mean ± std over seeds, beside the paper's Table 1."))
    cells.append(("code", f"plots.metrics_table({table_runs}, study.LABELS, "
                          "reference=ZHU_TABLE1, reference_rows=study.ZHU_ROWS)"))
    if claims_for:
        cells.append(("md", "## The paper's claim, tested\nThe difference between the two arms with a 95% interval "
                            "(two-level bootstrap over seeds and test items); the verdict is computed from it."))
        cells.append(("code", f"rows = [evaluate_claim(c, runs[c.a], runs[c.b]) for c in CLAIMS if c.experiment == {claims_for!r}]\n"
                              "display(plots.claims_table(rows))\n"
                              "display(Markdown(plots.claims_summary(rows)))"))
    if extra_md:
        cells.append(("md", extra_md))
    return cells


DATA = [
    ("md", """
# The data

The cpu and smoke profiles use synthetic radiology items that the package generates (`medrl_lib.data.synthetic`):
small grayscale images in three visibly different modality styles (MRI: bright lesions in a dark head; CT: dark
lesions in a bright-rimmed body section; X-ray: bright opacities in dark lung fields), 1 to 3 lesions, and a
multiple-choice question (2 to 6 options) whose answer the image determines: where the lesion is, how many, which
side, how large, which modality. The ground-truth facts stay with each item. On the cpu profile the options are
listed in a fixed (canonical) order, `data.option_order: canonical`: with shuffled options the 4-layer model
never learned to find the letter of the option it had named (in our probes its letters stayed at chance while the option it named was mostly right), so the letter step would have hidden every other effect. The paper profile reads PMC-VQA and the
HuatuoGPT-Vision evaluation data into the same schema.
"""),
    ("code", IMPORTS),
    PARAMS,
    ("code", DERIVED + """
zhu_train, zhu_test = study.splits(profile, "zhu", overrides)
ood_train, ood_test = study.splits(profile, "ood", overrides)
print(f"Zhu experiments (E1-E5): {len(zhu_train)} training items (all modalities), {len(zhu_test)} test items")
print(f"MedVLM-R1 experiment (E6): {len(ood_train)} MRI training items, {len(ood_test)} test items (MRI, CT, X-ray)")
print(f"training and test ids disjoint: {set(zhu_train['id']).isdisjoint(zhu_test['id'])}")
"""),
    ("md", "## Rows read and dropped\nThe real-data loaders skip malformed rows (a label absent from the choices or "
           "contradicting the answer text, a choice with another letter's prefix, a missing image, an object of another "
           "benchmark without a modality, an open question ...) and count them by reason; every run stores these counts "
           "in its `data.json`. The reasons are defined in `medrl_lib.data.pmc_vqa` and `medrl_lib.data.huatuo`."),
    ("code", "plots.loader_table({'Zhu train': zhu_train, 'Zhu test': zhu_test, 'E6 train': ood_train, 'E6 test': ood_test})"),
    ("md", "## Examples of each modality"),
    ("code", "plots.sample_grid(zhu_test, per_modality=5)"),
    ("md", "## Option counts and gold letters\nWith shuffled options both are balanced; with canonical options the early "
           "letters are more often gold, a prior that the chance level below (uniform guessing) does not use."),
    ("code", "plots.balance_plot(zhu_test)"),
    ("md", "## The start models\nParameters of the base and instruct models this profile trains from (built on demand)."),
    ("code", "from medrl_lib.train import start_model_sizes\nstart_model_sizes(P)"),
    ("md", "## Chance level\nExpected accuracy of guessing uniformly among each item's options."),
    ("code", "import pandas as pd\npd.DataFrame({'random guess (%)': random_guess_accuracy(zhu_test)}).round(2)"),
]

E1 = experiment("E1 Initialisation: base vs instruct start", """
Zhu et al. (section 3.1) start GRPO from Qwen2-VL-2B (base) and from Qwen2-VL-2B-Instruct and find the instruct
start more accurate (58.04 vs 51.56) with shorter reasoning. Here both starts are the package's tiny models: the
**base** model was pretrained to write the report of an image and on unrelated text (a few tagged multiple-choice
questions about numbers among it), but never saw a question about an image; the **instruct** model is the base
tuned on a disjoint question set (see Methods).
""", ["grpo-base", "grpo-instruct"], claims_for="01_initialization", zero_shot=True)

E2 = experiment("E2 Semantic alignment reward", """
Zhu et al. (section 3.2) add a reward from a reference LLM judging whether the reasoning is clinically grounded
(BioGPT, BioMistral) and report a small accuracy gain (59.86 vs 58.04). The cpu profile's judge is the oracle that
checks the reasoning against the item's ground-truth facts; the paper profile uses an LLM judge with a fenced
prompt (`medrl_lib.rewards.LLMJudge`).
""", ["grpo-instruct", "grpo-sa"], claims_for="02_semantic_alignment")

E3 = experiment("E3 Length rewards: ECR and CWR", """
Zhu et al. (section 3.3) reward longer reasoning (ECR) and longer reasoning only when correct (CWR): ECR lengthens
the reasoning (338 vs 64 tokens) and costs accuracy (50.17 vs 59.86); CWR costs less (54.68). Neither formula is in
the paper: ours is `w * min(tokens / target, 1)` (Methods).
""", ["grpo-sa", "grpo-sa-ecr", "grpo-sa-cwr"], claims_for="03_length_rewards",
    figures=["plots.plot_rewards({a: runs[a] for a in arms}, labels=study.LABELS, keys={'completions/mean_length': 'completion length'})",
             "plots.plot_length_vs_accuracy(runs, study.LABELS)"])

E4 = experiment("E4 Dr.GRPO", """
Liu et al.'s Dr.GRPO removes GRPO's two normalisations (the group std in the advantage, each sequence's length in
the loss). Zhu et al. (section 3.4) find it the most accurate variant (61.09 vs 58.04).
""", ["grpo-instruct", "dr-grpo"], claims_for="04_dr_grpo",
    figures=["plots.plot_rewards({a: runs[a] for a in arms}, labels=study.LABELS, keys={'completions/mean_length': 'completion length'})"])

E5 = experiment("E5 SFT vs RL", """
Zhu et al. (section 4) compare GRPO with full supervised fine-tuning, LoRA and DPO on the same data: GRPO 58.04,
full SFT 52.00, DPO 46.97, LoRA 45.98, zero-shot 47.29. As in the paper (PMC-VQA has no reference reasoning), the
supervised arms learn the final answer only (`sft.target: plain`) and are asked and scored with the plain prompt
(*provide the correct single-letter choice*); GRPO arms with the reasoning prompt (Methods).
""", ["grpo-instruct", "sft", "lora", "dpo"], claims_for="05_sft_vs_rl", zero_shot=True)

OOD = [
    ("md", """
# E6 Out-of-domain generalisation: trained on MRI, tested on MRI, CT and X-ray

Pan et al. (MedVLM-R1) train Qwen2-VL-2B with GRPO or SFT on 600 MRI items and test on MRI (in domain), CT and X-ray
(out of domain): GRPO 95.33 / 70.33 / 69.00, SFT 94.00 / 54.33 / 34.00. This chapter runs the same experiment at the
scale of the chosen profile, scored with MedVLM-R1's strict rule (only the correct letter inside `<answer>` counts).
"""),
    ("code", IMPORTS),
    PARAMS,
    ("code", DERIVED + 'arms = ["ood-grpo", "ood-sft"]\nmodalities = list(P.data.test_modalities)\n'),
    ("md", "## Runs"),
    ("code", "runs = study.run_arms(profile, arms, seeds, overrides, force)\n"
             "start = study.zero_shot(profile, 'instruct', experiment='ood', overrides=overrides, force=force)\n"
             "baseline = study.baseline(profile, 'instruct', experiment='ood', overrides=overrides, force=force)\n"
             "test = study.test_split(profile, 'ood', overrides)"),
    ("md", "## Training rewards (GRPO)"),
    ("code", "plots.plot_rewards({'ood-grpo': runs['ood-grpo']}, labels=study.LABELS, keys=plots.training_keys(runs))"),
    ("md", "## Accuracy per test modality\nMean over seeds; MRI is in domain."),
    ("code", "plots.ood_heatmap({'zero-shot': [baseline], 'start': [start], **runs}, modalities, study.LABELS,\n"
             "                   extra_rows={'random guess': random_guess_accuracy(test)})"),
    ("code", "plots.accuracy_table({'instruct zero-shot': baseline, 'instruct start (reasoning prompt)': start,\n"
             "                      **{f'{study.LABELS[a]} seed {i}': r for a in arms for i, r in enumerate(runs[a])}},\n"
             "                     modalities, reference=MEDVLM_R1_TABLE1,\n"
             "                     reference_rows={'random guess': 'random guess', 'instruct zero-shot': 'Qwen2-VL-2B',\n"
             "                                     **{f'{study.LABELS[a]} seed {i}': ('GRPO-2B' if a == 'ood-grpo' else 'SFT-2B')\n"
             "                                        for a in arms for i in range(len(runs[a]))}},\n"
             "                     extra_rows={'random guess': random_guess_accuracy(test)})"),
    ("md", "## The paper's claim, tested"),
    ("code", "rows = [evaluate_claim(c, runs[c.a], runs[c.b]) for c in CLAIMS if c.experiment == '06_ood_generalization']\n"
             "display(plots.claims_table(rows))\n"
             "display(Markdown(plots.claims_summary(rows)))\n"
             "display(Markdown(plots.ood_summary(start, runs['ood-grpo'], modalities, P.data.train_modalities)))"),
]

SUMMARY = [
    ("md", """
# Summary: both papers' Table 1 beside ours, and the claims scorecard

Every number below is read from the results store (the runs of the previous chapters, reused, not retrained); the
papers' figures appear only in the columns labelled *paper (reference)*.
"""),
    ("code", IMPORTS),
    PARAMS,
    ("code", DERIVED + "zhu_arms = ['grpo-base', 'grpo-instruct', 'grpo-sa', 'grpo-sa-ecr', 'grpo-sa-cwr', 'dr-grpo', 'sft', 'lora', 'dpo']\n"
             "ood_arms = ['ood-grpo', 'ood-sft']\n"),
    ("code", "runs = study.run_arms(profile, zhu_arms + ood_arms, seeds, overrides, force)\n"
             "start = study.zero_shot(profile, 'instruct', 'zhu', overrides)\n"
             "ood_start = study.zero_shot(profile, 'instruct', 'ood', overrides)\n"
             "base_start = study.zero_shot(profile, 'base', 'zhu', overrides)\n"
             "baseline = study.baseline(profile, 'instruct', 'zhu', overrides)\n"
             "ood_baseline = study.baseline(profile, 'instruct', 'ood', overrides)"),
    ("md", "## Zhu et al., Table 1"),
    ("code", "plots.metrics_table({'zero-shot': [baseline], 'start': [start], **{a: runs[a] for a in zhu_arms}},\n"
             "                    study.LABELS, reference=ZHU_TABLE1,\n"
             "                    reference_rows=study.ZHU_ROWS)"),
    ("md", "## MedVLM-R1, Table 1"),
    ("code", "modalities = list(P.data.test_modalities)\n"
             "ood_test = study.test_split(profile, 'ood', overrides)\n"
             "plots.ood_table({'zero-shot': [ood_baseline], 'start': [ood_start], **{a: runs[a] for a in ood_arms}}, modalities,\n"
             "                study.LABELS, reference=MEDVLM_R1_TABLE1,\n"
             "                reference_rows={'zero-shot': 'Qwen2-VL-2B', 'ood-grpo': 'GRPO-2B', 'ood-sft': 'SFT-2B'},\n"
             "                chance=random_guess_accuracy(ood_test))"),
    ("md", "## Calibration\nCan this profile show the papers' effects at all? Each check is computed from the runs "
           "with a 95% interval (Methods); a check not met means the experiments resting on it cannot show their "
           "effect here, whatever their verdict below."),
    ("code", "from medrl_lib.calibration import calibration_rows, calibration_summary, calibration_table\n"
             "cal = calibration_rows(ood_start=ood_start, instruct_start=start, base_start=base_start,\n"
             "                       grpo_instruct=runs['grpo-instruct'], grpo_base=runs['grpo-base'],\n"
             "                       mri_trained={study.LABELS[a]: runs[a] for a in ood_arms},\n"
             "                       chance=random_guess_accuracy(ood_test), in_domain=P.data.train_modalities,\n"
             "                       n_boot=P.eval.n_boot, seed=P.eval.bootstrap_seed)\n"
             "display(calibration_table(cal))\n"
             "display(Markdown(calibration_summary(cal)))"),
    ("md", "## Claims scorecard\nEach claim of the two papers, the paper's figure, ours with a 95% interval "
           "(two-level bootstrap over seeds and test items) and the verdict computed from that interval."),
    ("code", "rows = [evaluate_claim(c, runs[c.a], runs[c.b]) for c in CLAIMS]\n"
             "display(plots.claims_table(rows))\n"
             "display(Markdown(plots.claims_summary(rows)))"),
    ("md", "A claim can hold for a reason the paper did not have in mind: read each verdict with the share of "
           "well-formed answers of its arms."),
    ("code", "display(Markdown(plots.format_summary(runs, study.LABELS)))"),
    ("md", "## Reproducibility\nWhat made these runs, read from the results store."),
    ("code", "plots.reproducibility_table(P)"),
]

PROTOCOL = [
    ("md", """
# Protocol: what each arm trains and is scored with, beside each paper

For every arm of the study (and the zero-shot rows), the settings that decide its numbers as this profile resolves
them, in the papers' units (prompts and completions per optimizer step, epochs), beside the paper's value and its
source: Zhu et al. 2025 for E1-E5, Pan et al. 2025 (MedVLM-R1) for E6. *same / differs* is computed; each difference
gives its reason: a documented choice (Methods) or, on the scale profiles, the profile's scale choice. On the paper
profile no difference may be undocumented (a test checks it). `medrl protocol --profile P [--json]` prints the same.
"""),
    ("code", IMPORTS + "import pandas as pd\nfrom medrl_lib.protocol import arms_frame, differences_summary, protocol_table\n"),
    PARAMS,
    ("code", DERIVED),
    ("md", "## Every arm\nOne row per arm: what it trains on, how much, and how it is scored."),
    ("code", "arms_frame(profile, overrides)"),
    ("md", "## Beside the papers\nOnly the settings that differ from the paper are listed here; the full table follows."),
    ("code", "table = protocol_table(profile, overrides)\n"
             "display(Markdown(differences_summary(table)))\n"
             "with pd.option_context('display.max_rows', None, 'display.max_colwidth', 90):\n"
             "    display(table[table.same == 'differs'].drop(columns='same').set_index(['experiment', 'arm', 'setting']))"),
    ("code", "with pd.option_context('display.max_rows', None, 'display.max_colwidth', 60):\n"
             "    display(table.set_index(['experiment', 'arm', 'setting']))"),
]

NOTEBOOKS = {
    "00_data": DATA, "08_protocol": PROTOCOL, "01_initialization": E1, "02_semantic_alignment": E2, "03_length_rewards": E3,
    "04_dr_grpo": E4, "05_sft_vs_rl": E5, "06_ood_generalization": OOD, "07_summary": SUMMARY,
}

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "notebooks"
    out.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nbformat.write(notebook(cells), out / f"{name}.ipynb")
        print("wrote", out / f"{name}.ipynb")
