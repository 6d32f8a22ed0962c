"""Layer 6, training and generation: the trainers of every method (:mod:`.train`: GRPO, SFT, LoRA, DPO) with the
reward functions of a profile (:mod:`.reward_funcs`), the multi-process launch (:mod:`.launch`), the generation
engines (:mod:`.engines`, :mod:`.generation`), evaluation (:mod:`.evaluate`), training budgets (:mod:`.budget`) and
the tiny profiles' start models (:mod:`.standins`). Imports the layers below, never the study above."""
