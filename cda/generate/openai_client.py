"""The OpenAI-compatible backend: chat completions from a served model (``cda serve``,
``vllm serve`` or any server that speaks the OpenAI API).

Requests are sent concurrently (at most ``concurrency`` in flight) with the ``openai``
client's own timeouts and retries (exponential backoff on connection errors, 408, 409,
429 and 5xx). Before the first request the server is checked (``GET /v1/models``), so
a missing server fails the run at once with a message saying how to start one. A
request that still fails after its retries becomes a :class:`Generation` with an
error: the other prompts' outputs are kept (and cached by the Generate stage), so a
rerun resumes with only the failed ones.

Examples:
    >>> from cda.protocols import SamplingSettings
    >>> gen = OpenAICompatibleGenerator("SmolLM2-135M-Instruct.Q4_1", base_url="http://127.0.0.1:8000/v1")
    >>> gen.name  # doctest: +SKIP
    'openai:SmolLM2-135M-Instruct.Q4_1'
    >>> gen.generate(["Name a colour."], SamplingSettings(n=2, max_new_tokens=8))[0].texts  # doctest: +SKIP
    ['Blue!', 'Red.']
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from cda.generate.backends import BackendError
from cda.generate.usage import Usage, repeat_greedy, requested_samples
from cda.generate.model_files import resolve_model_name
from cda.protocols import Generation, GeneratorCapabilities, SamplingSettings

log = logging.getLogger(__name__)

# Where `cda serve` listens by default.
DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"
# The api_key a server without authentication (vLLM's default) accepts.
NO_KEY = "EMPTY"


def normalize_base_url(url: str) -> str:
    """``host:port``, ``http://host:port`` or ``.../v1`` to ``http://host:port/v1``.

    Examples:
        >>> normalize_base_url("127.0.0.1:8000")
        'http://127.0.0.1:8000/v1'
        >>> normalize_base_url("https://api.example.com/v1/")
        'https://api.example.com/v1'
    """
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/v1") else url + "/v1"


class OpenAICompatibleGenerator:
    """Chat generation through an OpenAI-compatible HTTP server.

    Args:
        model: the server's model name; ``None`` takes the first model the server lists.
            A ``.gguf`` path or model folder is matched by its short name (what
            ``cda serve`` serves it as).
        base_url: the server's API root (default ``http://127.0.0.1:8000/v1``).
        api_key_env: environment variable holding the API key (``"EMPTY"`` when unset).
        concurrency: requests in flight at once.
        timeout_s: per-request timeout.
        max_retries: retries per request (with exponential backoff) before it fails.
        health_timeout_s: how long the check before the run waits for the server.
        first_response_timeout_s: a call in which no request is answered this long fails
            whole (a hung server), and so does every later call, at once.
        extra_body: more request fields (server-specific, e.g. vLLM's ``top_k``).

    ``name`` is ``"openai:<model>"`` as configured (``load`` checks the server and picks
    the served model when none is named). A regex in the sampling settings is sent as vLLM's ``structured_outputs`` request
    field (other servers may ignore or refuse it: set ``generate.structured_answers: false``).
    """

    # prompts_per_call: requests in flight are capped by ``concurrency``, not by the call.
    capabilities = GeneratorCapabilities(structured_outputs=True, lora=True, prompts_per_call=256, server=True,
                                         regex_per_prompt=True)

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 120,
        max_retries: int = 3,
        health_timeout_s: float = 15,
        first_response_timeout_s: float = 60,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.model_spec = None if model is None else str(model)
        self.base_url = normalize_base_url(base_url or DEFAULT_BASE_URL)
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.health_timeout_s = health_timeout_s
        self.first_response_timeout_s = first_response_timeout_s
        self._unresponsive: str | None = None  # set when a call got no answer at all: later calls fail at once
        self.extra_body = dict(extra_body or {})
        self.usage = Usage()
        self._model: str | None = None
        self._checked = False

    @classmethod
    def from_config(cls, config: Any) -> "OpenAICompatibleGenerator":
        """Build from a :class:`~cda.config.Config` (``generate.backend``: base_url, api_key_env ...;
        ``generate.model``, ``generate.lora_path``)."""
        gen, settings = config.generate, config.generate.backend
        # A LoRA adapter is requested by the name the server serves it under (`cda serve --lora DIR`: its folder name).
        return cls(
            Path(gen.lora_path).name if gen.lora_path else gen.model,
            **{key: value for key, value in settings.model_dump().items() if key != "name"},
        )

    @property
    def name(self) -> str:
        """``"openai:<model>"``: the configured model's short name, or the served one once :meth:`load` picked it."""
        spec = self._model or self.model_spec
        return f"openai:{resolve_model_name(spec) if spec else 'default'}"

    @property
    def model(self) -> str:
        """The model name sent with every request (as the server lists it)."""
        if self._model is None:
            self.load()
        assert self._model is not None  # set by check_server(); internal invariant
        return self._model

    def _api_key(self) -> str:
        return os.environ.get(self.api_key_env) or NO_KEY

    @staticmethod
    def _openai() -> Any:
        try:
            import openai
        except ModuleNotFoundError as e:
            raise BackendError("The openai backend needs the openai client: pip install 'cda[openai]'") from e
        return openai

    # ------------------------------------------------------------------ health check
    def load(self) -> None:
        """Check the server once (see :meth:`check_server`)."""
        if not self._checked:
            self.check_server()

    def unload(self) -> None:
        """Nothing is held between calls (each call opens and closes its own connections)."""

    def check_server(self) -> list[str]:
        """Ask the server for its models, retrying until ``health_timeout_s``; pick the model.

        Returns:
            The model names the server lists.

        Raises:
            ConnectionError: nothing answered at ``base_url`` in time, the server refused
                the API key, or it does not serve the configured model. The message
                names the URL and how to start a server.
        """
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

        openai = self._openai()
        url = f"{self.base_url}/models"
        client = openai.OpenAI(
            base_url=self.base_url, api_key=self._api_key(), timeout=min(10.0, self.health_timeout_s), max_retries=0
        )
        try:
            # A server that is still starting refuses connections: poll until the deadline.
            for attempt in Retrying(
                stop=stop_after_delay(self.health_timeout_s),
                wait=wait_exponential(multiplier=0.25, max=2),
                retry=retry_if_exception_type(openai.APIConnectionError),
                reraise=True,
            ):
                with attempt:
                    served = [m.id for m in client.models.list()]
        except openai.APIConnectionError as e:
            raise ConnectionError(
                f"No OpenAI-compatible server answered at {url} within {self.health_timeout_s:g}s ({e}). "
                "Start one with `cda serve` (a vLLM server; it prints its base URL) and set generate.backend.base_url "
                "to that URL, or use generate.backend=vllm to run vLLM in-process."
            ) from None
        except openai.AuthenticationError:
            raise ConnectionError(
                f"The server at {self.base_url} rejected the API key: set ${self.api_key_env} "
                "(generate.backend.api_key_env names the variable)."
            ) from None
        except openai.APIStatusError as e:
            raise ConnectionError(
                f"{url} answered HTTP {e.status_code}: is {self.base_url} an OpenAI-compatible API root (…/v1)?"
            ) from None
        except Exception as e:  # a 200 answer that is not the API's JSON (an HTML page, a proxy's error text)
            raise ConnectionError(
                f"{url} answered something that is not the OpenAI API ({type(e).__name__}); is {self.base_url} "
                "an OpenAI-compatible API root (…/v1)?"
            ) from None
        finally:
            client.close()
        self._model = self._pick_model(served)
        self._checked = True
        log.info("server %s is up; model %s", self.base_url, self._model)
        return served

    def _pick_model(self, served: list[str]) -> str:
        if self.model_spec is None:
            if not served:
                raise ConnectionError(f"The server at {self.base_url} lists no models")
            return served[0]
        for candidate in (self.model_spec, resolve_model_name(self.model_spec)):
            if candidate in served:
                return candidate
        raise ConnectionError(
            f"The server at {self.base_url} does not serve model {self.model_spec!r}; it serves {served}. "
            "Set generate.model to one of those (or leave it unset to take the first)."
        )

    # ------------------------------------------------------------------ generation
    def request(self, prompt: str, sampling: SamplingSettings) -> dict[str, Any]:
        """The chat-completion request for one prompt."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "n": requested_samples(sampling),
            "seed": sampling.seed,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p if sampling.temperature > 0 else 1.0,
            "max_tokens": sampling.max_new_tokens,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "counterfactual", "schema": sampling.json_schema},
            }
        extra = dict(self.extra_body)
        if sampling.regex is not None and sampling.json_schema is None:
            extra["structured_outputs"] = {"regex": sampling.regex}
        if extra:
            body["extra_body"] = extra
        return body

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        """``sampling.n`` samples per prompt, one :class:`Generation` per prompt, in order.

        Raises:
            ConnectionError: the server is not reachable before the first request.

        Examples:
            >>> gen = OpenAICompatibleGenerator(base_url="http://127.0.0.1:8000/v1")  # doctest: +SKIP
            >>> out = gen.generate(["Name a colour."], SamplingSettings(n=2, max_new_tokens=8))  # doctest: +SKIP
            >>> [len(g.texts) for g in out]  # doctest: +SKIP
            [2]
        """
        if not prompts:
            return []
        self.load()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate_all(prompts, sampling))
        # Called from inside an event loop (a notebook): run ours on a worker thread.
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self._generate_all(prompts, sampling)).result()

    async def _generate_all(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        if self._unresponsive is not None:
            return [Generation([], error=self._unresponsive) for _ in prompts]
        openai = self._openai()
        semaphore = asyncio.Semaphore(self.concurrency)
        async with openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key(), timeout=self.timeout_s, max_retries=self.max_retries
        ) as client:
            each = ([replace(sampling, regex=r, regexes=None) for r in sampling.regexes] if sampling.regexes is not None
                    else [sampling] * len(prompts))  # fmt: skip
            tasks = [asyncio.ensure_future(self._one(client, semaphore, p, s)) for p, s in zip(prompts, each)]
            done, _ = await asyncio.wait(tasks, timeout=self.first_response_timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if not done:  # not one answer: the server hangs; fail this call and the ones after it now
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._unresponsive = (
                    f"no answer from {self.base_url} within {self.first_response_timeout_s:g}s "
                    "(generate.first_response_timeout_s): the server hangs or is overloaded"
                )
                log.warning("%s; the remaining generations fail without a request", self._unresponsive)
                self.usage.prompts += len(prompts)
                self.usage.failed += len(prompts)
                return [Generation([], error=self._unresponsive) for _ in prompts]
            results = await asyncio.gather(*tasks)
        self.usage.prompts += len(prompts)
        failed = [g.error for g in results if g.error is not None]
        self.usage.failed += len(failed)
        if failed:
            log.warning("%d of %d requests failed; first: %s", len(failed), len(prompts), failed[0])
        return list(results)

    async def _one(
        self, client: Any, semaphore: asyncio.Semaphore, prompt: str, sampling: SamplingSettings
    ) -> Generation:
        openai = self._openai()
        async with semaphore:
            try:
                response = await client.chat.completions.create(**self.request(prompt, sampling))
            except (openai.APIError, ValueError) as e:
                return Generation([], error=f"request to {self.base_url} failed: {type(e).__name__}: {e}")
        choices = sorted(response.choices, key=lambda c: c.index)
        # A refusal has no content: keep its text so the candidate shows why it failed to parse.
        texts = [(c.message.content or getattr(c.message, "refusal", None) or "").strip() for c in choices]
        texts = repeat_greedy(texts, sampling)
        usage = response.usage
        self.usage.add(
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            samples=len(texts),
            truncated=sum(c.finish_reason == "length" for c in choices),
        )
        return Generation(texts)


# The name the backend registry (cda.generate.backends) looks up.
OpenAIGenerator = OpenAICompatibleGenerator
