"""medrl_lib: reinforcement-learning fine-tuning for medical VQA, as studied by Zhu et al. 2025 and Pan et al. 2025."""

__version__ = "0.1.0"
