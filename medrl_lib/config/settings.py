"""The settings of a profile: dataclasses with a docstring per field, and the choices of each enumerated setting.

Loading, overrides and validation are :mod:`medrl_lib.config.profiles`.

>>> cfg = TinyModelConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, vision_depth=1)
>>> cfg.head_dim, sum(cfg.mrope_section) * 2 == cfg.head_dim
(16, True)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TinyModelConfig:
    """Architecture of the tiny Qwen2-VL (text side and vision side) and its tokenizer."""

    vocab_size: int = 1024
    """target size of the locally trained byte-level BPE vocabulary (special tokens included)"""
    hidden_size: int = 128
    """width of the language model"""
    intermediate_size: int = 384
    """MLP width of the language model"""
    num_hidden_layers: int = 4
    """decoder layers of the language model"""
    num_attention_heads: int = 4
    """attention heads of the language model"""
    num_key_value_heads: int = 2
    """key/value heads (grouped-query attention, as Qwen2-VL-2B)"""
    max_position_embeddings: int = 4096
    """longest sequence the rotary embedding is set up for"""
    vision_depth: int = 2
    """transformer blocks of the vision tower"""
    vision_embed_dim: int = 96
    """width of the vision tower"""
    vision_num_heads: int = 4
    """attention heads of the vision tower"""
    seed: int = 0
    """seed of the weight initialisation"""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def mrope_section(self) -> list[int]:
        """M-RoPE split of head_dim/2 into (temporal, height, width), in Qwen2-VL-2B's proportions 16:24:24."""
        half = self.head_dim // 2
        t = half // 4
        h = (half - t) // 2
        return [t, h, half - t - h]


@dataclass
class DataSettings:
    """Which items train and test a run."""

    source: str = "synthetic"
    """'synthetic' (generated here), 'pmc-vqa' or 'huatuo-eval' (paper profile)"""
    train_modalities: tuple[str, ...] = ("MRI",)
    """modalities of the training items (MedVLM-R1 trains on MRI only)"""
    train_size: int = 600
    """number of training items"""
    test_modalities: tuple[str, ...] = ("MRI", "CT", "X-ray")
    """modalities of the test items (MRI in domain, CT and X-ray out of domain)"""
    test_per_modality: int = 300
    """test items per modality"""
    image_size: int = 56
    """side of the synthetic images in pixels (multiple of 28)"""
    min_options: int = 2
    """fewest options of a synthetic item"""
    max_options: int = 6
    """most options of a synthetic item"""
    option_order: str = "shuffled"
    """order of a synthetic item's options: 'shuffled' or 'canonical' (pool order; see data.synthetic)"""
    seed: int = 0
    """seed of data generation and of the train/test draw"""
    test_size: int = 7000
    """PMC-VQA test items drawn beside the ``train_size`` training items (Zhu: 7K)"""
    pmc_vqa_path: str = ""
    """local folder, archive or CSV of PMC-VQA (empty: the hub dataset xmcmic/PMC-VQA)"""
    huatuo_path: str = ""
    """local folder or JSON file of the HuatuoGPT-Vision evaluation data (empty: the hub dataset
    FreedomIntelligence/Medical_Multimodal_Evaluation_Data)"""


@dataclass
class ModelSettings:
    """Which policy a run starts from."""

    kind: str = "tiny"
    """'tiny' (built here from a config) or 'hub' (a Hugging Face id or local folder)"""
    init: str = "instruct"
    """which start GRPO and SFT use: 'base' or 'instruct'"""
    base: str = "Qwen/Qwen2-VL-2B"
    """hub id of the base model (kind='hub'); empty: the family publishes none (Qwen3-VL), and the arms that start
    from it (E1's base + GRPO, the base start's zero-shot row) are not applicable: listed as such and skipped"""
    instruct: str = "Qwen/Qwen2-VL-2B-Instruct"
    """hub id of the instruction-tuned model (kind='hub')"""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """architecture of the tiny model (kind='tiny')"""
    max_pixels: int = 401408
    """largest image (in pixels) the hub processor keeps; larger images are resized (Zhu: 401408)"""
    dtype: str = "float32"
    """weights dtype: float32 on CPU, bfloat16 on GPUs"""
    attn_implementation: str = "sdpa"
    """attention kernel: 'sdpa', 'eager' or 'flash_attention_2' (falls back to sdpa when not installed)"""


