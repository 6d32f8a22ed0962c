"""Profiles load into dataclasses; bad files and overrides fail naming the file and key."""

import pytest

from medrl_lib.config import ConfigError, GRPOSettings, load_profile


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper"])
def test_shipped_profiles_load(name):
    p = load_profile(name)
    assert p.name == name
    assert p.grpo.loss_type in ("grpo", "dr_grpo")


def test_paper_profile_has_the_papers_settings():
    g = load_profile("paper").grpo
    # Zhu Appendix A: every one set explicitly in configs/paper.yaml
    assert (g.num_generations, g.temperature, g.max_completion_length, g.max_prompt_length) == (8, 1.0, 700, 1024)
    assert (g.beta, g.epsilon, g.prompts_per_device, g.gradient_accumulation_steps) == (0.04, 0.2, 1, 2)
    assert (g.max_steps, g.save_steps, g.logging_steps, g.learning_rate) == (1500, 100, 1, 1e-6)
    assert g.bf16 and g.gradient_checkpointing  # Zhu: off; on for the memory plan (same gradients, Methods)
    assert g.semantic_judge == "microsoft/biogpt"  # Zhu 3.2's judge; the oracle would fail on real data
    e = load_profile("paper").eval  # Zhu Appendix B's metric models
    assert (e.similarity, e.perplexity) == ("cross-encoder/stsb-roberta-base", "microsoft/biogpt")


def test_every_field_has_a_docstring():
    import ast
    import inspect

    import medrl_lib.config.settings as cfg

    tree = ast.parse(inspect.getsource(cfg))
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert {"Profile", "GRPOSettings", "TinyModelConfig"} <= {c.name for c in classes}  # the settings are read at all
    for node in classes:
        if node.name.endswith(("Settings", "Profile", "Config")):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                        f"{node.name}.{stmt.target.id} has no docstring"


@pytest.mark.parametrize("text, key", [
    pytest.param("grpo:\n  bogus: 1\n", "grpo.bogus", id="unknown-nested-key"),  # typo in a section
    pytest.param("nonsense: 1\n", "nonsense", id="unknown-top-key"),  # typo at the top level
    pytest.param("grpo:\n  beta: high\n", "grpo.beta", id="wrong-type"),  # a string where a number belongs
    pytest.param("grpo:\n  max_steps: 1.5\n", "grpo.max_steps", id="float-for-int"),  # steps must be whole
    pytest.param("grpo:\n  loss_type: ppo\n", "grpo.loss_type", id="bad-choice"),  # not a supported loss
    pytest.param("grpo:\n  num_generations: 1\n", "grpo.num_generations", id="group-of-one"),  # no advantage
    pytest.param("data:\n  image_size: 50\n", "data.image_size", id="bad-image-size"),  # not a multiple of 28
    pytest.param("eval:\n  batch_size: 0\n", "eval.batch_size", id="non-positive"),  # must be positive
    pytest.param("data:\n  option_order: sorted\n", "data.option_order", id="bad-option-order"),  # unknown order
    pytest.param("standins:\n  instruct:\n    plain_fraction: 1.5\n", "standins.instruct.plain_fraction",
                 id="fraction-over-one"),  # a fraction of items
    pytest.param("standins:\n  base:\n    text_tagged_fraction: -0.1\n", "standins.base.text_tagged_fraction",
                 id="tagged-fraction-negative"),  # a share of documents
    pytest.param("standins:\n  base:\n    text_items: -5\n", "standins.base.text_items", id="negative-text-items"),
    pytest.param("standins:\n  instruct:\n    target: essay\n", "standins.instruct.target", id="bad-nested-choice"),
    pytest.param("standins:\n  base:\n    stepz: 3\n", "standins.base.stepz", id="unknown-nested-twice"),
    pytest.param("sft:\n  dpo_max_steps: 0\n", "sft.dpo_max_steps", id="no-dpo-steps"),  # must be positive
    pytest.param("standins:\n  instruct:\n    plain_types: [colour]\n", "standins.instruct.plain_types",
                 id="unknown-question-type"),  # would silently mark nothing
])
def test_bad_profile_names_file_and_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and key in str(err.value)


def test_overrides_apply_and_are_checked():
    p = load_profile("cpu", overrides={"grpo.max_steps": 7, "data.test_per_modality": 3})
    assert p.grpo.max_steps == 7 and p.data.test_per_modality == 3
    with pytest.raises(ConfigError, match="grpo.max_stepz"):
        load_profile("cpu", overrides={"grpo.max_stepz": 7})
    with pytest.raises(ConfigError, match="grpo.max_steps"):
        load_profile("cpu", overrides={"grpo.max_steps": "many"})


def test_missing_profile_names_the_path():
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_profile("nope")


def test_defaults_are_the_papers():
    g = GRPOSettings()
    assert (g.beta, g.loss_type, g.scale_rewards, g.num_generations) == (0.04, "grpo", "group", 8)


def test_option_orders_agree_with_the_generator():
    from medrl_lib.config import CHOICES
    from medrl_lib.data.synthetic import OPTION_ORDERS

    assert CHOICES["data.option_order"] == OPTION_ORDERS  # the profile accepts exactly what the generator does


def test_question_types_agree_with_the_generator():
    from medrl_lib.config import QUESTION_TYPES
    from medrl_lib.data.synthetic import QUESTIONS

    assert QUESTION_TYPES == tuple(QUESTIONS)  # standins.instruct.plain_types accepts exactly the generator's types


@pytest.mark.parametrize("name", ["smoke", "cpu", "rehearsal", "paper"])
def test_supervised_runs_have_their_own_seed_and_precision(name):
    # each profile sets them as its GRPO settings, so that its supervised baselines train as before they had them
    p = load_profile(name)
    assert (p.sft.seed, p.sft.bf16) == (p.grpo.seed, p.grpo.bf16)
    assert load_profile(name, {"sft.bf16": not p.sft.bf16}).grpo.bf16 == p.grpo.bf16  # independent settings


def test_standins_overrides_use_dotted_nested_keys():
    p = load_profile("smoke", overrides={"standins.base.steps": 5, "standins.instruct.plain_types": ["count"]})
    assert p.standins.base.steps == 5 and p.standins.instruct.plain_types == ("count",)
    assert load_profile("cpu").standins.instruct.plain_fraction == 0.7
