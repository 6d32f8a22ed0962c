"""Write notebooks/*.ipynb from the cell lists below (stored without outputs). Run: python tools/nbgen.py.

Notebooks are the product; this file is only a convenient way to keep their source reviewable as Python.
"""

from pathlib import Path

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


OOD = [
    ("md", """
# E6 Out-of-domain generalisation: GRPO trained on MRI, tested on MRI, CT and X-ray

Pan et al. (MedVLM-R1) train Qwen2-VL-2B with GRPO on 600 MRI items and test on MRI (in domain), CT and X-ray
(out of domain). This chapter runs the same experiment at the scale of the chosen profile: the policy starts
from the profile's start model, trains with GRPO (format and accuracy rewards, STUDY.md 5) on MRI items only,
and is scored with MedVLM-R1's strict rule (only the correct letter inside `<answer>` counts). The paper's
figures appear only in the columns labelled *paper (reference)*.
"""),
    ("code", """
%matplotlib inline
from IPython.display import Markdown, display

from medrl_lib.config import load_profile
from medrl_lib.evaluate import random_guess_accuracy
from medrl_lib.experiments import grpo_arm, make_splits, zero_shot_arm
from medrl_lib.plots import accuracy_table, ood_summary, plot_rewards
from medrl_lib.reference import MEDVLM_R1_TABLE1
"""),
    ("code", """
profile = "cpu"   # smoke | cpu | paper
seeds = None      # seeds to run; None: the profile's seeds
overrides = {}    # dotted-key settings, e.g. {"grpo.max_steps": 50}
force = False     # retrain even when the results store holds this run
""", "parameters"),
    ("code", """
P = load_profile(profile, overrides)
seeds = list(seeds or P.seeds)
experiment = "06_ood_generalization"
modalities = list(P.data.test_modalities)
train, test = make_splits(P)
print(f"profile {P.name}: {len(train)} training items ({', '.join(P.data.train_modalities)}), "
      f"{len(test)} test items ({', '.join(modalities)}), seeds {seeds}, start model: {P.model.init}")
"""),
    ("md", "## Runs\nEach run is loaded from the results store when it exists for this exact configuration."),
    ("code", """
start = zero_shot_arm(P, experiment, f"{P.model.init}-zero-shot", which=P.model.init, force=force)
grpo = {seed: grpo_arm(P, experiment, "grpo", seed, force=force) for seed in seeds}
for seed, run in grpo.items():
    print(f"seed {seed}: {'loaded from' if run.reused else 'trained into'} {run.path} "
          f"(train {run.metrics['time/train_s']:.0f} s, eval {run.metrics['time/eval_s']:.0f} s)")
"""),
    ("md", "## Training rewards\nMean reward of the sampled completions at each GRPO step (rolling mean), per component."),
    ("code", """
plot_rewards({f"GRPO seed {seed}": run for seed, run in grpo.items()})
"""),
    ("md", "## Accuracy per modality\nAccuracy in % on held-out items; MRI is in domain, CT and X-ray are out of domain."),
    ("code", """
runs = {f"{P.model.init} start (zero-shot)": start, **{f"GRPO seed {seed}": run for seed, run in grpo.items()}}
reference_rows = {"random guess": "random guess", f"{P.model.init} start (zero-shot)": "Qwen2-VL-2B",
                  **{f"GRPO seed {seed}": "GRPO-2B" for seed in grpo}}
table = accuracy_table(runs, modalities, reference=MEDVLM_R1_TABLE1, reference_rows=reference_rows,
                       extra_rows={"random guess": random_guess_accuracy(test)})
table
"""),
    ("code", """
display(Markdown(ood_summary(start, list(grpo.values()), modalities, P.data.train_modalities)))
"""),
]

if __name__ == "__main__":
    out = Path(__file__).resolve().parent.parent / "notebooks"
    out.mkdir(exist_ok=True)
    for name, cells in {"06_ood_generalization": OOD}.items():
        nbformat.write(notebook(cells), out / f"{name}.ipynb")
        print("wrote", out / f"{name}.ipynb")