@dataclass
class BaseStandinSettings:
    """The tiny 'base' stand-in of Qwen2-VL-2B: the random model pretrained to write the report of an image."""

    items: int = 2000
    """synthetic images (all modalities, disjoint from every split) whose reports it is pretrained on"""
    steps: int = 0
    """optimizer steps of report pretraining (0: the randomly initialised model)"""
    lr: float = 2e-3
    """learning rate of report pretraining"""
    text_items: int = 0
    """unrelated text documents mixed into its pretraining (medrl_lib.data.general_text)"""
    text_tagged_fraction: float = 0.0
    """share of those documents laid out as tagged question/answer text (the rest: prose)"""


@dataclass
class InstructStandinSettings:
    """The tiny 'instruct' stand-in of Qwen2-VL-2B-Instruct: the base stand-in after supervised tuning."""

    items: int = 800
    """synthetic items (disjoint from train and test) it is tuned on"""
    steps: int = 300
    """optimizer steps of its supervised tuning"""
    lr: float = 2e-3
    """learning rate of its supervised tuning"""
    target: str = "reasoning"
    """'reasoning' targets (<think>report</think><answer>X</answer>) or 'plain' (the letter)"""
    plain_types: tuple[str, ...] = ()
    """question types whose items may answer the reasoning prompt with the bare letter, ignoring the format (as a
    real instruct model often does)"""
    plain_fraction: float = 0.0
    """fraction of the items of ``plain_types`` answered with the bare letter"""
    plain_prompt_fraction: float = 0.0
    """fraction of its items asked with the plain prompt ("provide the correct single-letter choice") and answered
    with the bare letter, as a real instruct model answers that prompt (0: never asked it)"""


@dataclass
class StandinSettings:
    """How the tiny profiles build their start models (``model.kind: tiny``; :mod:`medrl_lib.training.standins`)."""

    base: BaseStandinSettings = field(default_factory=BaseStandinSettings)
    """the 'base' stand-in (report pretraining)"""
    instruct: InstructStandinSettings = field(default_factory=InstructStandinSettings)
    """the 'instruct' stand-in (supervised tuning of the base)"""
    per_seed: bool = False
    """each run seed starts from its own base and instruct stand-ins (built with that seed, cached); False: one draw
    shared by every seed"""


