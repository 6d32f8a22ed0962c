"""medrl_lib: reinforcement-learning fine-tuning for medical VQA, as studied by Zhu et al. 2025 and Pan et al. 2025."""

__version__ = "0.1.0"

import warnings as _warnings

# tqdm.auto (used by datasets and transformers) warns in notebooks without ipywidgets; the bars are not needed there.
_warnings.filterwarnings("ignore", message="IProgress not found")
