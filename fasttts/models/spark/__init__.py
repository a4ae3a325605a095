"""Spark-TTS-0.5B: Qwen2 LLM + BiCodec + wav2vec2-XLSR-53, 16 kHz."""