@dataclass
class GRPOSettings:
    """GRPO settings; every paper setting is set here explicitly (TRL's defaults drift between releases)."""

    learning_rate: float = 1e-6
    """AdamW learning rate (Zhu omits it; 1e-6 as Zhou et al. 2025: an assumption)"""
    max_steps: int = 1500
    """optimizer steps (Zhu: 1500 = 2 epochs)"""
    prompts_per_device: int = 1
    """prompts per device per micro-step, each sampled ``num_generations`` times: the unit of the papers' lineage
    (R1-V, open-r1-multimodal, MedVLM-R1's trainer); TRL's ``per_device_train_batch_size`` (completions) is
    derived from it (Zhu: 1)"""
    gradient_accumulation_steps: int = 2
    """micro-steps per optimizer step (Zhu: 2)"""
    num_generations: int = 8
    """G, completions sampled per prompt (Zhu: 8; MedVLM-R1: 6)"""
    temperature: float = 1.0
    """sampling temperature of the rollouts (Zhu: 1.0)"""
    top_p: float = 1.0
    """nucleus sampling of the rollouts (1.0 = off)"""
    max_completion_length: int = 700
    """longest completion in tokens (Zhu: 700)"""
    max_prompt_length: int = 1024
    """longest prompt in tokens, image tokens included (Zhu: 1024); longer prompts are rejected, never truncated"""
    beta: float = 0.04
    """KL coefficient (Zhu: 0.04)"""
    epsilon: float = 0.2
    """clip range of the ratio"""
    loss_type: str = "grpo"
    """'grpo' (token mean per sequence) or 'dr_grpo' (token sum / (batch x max_completion_length))"""
    scale_rewards: str = "group"
    """'group' (divide advantages by the group std) or 'none' (Dr.GRPO)"""
    num_iterations: int = 1
    """policy updates per generation batch (mu of GRPO)"""
    lr_scheduler_type: str = "constant"
    """learning-rate schedule (neither paper gives one: a choice)"""
    warmup_steps: int = 0
    """learning-rate warm-up steps (neither paper gives them: a choice)"""
    weight_decay: float = 0.0
    """AdamW weight decay (neither paper gives it: a choice)"""
    max_grad_norm: float = 1.0
    """gradient clipping norm (neither paper gives it: a choice, as TRL's and R1-V's default)"""
    accuracy_requires_format: bool = True
    """the accuracy reward pays only well-formed completions (MedVLM-R1's text: correctness is evaluated "after
    verifying the correct format"; its released code pays accuracy without it: false)"""
    reward_weights: dict[str, float] = field(default_factory=lambda: {"format_reward": 1.0, "accuracy_reward": 1.0})
    """reward name -> weight in the total reward (format_reward, accuracy_reward, semantic_reward, ecr_reward, cwr_reward)"""
    semantic_judge: str = "oracle"
    """judge of semantic_reward: 'oracle' (synthetic facts) or a causal-LM id/path (Zhu: microsoft/biogpt, BioMistral/BioMistral-7B)"""
    length_target_tokens: int = 200
    """ECR/CWR: reasoning length (tokens of the policy's tokenizer) at which the length reward saturates"""
    logging_steps: int = 1
    """log every N steps (Zhu: 1)"""
    save_steps: int = 100
    """checkpoint every N steps (Zhu: 100)"""
    save_total_limit: int = 1
    """checkpoints kept on disk (older ones are deleted as new ones land; 0: keep all)"""
    save_only_model: bool = False
    """checkpoints hold the weights only (no optimizer, scheduler, RNG): a fifth of the disk, but a run
    interrupted then cannot resume and starts again"""
    keep_final_model: bool = False
    """keep the trained model in the run folder (``model/``) after evaluation (else only metrics and records)"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (Zhu: off)"""
    bf16: bool = False
    """bfloat16 mixed precision (Zhu: on, GPUs only)"""
    rollouts: str = "hf"
    """who samples the completions: 'hf' (the policy's own ``generate``), 'vllm' (TRL's vLLM engine; needs the
    ``vllm`` extra and a GPU) or 'auto' (vLLM when both are present, else 'hf'); the papers sampled with 'hf'"""
    vllm_mode: str = "colocate"
    """TRL's vLLM mode: 'colocate' (the engine shares each training GPU) or 'server' (``trl vllm-serve``)"""
    vllm_gpu_memory_utilization: float = 0.3
    """share of each GPU's memory the colocated engine reserves (weights and KV cache)"""
    vllm_max_model_length: int = 0
    """the engine's context (prompt + completion tokens); 0: max_prompt_length + max_completion_length"""
    vllm_importance_sampling_mode: str = "token_truncate"
    """TRL's correction for the engine's and the trainer's differing log-probabilities: the per-token ratio
    ``exp(logp_trainer - logp_engine)``, 'token_truncate' (capped at vllm_importance_sampling_clip_max) or
    'token_mask' (tokens above it dropped); it multiplies the clipped term of the loss (Methods, Losses)"""
    vllm_importance_sampling_clip_max: float = 3.0
    """cap of that ratio (TRL's default)"""
    seed: int = 0
    """seed of sampling and of the data order"""


