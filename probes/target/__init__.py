"""How a server is reached: a managed vLLM's lifecycle, an attached endpoint, synthetic models."""
