"""Integration tests: a real vLLM (CPU build) started through probes/ (marker ``integration``)."""