@dataclass
class SFTSettings:
    """Supervised baselines (Zhu section 4): full SFT, LoRA and DPO, all through TRL."""

    learning_rate: float = 1e-5
    """AdamW learning rate of full SFT (neither paper gives it: an assumption)"""
    max_steps: int = 1500
    """optimizer steps of each supervised baseline (as GRPO's, for a like-for-like budget)"""
    per_device_train_batch_size: int = 2
    """items per device per step"""
    budget: str = "grpo"
    """how long the supervised baselines train: 'grpo' (they see as many items as the GRPO arm of the same
    protocol sees prompts: MedVLM-R1 trains its SFT baseline "using the same training setting"; ``max_steps`` and
    ``dpo_max_steps`` are then derived) or 'steps' (``max_steps`` and ``dpo_max_steps`` as given)"""
    target: str = "reasoning"
    """supervised target: 'reasoning' (<think>report</think><answer>X</answer>; synthetic items) or 'plain' (the letter)"""
    lora_r: int = 64
    """LoRA rank"""
    lora_alpha: int = 128
    """LoRA scaling numerator (scale = alpha / r)"""
    lora_dropout: float = 0.05
    """dropout on the LoRA branch"""
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    """language-model modules that get LoRA adapters"""
    lora_learning_rate: float = 1e-4
    """AdamW learning rate of LoRA"""
    dpo_beta: float = 0.1
    """DPO temperature beta"""
    dpo_learning_rate: float = 5e-7
    """AdamW learning rate of DPO"""
    dpo_max_steps: int = 1500
    """optimizer steps of DPO (it also runs a frozen reference model, so a scale profile may give it fewer)"""
    bf16: bool = False
    """bfloat16 mixed precision (GPUs only; the profiles set GRPO's value)"""
    seed: int = 0
    """seed of the supervised trainers (the trainer's ``seed``: data order, dropout); each run sets it to its seed"""


@dataclass
class EvalSettings:
    """How test items are answered and scored."""

    batch_size: int = 32
    """items per generate call"""
    max_new_tokens: int = 700
    """longest answer in tokens"""
    greedy: bool = True
    """greedy decoding (else sampling at temperature)"""
    temperature: float = 1.0
    """sampling temperature when greedy is off"""
    prompt_mode: str = "reasoning"
    """'reasoning' (<think>/<answer>, strict scoring) or 'plain' (single letter, for zero-shot baselines)"""
    similarity: str = "minilm"
    """reasoning vs answer similarity: 'minilm' (offline all-MiniLM-L6-v2), a cross-encoder id (Zhu: cross-encoder/stsb-roberta-base), or 'none'"""
    perplexity: str = "reference-lm"
    """perplexity of the reasoning under: 'reference-lm' (the package's synthetic-report LM), a causal-LM id (Zhu: microsoft/biogpt), or 'none'"""
    thinking: str = "oracle"
    """1-10 thinking reward: 'oracle' (synthetic facts), a chat LM id (Zhu: mistralai/Mistral-7B-Instruct-v0.2), or 'none'"""
    n_boot: int = 1000
    """bootstrap resamples of each 95% interval"""
    bootstrap_seed: int = 0
    """seed of the bootstrap"""
    accuracy_requires_format: bool = True
    """with the reasoning prompt an item counts as correct only when the completion is well-formed (format
    reward 1) and its answer block holds the gold letter (MedVLM-R1 section 4: "any deviation from this format,
    even if semantically correct, results in a zero score")"""
    letter_rule: str = "strict"
    """how the letter is read: 'strict' (MedVLM-R1's evaluation: the regex <answer>\s*([A-Z])\s*</answer> with the
    reasoning prompt, exact match of the whole output with the plain prompt) or 'lenient' (also "(B)", "B." and a
    letter inside text)"""
    device: str = "auto"
    """where the policy answers the test items: 'auto' (the first GPU when there is one, else the CPU), 'cpu'
    or a torch device such as 'cuda:0'"""
    engine: str = "hf"
    """who answers the test items: 'hf' (``generate`` in batches on ``device``), 'sharded' (``generate`` in one
    process per GPU, each on its share of the items), 'vllm' (vLLM offline generation on one GPU; needs the
    ``vllm`` extra) or 'auto' (vLLM when installed and a GPU is present, else sharded over every GPU, else 'hf')"""
    vllm_gpu_memory_utilization: float = 0.85
    """share of the GPU's memory vLLM takes for evaluation (the policy has left it; the metric models load after)"""


