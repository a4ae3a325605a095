"""Pure-torch decoder-only LM (Qwen2/Llama) with a slot KV cache and a continuous-batching scheduler,
the engine room of the ``torch`` backend."""
