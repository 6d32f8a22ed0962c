"""Layer 1, the RL core: the small library a researcher imports into their own TRL training. The parsing of
completions (:mod:`.completions`), the prompts (:mod:`.prompts`), the rewards (:mod:`.rewards`: format, accuracy,
semantic alignment, ECR, CWR) with the judges they ask (:mod:`.judges`, :mod:`.oracle`, :mod:`.thinking`), and the
GRPO loss on TRL's trainer (:mod:`.grpo`, with the vLLM prompt inputs of :mod:`.vllm_inputs`).

Knows no profile, results store or study: imports :mod:`medrl_lib.common` only (and TRL, Transformers, torch).

>>> from medrl_lib.rl.rewards import accuracy_reward, format_reward
>>> format_reward(["<think>a lesion</think><answer>B</answer>"])
[1.0]
"""
