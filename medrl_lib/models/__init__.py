"""Layer 4, models: loading Qwen-VL checkpoints of each family and the tiny offline Qwen2-VL (:mod:`.loading`), the
hub-layout stand-ins of the rehearsal (:mod:`.hub_standins`, :mod:`.family_standins`, :mod:`.hub_files`), the cpu
profile's reference LM (:mod:`.reference_lm`), and model ids resolved to local parts built on first use
(:mod:`.sources`). Imports the layers below: common, the RL core, config and data."""
