"""The engine: the model-agnostic synthesis pipeline, batching and streaming."""
