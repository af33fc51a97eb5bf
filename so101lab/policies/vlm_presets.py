"""Local SmolVLM backbone directories (config + tokenizer) for the full/small/tiny presets.

SmolVLA reads its backbone's config and tokenizer from ``vlm_model_name``; so101lab never
fetches it from a hub. ``full`` writes the SmolVLM2-500M layout (random weights unless the
user brings the real checkpoint); ``small`` and ``tiny`` are CPU-trainable layouts. The
tokenizer is a byte-level BPE without merges (one token per byte), written with
``tokenizers`` so both old and new transformers versions read it.

This module only needs ``json`` and ``tokenizers`` so the LeRobot fixture script can load it
by file path from another virtual environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECIAL_TOKENS: dict[str, str] = {
    "pad_token": "<|pad|>",
    "eos_token": "<|im_end|>",
    "bos_token": "<|im_start|>",
    "unk_token": "<|unk|>",
}
# Named tokens SmolVLM's processor looks up on the tokenizer.
EXTRA_SPECIAL_TOKENS: dict[str, str] = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
    "video_token": "<video>",
}

# name -> (vision, text, scale_factor). Vision/text entries are SmolVLM config fields.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {
        "vision": dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=512,
            patch_size=16,
        ),
        "text": dict(
            hidden_size=960,
            intermediate_size=2560,
            num_hidden_layers=32,
            num_attention_heads=15,
            num_key_value_heads=5,
            head_dim=64,
            vocab_size=49280,
            rope_theta=100000.0,
            max_position_embeddings=8192,
        ),
        "scale_factor": 4,
        "num_vlm_layers": 16,
    },
    "small": {
        "vision": dict(
            hidden_size=192,
            intermediate_size=768,
            num_hidden_layers=4,
            num_attention_heads=3,
            image_size=256,
            patch_size=16,
        ),
        "text": dict(
            hidden_size=256,
            intermediate_size=768,
            num_hidden_layers=8,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=64,
            rope_theta=100000.0,
            max_position_embeddings=2048,
        ),
        "scale_factor": 2,
        "num_vlm_layers": 8,
    },
    "tiny": {
        "vision": dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=64,
            patch_size=16,
        ),
        "text": dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=6,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            rope_theta=100000.0,
            max_position_embeddings=512,
        ),
        "scale_factor": 2,
        "num_vlm_layers": 4,
    },
}


def _byte_vocab() -> list[str]:
    """GPT-2's byte -> printable unicode map, in byte order (the ByteLevel alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _all_special_tokens() -> list[str]:
    return list(SPECIAL_TOKENS.values()) + list(EXTRA_SPECIAL_TOKENS.values())


def vocab_size() -> int:
    """Vocabulary size of the byte-level tokenizer (256 bytes + special tokens)."""
    return 256 + len(_all_special_tokens())


def write_tokenizer(path: str | Path) -> None:
    """Write a byte-level tokenizer (tokenizer.json + tokenizer_config.json) into ``path``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(_byte_vocab())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(_all_special_tokens())
    tok.save(str(path / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 2048,
        "clean_up_tokenization_spaces": False,
        "add_bos_token": False,
        "add_eos_token": False,
        **SPECIAL_TOKENS,
        "extra_special_tokens": dict(EXTRA_SPECIAL_TOKENS),
    }
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (path / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2))


def vlm_config_dict(preset: str, dtype: str = "float32") -> dict[str, Any]:
    """SmolVLM ``config.json`` content of a preset (plain JSON, readable by transformers 4.x and 5.x).

    ``dtype`` is the ``torch_dtype`` declared at the top and for the text model; transformers
    (and so LeRobot and we) build the text and action-expert layers in it (the vision config
    declares none: a bfloat16 SigLIP feeding the float32 connector fails in transformers).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown SmolVLM preset {preset!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[preset]
    special_ids = {t: 256 + i for i, t in enumerate(_all_special_tokens())}
    text = {
        "model_type": "llama",
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "vocab_size": vocab_size(),
        "pad_token_id": special_ids[SPECIAL_TOKENS["pad_token"]],
        "bos_token_id": special_ids[SPECIAL_TOKENS["bos_token"]],
        "eos_token_id": special_ids[SPECIAL_TOKENS["eos_token"]],
        "torch_dtype": dtype,
        **p["text"],
    }
    vision = {
        "model_type": "smolvlm_vision",
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
        "num_channels": 3,
        **p["vision"],
    }
    return {
        "model_type": "smolvlm",
        "architectures": ["SmolVLMForConditionalGeneration"],
        "scale_factor": p["scale_factor"],
        "image_token_id": special_ids[EXTRA_SPECIAL_TOKENS["image_token"]],
        "tie_word_embeddings": False,
        "torch_dtype": dtype,
        "vision_config": vision,
        "text_config": text,
    }


def image_seq_len(preset: str) -> int:
    """Tokens per image after the pixel-shuffle connector."""
    v = PRESETS[preset]["vision"]
    return (v["image_size"] // v["patch_size"]) ** 2 // PRESETS[preset]["scale_factor"] ** 2


def write_vlm_dir(path: str | Path, preset: str, dtype: str = "float32") -> Path:
    """Write a complete local SmolVLM directory (config, tokenizer, processor configs)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = vlm_config_dict(preset, dtype)
    (path / "config.json").write_text(json.dumps(config, indent=2))
    write_tokenizer(path)
    size = PRESETS[preset]["vision"]["image_size"]
    image_processor = {
        "image_processor_type": "SmolVLMImageProcessor",
        "processor_class": "SmolVLMProcessor",
        "do_convert_rgb": True,
        "do_resize": True,
        "size": {"longest_edge": size},
        "max_image_size": {"longest_edge": size},
        "do_image_splitting": False,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_pad": True,
        "resample": 1,
    }
    (path / "preprocessor_config.json").write_text(json.dumps(image_processor, indent=2))
    processor = {"processor_class": "SmolVLMProcessor", "image_seq_len": image_seq_len(preset)}
    (path / "processor_config.json").write_text(json.dumps(processor, indent=2))
    return path
