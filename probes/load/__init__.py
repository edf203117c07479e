"""What is sent and how it is measured: workloads, the asyncio load generator, vLLM-identical metrics."""
