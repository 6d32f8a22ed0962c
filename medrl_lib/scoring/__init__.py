"""Layer 5, scoring and statistics: the metrics of a run's completions (:mod:`.metrics`: accuracy, similarity,
perplexity, thinking scores), intervals and tests (:mod:`.stats`), the papers' claims and their verdicts
(:mod:`.claims`), calibration (:mod:`.calibration`) and interval coverage (:mod:`.coverage`). Imports the layers
below: common, the RL core, config, data and models."""