@dataclass
class PanelSettings:
    """The transfer panel: benchmarks beyond the home test on which every arm is also scored (the Transfer chapter).
    Not part of a run's key: adding or changing the panel scores the stored runs' kept models, never retrains."""

    benchmarks: tuple[str, ...] = ()
    """benchmark names (the ``benchmark`` column: HuatuoGPT-Vision's ``dataset`` field, or the synthetic panel's
    names in :data:`medrl_lib.data.panel.SYNTHETIC_BENCHMARKS`); empty: no panel"""
    source: str = "synthetic"
    """'synthetic' (the package's panel, other question styles and image statistics than the training items) or
    'huatuo-eval' (the HuatuoGPT-Vision evaluation data at ``data.huatuo_path``, every benchmark of the file)"""
    per_benchmark: int = 100
    """the most items scored per benchmark, drawn with ``seed`` (a benchmark with fewer is scored whole)"""
    seed: int = 0
    """seed of the draw of each benchmark's items (and of the synthetic panel's generation)"""


@dataclass
class Profile:
    """A whole run's settings: data, model, GRPO, evaluation, and where things are kept."""

    name: str = "cpu"
    """profile name (smoke, cpu, paper)"""
    data: DataSettings = field(default_factory=DataSettings)
    """which items"""
    model: ModelSettings = field(default_factory=ModelSettings)
    """which policy"""
    standins: StandinSettings = field(default_factory=StandinSettings)
    """how the tiny profiles' start models are built"""
    grpo: GRPOSettings = field(default_factory=GRPOSettings)
    """GRPO settings"""
    sft: SFTSettings = field(default_factory=SFTSettings)
    """supervised baselines (full SFT, LoRA, DPO)"""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """evaluation settings"""
    seeds: tuple[int, ...] = (0,)
    """seeds each arm runs"""
    num_processes: int = 1
    """training processes (>1 launches accelerate + DeepSpeed ZeRO-2 in a subprocess)"""
    medvlm_r1: dict[str, Any] = field(default_factory=dict)
    """E6's protocol (Pan et al. 2025, MedVLM-R1): dotted-key settings applied over the others for the
    out-of-domain experiment, so that E1-E5 run Zhu's protocol and E6 MedVLM-R1's (see the book's Protocol page)"""
    panel: PanelSettings = field(default_factory=PanelSettings)
    """the transfer panel every arm is also scored on (not part of any run's key)"""
    length_rewards: dict[str, Any] = field(default_factory=dict)
    """E3's scale settings (Zhu section 3.3): dotted-key settings applied over the others for the length-reward arms
    and their +SA baseline, so that the reasoning has room to grow (completion cap above the length target, target
    above the start model's length) where the profile's other arms keep a short cap; empty: E3 runs as E1-E5"""
    cache_dir: str = ".cache/medrl"
    """built models and tokenizers (relative to the repository root unless absolute)"""
    results_dir: str = "results"
    """run folders (relative to the repository root unless absolute)"""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The values an enumerated setting accepts (dotted key -> choices); :func:`medrl_lib.config.profiles.validate`
#: rejects any other. Where another module defines the choices, a test checks that both agree.
CHOICES = {
    "data.source": ("synthetic", "pmc-vqa", "huatuo-eval"),
    "model.kind": ("tiny", "hub"),
    "model.init": ("base", "instruct"),
    "standins.instruct.target": ("reasoning", "plain"),
    "data.option_order": ("shuffled", "canonical"),  # medrl_lib.data.synthetic.OPTION_ORDERS
    "model.dtype": ("float32", "bfloat16", "float16"),
    "model.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
    "grpo.loss_type": ("grpo", "dr_grpo"),
    "grpo.scale_rewards": ("group", "none"),
    "grpo.lr_scheduler_type": ("constant", "linear", "cosine", "constant_with_warmup"),
    "eval.prompt_mode": ("reasoning", "plain"),
    "sft.target": ("reasoning", "plain"),
    "sft.budget": ("grpo", "steps"),
    "eval.letter_rule": ("strict", "lenient"),  # medrl_lib.training.evaluate.LETTER_RULES
    "grpo.rollouts": ("hf", "vllm", "auto"),
    "grpo.vllm_mode": ("colocate", "server"),
    "grpo.vllm_importance_sampling_mode": ("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"),
    "eval.engine": ("hf", "sharded", "vllm", "auto"),
    "panel.source": ("synthetic", "huatuo-eval"),
}

#: The question types of the synthetic items (:data:`medrl_lib.data.synthetic.QUESTIONS`), which
#: ``standins.instruct.plain_types`` may name.
QUESTION_TYPES = ("location", "count", "side", "modality", "size")
