"""The reward functions of a profile: ``grpo.reward_weights`` names them (:data:`medrl_lib.rl.rewards.REWARD_NAMES`),
this builds each from the profile's settings, in that order.

>>> from medrl_lib.config import load_profile
>>> [f.__name__ for f in build_reward_funcs(load_profile("smoke"))]
['format_reward', 'accuracy_reward']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medrl_lib.config import Profile
from medrl_lib.models.sources import resolve_source
from medrl_lib.rl.judges import LLMJudge
from medrl_lib.rl.oracle import OracleJudge
from medrl_lib.rl.rewards import (REWARD_NAMES, AccuracyReward, CorrectnessWeightedLengthReward, ExtendedChainReward,
                      SemanticAlignmentReward, format_reward)


def build_reward_funcs(profile: Profile, tokenizer: Any = None) -> list[Callable]:
    """The reward functions named in ``grpo.reward_weights``, in that order, configured from the profile.

    The length rewards carry weight 1 here: their weight in the total is ``grpo.reward_weights`` (TRL's
    ``reward_weights``), so that each component is logged unweighted as ``rewards/<name>/mean``.
    """
    g = profile.grpo
    unknown = [n for n in g.reward_weights if n not in REWARD_NAMES]
    if unknown:
        raise ValueError(f"grpo.reward_weights names unknown reward {unknown[0]!r}; known: {list(REWARD_NAMES)}")
    funcs: list[Callable] = []
    for name in g.reward_weights:
        if name == "format_reward":
            funcs.append(format_reward)
        elif name == "accuracy_reward":
            funcs.append(AccuracyReward(require_format=g.accuracy_requires_format))
        elif name == "semantic_reward":
            judge = OracleJudge() if g.semantic_judge == "oracle" else LLMJudge(resolve_source(g.semantic_judge))
            funcs.append(SemanticAlignmentReward(judge))
        elif name == "ecr_reward":
            funcs.append(ExtendedChainReward(tokenizer, target_tokens=g.length_target_tokens, weight=1.0))
        else:
            funcs.append(CorrectnessWeightedLengthReward(tokenizer, target_tokens=g.length_target_tokens, weight=1.0,
                                                         require_format=g.accuracy_requires_format))
    return funcs
