"""Layer 0, common: what every layer uses and that knows nothing of RL, profiles or the study: argument checks
(:mod:`.checks`), the lazy model loader of the model-backed scorers (:mod:`.lazy`), strict dataclasses from YAML
(:mod:`.strict`), the console and run logs (:mod:`.console`), locks on shared folders (:mod:`.locks`) and atomic
files with the hash that keys a run (:mod:`.files`). Imports no other part of ``medrl_lib``."""
