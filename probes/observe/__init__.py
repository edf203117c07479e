"""What is watched beside the load: NVML (GPU memory, power), vLLM's /metrics, its startup log."""
