"""Layer 2, the profiles: every setting of a run (:mod:`.settings`) and how a profile file is loaded, overridden and
validated (:mod:`.profiles`). Imports :mod:`medrl_lib.common` only; the RL core below knows no profile, everything
above reads one.

The names here are the layer's public interface (``from medrl_lib.config import load_profile, Profile``).
"""

from medrl_lib.common.strict import ConfigError
from medrl_lib.config.profiles import (CONFIG_DIR, is_local, load_profile, profile_data, profile_path, repo_root,
                                       resolve_path, validate)
from medrl_lib.config.settings import (CHOICES, QUESTION_TYPES, BaseStandinSettings, DataSettings, EvalSettings,
                                       GRPOSettings, InstructStandinSettings, ModelSettings, PanelSettings, Profile,
                                       SFTSettings, StandinSettings, TinyModelConfig)

__all__ = ["CHOICES", "CONFIG_DIR", "QUESTION_TYPES", "BaseStandinSettings", "ConfigError", "DataSettings",
           "EvalSettings", "GRPOSettings", "InstructStandinSettings", "ModelSettings", "PanelSettings", "Profile",
           "SFTSettings", "StandinSettings", "TinyModelConfig", "is_local", "load_profile", "profile_data",
           "profile_path", "repo_root", "resolve_path", "validate"]
