"""The lazy model loader behind every model-backed scorer: the LLM judge (:mod:`medrl_lib.rl.judges`), the LLM
thinking scorer (:mod:`medrl_lib.rl.thinking`), similarity and perplexity (:mod:`medrl_lib.scoring.metrics`).

A scorer is cheap to build and to pickle (TRL and data-loader workers may pickle rewards); its model and tokenizer
load on its first call, from a local folder or a hub id, on its ``device`` (default CUDA when available, else CPU),
and pickling drops them (an unpickled scorer reloads on its next call). Heavy dependencies (torch, transformers) are
imported only when a model loads.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["LazyModel"]


class LazyModel:
    """Base of the model-backed scorers: lazy loading, device choice, pickling and unloading without the model.

    A subclass sets ``device`` (None: CUDA if available, else CPU) and implements ``_load``, which fills ``_model``
    and ``_tokenizer`` (and any other attribute named in ``_UNLOADED``). ``_UNLOADED`` maps each attribute that
    holds loaded state to its value before loading: pickling and :meth:`unload` reset them to it.

    >>> class Toy(LazyModel):
    ...     device = None
    ...     def _load(self):
    ...         self._model, self._tokenizer = "weights", "tokenizer"
    >>> toy = Toy(); toy._ensure_loaded(); toy._model
    'weights'
    >>> toy.__getstate__()["_model"], toy._model  # what pickling keeps, and the loaded model
    (None, 'weights')
    >>> toy.unload(); toy._model is None
    True
    """

    _UNLOADED: ClassVar[dict[str, Any]] = {"_model": None, "_tokenizer": None}
    device: str | None
    _model: Any = None
    _tokenizer: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(self._UNLOADED)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _target_device(self) -> str:
        """``device``, or CUDA when available, else CPU."""
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _ensure_loaded(self) -> None:
        if self._model is None:
            self._load()

    def unload(self) -> None:
        """Drop the loaded model and tokenizer (freeing their memory, on the GPU too); the next call loads
        them again."""
        for name, value in self._UNLOADED.items():
            setattr(self, name, value)

    def _load(self) -> None:
        raise NotImplementedError
