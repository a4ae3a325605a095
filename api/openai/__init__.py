"""OpenAI-compatible speech API: request/response schemas and the serving logic behind them."""
